//! `leadflow projections status|pause|resume|retry|skip|dead-letters`: what an operator sees
//! of the read models and does to them. Every action goes to the running server (it owns the
//! files; nothing here opens them behind its back) through its GraphQL API, as an admin of the
//! catalog, with a short-lived token this command mints from the data directory's secret.
//! `status` alone also works offline, from the files, read-only. Each action says why
//! (`--reason`, a code; `--ticket`), and the log records it with who and when.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Args;
use serde_json::{json, Value};

use leadflow_domain::{Role, UserId};

use crate::{auth, keyring, open, private, running_server, DataArgs, Opened, StoreArgs};

/// Which read model of which server, and as whom.
#[derive(Args)]
pub struct Target {
    #[command(flatten)]
    data: DataArgs,
    /// The read model: leads, history or transitions.
    name: String,
    /// The admin of the catalog the action is recorded under.
    #[arg(long = "as", default_value = leadflow_domain::catalog::seed::ADMIN)]
    as_user: String,
}

/// Why an operator acts, recorded in the log with the action.
#[derive(Args, Clone)]
pub struct WhyArgs {
    /// Why, a code (never free text: the log keeps it forever): incident, bad-event,
    /// fix-deployed, maintenance, upgrade, verification or other.
    #[arg(long, value_parser = reason_code)]
    reason: leadflow_domain::OpsReason,
    /// The ticket the action is handled under (`INC-2291`): 1-64 letters, digits and -_./#:
    #[arg(long)]
    ticket: Option<String>,
}

/// A reason code as typed (`bad-event` or `bad_event`).
fn reason_code(raw: &str) -> Result<leadflow_domain::OpsReason, String> {
    leadflow_domain::OpsReason::parse(&raw.replace('-', "_")).ok_or_else(|| {
        let codes: Vec<String> = leadflow_domain::OpsReason::ALL
            .iter()
            .map(|r| r.code().replace('_', "-"))
            .collect();
        format!("use one of {}", codes.join(", "))
    })
}

impl WhyArgs {
    fn variables(&self, into: &mut Value) {
        // The GraphQL enum value: `BAD_EVENT`.
        into["reason"] = json!(self.reason.code().to_uppercase());
        into["ticket"] = json!(self.ticket);
    }
}

/// A read model, an action's why, and as whom.
#[derive(Args)]
pub struct Acting {
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub why: WhyArgs,
}

/// A pause, resume, retry or skip: the read model and which of its generations, why, and as
/// whom.
#[derive(Args)]
pub struct Controlling {
    #[command(flatten)]
    pub acting: Acting,
    /// Act on the generation a rebuild is building beside the live one (pause it at a busy
    /// hour; retry or skip an event the new version stopped at), not on the live one.
    #[arg(long)]
    pub building: bool,
}

pub enum Action {
    Pause,
    Resume,
    Retry,
    Skip { position: u64 },
}

const STATUS_FIELDS: &str = "name state checkpoint head lag eventsPerSec rebuildProgress etaSeconds stoppedAt stoppedAtType error";

/// Asks the running server to `action` the model (or the generation it is building), and
/// prints its status after.
pub async fn control(controlling: &Controlling, action: Action) -> anyhow::Result<()> {
    let acting = &controlling.acting;
    let target = &acting.target;
    let why = "reason: $reason, ticket: $ticket, generation: $generation";
    let (field, arguments, variables) = match &action {
        Action::Pause => ("pauseProjection", format!("name: $name, {why}"), json!({})),
        Action::Resume => ("resumeProjection", format!("name: $name, {why}"), json!({})),
        Action::Retry => ("retryProjection", format!("name: $name, {why}"), json!({})),
        Action::Skip { position } => (
            "skipEvent",
            format!("projection: $name, position: $position, {why}"),
            json!({ "position": position.to_string() }),
        ),
    };
    let declared = match action {
        Action::Skip { .. } => "$name: String!, $position: Position!, $reason: OpsReasonCode!, $ticket: String, $generation: ProjectionGeneration!",
        _ => "$name: String!, $reason: OpsReasonCode!, $ticket: String, $generation: ProjectionGeneration!",
    };
    let mut variables = variables;
    variables["name"] = json!(target.name);
    variables["generation"] = json!(if controlling.building {
        "BUILDING"
    } else {
        "LIVE"
    });
    acting.why.variables(&mut variables);
    let query = format!(
        "mutation({declared}) {{ {field}({arguments}) {{ {STATUS_FIELDS} rebuild {{ {STATUS_FIELDS} }} }} }}"
    );
    let data = ask(target, &query, variables).await?;
    let status = &data[field];
    if controlling.building && status["rebuild"].is_null() {
        println!("done; no generation is being built any more (it has switched in)");
    } else if controlling.building {
        println!("the generation being built:");
        print_table(std::slice::from_ref(&status["rebuild"]));
    } else {
        print_table(std::slice::from_ref(status));
    }
    Ok(())
}

