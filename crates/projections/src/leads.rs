//! The `leads` read model: per lead, the card (the domain's state in postcard, folded with
//! the domain's own `evolve`, so the card can never disagree with the aggregate), the registry
//! row with every filterable column, and the kanban counters per funnel column, all written
//! in the batch's transaction so counts and cards never drift apart.

use std::collections::{BTreeSet, HashMap};

use rusqlite::{params, OptionalExtension, Transaction};
use uuid::Uuid;

use leadflow_domain::events::LeadEvent;
use leadflow_domain::{evolve, Lead, LeadId, Stage, SubjectEvent, SubjectId};

use leadflow_codec::seal::{matching, BlindIndex};

use crate::query::{budget_bucket, decode_card};
use crate::search::SearchBuild;
use crate::spans::{self, Changed, Span, Was};
use crate::{micros, Body, Envelope, Projection, ProjectionError};

/// The `leads` read model: cards, the registry table, the board.
pub const LEADS: crate::Model = crate::Model("leads");

#[derive(Default)]
pub struct LeadsProjection {
    /// While rebuilding from zero the search index is built beside the model (see
    /// [`crate::search`]), the budget counters in bulk at the end.
    rebuilding: bool,
    /// Tokens of phones, e-mails and names for finding a person (`None`: no master key, no
    /// tokens).
    blind: Option<BlindIndex>,
    /// While rebuilding: the search index, built on a thread of its own (started by the first
    /// batch).
    search: Option<SearchBuild>,
    /// The search texts of the last batch applied while rebuilding, and its last event's
    /// position: the builder gets them once that batch is known to have committed. A batch
    /// rolled back is applied again, and sends its texts again.
    pending: Option<(leadflow_store::Position, Vec<(i64, String)>)>,
}

impl LeadsProjection {
    /// A leads model keeping blind-index tokens under `blind`.
    pub fn with_blind_index(blind: Option<BlindIndex>) -> Self {
        Self {
            rebuilding: false,
            blind,
            search: None,
            pending: None,
        }
    }
}

/// A lead as the batch has it: the state before the batch (for the board counters) and after.
struct Touched {
    before: Option<Lead>,
    after: Option<Lead>,
    /// Its registry row's id, when the model holds it already.
    rowid: Option<i64>,
    /// The historical columns of `after`, once an event of the batch computed them: the next
    /// event's "before".
    was: Option<Was>,
    created_at: i64,
    updated_at: i64,
    position: u64,
    /// The data subjects whose data this batch's events brought (sealed under their keys).
    subjects: BTreeSet<Uuid>,
    /// Its historical columns over time: as stored, and with this batch's events.
    stored_spans: Vec<Span>,
    spans: Vec<Span>,
}

impl Projection for LeadsProjection {
    fn name(&self) -> &'static str {
        LEADS.name()
    }

    fn fresh(&self) -> Box<dyn Projection> {
        Box::new(Self::with_blind_index(self.blind.clone()))
    }

    fn version(&self) -> u32 {
        12
    }

    fn schema(&self) -> &'static str {
        include_str!("../../../projections/leads.v12.sql")
    }

    fn set_rebuilding(&mut self, rebuilding: bool) {
        self.rebuilding = rebuilding;
        if !rebuilding {
            self.search = None;
            self.pending = None;
        }
    }

    /// The search index's builder has every text (the runner calls this once the last batch
    /// committed): it commits while the indexes are built.
    fn caught_up(&mut self) {
        if let Some(search) = &mut self.search {
            if let Some((_, texts)) = self.pending.take() {
                search.send(texts);
            }
            search.close();
        }
    }

    /// The registry and its spans, whose indexes lead by a column of few values (the funnel):
    /// without statistics SQLite may scan a whole funnel's index for a manager's rows. The
    /// cards, the subjects and the blind-index tokens (3 M rows at 1 M sealed leads) are
    /// only read by their keys.
    fn planned_tables(&self) -> Option<&'static [&'static str]> {
        Some(&["leads", "lead_spans"])
    }

    fn finish_rebuild(&mut self, tx: &Transaction<'_>) -> Result<(), ProjectionError> {
        self.settle_pending(tx)?;
        let leads: i64 = tx.query_row("SELECT count(*) FROM leads", [], |r| r.get(0))?;
        let copied = match self.search.take() {
            Some(search) => search.copy_into(tx, leads)?,
            None => false,
        };
        if !copied {
            search_from_cards(tx)?;
        }
        count_buckets(tx)
    }

    fn apply(&mut self, tx: &Transaction<'_>, events: &[Envelope]) -> Result<(), ProjectionError> {
        if self.rebuilding {
            if self.search.is_none() {
                self.search = Some(SearchBuild::start(tx)?);
            }
            self.settle_pending(tx)?;
        }
        let mut texts = Vec::new();
        self.apply_batch(tx, events, &mut texts)?;
        if let (true, Some(last)) = (self.rebuilding, events.last()) {
            self.pending = Some((last.position, texts));
        }
        Ok(())
    }
}

