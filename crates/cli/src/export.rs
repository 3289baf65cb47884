//! `leadflow export parquet`: the history for analysts' own engines (DuckDB, ClickHouse,
//! Spark), read from the log in one pass at one position (issue 11):
//! - `events.parquet`: every event, its metadata as columns and its payload as JSON;
//! - `leads.parquet`: each lead as registered (the audit's cohort row);
//! - `transitions.parquet`: every stage each lead entered (the `transitions` model's rows).
//!
//! No personal data leaves: each lead event's payload is written as it reads without its
//! personal fields (`[erased]`, whether or not the person was erased), and the log is read
//! without keys. Staff names in catalog events are employment data, kept as the catalog has them.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use arrow_array::builder::{
    BooleanBuilder, StringBuilder, TimestampMicrosecondBuilder, UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use clap::Args;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use leadflow_codec::{Body, Stored};
use leadflow_projections::audit::{LeadPath, PathsFromLog};
use leadflow_store::Position;

use crate::{DataArgs, StoreArgs};

#[derive(Args)]
pub struct ParquetArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    store: StoreArgs,
    /// The folder to write the files into (made if missing; files there are replaced).
    #[arg(long)]
    out: std::path::PathBuf,
    /// Export the log up to this position (default: its head when the export starts).
    #[arg(long)]
    until: Option<u64>,
}

/// Rows per row group: bounded memory however long the log.
const ROW_GROUP: usize = 65_536;

fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn writer(path: &Path, schema: &Arc<Schema>) -> anyhow::Result<ArrowWriter<std::fs::File>> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_created_by(format!("leadflow {}", env!("CARGO_PKG_VERSION")))
        .build();
    Ok(ArrowWriter::try_new(file, schema.clone(), Some(props))?)
}

/// The events file's columns, filled a row group at a time.
struct Events {
    schema: Arc<Schema>,
    position: UInt64Builder,
    stream: StringBuilder,
    revision: UInt64Builder,
    event_id: StringBuilder,
    event_type: StringBuilder,
    version: UInt64Builder,
    occurred_at: TimestampMicrosecondBuilder,
    recorded_at: TimestampMicrosecondBuilder,
    actor: StringBuilder,
    correlation_id: StringBuilder,
    causation_id: StringBuilder,
    command: StringBuilder,
    payload: StringBuilder,
    rows: usize,
}

impl Events {
    fn new() -> Self {
        let schema = Arc::new(Schema::new(vec![
            Field::new("position", DataType::UInt64, false),
            Field::new("stream", DataType::Utf8, false),
            Field::new("revision", DataType::UInt64, false),
            Field::new("event_id", DataType::Utf8, false),
            Field::new("event_type", DataType::Utf8, false),
            Field::new("version", DataType::UInt64, true),
            Field::new("occurred_at", timestamp(), true),
            Field::new("recorded_at", timestamp(), false),
            Field::new("actor", DataType::Utf8, true),
            Field::new("correlation_id", DataType::Utf8, true),
            Field::new("causation_id", DataType::Utf8, true),
            Field::new("command", DataType::Utf8, true),
            Field::new("payload", DataType::Utf8, true),
        ]));
        Self {
            schema,
            position: UInt64Builder::new(),
            stream: StringBuilder::new(),
            revision: UInt64Builder::new(),
            event_id: StringBuilder::new(),
            event_type: StringBuilder::new(),
            version: UInt64Builder::new(),
            occurred_at: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            recorded_at: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            actor: StringBuilder::new(),
            correlation_id: StringBuilder::new(),
            causation_id: StringBuilder::new(),
            command: StringBuilder::new(),
            payload: StringBuilder::new(),
            rows: 0,
        }
    }