/// Prints the events the model skipped.
pub async fn dead_letters(target: &Target) -> anyhow::Result<()> {
    let query = "query($name: String!) { deadLetters(projection: $name) { position stream eventType error reason by skippedAt } }";
    let data = ask(target, query, json!({ "name": target.name })).await?;
    let letters = data["deadLetters"].as_array().cloned().unwrap_or_default();
    if letters.is_empty() {
        println!("{} has skipped no event", target.name);
    }
    for l in letters {
        println!(
            "{:>12}  {}  {}  skipped by {} at {}: {}\n              error: {}",
            text(&l["position"]),
            text(&l["eventType"]),
            text(&l["stream"]),
            text(&l["by"]),
            text(&l["skippedAt"]),
            text(&l["reason"]),
            text(&l["error"]),
        );
    }
    Ok(())
}

/// Prints what operators did to the read models (or to `model`), as the log records it.
pub async fn actions(
    data: DataArgs,
    as_user: String,
    model: Option<String>,
    last: u32,
) -> anyhow::Result<()> {
    let target = Target {
        data,
        name: model.clone().unwrap_or_default(),
        as_user,
    };
    let query = "query($model: String, $last: Int!) { opsActions(model: $model, last: $last) { position at by node model generation action reason ticket eventPosition verify } }";
    let data = ask(&target, query, json!({ "model": model, "last": last })).await?;
    let actions = data["opsActions"].as_array().cloned().unwrap_or_default();
    if actions.is_empty() {
        println!("no operator has acted on a read model");
    }
    for a in actions {
        let mut line = format!(
            "{:>12}  {}  {:<24} {:<12} by {}  reason {}",
            text(&a["position"]),
            text(&a["at"]),
            text(&a["action"]),
            text(&a["model"]),
            text(&a["by"]),
            text(&a["reason"]).to_lowercase(),
        );
        if !a["ticket"].is_null() {
            line += &format!("  ticket {}", text(&a["ticket"]));
        }
        if !a["eventPosition"].is_null() {
            line += &format!("  event {}", text(&a["eventPosition"]));
        }
        if a["verify"] == true {
            line += "  verified";
        }
        if a["generation"] == "BUILDING" {
            line += "  on the generation being built";
        }
        if !a["node"].is_null() {
            line += &format!("  on {}", text(&a["node"]));
        }
        println!("{line}");
    }
    Ok(())
}

/// Posts `query` to the server serving the target's data directory, as its admin.
async fn ask(target: &Target, query: &str, variables: Value) -> anyhow::Result<Value> {
    let dir = &target.data.data_dir;
    let Some((health, _)) = running_server(dir).await else {
        bail!(
            "no server is serving {}: pause, resume, retry and skip act on a running `leadflow serve` \
             (a failed read model tries its event again at the next start by itself)",
            dir.display()
        );
    };
    let url = health.trim_end_matches("/health").to_owned() + "/graphql";
    let token = auth(dir)?.issue(
        UserId::named(&target.as_user),
        Role::Admin,
        Duration::from_secs(300),
    );
    let answer: Value = reqwest::Client::new()
        .post(&url)
        .bearer_auth(token)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?
        .json()
        .await
        .context("the server's answer is not JSON")?;
    if let Some(error) = answer["errors"].get(0) {
        bail!(
            "{} ({})",
            text(&error["message"]),
            text(&error["extensions"]["code"])
        );
    }
    Ok(answer["data"].clone())
}