/// The search index from the stored cards, in one bulk load: after a rebuild whose builder
/// could not be used (see [`crate::search`]: a rebuild resumed after a restart, say).
fn search_from_cards(tx: &Transaction<'_>) -> Result<(), ProjectionError> {
    // One bulk load: a large in-memory hash (64 MiB instead of 1 MiB) flushes a few big
    // segments instead of hundreds of small ones that merge level after level, which
    // halves the build. Live batches are small; they go back to the default.
    tx.execute_batch(
        "DELETE FROM lead_search;
         INSERT INTO lead_search(lead_search, rank) VALUES ('hashsize', 67108864);",
    )?;
    let mut cards = tx.prepare("SELECT row_id, state FROM lead_cards")?;
    let mut insert = tx.prepare("INSERT INTO lead_search(rowid, text) VALUES (?1, ?2)")?;
    let mut rows = cards.query([])?;
    while let Some(row) = rows.next()? {
        let rowid: i64 = row.get(0)?;
        let card = row.get_ref(1)?.as_bytes().map_err(rusqlite::Error::from)?;
        let lead = decode_card(card).map_err(|e| ProjectionError::Apply {
            position: leadflow_store::Position::START,
            reason: format!("stored card of row {rowid} does not decode: {e}"),
        })?;
        insert.execute(params![rowid, search_text(&lead)])?;
    }
    tx.execute_batch("INSERT INTO lead_search(lead_search, rank) VALUES ('hashsize', 1048576)")?;
    Ok(())
}

impl LeadsProjection {
    /// Sends the builder the texts of the batch applied last if it committed (the checkpoint
    /// in `tx` reached its last event); drops them if it was rolled back.
    fn settle_pending(&mut self, tx: &Transaction<'_>) -> Result<(), ProjectionError> {
        if self.pending.is_none() {
            return Ok(());
        }
        // Read before the texts are taken: should it fail, they wait for the batch's retry.
        let committed: i64 = tx.query_row(
            "SELECT position FROM projection_state WHERE name = ?1",
            [LEADS.name()],
            |r| r.get(0),
        )?;
        let Some((at, texts)) = self.pending.take() else {
            return Ok(());
        };
        if let (true, Some(search)) = (committed as u64 >= at.0, &mut self.search) {
            search.send(texts);
        }
        Ok(())
    }

