//! `leadflow`: one binary for the API server, the demo data set, tokens and projection status.
//! Configuration comes from flags or `LEADFLOW_*` environment variables, read once here.

#![allow(clippy::print_stdout)] // a command-line tool prints its answers

mod audit;
mod backup;
mod export;
mod migrate;
mod ops;
mod private;
mod replay;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::{Args, Parser, Subcommand, ValueEnum};

use leadflow_domain::{Catalog, Role, UserId};
use leadflow_engine::Engine;
use leadflow_esdb_node::RunningNode;
use leadflow_server::{Auth, Origins};
use leadflow_store::EventStore;
use leadflow_store_embedded::EmbeddedStore;
use leadflow_store_esdb::EsdbStore;

#[derive(Parser)]
#[command(
    name = "leadflow",
    version,
    about = "Event-sourced lead process engine"
)]
struct Cli {
    /// How the log lines on stderr look: `text` for people, `json` (one object a line, with
    /// the span fields such as the command and its correlation id) for a log collector.
    #[arg(
        long,
        global = true,
        env = "LEADFLOW_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Log lines on stderr (stdout is the command's answer: a token, an export), filtered by
/// `LEADFLOW_LOG` (default `info`).
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LEADFLOW_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

#[derive(Subcommand)]
enum Command {
    /// Serve the GraphQL API (and GraphiQL) with the projections, on the embedded store or on
    /// EventStoreDB / KurrentDB (`--store esdb://...`).
    Serve(ServeArgs),
    /// Copy the embedded store online (while `serve` runs) into a new file: a consistent
    /// snapshot of the log and the wrapped personal data keys. Read models are not copied.
    Backup(backup::BackupArgs),
    /// Restore the embedded store from a backup; a store that holds events is only replaced
    /// with --force, and the erasures it holds are carried over. The read models are rebuilt.
    Restore(backup::RestoreArgs),
    /// Serve the embedded store over the EventStoreDB gRPC protocol, on its own: official
    /// EventStoreDB / KurrentDB clients (and `--store esdb://...`) can connect to it.
    Node(NodeArgs),
    /// Create a realistic, deterministic demo data set by running real commands.
    Demo(DemoArgs),
    /// Bearer tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// The read models.
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
    /// Analysts' audits, exact and reproducible (docs/analysts.md).
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Every read model as of a business time, built into a new directory from the events
    /// that happened by then (no personal data), for `serve --read-only` (docs/analysts.md).
    Replay(replay::ReplayArgs),
    /// The history for analysts' own engines (docs/analysts.md).
    Export {
        #[command(subcommand)]
        command: ExportCommand,
    },
    /// Personal data on request (docs/privacy.md).
    Privacy {
        #[command(subcommand)]
        command: PrivacyCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// The funnel conversion audit of a cohort: per group, each step reached (by a jump
    /// among them), still open, conversions, times between steps and losses, as of a business
    /// time and a log position. From the `transitions` read model, or the log (`--from-log`).
    Funnel(audit::FunnelArgs),
}

#[derive(Subcommand)]
enum ExportCommand {
    /// Write the events (metadata columns, payload as JSON, no personal data), the leads as
    /// registered and their stage transitions as Parquet files, at one log position.
    Parquet(export::ParquetArgs),
}

#[derive(Subcommand)]
enum PrivacyCommand {
    /// Erase a data subject (a lead's `subject`): destroy their key, record who did it and
    /// why, and bring the read models in `<data-dir>/read` up to it, so nothing of the person
    /// is left there. With the embedded store, run it while `serve` is stopped (or use the
    /// `erasePersonalData` mutation); with EventStoreDB, any time.
    Erase {
        #[command(flatten)]
        request: SubjectRequest,
        /// Why: request, retention, duplicate or other.
        #[arg(long)]
        reason: String,
    },
    /// Print, as JSON, every personal value held for a data subject with where it came from;
    /// the export is recorded in the log (who, when, how many values; no value). Same stores
    /// and conditions as `erase`.
    Export {
        #[command(flatten)]
        request: SubjectRequest,
    },
    /// Seal an embedded log written before sealing: copy it into a new file with every
    /// personal field sealed under its subject's key (positions, ids, streams, times and
    /// every other field kept), compare the copy with the log event by event, swap it in, and
    /// overwrite and remove the old file. Run it with `serve` stopped. The read models are
    /// rebuilt on the next start.
    Migrate {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Apply the catalog's retention setting (`retentionMonths`): erase, with reason
    /// retention, every data subject all of whose leads are closed and untouched for longer.
    /// Same stores and conditions as `erase`; run it on a schedule (cron, a systemd timer).
    Sweep {
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        store: StoreArgs,
        /// List whom it would erase, and erase no one.
        #[arg(long)]
        dry_run: bool,
        /// The admin who acts (a catalog login).
        #[arg(long, default_value = "admin")]
        by: String,
    },
}

/// A request about a data subject: where, whose, under which ticket, by whom.
#[derive(Args)]
struct SubjectRequest {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    store: StoreArgs,
    /// The subject's id (a lead's `subject`).
    subject: String,
    /// A reference to the request elsewhere (`GDPR-2026-0042`): letters, digits, `-_./#:`.
    #[arg(long)]
    ticket: Option<String>,
    /// The admin who acts (a catalog login).
    #[arg(long, default_value = "admin")]
    by: String,
}

#[derive(Args, Clone)]
struct DataArgs {
    /// Where the event store, the read models and the token secret live.
    #[arg(long, env = "LEADFLOW_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
}

/// Where the events live.
#[derive(Args, Clone)]
struct StoreArgs {
    /// `embedded` (`<data-dir>/events.db`), or an EventStoreDB / KurrentDB connection string:
    /// `esdb://[user:password@]host:2113[,host:2113...]?tls=true&tlsCaFile=ca.crt`
    /// (`kurrentdb://` and `esdb+discover://` too).
    #[arg(long, env = "LEADFLOW_STORE", default_value = "embedded")]
    store: String,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    store: StoreArgs,
    /// Also serve the embedded store over the EventStoreDB gRPC protocol at this address
    /// (127.0.0.1:2113 when given without one).
    #[arg(long, env = "LEADFLOW_NODE", num_args = 0..=1, default_missing_value = "127.0.0.1:2113")]
    node: Option<SocketAddr>,
    #[arg(long, env = "LEADFLOW_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Create the demo data set when the store is empty, print a link that opens GraphiQL
    /// signed in as the demo supervisor (for the person at this terminal; the token lives a few
    /// hours), and let browser dev servers on http://localhost:* call the API.
    #[arg(long, env = "LEADFLOW_DEMO")]
    demo: bool,
    /// A browser origin besides the server's own that may call the API (CORS) and open its
    /// WebSocket: `https://crm.example.com`, or `http://localhost:*` for any port. Repeatable;
    /// the environment variable takes a comma-separated list. None by default: same-origin only.
    #[arg(
        long = "cors-origin",
        env = "LEADFLOW_CORS_ORIGINS",
        value_delimiter = ','
    )]
    cors_origins: Vec<String>,
    /// Serve the read models as they are and take no command (every mutation is refused):
    /// a replay's directory (`leadflow replay`). Opens no personal field and needs no master
    /// key.
    #[arg(long)]
    read_only: bool,
    #[arg(long, default_value_t = 2000)]
    demo_leads: u64,
    #[arg(long, default_value_t = 42)]
    demo_seed: u64,
    /// `/health/ready` answers 503 while a read model is more than this many events behind
    /// the log (or retrying, or failed).
    #[arg(long, env = "LEADFLOW_READY_MAX_LAG", default_value_t = 10_000)]
    ready_max_lag: u64,
    /// This server's name in the record of the ops actions it carries out (each `serve` keeps
    /// its own read models): the host name and the port it listens on by default.
    #[arg(long, env = "LEADFLOW_NODE_NAME", value_parser = node_name)]
    node_name: Option<leadflow_domain::NodeName>,
}

fn node_name(raw: &str) -> Result<leadflow_domain::NodeName, String> {
    leadflow_domain::NodeName::parse(raw).map_err(|e| e.to_string())
}

#[derive(Args)]
struct NodeArgs {
    #[command(flatten)]
    data: DataArgs,
    #[arg(long, env = "LEADFLOW_NODE_LISTEN", default_value = "127.0.0.1:2113")]
    listen: SocketAddr,
}

#[derive(Args)]
struct DemoArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    store: StoreArgs,
    #[arg(long, default_value_t = 2000)]
    leads: u64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Print a bearer token for a user of the catalog.
    Issue {
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        store: StoreArgs,
        /// A catalog user's login (e.g. olga.supervisor) or id; the token acts with the role
        /// the catalog gives them at each request.
        #[arg(long)]
        user: String,
        #[arg(long, default_value_t = 24 * 30)]
        ttl_hours: u64,
    },
    /// Replace the data directory's token secret with a new random one (written atomically).
    /// Every token issued before stops working once the server restarts with it.
    Rotate {
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Subcommand)]
enum ProjectionsCommand {
    /// Each read model's version, state (live, catching up, rebuilding n %, paused, failed),
    /// checkpoint, head, lag, events/s, ETA and, when failed, the event it stopped at. Asks
    /// the running server when there is one; reads the files otherwise.
    Status {
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        store: StoreArgs,
        /// One JSON object, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Pause a read model of the running server: it applies nothing until resumed.
    Pause(ops::Controlling),
    /// Resume a paused read model of the running server.
    Resume(ops::Controlling),
    /// Apply again the event a failed read model of the running server stopped at.
    Retry(ops::Controlling),
    /// Skip the event a failed read model of the running server stopped at into its dead
    /// letters, with a reason, and go on after it.
    Skip {
        #[command(flatten)]
        acting: ops::Controlling,
        /// The position of the event it stopped at (see `status`): a skip never lands on
        /// another event.
        #[arg(long)]
        position: u64,
    },
    /// The events a read model of the running server skipped.
    DeadLetters(ops::Target),
    /// What operators did to the read models of the running server (who, when, why), as
    /// the log records it: the latest ones, oldest first.
    Actions {
        #[command(flatten)]
        data: DataArgs,
        /// The admin of the catalog who asks.
        #[arg(long = "as", default_value = leadflow_domain::catalog::seed::ADMIN)]
        as_user: String,
        /// Only this read model's.
        model: Option<String>,
        /// How many of the latest to show (at most 1,000).
        #[arg(long, default_value_t = 50)]
        last: u32,
    },
    /// Rebuild a read model (or --all) from the start of the log into a new generation
    /// beside the live one, which keeps serving; it switches in once caught up. Asks the
    /// running server when there is one, else runs the rebuild here. Shows a progress bar.
    Rebuild(ops::RebuildArgs),
    /// Go back to the generation that served before the last switch.
    Rollback(ops::Acting),
    /// Run the projections without the API: catch up with the log, then exit (or follow it).
    Run {
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        store: StoreArgs,
        /// Where the read models live (default: <data-dir>/read).
        #[arg(long)]
        read_dir: Option<PathBuf>,
        /// Keep applying new events instead of exiting once caught up.
        #[arg(long)]
        follow: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Manager,
    Supervisor,
    Admin,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::Manager => Role::Manager,
            RoleArg::Supervisor => Role::Supervisor,
            RoleArg::Admin => Role::Admin,
        }
    }
}