/// `projections status`: from the running server, else from the files.
pub async fn status(data_dir: &Path, store: &StoreArgs, as_json: bool) -> anyhow::Result<()> {
    let (source, rows) = match running_server(data_dir).await {
        Some((url, health)) => (
            format!("from the running server at {url}"),
            health["projections"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        ),
        None => (
            format!("from the files in {}", data_dir.display()),
            offline(data_dir, store).await?,
        ),
    };
    if as_json {
        let out = json!({ "source": source, "projections": rows });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("({source})");
    print_table(&rows);
    Ok(())
}

/// One line per model: name, version, state, checkpoint, head, lag, rate, ETA; the event a
/// failed one stopped at and why on the next.
fn print_table(rows: &[Value]) {
    println!(
        "{:<12} {:>7} {:<18} {:>12} {:>12} {:>10} {:>10} {:>8}",
        "projection", "version", "state", "checkpoint", "head", "lag", "events/s", "eta"
    );
    for p in rows {
        let mut state = text(&p["state"]).to_lowercase().replace('_', " ");
        if let Some(done) = p["rebuildProgress"].as_f64() {
            if state != "live" {
                state = format!("rebuilding {:.0} %", done * 100.0);
            }
        }
        let eta = p["etaSeconds"]
            .as_f64()
            .map_or("-".to_owned(), |s| format!("{s:.0} s"));
        println!(
            "{:<12} {:>7} {:<18} {:>12} {:>12} {:>10} {:>10.0} {:>8}",
            text(&p["name"]),
            text(&p["version"]),
            state,
            text(&p["checkpoint"]),
            text(&p["head"]),
            text(&p["lag"]),
            p["eventsPerSec"].as_f64().unwrap_or(0.0),
            eta
        );
        if let Some(at) = p["stoppedAt"]
            .as_str()
            .or(p["stoppedAt"]["position"].as_str())
        {
            println!("  stopped at position {at} ({})", text(&p["stoppedAtType"]));
        }
        if let Some(error) = p["error"].as_str() {
            println!("  error: {error}");
        }
        if text(&p["state"]).eq_ignore_ascii_case("retrying") {
            println!(
                "  attempt {}, next at {}",
                text(&p["attempts"]),
                text(&p["nextAttempt"])
            );
        }
    }
}

/// A JSON value as a person reads it: strings without quotes, null as `-`.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

/// Each model's row read from its file, read-only: a server may start meanwhile.
async fn offline(data_dir: &Path, store: &StoreArgs) -> anyhow::Result<Vec<Value>> {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    let head: u64 = if store.store == "embedded" {
        let events = data_dir.join("events.db");
        let head: i64 = rusqlite::Connection::open_with_flags(&events, flags)
            .and_then(|c| {
                c.query_row("SELECT coalesce(max(position), 0) FROM events", [], |r| {
                    r.get(0)
                })
            })
            .with_context(|| format!("cannot read the event store {}", events.display()))?;
        head as u64
    } else {
        crate::open(data_dir, store)?.store.head().await?.0
    };
    let mut rows = Vec::new();
    for model in [
        leadflow_projections::LEADS,
        leadflow_projections::HISTORY,
        leadflow_projections::TRANSITIONS,
    ] {
        let name = model.name();
        let path =
            leadflow_projections::runner::generations::live_path(&data_dir.join("read"), name);
        let row = rusqlite::Connection::open_with_flags(&path, flags).and_then(|c| {
            c.query_row(
                "SELECT version, position, state, error, deferred IS NOT NULL FROM projection_state WHERE name = ?1",
                [name],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, bool>(4)?,
                    ))
                },
            )
        });
        rows.push(match row {
            Ok((version, position, state, error, rebuilding)) => {
                let position = position as u64;
                let state = match state.as_str() {
                    "failed" => "failed",
                    _ if position >= head => "live",
                    _ => "catching up",
                };
                json!({
                    "name": name, "version": version, "state": state,
                    "checkpoint": position, "head": head, "lag": head.saturating_sub(position),
                    "rebuildProgress": rebuilding.then(|| position as f64 / head.max(1) as f64),
                    "error": error,
                })
            }
            Err(_) => json!({
                "name": name, "state": "not built yet", "checkpoint": 0, "head": head, "lag": head,
            }),
        });
    }
    Ok(rows)
}

#[derive(Args)]
pub struct RebuildArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    store: StoreArgs,
    /// The read model: leads, history or transitions.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    name: Option<String>,
    /// Every read model, side by side (the log read and decoded once for all of them).
    #[arg(long)]
    all: bool,
    /// Switch only if the rebuilt model equals the live one at one log position (row counts
    /// and a content hash per table); a difference is refused and listed.
    #[arg(long)]
    verify: bool,
    /// The admin of the catalog the action is recorded under.
    #[arg(long = "as", default_value = leadflow_domain::catalog::seed::ADMIN)]
    as_user: String,
    #[command(flatten)]
    why: WhyArgs,
}