    /// [`Projection::apply`]. While rebuilding, each saved lead's search text goes to `texts`
    /// (row id, text) for the builder instead of into the model's search index.
    fn apply_batch(
        &mut self,
        tx: &Transaction<'_>,
        events: &[Envelope],
        texts: &mut Vec<(i64, String)>,
    ) -> Result<(), ProjectionError> {
        // Fold the whole batch in memory first: a lead touched by many events is read and
        // written once.
        // foldhash (seeded per process, as SipHash is, and several times faster): looked up
        // for every event of a catching-up batch.
        // Boxed: a lead's state is large, and the map moves its values as it grows.
        let mut touched: foldhash::HashMap<LeadId, Box<Touched>> = Default::default();
        let mut order = Vec::new();
        for env in events {
            if let Body::Subject {
                event: SubjectEvent::PersonalDataErased(e),
                ..
            } = &env.body
            {
                erase(tx, e.subject, &mut touched, &mut order)?;
                continue;
            }
            let Body::Lead {
                lead_id,
                event,
                meta,
            } = &env.body
            else {
                continue;
            };
            if !touched.contains_key(lead_id) {
                // A registration starts a lead: nothing to load.
                let known = if matches!(event, LeadEvent::LeadRegistered(_)) {
                    fresh()
                } else {
                    load(tx, *lead_id)?
                };
                touched.insert(*lead_id, Box::new(known));
                order.push(*lead_id);
            }
            let t = touched.get_mut(lead_id).expect("inserted above");
            if t.after.is_none() && !matches!(event, LeadEvent::LeadRegistered(_)) {
                return Err(ProjectionError::Apply {
                    position: env.position,
                    reason: format!(
                        "{} for lead {lead_id}, which is not registered",
                        event.event_type()
                    ),
                });
            }
            let before = t.was.take().or_else(|| t.after.as_ref().map(Was::of));
            t.after = evolve(t.after.take(), event);
            let at = micros(meta.occurred_at);
            if let Some(lead) = &t.after {
                let after = Was::of(lead);
                let changed = Changed::by(env, before.as_ref(), &after);
                spans::record(&mut t.spans, at, changed, &after);
                t.was = Some(after);
            }
            // Unsealed events (written without keys) are about the lead's own subject.
            let subject = meta
                .subject
                .or_else(|| t.after.as_ref().map(|l| l.subject.as_uuid()));
            t.subjects.extend(subject);
            if matches!(event, LeadEvent::LeadRegistered(_)) {
                t.created_at = at;
            }
            t.updated_at = t.updated_at.max(at);
            t.position = env.position.0;
        }
        // The board's counters move once per column, scope and batch, not once per lead.
        let mut board: HashMap<(&str, String, Stage), (i64, i64)> = HashMap::new();
        let mut buckets: HashMap<(&str, String, Stage, i64), i64> = HashMap::new();
        let mut writes = Writes::prepare(tx)?;
        for id in order {
            let t = &touched[&id];
            let Some(lead) = &t.after else { continue };
            let rebuilt_search = self.rebuilding.then_some(&mut *texts);
            let rowid = save(tx, &mut writes, id, lead, t, rebuilt_search)?;
            spans::save(tx, rowid, lead.funnel.as_str(), &t.stored_spans, &t.spans)?;
            if let Some(blind) = &self.blind {
                tokens(tx, blind, rowid, lead, t.before.as_ref())?;
            }
            for (state, sign) in [(t.before.as_ref(), -1), (Some(lead), 1)] {
                if let Some(l) = state {
                    let minor = l.details.budget.as_ref().map(|m| m.minor());
                    let budget = minor.unwrap_or(0);
                    for scope in scopes(l) {
                        // A rebuild counts the buckets in bulk at its end instead.
                        if let Some(b) = minor.filter(|b| *b >= 0 && !self.rebuilding) {
                            *buckets
                                .entry((
                                    l.funnel.as_str(),
                                    scope.clone(),
                                    l.stage,
                                    budget_bucket(b),
                                ))
                                .or_default() += sign;
                        }
                        let cell = board
                            .entry((l.funnel.as_str(), scope, l.stage))
                            .or_default();
                        cell.0 += sign;
                        cell.1 += sign * budget;
                    }
                }
            }
        }
        let mut buckets: Vec<_> = buckets.into_iter().filter(|(_, d)| *d != 0).collect();
        buckets.sort_by(|((f1, s1, c1, b1), _), ((f2, s2, c2, b2), _)| {
            (f1, s1, b1, c1.as_str()).cmp(&(f2, s2, b2, c2.as_str()))
        });
        let mut count = tx.prepare_cached(
            "INSERT INTO budget_counts(funnel, scope, stage, bucket, leads) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(funnel, scope, bucket, stage) DO UPDATE SET leads = leads + excluded.leads",
        )?;
        // An emptied bucket leaves no row; only the cells this batch lowered can have emptied,
        // so they are looked up by key rather than the table scanned.
        let mut emptied = tx.prepare_cached(
            "DELETE FROM budget_counts WHERE funnel = ?1 AND scope = ?2 AND bucket = ?3 AND stage = ?4 AND leads = 0",
        )?;
        for ((funnel, scope, stage, bucket), leads) in buckets {
            let stage = stage.as_str();
            count.execute(params![funnel, scope, stage, bucket, leads])?;
            if leads < 0 {
                emptied.execute(params![funnel, scope, bucket, stage])?;
            }
        }
        let mut board: Vec<_> = board.into_iter().filter(|(_, d)| *d != (0, 0)).collect();
        board.sort_by(|((f1, s1, c1), _), ((f2, s2, c2), _)| {
            (f1, s1, c1.as_str()).cmp(&(f2, s2, c2.as_str()))
        });
        let mut upsert = tx.prepare_cached(
            "INSERT INTO board(funnel, scope, stage, leads, budget_minor) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(funnel, scope, stage) DO UPDATE SET leads = leads + excluded.leads, budget_minor = budget_minor + excluded.budget_minor",
        )?;
        // An emptied column leaves no row, so the table is the same however the log was batched
        // (the board query shows absent columns as zero); only a lowered cell can have emptied.
        let mut emptied = tx.prepare_cached(
            "DELETE FROM board WHERE funnel = ?1 AND scope = ?2 AND stage = ?3 AND leads = 0",
        )?;
        for ((funnel, scope, stage), (leads, budget)) in board {
            let stage = stage.as_str();
            upsert.execute(params![funnel, scope, stage, leads, budget])?;
            if leads < 0 {
                emptied.execute(params![funnel, scope, stage])?;
            }
        }
        Ok(())
    }
}

