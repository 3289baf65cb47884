//! `leadflow replay --until T --into DIR`: every read model as of business time T, built in a
//! directory of its own from a copy of the log holding the events that happened by T, which
//! `leadflow serve --read-only --data-dir DIR` then serves (issue 11).
//!
//! The copy holds no personal data anyone can read: sealed fields come over sealed and their
//! keys stay behind (an erasure at the source leaves nothing readable here), a plain-text
//! field of a log written before sealing is replaced by the erased marker, and the read models
//! are built with every personal field erased.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use chrono::{DateTime, Utc};
use clap::Args;

use leadflow_codec::{Body, EventMetadata, Opened, Stored as _, WithoutPersonalData};
use leadflow_domain::LeadAggregate;
use leadflow_engine::Keyring;
use leadflow_store::{EventStore, ExpectedRevision, NewEvent, Position, RecordedEvent, StreamName};
use leadflow_store_embedded::EmbeddedStore;

use crate::{audit, private, DataArgs, StoreArgs};

/// What a replay wrote, beside its store, for people and for `serve --read-only`.
pub const REPLAY_FILE: &str = "replay.json";

#[derive(Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    store: StoreArgs,
    /// Only events that happened by this business time (`2026-03-01` or RFC 3339).
    #[arg(long)]
    until: String,
    /// The new directory to build into (refused when it holds anything).
    #[arg(long)]
    into: PathBuf,
}

pub async fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    let until = audit::parse_time("until", &args.until)?;
    let into = args.into;
    if std::fs::read_dir(&into).is_ok_and(|mut d| d.next().is_some()) {
        bail!(
            "{} is not empty: a replay builds into a new directory",
            into.display()
        );
    }
    let (log, _) = audit::open_log(&args.data.data_dir, &args.store).await?;
    private::prepare(&into)?;
    let copy: Arc<dyn EventStore> = Arc::new(
        EmbeddedStore::open(into.join("events.db"))
            .with_context(|| format!("cannot create the replay's store in {}", into.display()))?,
    );
    let head = log.head().await?.0;
    let bar = audit::progress(head);
    let mut copied = Copied::default();
    let mut after = Position::START;
    while after.0 < head {
        let batch = log.read_all(after, 4096).await?;
        if batch.is_empty() {
            break;
        }
        let mut runs: Vec<(String, Vec<NewEvent>)> = Vec::new();
        for event in batch {
            if event.position.0 > head {
                break;
            }
            after = event.position;
            let Some(new) = copied.take(event, until)? else {
                continue;
            };
            match runs.last_mut() {
                Some((stream, events)) if *stream == new.0 => events.push(new.1),
                _ => runs.push((new.0, vec![new.1])),
            }
        }
        copied.append(copy.as_ref(), runs).await?;
        bar.set_position(after.0);
    }
    bar.finish_and_clear();
    let position = copy.head().await?;
    // The read models, with every personal field erased: nothing here can open one.
    let keys = Arc::new(Keyring::withholding(copy.clone()));
    let reads = leadflow_app::read_side(&into.join("read"), copy.clone(), Some(keys))?;
    reads
        .wait_for(position, Duration::from_secs(24 * 3600))
        .await
        .map_err(|e| anyhow::anyhow!("building the read models: {e}"))?;
    reads.shutdown();
    std::fs::write(
        into.join(REPLAY_FILE),
        serde_json::to_string_pretty(&serde_json::json!({
            "until": until.to_rfc3339(),
            "sourceHead": head,
            "events": copied.events,
            "later": copied.later,
            "position": position.0,
        }))?,
    )
    .with_context(|| format!("cannot write {}", into.join(REPLAY_FILE).display()))?;
    println!(
        "replayed {} events that happened by {} ({} later ones left out) into {}",
        copied.events,
        until.to_rfc3339(),
        copied.later,
        into.display()
    );
    println!(
        "serve it: leadflow serve --read-only --data-dir {}",
        into.display()
    );
    Ok(())
}

/// The copy so far: each stream's next revision in it, and what was taken and left.
#[derive(Default)]
struct Copied {
    revisions: HashMap<String, u64>,
    events: u64,
    later: u64,
}

impl Copied {
    /// `event` as the copy takes it: `None` when it happened after `until` (or is not one of
    /// the product's, such as a node's system event).
    fn take(
        &mut self,
        event: RecordedEvent,
        until: DateTime<Utc>,
    ) -> anyhow::Result<Option<(String, NewEvent)>> {
        let Ok(meta) = EventMetadata::decode(&event.metadata) else {
            return Ok(None);
        };
        // The catalog comes over whole: it was seeded when the product was installed, often
        // after the history it names, and the reports name things as the catalog has them now.
        if meta.occurred_at > until && !event.stream.starts_with("catalog-") {
            self.later += 1;
            return Ok(None);
        }
        let data = if meta.subject.is_none() {
            without_plain_personal_data(&event)?
        } else {
            event.data.clone()
        };
        Ok(Some((
            event.stream.clone(),
            NewEvent {
                id: event.id,
                event_type: event.event_type,
                data,
                metadata: event.metadata,
                content_type: event.content_type,
            },
        )))
    }

    /// Appends each run of one stream's events, in the log's order: every append is queued
    /// before the first is answered, so the store commits them together.
    async fn append(
        &mut self,
        copy: &dyn EventStore,
        runs: Vec<(String, Vec<NewEvent>)>,
    ) -> anyhow::Result<()> {
        let mut appends = Vec::with_capacity(runs.len());
        for (stream, events) in runs {
            let next = self.revisions.entry(stream.clone()).or_insert(0);
            let expected = match *next {
                0 => ExpectedRevision::NoStream,
                n => ExpectedRevision::Exact(n - 1),
            };
            *next += events.len() as u64;
            self.events += events.len() as u64;
            let name = StreamName::parse(stream.clone())
                .with_context(|| format!("the stream name {stream:?}"))?;
            appends.push(async move { copy.append(&name, expected, events).await });
        }
        for result in futures::future::join_all(appends).await {
            result.context("appending to the replay's store")?;
        }
        Ok(())
    }
}

/// An event written without a data subject: a lead's event of a log written before sealing
/// holds its personal fields in plain text; they come over erased. Others are taken as they
/// are.
fn without_plain_personal_data(event: &RecordedEvent) -> anyhow::Result<Vec<u8>> {
    let opened = leadflow_codec::decode_with_keys(event.clone(), &WithoutPersonalData)
        .with_context(|| format!("decoding the event at {}", event.position.0))?;
    Ok(match opened {
        Opened::Envelope(env) => match env.body {
            Body::Lead { event: lead, .. } => LeadAggregate::encode(&lead.without_personal_data()),
            _ => event.data.clone(),
        },
        Opened::NeedsKey { .. } => event.data.clone(),
    })
}