    fn push(&mut self, recorded: &leadflow_store::RecordedEvent, env: &leadflow_codec::Envelope) {
        self.position.append_value(env.position.0);
        self.stream.append_value(&env.stream);
        self.revision.append_value(env.revision);
        self.event_id.append_value(recorded.id.to_string());
        self.event_type.append_value(&recorded.event_type);
        self.recorded_at.append_value(recorded.recorded_at_micros);
        let (meta, payload) = match &env.body {
            Body::Lead { event, meta, .. } => (
                Some(meta),
                Some(
                    String::from_utf8(leadflow_domain::LeadAggregate::encode(
                        &event.without_personal_data(),
                    ))
                    .unwrap_or_default(),
                ),
            ),
            Body::Catalog { event, meta, .. } => (
                Some(meta),
                Some(
                    String::from_utf8(leadflow_domain::CatalogAggregate::encode(event))
                        .unwrap_or_default(),
                ),
            ),
            Body::Subject { event, meta, .. } => (
                Some(meta),
                Some(
                    String::from_utf8(leadflow_domain::SubjectAggregate::encode(event))
                        .unwrap_or_default(),
                ),
            ),
            Body::Ops { event, meta, .. } => (
                Some(meta),
                Some(
                    String::from_utf8(leadflow_domain::OpsAggregate::encode(event))
                        .unwrap_or_default(),
                ),
            ),
            Body::Other => (None, None),
        };
        self.payload.append_option(payload);
        self.version
            .append_option(meta.map(|m| u64::from(m.version)));
        self.occurred_at
            .append_option(meta.map(|m| m.occurred_at.timestamp_micros()));
        self.actor
            .append_option(meta.map(|m| m.actor.user_id.to_string()));
        self.correlation_id
            .append_option(meta.map(|m| m.correlation_id.to_string()));
        self.causation_id
            .append_option(meta.map(|m| m.causation_id.to_string()));
        self.command
            .append_option(meta.and_then(|m| m.command.clone()));
        self.rows += 1;
    }

    fn flush(&mut self, out: &mut ArrowWriter<std::fs::File>) -> anyhow::Result<()> {
        if self.rows == 0 {
            return Ok(());
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.position.finish()),
            Arc::new(self.stream.finish()),
            Arc::new(self.revision.finish()),
            Arc::new(self.event_id.finish()),
            Arc::new(self.event_type.finish()),
            Arc::new(self.version.finish()),
            Arc::new(self.occurred_at.finish()),
            Arc::new(self.recorded_at.finish()),
            Arc::new(self.actor.finish()),
            Arc::new(self.correlation_id.finish()),
            Arc::new(self.causation_id.finish()),
            Arc::new(self.command.finish()),
            Arc::new(self.payload.finish()),
        ];
        out.write(&RecordBatch::try_new(self.schema.clone(), columns)?)?;
        self.rows = 0;
        Ok(())
    }
}