/// `projections rebuild`: through the running server, or here when none runs; a progress
/// bar until the new generation switches in (or is refused).
pub async fn rebuild(args: RebuildArgs) -> anyhow::Result<()> {
    let names: Vec<String> = args.name.iter().cloned().collect();
    let dir = args.data.data_dir.clone();
    if running_server(&dir).await.is_some() {
        let target = Target {
            data: DataArgs {
                data_dir: dir.clone(),
            },
            name: args.name.clone().unwrap_or_default(),
            as_user: args.as_user.clone(),
        };
        let query = "mutation($name: String, $verify: Boolean!, $reason: OpsReasonCode!, $ticket: String) { rebuildProjection(name: $name, verify: $verify, reason: $reason, ticket: $ticket) { name generation } }";
        let mut variables = json!({ "name": args.name, "verify": args.verify });
        args.why.variables(&mut variables);
        let data = ask(&target, query, variables).await?;
        let before = generations_of(&data["rebuildProjection"]);
        return follow(&names, &before, || {
            let dir = dir.clone();
            async move {
                let (_, health) = running_server(&dir)
                    .await
                    .context("the server stopped during the rebuild")?;
                Ok(health["projections"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default())
            }
        })
        .await;
    }
    // No server: the rebuild runs in this process, with the read models' lock.
    private::prepare(&dir)?;
    let Opened { store, .. } = open(&dir, &args.store)?;
    let keys = keyring(&dir, &store, true).await?;
    let reads = std::sync::Arc::new(leadflow_app::read_side(
        &dir.join("read"),
        store.clone(),
        Some(keys.clone()),
    )?);
    let before: std::collections::HashMap<String, u64> = reads
        .status()
        .await
        .iter()
        .map(|s| (s.name.to_owned(), u64::from(s.generation)))
        .collect();
    let models: Vec<String> = if names.is_empty() {
        let mut all: Vec<String> = before.keys().cloned().collect();
        all.sort();
        all
    } else {
        names.clone()
    };
    // Recorded in the log as the running server records it (who, when, why), and judged
    // before anything is rebuilt. A replay's log takes nothing: rebuilt, not recorded.
    let recorder = if dir.join(crate::replay::REPLAY_FILE).exists() {
        None
    } else {
        match offline_record(&store, keys, &args, &models).await {
            Ok(recorder) => Some(recorder),
            Err(e) => {
                reads.shutdown();
                return Err(e);
            }
        }
    };
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    if let Err(e) = reads.rebuild(&name_refs, args.verify).await {
        reads.shutdown();
        return Err(e.into());
    }
    let recorded = match recorder {
        Some((engine, command, actor)) => engine
            .execute_ops(command, leadflow_engine::CommandMeta::by(actor))
            .await
            .map(|_| ()),
        None => Ok(()),
    };
    let watched = reads.clone();
    let result = follow(&names, &before, move || {
        let reads = watched.clone();
        async move { Ok(reads.status().await.iter().map(as_health).collect()) }
    })
    .await;
    reads.shutdown();
    result?;
    recorded.context("the rebuild was done, but recording it in the log failed")
}

/// The engine, the checked command and the admin that record an offline rebuild.
async fn offline_record(
    store: &std::sync::Arc<dyn leadflow_store::EventStore>,
    keys: std::sync::Arc<leadflow_app::Keyring>,
    args: &RebuildArgs,
    models: &[String],
) -> anyhow::Result<(
    std::sync::Arc<leadflow_engine::Engine>,
    leadflow_domain::OpsCommand,
    leadflow_domain::Actor,
)> {
    use leadflow_domain::Aggregate as _;
    let engine = leadflow_app::open_engine(store.clone(), Some(keys), false).await?;
    let (user, role) = crate::resolve_user(&engine.catalog(), &args.as_user)?;
    let actor = leadflow_domain::Actor { user, role };
    let command = leadflow_domain::OpsCommand {
        models: models
            .iter()
            .map(|m| leadflow_domain::ReadModelName::parse(m))
            .collect::<Result<_, _>>()?,
        action: leadflow_domain::OpsAction::Rebuild {
            verify: args.verify,
        },
        generation: leadflow_domain::Generation::Live,
        node: leadflow_app::node_name(Some("cli")),
        why: leadflow_domain::ops::Why {
            reason: args.why.reason,
            ticket: args
                .why
                .ticket
                .as_deref()
                .map(leadflow_domain::TicketRef::parse)
                .transpose()?,
        },
    };
    let catalog = engine.catalog();
    let ctx = leadflow_domain::Context {
        now: engine.now(),
        actor,
        catalog: &catalog,
    };
    leadflow_domain::OpsAggregate::decide(None, &command, &ctx)
        .with_context(|| format!("{} may not rebuild a read model", args.as_user))?;
    Ok((engine, command, actor))
}

/// `projections rollback NAME` on the running server.
pub async fn rollback(acting: &Acting) -> anyhow::Result<()> {
    let target = &acting.target;
    let query = format!(
        "mutation($name: String!, $reason: OpsReasonCode!, $ticket: String) {{ rollbackProjection(name: $name, reason: $reason, ticket: $ticket) {{ {STATUS_FIELDS} }} }}"
    );
    let mut variables = json!({ "name": target.name });
    acting.why.variables(&mut variables);
    let data = ask(target, &query, variables).await?;
    print_table(std::slice::from_ref(&data["rollbackProjection"]));
    println!("rolling back: the previous generation catches up, then takes over");
    Ok(())
}

fn generations_of(list: &Value) -> std::collections::HashMap<String, u64> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|p| (text(&p["name"]), p["generation"].as_u64().unwrap_or(0)))
        .collect()
}

