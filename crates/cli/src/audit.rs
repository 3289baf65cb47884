//! `leadflow audit funnel`: the funnel audit (issue 11, SPEC 8) from the `transitions` read
//! model, or straight from the log (`--from-log`, or a store whose read models are not here),
//! as a table, CSV, JSON or an SVG funnel chart per group. Every format carries the definition's
//! hash and the log position the answer stands at.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use leadflow_domain::Catalog;
use leadflow_projections::audit::{
    self as a, Audit, AuditDefinition, Exclusion, GroupBy, ManagerBasis, StepMode, STEPS,
};
use leadflow_store_embedded::EmbeddedStore;

use crate::{DataArgs, StoreArgs};

#[derive(Args)]
pub struct FunnelArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    store: StoreArgs,
    /// The cohort: leads registered at or after this time (`2026-03-01` or RFC 3339) ...
    #[arg(long)]
    from: String,
    /// ... and before this one.
    #[arg(long)]
    to: String,
    /// Only what happened up to this business time counts (default: now).
    #[arg(long)]
    as_of: Option<String>,
    /// Only what the log held at this position counts.
    #[arg(long)]
    as_of_position: Option<u64>,
    #[arg(long, value_enum, default_value = "none")]
    group_by: GroupArg,
    #[arg(long, value_enum, default_value = "ordered")]
    mode: ModeArg,
    /// Leave out leads ever disqualified, reopened or jumped (repeatable).
    #[arg(long, value_enum)]
    exclude: Vec<ExclusionArg>,
    /// A step reached within N days of the step before it: `handoff=7` (repeatable; steps:
    /// qualification-done, distribution, handoff, awaiting-sale, need-satisfied).
    #[arg(long)]
    window: Vec<String>,
    #[arg(long)]
    funnel: Option<String>,
    #[arg(long)]
    source: Option<String>,
    #[arg(long)]
    channel: Option<String>,
    /// The quality as registered (Target, NonTarget, Repeat, Unverified, Unsorted).
    #[arg(long)]
    quality: Option<String>,
    #[arg(long)]
    advertising: Option<bool>,
    /// The responsible manager's login.
    #[arg(long)]
    manager: Option<String>,
    /// The responsible manager's department.
    #[arg(long)]
    department: Option<String>,
    /// Which responsible manager counts: at registration, or at `--as-of`.
    #[arg(long, value_enum, default_value = "as-of")]
    manager_basis: BasisArg,
    /// Read the log itself instead of the `transitions` read model (same answer).
    #[arg(long)]
    from_log: bool,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Write here instead of to standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum GroupArg {
    None,
    Source,
    Channel,
    Funnel,
    Manager,
    Department,
    Week,
    Month,
}

#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    Ordered,
    Strict,
    Any,
}

/// The words on the command line: `--exclude ever-jumped`.
#[derive(Clone, Copy, ValueEnum)]
#[allow(clippy::enum_variant_names)]
enum ExclusionArg {
    EverDisqualified,
    EverReopened,
    EverJumped,
}

#[derive(Clone, Copy, ValueEnum)]
enum BasisArg {
    Registration,
    AsOf,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
    Svg,
}

/// `2026-03-01` (midnight UTC) or an RFC 3339 time.
pub fn parse_time(what: &str, raw: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(day) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        return Ok(day.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
    }
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .with_context(|| {
            format!("--{what} {raw:?} is neither a date (2026-03-01) nor an RFC 3339 time")
        })
}

