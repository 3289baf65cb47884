//! `leadflow projections status|pause|resume|retry|skip|dead-letters`: what an operator sees
//! of the read models and does to them. Every action goes to the running server (it owns the
//! files; nothing here opens them behind its back) through its GraphQL API, as an admin of the
//! catalog, with a short-lived token this command mints from the data directory's secret.
//! `status` alone also works offline, from the files, read-only.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Args;
use serde_json::{json, Value};

use leadflow_domain::{Role, UserId};

use crate::{auth, running_server, DataArgs, StoreArgs};

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

pub enum Action {
    Pause,
    Resume,
    Retry,
    Skip { position: u64, reason: String },
}

const STATUS_FIELDS: &str = "name state checkpoint head lag eventsPerSec rebuildProgress etaSeconds stoppedAt stoppedAtType error";

/// Asks the running server to `action` the model, and prints its status after.
pub async fn control(target: &Target, action: Action) -> anyhow::Result<()> {
    let (field, arguments, variables) = match &action {
        Action::Pause => ("pauseProjection", "name: $name", json!({})),
        Action::Resume => ("resumeProjection", "name: $name", json!({})),
        Action::Retry => ("retryProjection", "name: $name", json!({})),
        Action::Skip { position, reason } => (
            "skipEvent",
            "projection: $name, position: $position, reason: $reason",
            json!({ "position": position.to_string(), "reason": reason }),
        ),
    };
    let declared = match action {
        Action::Skip { .. } => "$name: String!, $position: Position!, $reason: String!",
        _ => "$name: String!",
    };
    let mut variables = variables;
    variables["name"] = json!(target.name);
    let query = format!("mutation({declared}) {{ {field}({arguments}) {{ {STATUS_FIELDS} }} }}");
    let data = ask(target, &query, variables).await?;
    print_table(std::slice::from_ref(&data[field]));
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
        let path = data_dir.join("read").join(format!("{name}.db"));
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
