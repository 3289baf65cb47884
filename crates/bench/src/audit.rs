//! The funnel audit's figures (issue 11), beside the same run's raw scan-and-decode of the
//! log: the audit of every lead from the `transitions` model, and the same audit straight from
//! the log. Both must give the same bytes, or the run fails.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use chrono::{TimeZone, Utc};

use leadflow_projections::audit::{self, AuditDefinition, Departments, GroupBy};
use leadflow_store::EventStore;
use leadflow_store_embedded::EmbeddedStore;

use crate::{dataset, read, Figure};

pub async fn audit(root: &Path, leads: u64) -> anyhow::Result<Vec<Figure>> {
    let data = dataset::ensure(root, leads).await?;
    let store: Arc<dyn EventStore> = Arc::new(EmbeddedStore::open_reader(data.join("events.db"))?);
    let head = store.head().await?.0;
    let model = data.join("read").join("transitions.db");
    // Both models the figures read, at the head and at this build's versions.
    let at_head = |model: &dyn leadflow_projections::Projection| -> bool {
        let path = data.join("read").join(format!("{}.db", model.name()));
        rusqlite::Connection::open(path)
            .and_then(|c| {
                c.query_row(
                    "SELECT position, version FROM projection_state WHERE name = ?1",
                    [model.name()],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, u32>(1)?)),
                )
            })
            .is_ok_and(|(p, v)| p as u64 >= head && v == model.version())
    };
    if !at_head(&leadflow_projections::transitions::TransitionsProjection::new())
        || !at_head(&leadflow_projections::leads::LeadsProjection::default())
    {
        read::rebuild(&data, false).await?;
    }
    let events_path = data.join("events.db");
    let definition = AuditDefinition {
        group_by: GroupBy::Source,
        ..AuditDefinition::new(
            Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2100, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2099, 1, 1, 0, 0, 0).unwrap(),
        )
    };
    let none = Departments::new();
    // The scan, the audit from the model and the audit from the log take turns, three times
    // each, and each counts its fastest: this shared machine's speed wanders by half from one
    // run to the next, and a neighbour only ever adds time. Every run's answer must be the
    // same bytes (reruns are byte-identical, and both paths agree).
    let (mut raw, mut model_secs, mut log_secs) = (0.0f64, f64::MAX, f64::MAX);
    let mut answers = std::collections::BTreeSet::new();
    for _ in 0..3 {
        let path = events_path.clone();
        raw = raw.max(tokio::task::spawn_blocking(move || read::scan_and_decode(&path)).await??);
        let (d, n, m) = (definition.clone(), none.clone(), model.clone());
        let (from_model, secs) = tokio::task::spawn_blocking(move || {
            let conn = leadflow_projections::open_read_only(&m)?;
            let started = Instant::now();
            let audit = audit::funnel_audit(&conn, &d, &n)?;
            anyhow::Ok((audit.to_json(), started.elapsed().as_secs_f64()))
        })
        .await??;
        model_secs = model_secs.min(secs);
        let started = Instant::now();
        let (position, paths) = audit::paths_from_log(store.as_ref(), None, |_, _| {})
            .await
            .map_err(anyhow::Error::msg)?;
        let from_log = audit::audit_paths(&definition, position, &none, &paths).to_json();
        log_secs = log_secs.min(started.elapsed().as_secs_f64());
        answers.insert(from_model);
        answers.insert(from_log);
    }
    if answers.len() != 1 {
        anyhow::bail!(
            "the audits differ between runs or between the transitions model and the log ({} answers)",
            answers.len()
        );
    }
    let (board_secs, page_secs) = board_as_of(&data)?;
    let scale = leads as f64 / 1_000_000.0;
    Ok(vec![
        Figure {
            name: "audit_from_transitions_time",
            value: model_secs,
            unit: "s",
            limit: head as f64 / raw,
            limit_what: format!(
                "the raw scan-and-decode of the {head} events of {leads} leads (each the fastest of 3)"
            ),
            goal: Some(2.0 * scale),
            higher_is_better: false,
        },
        Figure {
            name: "audit_from_log",
            value: head as f64 / log_secs,
            unit: "events/s",
            limit: raw,
            limit_what: format!(
                "plain scan of the same {head} events with JSON decoding ({log_secs:.1} s for the audit, goal <= {:.1} s)",
                15.0 * scale
            ),
            goal: Some(0.5 * raw),
            higher_is_better: true,
        },
        Figure {
            name: "board_as_of_p99",
            value: board_secs,
            unit: "s",
            limit: head as f64 / raw,
            limit_what: format!(
                "the raw scan-and-decode of the {head} events (goal at 1 M leads: 100 ms)"
            ),
            goal: Some(0.1 * scale),
            higher_is_better: false,
        },
        Figure {
            name: "leads_as_of_page_p99",
            value: page_secs,
            unit: "s",
            limit: head as f64 / raw,
            limit_what: format!(
                "the raw scan-and-decode of the {head} events (goal at 1 M leads: 250 ms)"
            ),
            goal: Some(0.25 * scale),
            higher_is_better: false,
        },
    ])
}