impl FunnelArgs {
    fn definition(&self, catalog: &Catalog) -> anyhow::Result<AuditDefinition> {
        let mut windows = [None; 5];
        for w in &self.window {
            let Some((step, days)) = w.split_once('=') else {
                bail!("--window {w:?}: give STEP=DAYS, e.g. handoff=7");
            };
            let i = STEPS
                .iter()
                .position(|s| kebab(s) == step)
                .with_context(|| {
                    format!(
                        "--window {w:?}: unknown step {step:?} (one of {})",
                        STEPS.map(kebab).join(", ")
                    )
                })?;
            let days: u32 = days
                .parse()
                .with_context(|| format!("--window {w:?}: days must be a whole number >= 0"))?;
            windows[i] = Some(days);
        }
        let manager = self
            .manager
            .as_deref()
            .map(|login| {
                catalog
                    .users
                    .iter()
                    .find(|u| u.name == login || u.id.to_string() == login)
                    .map(|u| u.id.as_uuid())
                    .with_context(|| format!("--manager: no user {login:?} in the catalog"))
            })
            .transpose()?;
        let as_of = match &self.as_of {
            Some(t) => parse_time("as-of", t)?,
            None => Utc::now(),
        };
        let exclude: Vec<Exclusion> = self
            .exclude
            .iter()
            .map(|x| match x {
                ExclusionArg::EverDisqualified => Exclusion::EverDisqualified,
                ExclusionArg::EverReopened => Exclusion::EverReopened,
                ExclusionArg::EverJumped => Exclusion::EverJumped,
            })
            .collect();
        let definition = AuditDefinition {
            as_of_position: self.as_of_position,
            funnel: self.funnel.clone(),
            source: self.source.clone(),
            channel: self.channel.clone(),
            quality: self.quality.clone(),
            advertising: self.advertising,
            manager,
            department: self.department.clone(),
            manager_basis: match self.manager_basis {
                BasisArg::Registration => ManagerBasis::Registration,
                BasisArg::AsOf => ManagerBasis::AsOf,
            },
            mode: match self.mode {
                ModeArg::Ordered => StepMode::Ordered,
                ModeArg::Strict => StepMode::Strict,
                ModeArg::Any => StepMode::Any,
            },
            exclude,
            windows_days: windows,
            group_by: match self.group_by {
                GroupArg::None => GroupBy::None,
                GroupArg::Source => GroupBy::Source,
                GroupArg::Channel => GroupBy::Channel,
                GroupArg::Funnel => GroupBy::Funnel,
                GroupArg::Manager => GroupBy::Manager,
                GroupArg::Department => GroupBy::Department,
                GroupArg::Week => GroupBy::Week,
                GroupArg::Month => GroupBy::Month,
            },
            ..AuditDefinition::new(
                parse_time("from", &self.from)?,
                parse_time("to", &self.to)?,
                as_of,
            )
        };
        definition.validate().map_err(anyhow::Error::msg)?;
        Ok(definition)
    }
}

/// `QualificationDone` -> `qualification-done`.
fn kebab(step: &str) -> String {
    let mut out = String::new();
    for (i, c) in step.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('-');
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// Runs `leadflow audit funnel`.
pub async fn funnel(args: FunnelArgs) -> anyhow::Result<()> {
    let data_dir = &args.data.data_dir;
    let (log, catalog) = open_log(data_dir, &args.store).await?;
    let definition = args.definition(&catalog)?;
    let departments = a::departments(&catalog);
    let model =
        leadflow_projections::runner::generations::live_path(&data_dir.join("read"), "transitions");
    let from_log = args.from_log || args.store.store != "embedded" || !model.is_file();
    let audit = if from_log {
        let head = log.head().await?.0;
        let bar = progress(definition.as_of_position.map_or(head, |p| p.min(head)));
        let read = a::paths_from_log(log.as_ref(), definition.as_of_position, |at, _| {
            bar.set_position(at)
        })
        .await
        .map_err(anyhow::Error::msg)?;
        bar.finish_and_clear();
        let (position, paths) = read;
        a::audit_paths(&definition, position, &departments, &paths)
    } else {
        let conn = leadflow_projections::open_read_only(&model)
            .with_context(|| format!("opening {}", model.display()))?;
        // Counted as the model is read, no lead's path kept.
        let audit = a::funnel_audit(&conn, &definition, &departments)?;
        let head = log.head().await?.0;
        if audit.position < definition.as_of_position.unwrap_or(head).min(head) {
            eprintln!(
                "note: the transitions model is at position {} and the log at {head}: run `leadflow serve` or `projections run` to bring it up, or pass --from-log",
                audit.position
            );
        }
        audit
    };
    let labels = Labels::new(&catalog, &definition);
    let rendered = match args.format {
        Format::Json => audit.to_json() + "\n",
        Format::Table => table(&audit, &labels),
        Format::Csv => csv(&audit, &labels)?,
        Format::Svg => svg(&audit, &labels)?,
    };
    match &args.out {
        Some(path) => {
            std::fs::write(path, rendered).with_context(|| format!("writing {}", path.display()))?
        }
        None => std::io::stdout().write_all(rendered.as_bytes())?,
    }
    Ok(())
}

/// The log (read beside a running server) and the catalog it holds.
pub async fn open_log(
    data_dir: &Path,
    store: &StoreArgs,
) -> anyhow::Result<(std::sync::Arc<dyn leadflow_store::EventStore>, Catalog)> {
    let log: std::sync::Arc<dyn leadflow_store::EventStore> = if store.store == "embedded" {
        let path = data_dir.join("events.db");
        if !path.is_file() {
            bail!("no event store at {}: pass --data-dir", path.display());
        }
        std::sync::Arc::new(EmbeddedStore::open_reader(&path)?)
    } else {
        crate::open(data_dir, store)?.store
    };
    let catalog = leadflow_engine::read_catalog(log.as_ref())
        .await?
        .unwrap_or_else(Catalog::default_catalog);
    Ok((log, catalog))
}

pub fn progress(len: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "reading the log {bar:40} {pos}/{len} events, {per_sec}, {eta} left",
        )
        .expect("a valid template"),
    );
    bar
}