/// The leads and transitions files, from the paths the same pass collected.
fn write_paths(dir: &Path, paths: &[LeadPath]) -> anyhow::Result<(usize, usize)> {
    let uuid = |u: uuid::Uuid| u.to_string();
    let leads_schema = Arc::new(Schema::new(vec![
        Field::new("lead", DataType::Utf8, false),
        Field::new("funnel", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("channel", DataType::Utf8, false),
        Field::new("created_by", DataType::Utf8, false),
        Field::new("responsible", DataType::Utf8, true),
        Field::new("quality", DataType::Utf8, false),
        Field::new("advertising", DataType::Boolean, false),
        Field::new("registered_at", timestamp(), false),
        Field::new("position", DataType::UInt64, false),
    ]));
    let mut out = writer(&dir.join("leads.parquet"), &leads_schema)?;
    for chunk in paths.chunks(ROW_GROUP) {
        let (mut lead, mut funnel, mut source, mut channel, mut created_by, mut responsible) = (
            StringBuilder::new(),
            StringBuilder::new(),
            StringBuilder::new(),
            StringBuilder::new(),
            StringBuilder::new(),
            StringBuilder::new(),
        );
        let (mut quality, mut advertising, mut registered_at, mut position) = (
            StringBuilder::new(),
            BooleanBuilder::new(),
            TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            UInt64Builder::new(),
        );
        for p in chunk {
            let c = &p.cohort;
            lead.append_value(uuid(p.lead));
            funnel.append_value(&c.funnel);
            source.append_value(&c.source);
            channel.append_value(&c.channel);
            created_by.append_value(uuid(c.created_by));
            responsible.append_option(c.responsible.map(uuid));
            quality.append_value(&c.quality);
            advertising.append_value(c.advertising);
            registered_at.append_value(c.registered_at);
            position.append_value(c.position);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(lead.finish()),
            Arc::new(funnel.finish()),
            Arc::new(source.finish()),
            Arc::new(channel.finish()),
            Arc::new(created_by.finish()),
            Arc::new(responsible.finish()),
            Arc::new(quality.finish()),
            Arc::new(advertising.finish()),
            Arc::new(registered_at.finish()),
            Arc::new(position.finish()),
        ];
        out.write(&RecordBatch::try_new(leads_schema.clone(), columns)?)?;
    }
    out.close()?;

    let moves_schema = Arc::new(Schema::new(vec![
        Field::new("lead", DataType::Utf8, false),
        Field::new("revision", DataType::UInt64, false),
        Field::new("position", DataType::UInt64, false),
        Field::new("occurred_at", timestamp(), false),
        Field::new("from_stage", DataType::Utf8, false),
        Field::new("to_stage", DataType::Utf8, false),
        Field::new("via", DataType::Utf8, false),
        Field::new("jump", DataType::Boolean, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("actor", DataType::Utf8, false),
    ]));
    let mut out = writer(&dir.join("transitions.parquet"), &moves_schema)?;
    let moves: Vec<(uuid::Uuid, &leadflow_projections::transitions::MoveRow)> = paths
        .iter()
        .flat_map(|p| p.moves.iter().map(move |m| (p.lead, m)))
        .collect();
    for chunk in moves.chunks(ROW_GROUP) {
        let (mut lead, mut revision, mut position, mut at) = (
            StringBuilder::new(),
            UInt64Builder::new(),
            UInt64Builder::new(),
            TimestampMicrosecondBuilder::new().with_timezone("UTC"),
        );
        let (mut from, mut to, mut via, mut jump, mut reason, mut actor) = (
            StringBuilder::new(),
            StringBuilder::new(),
            StringBuilder::new(),
            BooleanBuilder::new(),
            StringBuilder::new(),
            StringBuilder::new(),
        );
        for (l, m) in chunk {
            lead.append_value(uuid(*l));
            revision.append_value(m.revision);
            position.append_value(m.position);
            at.append_value(m.at);
            from.append_value(&m.from);
            to.append_value(&m.to);
            via.append_value(&m.via);
            jump.append_value(m.jump);
            reason.append_value(&m.reason);
            actor.append_value(uuid(m.actor));
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(lead.finish()),
            Arc::new(revision.finish()),
            Arc::new(position.finish()),
            Arc::new(at.finish()),
            Arc::new(from.finish()),
            Arc::new(to.finish()),
            Arc::new(via.finish()),
            Arc::new(jump.finish()),
            Arc::new(reason.finish()),
            Arc::new(actor.finish()),
        ];
        out.write(&RecordBatch::try_new(moves_schema.clone(), columns)?)?;
    }
    out.close()?;
    Ok((paths.len(), moves.len()))
}

/// Runs `leadflow export parquet`.
pub async fn parquet(args: ParquetArgs) -> anyhow::Result<()> {
    let (log, _) = crate::audit::open_log(&args.data.data_dir, &args.store).await?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let head = log.head().await?.0;
    let until = args.until.map_or(head, |u| u.min(head));
    let bar = crate::audit::progress(until);
    let mut events = Events::new();
    let mut out = writer(&args.out.join("events.parquet"), &events.schema)?;
    let mut paths = PathsFromLog::new();
    let mut after = Position::START;
    let mut count = 0u64;
    'read: while after.0 < until {
        let batch = log.read_all(after, 4096).await?;
        if batch.is_empty() {
            break;
        }
        for recorded in batch {
            if recorded.position.0 > until {
                break 'read;
            }
            after = recorded.position;
            let env = match leadflow_codec::decode_with_keys(
                recorded.clone(),
                &leadflow_codec::WithoutPersonalData,
            )? {
                leadflow_codec::Opened::Envelope(env) => env,
                leadflow_codec::Opened::NeedsKey { subject, .. } => {
                    anyhow::bail!("a key for {subject} was asked of keys that answer all")
                }
            };
            events.push(&recorded, &env);
            paths.apply(&env);
            count += 1;
            if events.rows == ROW_GROUP {
                events.flush(&mut out)?;
            }
        }
        bar.set_position(after.0);
    }
    events.flush(&mut out)?;
    out.close()?;
    bar.finish_and_clear();
    let (leads, moves) = write_paths(&args.out, &paths.into_paths())?;
    println!(
        "exported the log up to position {}: {count} events, {leads} leads, {moves} transitions into {}",
        after.0,
        args.out.display()
    );
    Ok(())
}