/// The budget counters from the registry in one scan (after a rebuild, which skips them batch
/// by batch: per lead and scope they cost more than the whole rebuild of the board). Funnels,
/// stages and scopes are interned, so a million rows allocate next to nothing.
fn count_buckets(tx: &Transaction<'_>) -> Result<(), ProjectionError> {
    let started = std::time::Instant::now();
    tx.execute("DELETE FROM budget_counts", [])?;
    #[derive(Default)]
    struct Names(HashMap<String, usize>, Vec<String>);
    impl Names {
        fn id(&mut self, name: &str) -> usize {
            if let Some(id) = self.0.get(name) {
                return *id;
            }
            self.1.push(name.to_owned());
            self.0.insert(name.to_owned(), self.1.len() - 1);
            self.1.len() - 1
        }
    }
    let (mut funnels, mut stages, mut scopes) =
        (Names::default(), Names::default(), Names::default());
    let everyone = scopes.id("");
    // Per user: their scopes as responsible, as creator and as both.
    let mut user_scopes: HashMap<String, [usize; 3]> = HashMap::new();
    let mut scopes_of = |user: &str, scopes: &mut Names| -> [usize; 3] {
        if let Some(ids) = user_scopes.get(user) {
            return *ids;
        }
        let ids = [
            scopes.id(&format!("r:{user}")),
            scopes.id(&format!("c:{user}")),
            scopes.id(&format!("b:{user}")),
        ];
        user_scopes.insert(user.to_owned(), ids);
        ids
    };
    let mut counts: HashMap<(usize, usize, usize, i64), i64> = HashMap::new();
    let mut stmt = tx.prepare(
        "SELECT funnel, stage, budget_minor, responsible, created_by FROM leads WHERE budget_minor >= 0",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let funnel = funnels.id(row.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?);
        let stage = stages.id(row.get_ref(1)?.as_str().map_err(rusqlite::Error::from)?);
        let bucket = budget_bucket(row.get(2)?);
        let responsible = row.get_ref(3)?.as_str().map_err(rusqlite::Error::from)?;
        let creator = row.get_ref(4)?.as_str().map_err(rusqlite::Error::from)?;
        let mut add = |scope| *counts.entry((funnel, scope, stage, bucket)).or_default() += 1;
        add(everyone);
        let [_, created, _] = scopes_of(creator, &mut scopes);
        add(created);
        if !responsible.is_empty() {
            let [as_responsible, _, both] = scopes_of(responsible, &mut scopes);
            add(as_responsible);
            if responsible == creator {
                add(both);
            }
        }
    }
    drop(rows);
    let mut insert = tx.prepare(
        "INSERT INTO budget_counts(funnel, scope, stage, bucket, leads) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut counts: Vec<_> = counts.into_iter().collect();
    counts.sort_by(|((f1, s1, c1, b1), _), ((f2, s2, c2, b2), _)| {
        (&funnels.1[*f1], &scopes.1[*s1], b1, &stages.1[*c1]).cmp(&(
            &funnels.1[*f2],
            &scopes.1[*s2],
            b2,
            &stages.1[*c2],
        ))
    });
    for ((funnel, scope, stage, bucket), leads) in counts {
        insert.execute(params![
            funnels.1[funnel],
            scopes.1[scope],
            stages.1[stage],
            bucket,
            leads
        ])?;
    }
    tracing::info!(elapsed = ?started.elapsed(), "counted the budget buckets");
    Ok(())
}

/// The board scopes a lead counts in: everyone's, its responsible's, its creator's, and both
/// when they are the same user (see `projections/leads.v5.sql`).
fn scopes(lead: &Lead) -> Vec<String> {
    let mut scopes = vec![String::new(), format!("c:{}", lead.created_by)];
    if let Some(r) = lead.responsible {
        scopes.push(format!("r:{r}"));
        if r == lead.created_by {
            scopes.push(format!("b:{r}"));
        }
    }
    scopes
}

fn fresh() -> Touched {
    Touched {
        before: None,
        after: None,
        rowid: None,
        was: None,
        created_at: 0,
        updated_at: 0,
        position: 0,
        subjects: BTreeSet::new(),
        stored_spans: Vec::new(),
        spans: Vec::new(),
    }
}

/// `subject` is erased: every lead holding its data, stored or in this batch, reads as
/// erased from here on (its personal fields replaced; stages, times, amounts kept). Events of
/// those leads later in the log hold it erased already (its key is gone).
fn erase(
    tx: &Transaction<'_>,
    subject: SubjectId,
    touched: &mut foldhash::HashMap<LeadId, Box<Touched>>,
    order: &mut Vec<LeadId>,
) -> Result<(), ProjectionError> {
    let subject = subject.as_uuid();
    let stored: Vec<String> = tx
        .prepare_cached(
            "SELECT l.lead_id FROM lead_subjects s JOIN leads l ON l.row_id = s.row_id
             WHERE s.subject = ?1",
        )?
        .query_map([subject.as_bytes().as_slice()], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut ids: Vec<LeadId> = stored
        .iter()
        .filter_map(|id| LeadId::parse(id).ok())
        .collect();
    ids.extend(
        touched
            .iter()
            .filter(|(_, t)| t.subjects.contains(&subject))
            .map(|(id, _)| *id),
    );
    for id in ids {
        let t = match touched.entry(id) {
            std::collections::hash_map::Entry::Occupied(t) => t.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                order.push(id);
                v.insert(Box::new(load(tx, id)?))
            }
        };
        t.after = t.after.take().map(|lead| lead.without_personal_data());
        t.was = None;
    }
    Ok(())
}

fn load(tx: &Transaction<'_>, id: LeadId) -> Result<Touched, ProjectionError> {
    let row: Option<(Vec<u8>, i64, i64, i64, i64)> = tx
        .prepare_cached(
            "SELECT c.state, l.created_at, l.updated_at, l.last_position, l.row_id FROM leads l
             JOIN lead_cards c ON c.row_id = l.row_id WHERE l.lead_id = ?1",
        )?
        .query_row([id.to_string()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .optional()?;
    match row {
        None => Ok(fresh()),
        Some((card, created_at, updated_at, position, rowid)) => {
            let lead = decode_card(&card).map_err(|e| ProjectionError::Apply {
                position: leadflow_store::Position::START,
                reason: format!("stored card of lead {id} does not decode: {e}"),
            })?;
            let spans = spans::load(tx, rowid)?;
            Ok(Touched {
                before: Some(lead.clone()),
                after: Some(lead),
                rowid: Some(rowid),
                was: None,
                created_at,
                updated_at,
                position: position as u64,
                subjects: BTreeSet::new(),
                stored_spans: spans.clone(),
                spans,
            })
        }
    }
}

/// The values a person is found by: (kind, value), erased ones left out.
fn matched(lead: &Lead) -> Vec<(&'static str, &str)> {
    let d = &lead.details;
    let mut values: Vec<(&'static str, &str)> = Vec::new();
    values.extend(d.phones.iter().map(|p| (matching::PHONE, p.as_str())));
    values.extend(d.emails.iter().map(|e| (matching::EMAIL, e.as_str())));
    values.extend(d.contact_name.iter().map(|n| (matching::NAME, n.as_str())));
    values.retain(|(_, v)| *v != leadflow_codec::seal::ERASED);
    values
}

/// Keeps the lead's blind-index tokens in step with its values (none once erased).
fn tokens(
    tx: &Transaction<'_>,
    blind: &BlindIndex,
    rowid: i64,
    lead: &Lead,
    before: Option<&Lead>,
) -> Result<(), ProjectionError> {
    let now = matched(lead);
    if before.is_some_and(|b| matched(b) == now) {
        return Ok(());
    }
    if before.is_some() {
        // Through the key (lead first), which a rebuild keeps: it drops secondary indexes
        // until it is done.
        tx.prepare_cached("DELETE FROM lead_tokens WHERE row_id = ?1")?
            .execute([rowid])?;
    }
    let subject = lead.subject.as_uuid();
    let mut insert = tx.prepare_cached(
        "INSERT OR IGNORE INTO lead_tokens(token, row_id, subject) VALUES (?1, ?2, ?3)",
    )?;
    for (kind, value) in now {
        insert.execute(params![
            blind.digest_of(kind, value).as_slice(),
            rowid,
            subject.as_bytes().as_slice()
        ])?;
    }
    Ok(())
}

/// The statements that store a lead, prepared once a batch rather than looked up in the
/// connection's cache for every lead (hashing their text each time), and the buffer its card
/// is encoded into.
struct Writes<'t> {
    update_lead: rusqlite::CachedStatement<'t>,
    update_card: rusqlite::CachedStatement<'t>,
    insert_lead: rusqlite::CachedStatement<'t>,
    insert_card: rusqlite::CachedStatement<'t>,
    subject: rusqlite::CachedStatement<'t>,
    card: Vec<u8>,
}

impl<'t> Writes<'t> {
    fn prepare(tx: &'t Transaction<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            update_lead: tx.prepare_cached(
                "UPDATE leads SET funnel = ?2, stage = ?3, maturity = ?4, title = ?5, budget_minor = ?6,
                     responsible = ?7, created_by = ?8, source = ?9, channel = ?10, region = ?11,
                     quality = ?12, advertising = ?13, contact_name = ?14, phone = ?15, email = ?16,
                     account_name = ?17, disqualification_reason = ?18, created_at = ?19,
                     updated_at = ?20, last_position = ?21
                 WHERE row_id = ?1",
            )?,
            update_card: tx.prepare_cached("UPDATE lead_cards SET state = ?2 WHERE row_id = ?1")?,
            insert_lead: tx.prepare_cached(
                "INSERT INTO leads(lead_id, funnel, stage, maturity, title, budget_minor, responsible,
                     created_by, source, channel, region, quality, advertising, contact_name, phone,
                     email, account_name, disqualification_reason, created_at, updated_at, last_position)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                     ?18, ?19, ?20, ?21)",
            )?,
            insert_card: tx.prepare_cached("INSERT INTO lead_cards(row_id, state) VALUES (?1, ?2)")?,
            subject: tx.prepare_cached(
                "INSERT OR IGNORE INTO lead_subjects(subject, row_id) VALUES (?1, ?2)",
            )?,
            card: Vec::with_capacity(1024),
        })
    }
}