/// Names for people: the funnel's stage names for the steps, the catalog's names for keys.
pub struct Labels {
    steps: [String; 5],
    groups: std::collections::BTreeMap<String, String>,
    group_by: GroupBy,
}

impl Labels {
    fn new(catalog: &Catalog, definition: &AuditDefinition) -> Self {
        Self {
            steps: a::step_names(catalog, definition.funnel.as_deref()),
            groups: a::group_labels(catalog, definition.group_by),
            group_by: definition.group_by,
        }
    }

    fn group(&self, key: &str) -> String {
        match (key, self.group_by) {
            ("", GroupBy::None) => "all".to_owned(),
            ("", _) => "none".to_owned(),
            (key, _) => self
                .groups
                .get(key)
                .cloned()
                .unwrap_or_else(|| key.to_owned()),
        }
    }
}

fn percent(permille: u64) -> String {
    format!("{}.{}%", permille / 10, permille % 10)
}

/// Seconds as people read a duration: `3d 4h`, `2h 5m`, `40s`.
fn duration(seconds: Option<i64>) -> String {
    let Some(s) = seconds else {
        return "-".to_owned();
    };
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// The audit as a plain-text table per group.
pub fn table(audit: &Audit, labels: &Labels) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "funnel audit at log position {}", audit.position);
    let _ = writeln!(out, "definition {}", audit.definition_hash);
    let _ = writeln!(out, "  {}", audit.definition);
    if audit.groups.is_empty() {
        let _ = writeln!(out, "\nno lead in the cohort");
    }
    for g in &audit.groups {
        let _ = writeln!(
            out,
            "\n{}: {} registered, {} excluded, {} still in qualification",
            labels.group(&g.key),
            g.registered,
            g.excluded,
            g.open_in_qualification
        );
        let _ = writeln!(
            out,
            "  {:<28} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "step", "reached", "by jump", "open", "step", "overall", "median", "p90"
        );
        for (i, s) in g.steps.iter().enumerate() {
            let _ = writeln!(
                out,
                "  {:<28} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
                labels.steps[i],
                s.reached,
                s.by_jump,
                s.open,
                percent(s.step_conversion_permille),
                percent(s.overall_conversion_permille),
                duration(s.median_seconds),
                duration(s.p90_seconds),
            );
        }
        for l in &g.losses {
            let reason = if l.reason.is_empty() {
                String::new()
            } else {
                format!(" ({})", l.reason)
            };
            let _ = writeln!(out, "  lost in {}{reason}: {}", l.stage, l.leads);
        }
    }
    out
}

/// The audit as CSV: one row per group and count, each with the position and the definition's
/// hash, so a row read alone still says what it is.
pub fn csv(audit: &Audit, labels: &Labels) -> anyhow::Result<String> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    w.write_record([
        "position",
        "definition_hash",
        "group",
        "label",
        "row",
        "step",
        "name",
        "count",
        "by_jump",
        "open",
        "step_conversion_permille",
        "overall_conversion_permille",
        "median_seconds",
        "p90_seconds",
        "reason",
    ])?;
    let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    for g in &audit.groups {
        let head = [
            audit.position.to_string(),
            audit.definition_hash.clone(),
            g.key.clone(),
            labels.group(&g.key),
        ];
        for (row, count) in [
            ("registered", g.registered),
            ("excluded", g.excluded),
            ("open_in_qualification", g.open_in_qualification),
        ] {
            let mut r = head.to_vec();
            r.extend([
                row.to_owned(),
                String::new(),
                String::new(),
                count.to_string(),
            ]);
            r.extend(std::iter::repeat_n(String::new(), 7));
            w.write_record(&r)?;
        }
        for (i, s) in g.steps.iter().enumerate() {
            let mut r = head.to_vec();
            r.extend([
                "step".to_owned(),
                s.step.to_owned(),
                labels.steps[i].clone(),
                s.reached.to_string(),
                s.by_jump.to_string(),
                s.open.to_string(),
                s.step_conversion_permille.to_string(),
                s.overall_conversion_permille.to_string(),
                opt(s.median_seconds),
                opt(s.p90_seconds),
                String::new(),
            ]);
            w.write_record(&r)?;
        }
        for l in &g.losses {
            let mut r = head.to_vec();
            r.extend([
                "loss".to_owned(),
                l.stage.clone(),
                String::new(),
                l.leads.to_string(),
            ]);
            r.extend(std::iter::repeat_n(String::new(), 6));
            r.push(l.reason.clone());
            w.write_record(&r)?;
        }
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}