/// The running server's `/health` address, in the data directory while it serves.
const SERVE_FILE: &str = "serve.json";

/// Who the demo link signs in, and for how long.
const DEMO_USER: &str = "olga.supervisor";
const DEMO_TOKEN_HOURS: u64 = 8;

/// Many threads allocate what others free (a feeder decodes batches that projection threads
/// drop); glibc's arenas serialise that on a lock, mimalloc does not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    // Before anything creates a file: the data directory is the service's alone.
    private::restrict_umask();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve(args).await,
            Command::Node(args) => node(args).await,
            Command::Demo(args) => demo(args).await,
            Command::Token {
                command:
                    TokenCommand::Issue {
                        data,
                        store,
                        user,
                        ttl_hours,
                    },
            } => {
                private::prepare(&data.data_dir)?;
                let auth = auth(&data.data_dir)?;
                let catalog = catalog_of(&data.data_dir, &store).await?;
                let (id, role) = resolve_user(&catalog, &user)?;
                println!(
                    "{}",
                    auth.issue(id, role, Duration::from_secs(ttl_hours * 3600))
                );
                Ok(())
            }
            Command::Token {
                command: TokenCommand::Rotate { data },
            } => {
                private::prepare(&data.data_dir)?;
                let path = private::write_new_secret(&data.data_dir)?;
                println!(
                    "a new token secret is in {}: restart the server; tokens issued before are refused from then on",
                    path.display()
                );
                if std::env::var_os("LEADFLOW_JWT_SECRET").is_some() {
                    println!("note: LEADFLOW_JWT_SECRET is set here and takes precedence over the file");
                }
                Ok(())
            }
            Command::Projections {
                command: ProjectionsCommand::Status { data, store, json },
            } => ops::status(&data.data_dir, &store, json).await,
            Command::Projections {
                command: ProjectionsCommand::Pause(target),
            } => ops::control(&target, ops::Action::Pause).await,
            Command::Projections {
                command: ProjectionsCommand::Resume(target),
            } => ops::control(&target, ops::Action::Resume).await,
            Command::Projections {
                command: ProjectionsCommand::Retry(target),
            } => ops::control(&target, ops::Action::Retry).await,
            Command::Projections {
                command:
                    ProjectionsCommand::Skip { acting, position },
            } => ops::control(&acting, ops::Action::Skip { position }).await,
            Command::Projections {
                command: ProjectionsCommand::DeadLetters(target),
            } => ops::dead_letters(&target).await,
            Command::Projections {
                command:
                    ProjectionsCommand::Actions {
                        data,
                        as_user,
                        model,
                        last,
                    },
            } => ops::actions(data, as_user, model, last).await,
            Command::Projections {
                command: ProjectionsCommand::Rebuild(args),
            } => ops::rebuild(args).await,
            Command::Projections {
                command: ProjectionsCommand::Rollback(target),
            } => ops::rollback(&target).await,
            Command::Audit {
                command: AuditCommand::Funnel(args),
            } => audit::funnel(args).await,
            Command::Export {
                command: ExportCommand::Parquet(args),
            } => export::parquet(args).await,
            Command::Replay(args) => replay::replay(args).await,
            Command::Backup(args) => backup::backup(args),
            Command::Restore(args) => backup::restore(args).await,
            Command::Privacy {
                command: PrivacyCommand::Erase { request, reason },
            } => erase(request, &reason).await,
            Command::Privacy {
                command: PrivacyCommand::Migrate { data },
            } => migrate_log(&data.data_dir).await,
            Command::Privacy {
                command:
                    PrivacyCommand::Sweep {
                        data,
                        store,
                        dry_run,
                        by,
                    },
            } => sweep(data, store, &by, dry_run).await,
            Command::Privacy {
                command: PrivacyCommand::Export { request },
            } => export(request).await,
            Command::Projections {
                command:
                    ProjectionsCommand::Run {
                        data,
                        store,
                        read_dir,
                        follow,
                    },
            } => run_projections(&data.data_dir, &store, read_dir, follow).await,
        }
    })
}