fn save(
    tx: &Transaction<'_>,
    w: &mut Writes<'_>,
    id: LeadId,
    lead: &Lead,
    t: &Touched,
    rebuilt_search: Option<&mut Vec<(i64, String)>>,
) -> Result<i64, ProjectionError> {
    let d = &lead.details;
    let (stage, maturity) = (lead.stage.as_str(), lead.maturity.as_str());
    let responsible = lead.responsible.map(|u| u.to_string()).unwrap_or_default();
    let (created_by, quality) = (lead.created_by.to_string(), d.quality.as_str());
    let columns = params![
        lead.funnel.as_str(),
        stage,
        maturity,
        d.title.as_str(),
        d.budget.as_ref().map_or(-1, |m| m.minor()),
        responsible,
        created_by,
        d.source.as_ref().map_or("", |s| s.as_str()),
        d.channel.as_ref().map_or("", |c| c.as_str()),
        d.region.as_ref().map_or("", |r| r.as_str()),
        quality,
        d.advertising,
        d.contact_name.as_ref().map_or("", |n| n.as_str()),
        d.phones.first().map_or("", |p| p.as_str()),
        d.emails.first().map_or("", |e| e.as_str()),
        d.account_name.as_ref().map_or("", |n| n.as_str()),
        lead.disqualification
            .as_ref()
            .map_or("", |q| q.reason.as_str()),
        t.created_at,
        t.updated_at,
        t.position as i64,
    ];
    // Into the batch's buffer: SQLite copies what it binds.
    let mut card = std::mem::take(&mut w.card);
    card.clear();
    let card = postcard::to_extend(lead, card).expect("a lead always serializes");
    // A lead stored before is updated in place through the row id its load found; a lead
    // the batch registered is appended (its registration starts its stream, so the model
    // cannot hold it yet).
    let rowid = match t.rowid {
        Some(rowid) => {
            let id: &dyn rusqlite::ToSql = &rowid;
            w.update_lead.execute(&*[&[id], columns].concat())?;
            w.update_card.execute(params![rowid, card])?;
            rowid
        }
        None => {
            let lead_id = id.to_string();
            let id: &dyn rusqlite::ToSql = &lead_id;
            w.insert_lead.execute(&*[&[id], columns].concat())?;
            let rowid = tx.last_insert_rowid();
            w.insert_card.execute(params![rowid, card])?;
            rowid
        }
    };
    w.card = card;
    for subject in &t.subjects {
        w.subject
            .execute(params![subject.as_bytes().as_slice(), rowid])?;
    }
    let text = search_text(lead);
    if t.before.as_ref().map(search_text) != Some(text.clone()) {
        if let Some(texts) = rebuilt_search {
            texts.push((rowid, text));
            return Ok(rowid);
        }
        if t.before.is_some() {
            tx.prepare_cached("DELETE FROM lead_search WHERE rowid = ?1")?
                .execute([rowid])?;
        }
        tx.prepare_cached("INSERT INTO lead_search(rowid, text) VALUES (?1, ?2)")?
            .execute(params![rowid, text])?;
    }
    Ok(rowid)
}

/// What the table's text filter searches: title, contact name, phones and e-mails.
fn search_text(lead: &Lead) -> String {
    let d = &lead.details;
    let mut parts = vec![d.title.as_str()];
    parts.extend(d.contact_name.as_ref().map(|n| n.as_str()));
    parts.extend(d.phones.iter().map(|p| p.as_str()));
    parts.extend(d.emails.iter().map(|e| e.as_str()));
    parts.join(" \u{1f} ")
}