/// The audit as an SVG funnel chart, one per group: a bar per step as wide as its share of the
/// cohort, centred, with the step's name, count and conversions.
pub fn svg(audit: &Audit, labels: &Labels) -> anyhow::Result<String> {
    use plotters::prelude::*;
    const WIDTH: u32 = 900;
    const ROW: i32 = 34;
    const HEADER: i32 = 60;
    let group_height = 40 + ROW * STEPS.len() as i32 + 20;
    let height = HEADER + group_height * audit.groups.len().max(1) as i32;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, height as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
        let title = ("sans-serif", 24).into_font().color(&BLACK);
        let small = ("sans-serif", 15).into_font().color(&RGBColor(90, 90, 90));
        let text = ("sans-serif", 17).into_font().color(&BLACK);
        let put = |s: String, at: (i32, i32), style: &TextStyle| {
            root.draw(&Text::new(s, at, style.clone()))
                .map_err(|e| anyhow::anyhow!("{e}"))
        };
        put("Funnel audit".to_owned(), (20, 12), &title)?;
        put(
            format!(
                "log position {}, definition {}",
                audit.position, audit.definition_hash
            ),
            (20, 36),
            &small,
        )?;
        let bar_x = 470;
        let bar_width = WIDTH as i32 - bar_x - 20;
        for (n, g) in audit.groups.iter().enumerate() {
            let top = HEADER + n as i32 * group_height;
            put(
                format!(
                    "{}: {} registered, {} excluded",
                    labels.group(&g.key),
                    g.registered,
                    g.excluded
                ),
                (20, top + 10),
                &text,
            )?;
            for (i, s) in g.steps.iter().enumerate() {
                let y = top + 40 + i as i32 * ROW;
                let share = if g.registered == 0 {
                    0.0
                } else {
                    s.reached as f64 / g.registered as f64
                };
                let w = ((bar_width as f64) * share).round() as i32;
                let x = bar_x + (bar_width - w) / 2;
                root.draw(&Rectangle::new(
                    [(bar_x, y), (bar_x + bar_width, y + ROW - 8)],
                    RGBColor(236, 240, 245).filled(),
                ))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
                if w > 0 {
                    root.draw(&Rectangle::new(
                        [(x, y), (x + w, y + ROW - 8)],
                        RGBColor(52, 120, 200).filled(),
                    ))
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                }
                put(labels.steps[i].clone(), (20, y + 6), &text)?;
                put(
                    format!(
                        "{}   step {}   overall {}",
                        s.reached,
                        percent(s.step_conversion_permille),
                        percent(s.overall_conversion_permille)
                    ),
                    (220, y + 7),
                    &small,
                )?;
            }
        }
        root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_named_in_kebab_case_on_the_command_line() {
        assert_eq!(kebab("QualificationDone"), "qualification-done");
        assert_eq!(kebab("NeedSatisfied"), "need-satisfied");
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration(None), "-");
        assert_eq!(duration(Some(40)), "40s");
        assert_eq!(duration(Some(125 * 60)), "2h 5m");
        assert_eq!(duration(Some(3 * 86_400 + 4 * 3600 + 59)), "3d 4h");
        assert_eq!(percent(666), "66.6%");
    }

    #[test]
    fn times_are_dates_or_rfc_3339() {
        assert_eq!(
            parse_time("from", "2026-03-01").unwrap().to_rfc3339(),
            "2026-03-01T00:00:00+00:00"
        );
        assert!(parse_time("from", "2026-03-01T10:00:00+03:00").is_ok());
        assert!(parse_time("from", "March").is_err());
    }
}