/// The `/health` of the server serving `data_dir`, if one is up and answers.
async fn running_server(data_dir: &Path) -> Option<(String, serde_json::Value)> {
    let announced = std::fs::read(data_dir.join(SERVE_FILE)).ok()?;
    let announced: serde_json::Value = serde_json::from_slice(&announced).ok()?;
    // Left behind by a server that was killed: whatever answers there now is not it.
    let pid = announced["pid"].as_u64()?;
    if !Path::new(&format!("/proc/{pid}")).exists() {
        return None;
    }
    let url = announced["health"].as_str()?.to_owned();
    let response = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .ok()?
        .get(&url)
        .send()
        .await
        .ok()?;
    let health = response.json().await.ok()?;
    Some((url, health))
}

fn resolve_user(catalog: &Catalog, raw: &str) -> anyhow::Result<(UserId, Role)> {
    let found = catalog
        .users
        .iter()
        .find(|u| u.name == raw || u.id.to_string() == raw);
    match found {
        Some(u) if !u.active => bail!("user {} is dismissed: restore them (restoreUser) before issuing a token", u.name),
        Some(u) => Ok((u.id, u.role)),
        None => bail!("unknown user {raw:?}: give a catalog user's login (e.g. olga.supervisor); admins add users with the createUser mutation"),
    }
}