/// `board(asOf:)` of the default funnel, and a first page of `leads(asOf:)` (50 rows by
/// budget), at twenty times across the data set's history, as the API computes them: the
/// slowest of each (the nearest-rank p99 of twenty). As of the end, both must equal the live
/// ones of the `leads` model, or the run fails.
fn board_as_of(data: &Path) -> anyhow::Result<(f64, f64)> {
    use leadflow_projections::query::{self as q, LeadFilter, Sort, SortField};
    use leadflow_projections::reports as r;
    let conn = leadflow_projections::open_read_only(&data.join("read").join("transitions.db"))?;
    let catalog = leadflow_domain::Catalog::default_catalog();
    let funnel = catalog.default_funnel.clone();
    // From the first registration to the last change of any lead.
    let (first, last): (i64, i64) = conn.query_row(
        "SELECT min(registered_at), max(last_at) FROM transition_leads",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    let mut leads = leadflow_projections::open_read_only(&data.join("read").join("leads.db"))?;
    let filter = LeadFilter {
        funnel: Some(funnel.to_string()),
        ..LeadFilter::default()
    };
    let sort = [Sort {
        field: SortField::Budget,
        descending: true,
    }];
    let mut times = Vec::new();
    let mut pages = Vec::new();
    for k in 1..=20 {
        let at = first + (last - first) / 20 * k;
        let t = leadflow_projections::from_micros(if k == 20 { last } else { at });
        let started = Instant::now();
        let board = leadflow_projections::board_hours::board_at(
            &conn,
            &catalog,
            &funnel,
            false,
            None,
            leadflow_projections::micros(t),
        )?;
        times.push(started.elapsed().as_secs_f64());
        let started = Instant::now();
        let at = leadflow_projections::micros(t);
        let total = q::KnownTotal {
            leads: leadflow_projections::board_hours::leads_at(&conn, funnel.as_str(), &[], at)?,
            position: leadflow_projections::reports::checkpoint(&conn)?,
        };
        let page = q::leads_page_as_of(&mut leads, at, Some(total), &filter, &sort, 50, None)?;
        pages.push(started.elapsed().as_secs_f64());
        if k == 10 {
            // Half way: the same page folded from every lead's path, the slow way.
            let (_, paths) = r::paths_at(&conn, t)?;
            let rows = r::rows_at(&r::states_at(&paths, at, &r::Scope::default()));
            let folded = q::leads_page_from_states(&mut leads, &rows, &filter, &sort, 50, None)?;
            let ids = |p: &q::Page<q::LeadRow>| -> Vec<String> {
                p.rows.iter().map(|(r, _)| r.lead_id.clone()).collect()
            };
            if page.total_count != folded.total_count || ids(&page) != ids(&folded) {
                anyhow::bail!(
                    "the table as of half way differs from the one folded from every lead"
                );
            }
        }
        if k == 20 {
            let live = q::board(&leads, &catalog, &funnel, false, None)?;
            if board != live {
                anyhow::bail!("the board as of the last event differs from the live board");
            }
            let live = q::leads_page(&mut leads, &filter, &sort, 50, None)?;
            if page.total_count != live.total_count {
                anyhow::bail!("the table as of the last event differs from the live table");
            }
        }
    }
    let slowest = |v: Vec<f64>| v.into_iter().fold(0.0, f64::max);
    Ok((slowest(times), slowest(pages)))
}