/// A status as `/health` shows it, for the same progress display.
fn as_health(s: &leadflow_projections::ProjectionStatus) -> Value {
    json!({
        "name": s.name, "generation": s.generation, "refused": s.refused,
        "rebuild": s.rebuild.as_ref().map(|b| json!({
            "checkpoint": b.checkpoint.0, "rebuildProgress": b.rebuild_progress(),
            "eventsPerSec": b.events_per_sec, "error": b.error, "state": b.describe(),
        })),
        "head": s.head.0,
    })
}

/// A progress bar over the rebuilt models until each has switched in (or been refused).
async fn follow<F, Fut>(
    names: &[String],
    before: &std::collections::HashMap<String, u64>,
    poll: F,
) -> anyhow::Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Vec<Value>>>,
{
    let bar = indicatif::ProgressBar::new(1000).with_style(
        indicatif::ProgressStyle::with_template("{msg:<40} [{bar:30}] {percent:>3} %  {prefix}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let watched = |p: &Value| names.is_empty() || names.iter().any(|n| p["name"] == n.as_str());
    loop {
        let all = poll().await?;
        let rows: Vec<&Value> = all.iter().filter(|p| watched(p)).collect();
        let refused: Vec<String> = rows
            .iter()
            .filter_map(|p| {
                p["refused"]
                    .as_str()
                    .map(|r| format!("{}: {r}", text(&p["name"])))
            })
            .collect();
        if !refused.is_empty() {
            bar.abandon_with_message("refused");
            bail!("not switched in: {}", refused.join("; "));
        }
        let building: Vec<&&Value> = rows.iter().filter(|p| !p["rebuild"].is_null()).collect();
        let switched = rows.iter().all(|p| {
            p["rebuild"].is_null()
                && p["generation"].as_u64().unwrap_or(0)
                    != before.get(&text(&p["name"])).copied().unwrap_or(0)
        });
        if switched {
            bar.finish_with_message("switched in");
            for p in rows {
                println!(
                    "{} now serves from generation {}",
                    text(&p["name"]),
                    p["generation"]
                );
            }
            return Ok(());
        }
        let progress = building
            .iter()
            .filter_map(|p| p["rebuild"]["rebuildProgress"].as_f64())
            .fold(None, |low: Option<f64>, p| {
                Some(low.map_or(p, |l| l.min(p)))
            })
            .unwrap_or(1.0);
        let rate: f64 = building
            .iter()
            .filter_map(|p| p["rebuild"]["eventsPerSec"].as_f64())
            .sum();
        if let Some(error) = building.iter().find_map(|p| p["rebuild"]["error"].as_str()) {
            bar.set_prefix(format!("error: {error}"));
        } else {
            bar.set_prefix(format!("{rate:.0} events/s"));
        }
        let names: Vec<String> = building.iter().map(|p| text(&p["name"])).collect();
        bar.set_message(format!("rebuilding {}", names.join(", ")));
        bar.set_position((progress * 1000.0) as u64);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