/// The catalog the store holds, read beside a running server if there is one; the default
/// catalog for a store not created yet (its first start seeds exactly that).
async fn catalog_of(data_dir: &Path, store: &StoreArgs) -> anyhow::Result<Catalog> {
    let held = if store.store == "embedded" {
        let path = data_dir.join("events.db");
        if !path.is_file() {
            return Ok(Catalog::default_catalog());
        }
        let reader = EmbeddedStore::open_reader(&path)?;
        leadflow_engine::read_catalog(&reader).await?
    } else {
        let Opened { store, .. } = open(data_dir, store)?;
        leadflow_engine::read_catalog(store.as_ref()).await?
    };
    Ok(held.unwrap_or_else(Catalog::default_catalog))
}

/// The token keys, from `LEADFLOW_JWT_SECRET` or the data directory's secret file.
fn auth(data_dir: &Path) -> anyhow::Result<Auth> {
    Ok(Auth::from_secret(&private::load_secret(data_dir)?))
}

/// The chosen store.
struct Opened {
    store: Arc<dyn EventStore>,
    /// The embedded store's own handle, when that is the store (`serve --node` exposes it).
    embedded: Option<EmbeddedStore>,
}

/// The embedded store's files (the database and its write-ahead log), for `/metrics`; none
/// for a remote store.
fn store_files(data_dir: &Path, store: &StoreArgs) -> Vec<PathBuf> {
    if store.store == "embedded" {
        vec![data_dir.join("events.db"), data_dir.join("events.db-wal")]
    } else {
        Vec::new()
    }
}

