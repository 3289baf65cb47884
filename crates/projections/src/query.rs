//! Reads of the read models, for the API. Each read that combines a count with rows runs in one
//! read transaction, so the numbers and the cards come from the same snapshot. Pages use keyset
//! cursors over the sort columns (plus the lead id as a tiebreak), so a page deep in a large
//! table costs the same as the first.

use rusqlite::types::Value;

/// A cursor component (an integer or a text).
pub use rusqlite::types::Value as CursorValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};

use leadflow_domain::{Catalog, FunnelId, Lead, LeadId, Stage};

/// One column of the kanban, in funnel order.
#[derive(Clone, Debug, PartialEq)]
pub struct BoardColumn {
    pub stage: Stage,
    pub key: String,
    pub name: String,
    pub colour: String,
    pub leads: i64,
    pub budget_minor: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Board {
    pub funnel: FunnelId,
    pub columns: Vec<BoardColumn>,
    /// Over the columns shown.
    pub total_leads: i64,
    pub total_budget_minor: i64,
}

/// The kanban header of `funnel`: every stage of the funnel in order (closed ones unless
/// `hide_closed`), with counts and budget sums, from the counters the projection keeps.
pub fn board(
    conn: &Connection,
    catalog: &Catalog,
    funnel: &FunnelId,
    hide_closed: bool,
    owner: Option<&str>,
) -> rusqlite::Result<Option<Board>> {
    let Some(f) = catalog.funnel(funnel) else {
        return Ok(None);
    };
    let counts: Vec<(String, i64, i64)> = match owner {
        None => conn
            .prepare_cached(
                "SELECT stage, leads, budget_minor FROM board WHERE funnel = ?1 AND scope = ''",
            )?
            .query_map([funnel.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?,
        // Responsible for, or created: r + c - b, three index ranges.
        Some(user) => conn
            .prepare_cached(
                "SELECT stage,
                        sum(CASE WHEN scope = ?4 THEN -leads ELSE leads END),
                        sum(CASE WHEN scope = ?4 THEN -budget_minor ELSE budget_minor END)
                 FROM board WHERE funnel = ?1 AND scope IN (?2, ?3, ?4) GROUP BY stage",
            )?
            .query_map(
                params![
                    funnel.as_str(),
                    format!("r:{user}"),
                    format!("c:{user}"),
                    format!("b:{user}")
                ],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?
            .collect::<rusqlite::Result<_>>()?,
    };
    let columns: Vec<BoardColumn> = f
        .stages
        .iter()
        .filter(|s| !(hide_closed && s.stage.is_closed()))
        .map(|s| {
            let (leads, budget) = counts
                .iter()
                .find(|c| c.0 == s.stage.to_string())
                .map_or((0, 0), |c| (c.1, c.2));
            BoardColumn {
                stage: s.stage,
                key: s.key.to_string(),
                name: s.name.clone(),
                colour: s.colour.clone(),
                leads,
                budget_minor: budget,
            }
        })
        .collect();
    Ok(Some(Board {
        funnel: funnel.clone(),
        total_leads: columns.iter().map(|c| c.leads).sum(),
        total_budget_minor: columns.iter().map(|c| c.budget_minor).sum(),
        columns,
    }))
}

/// A row of the registry table.
#[derive(Clone, Debug, PartialEq)]
pub struct LeadRow {
    pub lead_id: String,
    pub funnel: String,
    pub stage: String,
    pub maturity: String,
    pub title: String,
    pub budget_minor: Option<i64>,
    pub responsible: Option<String>,
    pub created_by: String,
    pub source: Option<String>,
    pub channel: Option<String>,
    pub region: Option<String>,
    pub quality: String,
    pub advertising: bool,
    pub contact_name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub account_name: Option<String>,
    pub disqualification_reason: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The row's key in this read model: breaks ties in sort orders (every index ends in it).
    pub row_id: i64,
}

const ROW_COLUMNS: &str = "lead_id, funnel, stage, maturity, title, budget_minor, responsible, created_by, source, channel,
    region, quality, advertising, contact_name, phone, email, account_name, disqualification_reason, created_at, updated_at, row_id";

/// `''` and `-1` stand for "none" in the table (so its columns can be indexed for sorting).
fn text_or_none(r: &Row<'_>, i: usize) -> rusqlite::Result<Option<String>> {
    let v: String = r.get(i)?;
    Ok((!v.is_empty()).then_some(v))
}

fn lead_row(r: &Row<'_>) -> rusqlite::Result<LeadRow> {
    let budget: i64 = r.get(5)?;
    Ok(LeadRow {
        lead_id: r.get(0)?,
        funnel: r.get(1)?,
        stage: r.get(2)?,
        maturity: r.get(3)?,
        title: r.get(4)?,
        budget_minor: (budget >= 0).then_some(budget),
        responsible: text_or_none(r, 6)?,
        created_by: r.get(7)?,
        source: text_or_none(r, 8)?,
        channel: text_or_none(r, 9)?,
        region: text_or_none(r, 10)?,
        quality: r.get(11)?,
        advertising: r.get(12)?,
        contact_name: text_or_none(r, 13)?,
        phone: text_or_none(r, 14)?,
        email: text_or_none(r, 15)?,
        account_name: text_or_none(r, 16)?,
        disqualification_reason: text_or_none(r, 17)?,
        created_at: r.get(18)?,
        updated_at: r.get(19)?,
        row_id: r.get(20)?,
    })
}

/// A filter on every column of the table; empty lists and `None` mean "any".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeadFilter {
    pub funnel: Option<String>,
    pub stages: Vec<String>,
    pub responsible: Vec<String>,
    pub sources: Vec<String>,
    pub channels: Vec<String>,
    pub maturities: Vec<String>,
    pub regions: Vec<String>,
    pub qualities: Vec<String>,
    pub advertising: Option<bool>,
    pub budget_min: Option<i64>,
    pub budget_max: Option<i64>,
    pub created_from: Option<i64>,
    pub created_to: Option<i64>,
    pub updated_from: Option<i64>,
    pub updated_to: Option<i64>,
    /// Matches title, contact name, phone or e-mail (case-insensitive substring).
    pub text: Option<String>,
    /// Only the leads this user is responsible for or created (a manager's scope, SPEC 3.7).
    pub owner: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortField {
    Title,
    Stage,
    Maturity,
    Responsible,
    Source,
    Channel,
    Region,
    Budget,
    ContactName,
    CreatedAt,
    UpdatedAt,
}

impl SortField {
    /// The column to sort and compare by (NOT NULL, so indexes serve it).
    fn expr(self) -> &'static str {
        match self {
            Self::Title => "title",
            Self::Stage => "stage",
            Self::Maturity => "maturity",
            Self::Responsible => "responsible",
            Self::Source => "source",
            Self::Channel => "channel",
            Self::Region => "region",
            Self::Budget => "budget_minor",
            Self::ContactName => "contact_name",
            Self::CreatedAt => "created_at",
            Self::UpdatedAt => "updated_at",
        }
    }

    fn value(self, row: &LeadRow) -> Value {
        let text = |s: &Option<String>| Value::Text(s.clone().unwrap_or_default());
        match self {
            Self::Title => Value::Text(row.title.clone()),
            Self::Stage => Value::Text(row.stage.clone()),
            Self::Maturity => Value::Text(row.maturity.clone()),
            Self::Responsible => text(&row.responsible),
            Self::Source => text(&row.source),
            Self::Channel => text(&row.channel),
            Self::Region => text(&row.region),
            Self::Budget => Value::Integer(row.budget_minor.unwrap_or(-1)),
            Self::ContactName => text(&row.contact_name),
            Self::CreatedAt => Value::Integer(row.created_at),
            Self::UpdatedAt => Value::Integer(row.updated_at),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sort {
    pub field: SortField,
    pub descending: bool,
}

/// Where a page ends: the sort values of its last row and its lead id.
#[derive(Clone, Debug, PartialEq)]
pub struct Cursor(pub Vec<Value>);

impl Cursor {
    /// An opaque string for the API (hex of a JSON array).
    pub fn encode(&self) -> String {
        let json: Vec<serde_json::Value> = self
            .0
            .iter()
            .map(|v| match v {
                Value::Integer(i) => serde_json::Value::from(*i),
                Value::Text(s) => serde_json::Value::from(s.clone()),
                _ => serde_json::Value::Null,
            })
            .collect();
        serde_json::to_vec(&json)
            .expect("serializes")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    pub fn decode(raw: &str) -> Option<Self> {
        if !raw.len().is_multiple_of(2) || raw.len() > 8192 {
            return None;
        }
        let bytes: Option<Vec<u8>> = (0..raw.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(raw.get(i..i + 2)?, 16).ok())
            .collect();
        let json: Vec<serde_json::Value> = serde_json::from_slice(&bytes?).ok()?;
        json.into_iter()
            .map(|v| match v {
                serde_json::Value::Number(n) => n.as_i64().map(Value::Integer),
                serde_json::Value::String(s) => Some(Value::Text(s)),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .map(Cursor)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    pub rows: Vec<(T, Cursor)>,
    pub total_count: i64,
    pub has_next: bool,
}

fn where_clause(f: &LeadFilter, args: &mut Vec<Value>) -> String {
    let mut conds = vec!["1 = 1".to_owned()];
    // With a text filter the trigram index drives the query (a few matches out of many); a
    // unary + keeps SQLite from picking a column index and probing the matches row by row.
    let searched = f
        .text
        .as_deref()
        .is_some_and(|t| t.trim().chars().count() >= 3);
    let col = |c: &str| {
        if searched {
            format!("+{c}")
        } else {
            c.to_owned()
        }
    };
    let mut eq = |name: &str, v: &Option<String>, args: &mut Vec<Value>| {
        if let Some(v) = v {
            args.push(Value::Text(v.clone()));
            conds.push(format!("{} = ?{}", col(name), args.len()));
        }
    };
    eq("funnel", &f.funnel, args);
    if let Some(user) = &f.owner {
        args.push(Value::Text(user.clone()));
        let n = args.len();
        conds.push(format!(
            "({} = ?{n} OR {} = ?{n})",
            col("responsible"),
            col("created_by")
        ));
    }
    let any = |name: &str, vs: &[String], args: &mut Vec<Value>, conds: &mut Vec<String>| {
        if !vs.is_empty() {
            let marks: Vec<String> = vs
                .iter()
                .map(|v| {
                    args.push(Value::Text(v.clone()));
                    format!("?{}", args.len())
                })
                .collect();
            conds.push(format!("{} IN ({})", col(name), marks.join(", ")));
        }
    };
    any("stage", &f.stages, args, &mut conds);
    any("responsible", &f.responsible, args, &mut conds);
    any("source", &f.sources, args, &mut conds);
    any("channel", &f.channels, args, &mut conds);
    any("maturity", &f.maturities, args, &mut conds);
    any("region", &f.regions, args, &mut conds);
    any("quality", &f.qualities, args, &mut conds);
    let cmp =
        |name: &str, op: &str, v: Option<i64>, args: &mut Vec<Value>, conds: &mut Vec<String>| {
            if let Some(v) = v {
                args.push(Value::Integer(v));
                conds.push(format!("{} {op} ?{}", col(name), args.len()));
            }
        };
    cmp(
        "advertising",
        "=",
        f.advertising.map(i64::from),
        args,
        &mut conds,
    );
    cmp("budget_minor", ">=", f.budget_min, args, &mut conds);
    if f.budget_max.is_some() {
        conds.push("budget_minor >= 0".to_owned());
    }
    cmp("budget_minor", "<=", f.budget_max, args, &mut conds);
    cmp("created_at", ">=", f.created_from, args, &mut conds);
    cmp("created_at", "<", f.created_to, args, &mut conds);
    cmp("updated_at", ">=", f.updated_from, args, &mut conds);
    cmp("updated_at", "<", f.updated_to, args, &mut conds);
    if let Some(text) = f.text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        if text.chars().count() >= 3 {
            // The trigram index finds substrings; the text is one quoted phrase.
            args.push(Value::Text(format!("\"{}\"", text.replace('"', "\"\""))));
            conds.push(format!(
                "rowid IN (SELECT rowid FROM lead_search WHERE lead_search MATCH ?{})",
                args.len()
            ));
        } else {
            // Too short for trigrams: scan.
            let escaped = text
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            args.push(Value::Text(format!("%{escaped}%")));
            let n = args.len();
            conds.push(format!(
                "(title LIKE ?{n} ESCAPE '\\' OR contact_name LIKE ?{n} ESCAPE '\\' OR phone LIKE ?{n} ESCAPE '\\' OR email LIKE ?{n} ESCAPE '\\')"
            ));
        }
    }
    conds.join(" AND ")
}

/// A page of the registry table: `first` rows after `after`, sorted by `sort` (then lead id),
/// with the total count of rows matching `filter`, all from one snapshot.
pub fn leads_page(
    conn: &mut Connection,
    filter: &LeadFilter,
    sort: &[Sort],
    first: usize,
    after: Option<&Cursor>,
) -> rusqlite::Result<Page<LeadRow>> {
    page_of(conn, Past::Now, filter, sort, first, after)
}

/// [`leads_page`] as of business time `at` (µs): the leads registered by then, their stage,
/// disqualification reason, responsible, budget, maturity and quality as they were (the
/// `lead_spans` of the model); every other column as it is now. Every filter and sort applies
/// to the historical values. `total`: the count of matching rows when the caller has it from
/// counters (the board as of that time, [`KnownTotal`]); it is used only when this model
/// stands at the same log position, so the total always counts the rows listed; otherwise they
/// are counted. A manager's scope (`filter.owner`) holds both then and now: the leads that
/// were theirs at the time and still are, since the other columns (the title, the contact)
/// are today's.
#[allow(clippy::too_many_arguments)]
pub fn leads_page_as_of(
    conn: &mut Connection,
    at: i64,
    total: Option<KnownTotal>,
    filter: &LeadFilter,
    sort: &[Sort],
    first: usize,
    after: Option<&Cursor>,
) -> rusqlite::Result<Page<LeadRow>> {
    page_of(conn, Past::Spans { at, total }, filter, sort, first, after)
}

/// What a lead's registry row read at a time, folded from the `transitions` model: the
/// historical columns of [`leads_page_from_states`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowAt {
    pub lead_id: String,
    pub stage: String,
    /// '' for none.
    pub responsible: String,
    /// -1 for none.
    pub budget_minor: i64,
    /// '' unless Disqualified.
    pub disqualification_reason: String,
}

/// [`leads_page_as_of`] from every lead's state at a time folded from the `transitions` model
/// (`rows`; maturity and quality as they are now): the slow reference its spans are checked
/// against.
pub fn leads_page_from_states(
    conn: &mut Connection,
    rows: &[RowAt],
    filter: &LeadFilter,
    sort: &[Sort],
    first: usize,
    after: Option<&Cursor>,
) -> rusqlite::Result<Page<LeadRow>> {
    let json = serde_json::Value::Array(
        rows.iter()
            .map(|r| {
                serde_json::json!([
                    r.lead_id,
                    r.stage,
                    r.responsible,
                    r.budget_minor,
                    r.disqualification_reason
                ])
            })
            .collect(),
    )
    .to_string();
    page_of(conn, Past::States(json), filter, sort, first, after)
}

/// A page's total counted elsewhere (the board by hour of the `transitions` model), and the
/// log position it was counted at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownTotal {
    pub leads: i64,
    pub position: u64,
}

/// Which registry a page reads: today's, or one as of a time.
enum Past {
    Now,
    /// From the model's spans, at a business time (µs), with the total if known.
    Spans {
        at: i64,
        total: Option<KnownTotal>,
    },
    /// From states folded elsewhere (JSON rows of [`RowAt`]).
    States(String),
}

/// The historical columns over the model's own, under the table's name: every query below
/// reads `leads` and finds this.
const AS_OF_STATES: &str = "WITH asof AS (
        SELECT json_extract(value, '$[0]') AS lead_id, json_extract(value, '$[1]') AS stage,
               json_extract(value, '$[2]') AS responsible, json_extract(value, '$[3]') AS budget_minor,
               json_extract(value, '$[4]') AS disqualification_reason
        FROM json_each(?1)),
    leads AS (
        SELECT l.row_id, l.row_id AS rowid, l.lead_id, l.funnel, a.stage, l.maturity, l.title, a.budget_minor,
               a.responsible, l.created_by, l.source, l.channel, l.region, l.quality, l.advertising,
               l.contact_name, l.phone, l.email, l.account_name, a.disqualification_reason,
               l.created_at, l.updated_at, l.last_position
        FROM main.leads l JOIN asof a ON a.lead_id = l.lead_id
        WHERE ?2 IS NULL OR l.responsible = ?2 OR l.created_by = ?2)
    ";

/// The same from the spans that held at ?1: the row id is the span's, so an index of the
/// spans serves the sort and its tie-break.
const AS_OF_SPANS: &str = "WITH leads AS (
        SELECT s.row_id, s.row_id AS rowid, l.lead_id, s.funnel, s.stage, s.maturity, l.title, s.budget_minor,
               s.responsible, l.created_by, l.source, l.channel, l.region, s.quality, l.advertising,
               l.contact_name, l.phone, l.email, l.account_name, s.disqualification_reason,
               l.created_at, l.updated_at, l.last_position
        FROM lead_spans s JOIN main.leads l ON l.row_id = s.row_id
        WHERE s.from_at <= ?1 AND s.to_at > ?1 AND (?2 IS NULL OR l.responsible = ?2 OR l.created_by = ?2))
    ";

fn page_of(
    conn: &mut Connection,
    past: Past,
    filter: &LeadFilter,
    sort: &[Sort],
    first: usize,
    after: Option<&Cursor>,
) -> rusqlite::Result<Page<LeadRow>> {
    let tx = conn.transaction()?;
    let mut args = Vec::new();
    let owner = || filter.owner.clone().map_or(Value::Null, Value::Text);
    let mut known_total = None;
    let prefix = match past {
        Past::Now => "",
        Past::Spans { at, total } => {
            args.extend([Value::Integer(at), owner()]);
            known_total = total;
            AS_OF_SPANS
        }
        Past::States(json) => {
            args.extend([Value::Text(json), owner()]);
            AS_OF_STATES
        }
    };
    let filter_sql = where_clause(filter, &mut args);
    let counted = |tx: &rusqlite::Transaction<'_>| -> rusqlite::Result<i64> {
        tx.prepare_cached(&format!(
            "{prefix}SELECT count(*) FROM leads WHERE {filter_sql}"
        ))?
        .query_row(params_from_iter(&args), |r| r.get(0))
    };
    // A total counted at another position than this model's would not count these rows.
    let here = || -> rusqlite::Result<u64> {
        tx.query_row(
            "SELECT position FROM projection_state WHERE name = 'leads'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|p| p as u64)
    };
    let known_total = match known_total {
        Some(t) if t.position == here()? => Some(t.leads),
        _ => None,
    };
    let total_count = if let Some(n) = known_total {
        n
    } else if !prefix.is_empty() {
        counted(&tx)?
    } else {
        match board_count(&tx, filter)? {
            Some(n) => n,
            None => match budget_count(&tx, filter)? {
                Some(n) => n,
                None => counted(&tx)?,
            },
        }
    };

    // The row id breaks ties in the direction of the last key, so a single-key sort is one
    // index scan (forwards or backwards): every index of a rowid table ends in the row id.
    let mut keys: Vec<(String, bool)> = sort
        .iter()
        .map(|s| (s.field.expr().to_owned(), s.descending))
        .collect();
    let tie_desc = keys.last().is_some_and(|k| k.1);
    keys.push(("row_id".to_owned(), tie_desc));
    let mut page_sql = filter_sql;
    if let Some(cursor) = after.filter(|c| c.0.len() == keys.len()) {
        if keys.iter().all(|k| k.1 == keys[0].1) {
            // One direction: a row-value comparison, which SQLite turns into an index range.
            let cols: Vec<&str> = keys.iter().map(|k| k.0.as_str()).collect();
            let marks: Vec<String> = cursor
                .0
                .iter()
                .map(|v| {
                    args.push(v.clone());
                    format!("?{}", args.len())
                })
                .collect();
            let op = if keys[0].1 { "<" } else { ">" };
            page_sql = format!(
                "{page_sql} AND ({}) {op} ({})",
                cols.join(", "),
                marks.join(", ")
            );
        } else {
            // Mixed directions: (k1 > v1) OR (k1 = v1 AND k2 < v2) OR ...
            let mut ors = Vec::new();
            for i in 0..keys.len() {
                let mut ands = Vec::new();
                for (j, (expr, desc)) in keys.iter().enumerate().take(i + 1) {
                    args.push(cursor.0[j].clone());
                    let op = if j < i {
                        "="
                    } else if *desc {
                        "<"
                    } else {
                        ">"
                    };
                    ands.push(format!("{expr} {op} ?{}", args.len()));
                }
                ors.push(format!("({})", ands.join(" AND ")));
            }
            page_sql = format!("{page_sql} AND ({})", ors.join(" OR "));
        }
    }
    let order: Vec<String> = keys
        .iter()
        .map(|(e, d)| format!("{e} {}", if *d { "DESC" } else { "ASC" }))
        .collect();
    let sql = format!(
        "{prefix}SELECT {ROW_COLUMNS} FROM leads WHERE {page_sql} ORDER BY {} LIMIT {}",
        order.join(", "),
        first + 1
    );
    let mut rows: Vec<LeadRow> = tx
        .prepare_cached(&sql)?
        .query_map(params_from_iter(&args), lead_row)?
        .collect::<rusqlite::Result<_>>()?;
    let has_next = rows.len() > first;
    rows.truncate(first);
    let rows = rows
        .into_iter()
        .map(|row| {
            let mut values: Vec<Value> = sort.iter().map(|s| s.field.value(&row)).collect();
            values.push(Value::Integer(row.row_id));
            (row, Cursor(values))
        })
        .collect();
    Ok(Page {
        rows,
        total_count,
        has_next,
    })
}

/// The funnel and stages of `f` when they are all it filters on (no manager's scope): then the
/// table's total as of a time is the board's as of then
/// ([`crate::board_hours::leads_at`]), not a count of the rows.
pub fn counted_by_board(f: &LeadFilter) -> Option<(&str, &[String])> {
    let funnel = f.funnel.as_deref()?;
    let countable = LeadFilter {
        funnel: f.funnel.clone(),
        stages: f.stages.clone(),
        ..LeadFilter::default()
    };
    (*f == countable).then_some((funnel, f.stages.as_slice()))
}

/// The count of a filter the board counters answer, kept in the read model's transaction:
/// funnel and stages (a kanban column, the table filtered by stage), for everyone or in a
/// manager's scope, and optionally one responsible (whose counters are `r:<user>`); `None`
/// when the filter needs a scan.
fn board_count(conn: &Connection, f: &LeadFilter) -> rusqlite::Result<Option<i64>> {
    let countable = LeadFilter {
        funnel: f.funnel.clone(),
        stages: f.stages.clone(),
        responsible: f.responsible.clone(),
        owner: f.owner.clone(),
        ..LeadFilter::default()
    };
    let Some(funnel) = &f.funnel else {
        return Ok(None);
    };
    if *f != countable {
        return Ok(None);
    }
    let Some((r, c, b)) = counter_scopes(f) else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(
        "SELECT stage, sum(CASE WHEN scope = ?4 AND ?4 <> '' THEN -leads ELSE leads END)
         FROM board WHERE funnel = ?1 AND scope IN (?2, ?3, ?4) GROUP BY stage",
    )?;
    let counts: Vec<(String, i64)> = stmt
        .query_map(params![funnel, r, c, b], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Some(
        counts
            .iter()
            .filter(|(s, _)| f.stages.is_empty() || f.stages.contains(s))
            .map(|(_, n)| n)
            .sum(),
    ))
}

/// The counter scopes `(r, c, b)` whose `r + c - b` is the filter's set of leads, or `None`
/// when no counter holds it.
fn counter_scopes(f: &LeadFilter) -> Option<(String, String, String)> {
    Some(match (f.responsible.as_slice(), &f.owner) {
        // Everyone's counters, or a manager's: responsible + created - both.
        ([], None) => (String::new(), String::new(), String::new()),
        ([], Some(u)) => (format!("r:{u}"), format!("c:{u}"), format!("b:{u}")),
        // One responsible: their counters, which a manager's scope contains when it is them.
        // ("-" names no scope.)
        ([r], None) => (format!("r:{r}"), "-".to_owned(), "-".to_owned()),
        ([r], Some(u)) if r == u => (format!("r:{r}"), "-".to_owned(), "-".to_owned()),
        _ => return None,
    })
}

/// The budget bucket of an amount in minor units (>= 0): the amount itself below 16, else its
/// top five significant bits, so 16 buckets per doubling, each ~4 % wide. Monotonic.
pub fn budget_bucket(minor: i64) -> i64 {
    if minor < 16 {
        return minor;
    }
    let exponent = 63 - i64::from(minor.leading_zeros());
    exponent * 16 + ((minor >> (exponent - 4)) & 15)
}

/// The smallest amount in bucket `k` or any later one (the inverse of [`budget_bucket`] at
/// its lower edge; saturating past the largest amount).
fn bucket_floor(k: i64) -> i64 {
    match k {
        ..=15 => k.max(0),
        // No bucket between 15 (the amount 15) and 64 (the amounts 16 and 17).
        16..=64 => 16,
        _ => {
            let floor = i128::from(16 + k % 16) << (k / 16 - 4);
            i64::try_from(floor).unwrap_or(i64::MAX)
        }
    }
}

/// The exact count of a filter on funnel, budget range and optionally stages, one responsible
/// or a manager's scope: the counters of the buckets wholly inside the range, plus a count of
/// the rows in the (at most two) buckets the range cuts. `None` when the filter needs a scan.
fn budget_count(conn: &Connection, f: &LeadFilter) -> rusqlite::Result<Option<i64>> {
    let countable = LeadFilter {
        funnel: f.funnel.clone(),
        stages: f.stages.clone(),
        responsible: f.responsible.clone(),
        owner: f.owner.clone(),
        budget_min: f.budget_min,
        budget_max: f.budget_max,
        ..LeadFilter::default()
    };
    let Some(funnel) = &f.funnel else {
        return Ok(None);
    };
    if *f != countable || (f.budget_min.is_none() && f.budget_max.is_none()) {
        return Ok(None);
    }
    let (min, max) = (
        f.budget_min.unwrap_or(0).max(0),
        f.budget_max.unwrap_or(i64::MAX),
    );
    if max < min {
        return Ok(Some(0));
    }
    let Some((r, c, b)) = counter_scopes(f) else {
        return Ok(None);
    };
    let low = budget_bucket(min);
    // Without a maximum every bucket past the low edge is inside the range.
    let high = f.budget_max.map_or(i64::MAX, |_| budget_bucket(max));
    // Buckets strictly between the edges hold only amounts inside the range.
    let mut stmt = conn.prepare_cached(
        "SELECT stage, sum(CASE WHEN scope = ?4 AND ?4 <> '' THEN -leads ELSE leads END)
         FROM budget_counts WHERE funnel = ?1 AND scope IN (?2, ?3, ?4) AND bucket > ?5 AND bucket < ?6
         GROUP BY stage",
    )?;
    let inner: i64 = stmt
        .query_map(params![funnel, r, c, b, low, high], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?
        .iter()
        .filter(|(s, _)| f.stages.is_empty() || f.stages.contains(s))
        .map(|(_, n)| n)
        .sum();
    // The edge buckets, counted row by row (an index range of a few per cent of the rows).
    let low_end = bucket_floor(low + 1).saturating_sub(1);
    let edges = if low == high {
        vec![(min, max)]
    } else if high == i64::MAX {
        vec![(min, low_end)]
    } else {
        vec![(min, low_end.min(max)), (bucket_floor(high).max(min), max)]
    };
    let mut edge_count = 0;
    for (from, to) in edges {
        let edge = LeadFilter {
            budget_min: Some(from),
            budget_max: Some(to),
            ..f.clone()
        };
        let mut args = Vec::new();
        let sql = where_clause(&edge, &mut args);
        edge_count += conn
            .prepare_cached(&format!("SELECT count(*) FROM leads WHERE {sql}"))?
            .query_row(params_from_iter(&args), |r| r.get::<_, i64>(0))?;
    }
    Ok(Some(inner + edge_count))
}

/// A stored card: the domain's [`Lead`], postcard-encoded (see `projections/leads.v12.sql`).
pub(crate) fn decode_card(card: &[u8]) -> Result<Lead, postcard::Error> {
    postcard::from_bytes(card)
}

/// The lead card: the folded state and its registry times (registration, last change).
pub fn card(conn: &Connection, id: LeadId) -> rusqlite::Result<Option<(Lead, i64, i64)>> {
    let row: Option<(Vec<u8>, i64, i64)> = conn
        .prepare_cached(
            "SELECT c.state, l.created_at, l.updated_at FROM leads l JOIN lead_cards c ON c.row_id = l.row_id WHERE l.lead_id = ?1",
        )?
        .query_row([id.to_string()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    row.map(|(card, created, updated)| {
        decode_card(&card)
            .map(|lead| (lead, created, updated))
            .map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    0,
                    rusqlite::types::Type::Blob,
                    Box::new(e),
                )
            })
    })
    .transpose()
}

#[derive(Clone, Debug, PartialEq)]
pub struct HistoryRow {
    pub position: i64,
    pub revision: i64,
    pub event_type: String,
    pub actor_user: String,
    pub actor_role: String,
    pub occurred_at: i64,
    pub summary: String,
}

/// The standard reports (seed 001's three, plus disqualification reasons).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportDimension {
    Manager,
    Stage,
    Source,
    DisqualificationReason,
}

#[derive(Clone, Debug, Default)]
pub struct ReportFilter {
    pub funnel: Option<String>,
    pub registered_from: Option<i64>,
    pub registered_to: Option<i64>,
    /// Only this user's leads (see [`LeadFilter::owner`]).
    pub owner: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ReportRow {
    /// The responsible, stage, source or reason; `None` for leads without one.
    pub key: Option<String>,
    pub leads: i64,
    pub budget_minor: i64,
}

pub fn report(
    conn: &Connection,
    dimension: ReportDimension,
    filter: &ReportFilter,
) -> rusqlite::Result<Vec<ReportRow>> {
    let column = match dimension {
        ReportDimension::Manager => "responsible",
        ReportDimension::Stage => "stage",
        ReportDimension::Source => "source",
        ReportDimension::DisqualificationReason => "disqualification_reason",
    };
    let mut args = Vec::new();
    let base = LeadFilter {
        funnel: filter.funnel.clone(),
        owner: filter.owner.clone(),
        created_from: filter.registered_from,
        created_to: filter.registered_to,
        stages: if dimension == ReportDimension::DisqualificationReason {
            vec![Stage::Disqualified.to_string()]
        } else {
            vec![]
        },
        ..LeadFilter::default()
    };
    let filter_sql = where_clause(&base, &mut args);
    let sql = format!(
        "SELECT nullif({column}, ''), count(*), coalesce(sum(max(budget_minor, 0)), 0) FROM leads WHERE {filter_sql}
         GROUP BY {column} ORDER BY count(*) DESC, {column}"
    );
    let rows = conn
        .prepare_cached(&sql)?
        .query_map(params_from_iter(&args), |r| {
            Ok(ReportRow {
                key: r.get(0)?,
                leads: r.get(1)?,
                budget_minor: r.get(2)?,
            })
        })?
        .collect();
    rows
}

#[cfg(test)]
mod bucket_tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_their_floors_invert_them() {
        let mut amounts: Vec<i64> = (0..5000).collect();
        amounts.extend((1..62).flat_map(|e| [1i64 << e, (1i64 << e) - 1, (1i64 << e) + 1]));
        amounts.extend([150_000_000, 149_999_999, i64::MAX, i64::MAX - 1]);
        amounts.sort();
        for pair in amounts.windows(2) {
            assert!(budget_bucket(pair[0]) <= budget_bucket(pair[1]), "{pair:?}");
        }
        for a in amounts {
            let k = budget_bucket(a);
            assert!(bucket_floor(k) <= a, "{a} in bucket {k}");
            let next = bucket_floor(k + 1);
            assert!(
                next > a || next == i64::MAX,
                "{a} in bucket {k}, next floor {next}"
            );
            assert_eq!(
                budget_bucket(bucket_floor(k)),
                k,
                "the floor of {k} is in {k}"
            );
        }
    }
}