/// Opens the store; the caller has made the data directory private first ([`private::prepare`]).
fn open(data_dir: &Path, store: &StoreArgs) -> anyhow::Result<Opened> {
    let (store, embedded): (Arc<dyn EventStore>, _) = if store.store == "embedded" {
        let embedded = EmbeddedStore::open(data_dir.join("events.db"))?;
        (Arc::new(embedded.clone()), Some(embedded))
    } else if store.store.contains("://") {
        let esdb = EsdbStore::connect(&store.store)?;
        // On stderr: stdout is the command's answer (a token, an export) for scripts.
        eprintln!(
            "event store: {}",
            leadflow_store_esdb::redacted(&store.store)
        );
        (Arc::new(esdb), None)
    } else {
        bail!(
            "--store must be `embedded` or a connection string such as esdb://127.0.0.1:2113?tls=false, not {:?}",
            store.store
        );
    };
    Ok(Opened { store, embedded })
}

/// Whether the store holds no lead yet (only the catalog and system events, if anything): the
/// demo data set goes into such a store.
async fn holds_no_leads(store: &dyn EventStore) -> anyhow::Result<bool> {
    let first = store
        .read_all(leadflow_store::Position::START, 1000)
        .await?;
    let lead = first.iter().any(|e| {
        matches!(
            leadflow_codec::StreamRef::parse(&e.stream),
            Ok(leadflow_codec::StreamRef::Lead(_))
        )
    });
    Ok(!lead && first.len() < 1000)
}

async fn run_demo(engine: &Engine, leads: u64, seed: u64) -> anyhow::Result<()> {
    let started = Instant::now();
    let config = leadflow_demo::DemoConfig {
        leads,
        seed,
        ..Default::default()
    };
    let step = (leads / 10).max(1);
    let report = leadflow_demo::generate(engine, &config, |done| {
        if done % step == 0 {
            eprintln!("demo: {done}/{leads} leads");
        }
    })
    .await?;
    println!(
        "demo data: {} leads, {} commands ({} already there), {} events in {:.1} s",
        report.leads,
        report.accepted + report.replayed,
        report.replayed,
        report.events,
        started.elapsed().as_secs_f64()
    );
    for (stage, n) in &report.by_stage {
        println!("  {stage:<14} {n}");
    }
    Ok(())
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    private::prepare(&args.data.data_dir)?;
    let Opened { store, .. } = open(&args.data.data_dir, &args.store)?;
    let keyring = keyring(&args.data.data_dir, &store, true).await?;
    let engine = leadflow_app::open_engine(store, Some(keyring), false).await?;
    run_demo(&engine, args.leads, args.seed).await
}

/// The data subjects' keys under the master key (issue 20). The master key is made on a
/// store's first start (so the first backup holds it) and checked on every start: a readable
/// or malformed key file, or a key that did not wrap the store's keys, refuses the start. A
/// store already holding sealed data and no master key opens without one: personal fields
/// are then unavailable (the read models wait for them; nothing reads as erased).
///
/// `required`: a batch command (rebuilding the read models) refuses to run without the key
/// rather than wait for it.
async fn keyring(
    data_dir: &Path,
    store: &Arc<dyn EventStore>,
    required: bool,
) -> anyhow::Result<Arc<leadflow_app::Keyring>> {
    let sealed = leadflow_app::Keyring::new(store.clone(), None)
        .first_sealed_subject()
        .await?;
    let master = private::load_master_key(data_dir, sealed.is_none())?;
    if master.is_none() && required {
        bail!(
            "this store holds sealed personal data and no master key is configured: set LEADFLOW_MASTER_KEY to the key `serve` uses, or put its master.key (mode 0600) in {}",
            data_dir.display()
        );
    }
    if master.is_none() {
        tracing::warn!(
            "no master key (LEADFLOW_MASTER_KEY or {}/master.key): personal fields are unavailable until it is restored",
            data_dir.display()
        );
    }
    let keyring = leadflow_app::Keyring::new(store.clone(), master);
    if keyring.has_master_key() {
        keyring.check_master_key().await?;
    }
    Ok(Arc::new(keyring))
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let data_dir = args.data.data_dir;
    if args.node.is_some() && args.store.store != "embedded" {
        bail!("--node serves the embedded store; it cannot be combined with --store esdb://");
    }
    let mut origins = Origins::parse(&args.cors_origins)?;
    if args.demo {
        origins = origins.with_local_dev_servers();
    }
    private::prepare(&data_dir)?;
    // Before anything else: a secret other accounts can read refuses the start.
    let auth = auth(&data_dir)?;
    if args.read_only && (args.demo || args.node.is_some()) {
        bail!("--read-only serves what is there: it takes neither --demo nor --node");
    }
    if args.read_only && !data_dir.join(replay::REPLAY_FILE).is_file() {
        // Its read side opens no personal field: over a live directory it would write
        // `[erased]` into read models that lag or rebuild.
        bail!(
            "--read-only serves a replay's directory (leadflow replay --into DIR); {} holds no {}",
            data_dir.display(),
            replay::REPLAY_FILE
        );
    }
    let Opened { store, embedded } = open(&data_dir, &args.store)?;
    if args.read_only {
        let engine = leadflow_app::open_read_only_engine(store.clone()).await?;
        let app = leadflow_app::App::with_engine(
            leadflow_app::Config {
                origins,
                readiness: leadflow_server::metrics::Readiness {
                    max_lag: args.ready_max_lag,
                },
                store_files: store_files(&data_dir, &args.store),
                ..leadflow_app::Config::new(store, data_dir.join("read"), auth.clone())
            },
            engine,
        )?;
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let address = listener.local_addr()?;
        let what = std::fs::read_to_string(data_dir.join(replay::REPLAY_FILE))
            .ok()
            .and_then(|raw| serde_json::from_str::<serde_json::Value>(&raw).ok())
            .and_then(|v| {
                v["until"]
                    .as_str()
                    .map(|u| format!(" (a replay as of {u})"))
            })
            .unwrap_or_default();
        println!();
        println!("leadflow is serving, read-only{what}");
        println!("  GraphiQL:   http://{address}/");
        println!(
            "  a token:    leadflow token issue --user NAME --data-dir {}",
            data_dir.display()
        );
        println!("  GraphQL:    http://{address}/graphql");
        println!("  health:     http://{address}/health   metrics: http://{address}/metrics");
        println!();
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        return Ok(app.serve(listener, shutdown).await?);
    }
    let keyring = keyring(&data_dir, &store, false).await?;
    // Before the node starts: a new node writes its own first (system) event.
    let empty = holds_no_leads(store.as_ref()).await?;
    // Catalog changes can come from elsewhere when others write the same log: through an
    // EventStoreDB cluster, or through this process's own node.
    let follow = args.node.is_some() || embedded.is_none();
    let node = match (args.node, embedded) {
        (None, _) => None,
        (Some(addr), Some(embedded)) => Some(
            RunningNode::start(embedded, addr)
                .await
                .with_context(|| format!("cannot serve the EventStoreDB protocol on {addr}"))?,
        ),
        (Some(_), None) => unreachable!("--node with another store is refused above"),
    };
    let engine = leadflow_app::open_engine(store.clone(), Some(keyring), follow).await?;
    if args.demo && empty {
        println!(
            "empty store: creating the demo data set ({} leads, seed {})",
            args.demo_leads, args.demo_seed
        );
        run_demo(&engine, args.demo_leads, args.demo_seed).await?;
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    let app = leadflow_app::App::with_engine(
        leadflow_app::Config {
            node: args
                .node_name
                .unwrap_or_else(|| leadflow_app::node_name(Some(&address.port().to_string()))),
            follow_catalog: follow,
            origins,
            readiness: leadflow_server::metrics::Readiness {
                max_lag: args.ready_max_lag,
            },
            store_files: store_files(&data_dir, &args.store),
            ..leadflow_app::Config::new(store, data_dir.join("read"), auth.clone())
        },
        engine,
    )?;
    // Only the demo signs anyone in, and only through the printed link: the token rides in the
    // URL fragment, which browsers never send, and the page clears it from the address bar.
    let demo_token = args.demo.then(|| {
        auth.issue(
            UserId::named(DEMO_USER),
            Role::Supervisor,
            Duration::from_secs(DEMO_TOKEN_HOURS * 3600),
        )
    });
    // Where `projections status` finds the live state (a full disk may keep it from the files).
    let announced = data_dir.join(SERVE_FILE);
    let _ = std::fs::write(
        &announced,
        serde_json::json!({
            "health": format!("http://{address}/health"),
            "pid": std::process::id(),
        })
        .to_string(),
    );
    println!();
    println!("leadflow is serving");
    match &demo_token {
        Some(token) => {
            println!(
                "  GraphiQL, signed in as {DEMO_USER} (Supervisor) for {DEMO_TOKEN_HOURS} hours:"
            );
            println!("    http://{address}/#token={token}");
        }
        None => {
            println!("  GraphiQL:   http://{address}/");
            println!("  a token:    leadflow token issue --user NAME");
        }
    }
    println!("  GraphQL:    http://{address}/graphql   (WebSocket: ws://{address}/graphql/ws)");
    println!("  health:     http://{address}/health   metrics: http://{address}/metrics");
    if let Some(node) = &node {
        println!("  EventStoreDB gRPC: {}", node.connection_string());
    }
    println!();
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let served = app.serve(listener, shutdown).await;
    let _ = std::fs::remove_file(&announced);
    served?;
    app.shutdown();
    if let Some(node) = node {
        node.stop().await;
    }
    Ok(())
}

async fn node(args: NodeArgs) -> anyhow::Result<()> {
    private::prepare(&args.data.data_dir)?;
    let path = args.data.data_dir.join("events.db");
    let store = EmbeddedStore::open(&path)?;
    let node = RunningNode::start(store, args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    println!(
        "leadflow node: the EventStoreDB gRPC protocol over {}",
        path.display()
    );
    println!("  connection string: {}", node.connection_string());
    println!("  (Ctrl-C stops it)");
    let _ = tokio::signal::ctrl_c().await;
    node.stop().await;
    Ok(())
}

async fn run_projections(
    data_dir: &Path,
    store: &StoreArgs,
    read_dir: Option<PathBuf>,
    follow: bool,
) -> anyhow::Result<()> {
    private::prepare(data_dir)?;
    let Opened { store, .. } = open(data_dir, store)?;
    let read_dir = read_dir.unwrap_or_else(|| data_dir.join("read"));
    let keyring = keyring(data_dir, &store, true).await?;
    let reads = leadflow_app::read_side(&read_dir, store.clone(), Some(keyring))?;
    let started = Instant::now();
    loop {
        let status = reads.status().await;
        if let Some(failed) = status
            .iter()
            .find(|s| s.state == leadflow_projections::ProjectionState::Failed)
        {
            bail!(
                "projection {} failed: {}",
                failed.name,
                failed.error.clone().unwrap_or_default()
            );
        }
        let head = store.head().await?;
        if !follow && status.iter().all(|s| s.checkpoint >= head) {
            let events: u64 = head.0;
            println!(
                "caught up with {events} events in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    reads.shutdown();
    Ok(())
}

/// What an admin's request about personal data needs, opened: the store, the keys, an
/// engine, and the acting admin.
struct AdminContext {
    data_dir: PathBuf,
    store: Arc<dyn EventStore>,
    keyring: Arc<leadflow_app::Keyring>,
    engine: Arc<Engine>,
    actor: leadflow_domain::Actor,
}

async fn admin_context(
    data: DataArgs,
    store: &StoreArgs,
    by: &str,
) -> anyhow::Result<AdminContext> {
    let data_dir = data.data_dir;
    private::prepare(&data_dir)?;
    let Opened { store, .. } = open(&data_dir, store)?;
    let keyring = keyring(&data_dir, &store, true).await?;
    let engine = leadflow_app::open_engine(store.clone(), Some(keyring.clone()), false).await?;
    let (user, role) = resolve_user(&engine.catalog(), by)?;
    if role != Role::Admin {
        bail!("only an admin may erase or export a person's data ({by} is {role:?})");
    }
    Ok(AdminContext {
        data_dir,
        store,
        keyring,
        engine,
        actor: leadflow_domain::Actor { user, role },
    })
}

impl AdminContext {
    /// The read models in `<data-dir>/read`, brought up to the log's head.
    async fn reads_at_head(&self) -> anyhow::Result<Arc<leadflow_projections::ReadSide>> {
        let reads = Arc::new(leadflow_app::read_side(
            &self.data_dir.join("read"),
            self.store.clone(),
            Some(self.keyring.clone()),
        )?);
        reads
            .wait_for(self.store.head().await?, Duration::from_secs(600))
            .await?;
        Ok(reads)
    }
}

/// A request about one subject: whose, under which ticket, and the admin's context.
struct SubjectContext {
    subject: leadflow_domain::SubjectId,
    ticket: Option<leadflow_domain::TicketRef>,
    admin: AdminContext,
}

impl std::ops::Deref for SubjectContext {
    type Target = AdminContext;
    fn deref(&self) -> &AdminContext {
        &self.admin
    }
}

async fn subject_context(request: SubjectRequest) -> anyhow::Result<SubjectContext> {
    let subject = leadflow_domain::SubjectId::parse(&request.subject)?;
    let ticket = request
        .ticket
        .as_deref()
        .map(leadflow_domain::TicketRef::parse)
        .transpose()?;
    let admin = admin_context(request.data, &request.store, &request.by).await?;
    Ok(SubjectContext {
        subject,
        ticket,
        admin,
    })
}

impl SubjectContext {
    /// Runs `command` as the acting admin.
    async fn run(
        &self,
        command: leadflow_domain::SubjectCommand,
    ) -> anyhow::Result<leadflow_engine::Outcome<leadflow_domain::SubjectAggregate>> {
        Ok(self
            .engine
            .execute_subject(command, leadflow_engine::CommandMeta::by(self.actor))
            .await?)
    }
}

async fn erase(request: SubjectRequest, reason: &str) -> anyhow::Result<()> {
    use leadflow_domain::{ErasureReason, SubjectCommand};
    let reason = ErasureReason::parse(reason).with_context(|| {
        format!("--reason {reason:?}: use request, retention, duplicate or other")
    })?;
    let cx = subject_context(request).await?;
    let subject = cx.subject;
    let out = cx
        .run(SubjectCommand::Erase {
            subject,
            reason,
            ticket: cx.ticket.clone(),
        })
        .await?;
    match out.kind {
        leadflow_engine::OutcomeKind::Appended => println!("erased subject {subject}"),
        _ => println!("subject {subject} was erased before; its key is gone"),
    }
    // The read models here hold plain text for queries: rewrite them now.
    if cx.data_dir.join("read").exists() {
        cx.reads_at_head().await?.shutdown();
        println!(
            "the read models in {} show it",
            cx.data_dir.join("read").display()
        );
    }
    Ok(())
}

async fn sweep(data: DataArgs, store: StoreArgs, by: &str, dry_run: bool) -> anyhow::Result<()> {
    let cx = admin_context(data, &store, by).await?;
    let reads = cx.reads_at_head().await?;
    let swept = leadflow_app::retention::sweep(
        &cx.engine,
        &reads,
        cx.actor,
        chrono::Utc::now(),
        dry_run,
        Duration::from_secs(600),
    )
    .await;
    let swept = match swept {
        Ok(swept) => swept,
        Err(e) => {
            reads.shutdown();
            return Err(e.into());
        }
    };
    let verb = if dry_run { "would erase" } else { "erased" };
    for subject in &swept.erased {
        println!("{verb} subject {subject}");
    }
    println!(
        "retention {} months: leads closed before {}; {verb} {} subject(s), {} erased before",
        swept.months,
        swept.cutoff.to_rfc3339(),
        swept.erased.len(),
        swept.already_erased
    );
    if !dry_run && !swept.erased.is_empty() {
        // The read models here hold plain text for queries: bring them up to the erasures.
        reads
            .wait_for(cx.store.head().await?, Duration::from_secs(600))
            .await?;
        println!(
            "the read models in {} show it",
            cx.data_dir.join("read").display()
        );
    }
    reads.shutdown();
    Ok(())
}

async fn migrate_log(data_dir: &Path) -> anyhow::Result<()> {
    private::prepare(data_dir)?;
    let store = data_dir.join("events.db");
    if !store.is_file() {
        bail!("there is no embedded store at {}", store.display());
    }
    if running_server(data_dir).await.is_some() {
        bail!(
            "`serve` is running on {}: stop it first",
            data_dir.display()
        );
    }
    let master = private::load_master_key(data_dir, true)?.context("a master key")?;
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} events ({per_sec}, {eta} left)",
        )
        .expect("a valid template"),
    );
    let started = Instant::now();
    let done = migrate::migrate(&store, master, |at, head| {
        bar.set_length(head);
        bar.set_position(at);
    })
    .await;
    bar.finish_and_clear();
    let done = done?;
    if done.sealed == 0 {
        println!(
            "{} events, none with personal fields in plain text: nothing to migrate",
            done.events
        );
        return Ok(());
    }
    // Built from the plain log, and perhaps without the blind index's secret: built again.
    let read = data_dir.join("read");
    if read.exists() {
        std::fs::remove_dir_all(&read)
            .with_context(|| format!("cannot remove {}", read.display()))?;
    }
    println!(
        "sealed {} of {} events under {} new subject keys ({} erased before), in {:.1} s; the copy matched the log event by event and replaced it; the read models are rebuilt on the next start",
        done.sealed,
        done.events,
        done.keys,
        done.erased,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn export(request: SubjectRequest) -> anyhow::Result<()> {
    let cx = subject_context(request).await?;
    let subject = cx.subject;
    // The subject's leads, from the read models brought up to the log's head.
    let reads = cx.reads_at_head().await?;
    let leads = reads
        .read(leadflow_projections::LEADS, move |c| {
            leadflow_projections::privacy::leads_of(c, subject)
        })
        .await?;
    reads.shutdown();
    let values =
        leadflow_projections::privacy::export(cx.store.as_ref(), &cx.keyring, subject, &leads)
            .await?;
    let recorded = cx
        .run(leadflow_domain::SubjectCommand::RecordExport {
            subject,
            values: values.len() as u32,
            ticket: cx.ticket.clone(),
        })
        .await?;
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "subject": subject,
            "recordedAt": recorded.position.map(|p| p.0),
            "values": values,
        }))?
    );
    Ok(())
}
