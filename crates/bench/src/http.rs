//! Figures over real HTTP: GraphQL mutation latency at a fixed request rate (an in-process
//! server on a fresh store, an open-loop client), and the resident memory of the `leadflow
//! serve` process over the large data set.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use leadflow_domain::{Role, UserId};
use leadflow_server::Auth;
use leadflow_store::EventStore;
use leadflow_store_embedded::EmbeddedStore;

use crate::{dataset, percentile, Figure};

const RATE: u64 = 500;
const SECONDS: u64 = 10;

/// Sends `RATE` requests per second for `SECONDS` (open loop: a late answer does not delay the
/// next request) and returns each latency.
async fn at_rate(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    body: impl Fn(u64) -> serde_json::Value,
) -> anyhow::Result<Vec<Duration>> {
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::new();
    for i in 0..RATE * SECONDS {
        ticker.tick().await;
        let request = client.post(url).bearer_auth(token).json(&body(i));
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            let response = request.send().await?;
            let json: serde_json::Value = response.json().await?;
            anyhow::ensure!(json.get("errors").is_none(), "request failed: {json}");
            anyhow::Ok(started.elapsed())
        }));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    for t in tasks {
        latencies.push(t.await??);
    }
    Ok(latencies)
}

pub async fn mutation_latency(root: &Path) -> anyhow::Result<Figure> {
    let dir = tempfile::tempdir_in(root)?;
    let store: Arc<dyn EventStore> = Arc::new(EmbeddedStore::open(dir.path().join("events.db"))?);
    // Wired exactly as `leadflow serve` wires it.
    let auth = Auth::from_secret(b"bench secret bench secret bench secret");
    let keyring = Arc::new(leadflow_engine::Keyring::new(
        store.clone(),
        Some(leadflow_codec::seal::MasterKey::generate()?),
    ));
    let app = leadflow_app::App::build(leadflow_app::Config {
        keyring: Some(keyring),
        ..leadflow_app::Config::new(store, dir.path().join("read"), auth.clone())
    })
    .await?;
    let reads = app.reads.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/graphql", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(leadflow_server::run(listener, app.router(), async {
        let _ = stopped.await;
    }));
    let token = auth.issue(
        UserId::named("ivan.manager"),
        Role::Manager,
        Duration::from_secs(3600),
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;

    let trivial = serde_json::json!({ "query": "{ __typename }" });
    let mut raw = at_rate(&client, &url, &token, |_| trivial.clone()).await?;
    let mutation = "mutation($input: RegisterLeadInput!, $key: String) { registerLead(input: $input, idempotencyKey: $key) { position lead { id stage } } }";
    let mut samples = at_rate(&client, &url, &token, |i| {
        serde_json::json!({
            "query": mutation,
            "variables": {
                "key": format!("bench-{i}"),
                "input": { "title": format!("Bench lead {i}"), "contactName": "Bench Customer", "phones": ["+79161234567"],
                           "budget": { "amount": "150000.00" }, "source": "website" }
            }
        })
    })
    .await?;
    let _ = stop.send(());
    server.await??;
    reads.shutdown();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    Ok(Figure {
        name: "mutation_latency_p99",
        value: ms(percentile(&mut samples, 0.99)),
        unit: "ms",
        limit: ms(percentile(&mut raw, 0.99)),
        limit_what: format!("p99 of a trivial GraphQL query ({{ __typename }}) over the same HTTP at the same {RATE} req/s"),
        goal: Some(5.0),
        higher_is_better: false,
    })
}

fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS for {pid}"))?;
    Ok(kb * 1024)
}

fn dir_size(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// `leadflow serve` over the large data set (read models already built): its RSS once it
/// serves, after a few board, table and card reads.
pub async fn serve_rss(root: &Path, leads: u64) -> anyhow::Result<Figure> {
    let data = dataset::ensure(root, leads).await?;
    if !data.join("read").join("complete").exists() {
        crate::read::catch_up(root, leads).await?;
    }
    let bin = std::env::current_exe()?.with_file_name("leadflow");
    anyhow::ensure!(
        bin.exists(),
        "{} is missing: make bench builds it",
        bin.display()
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut child = tokio::process::Command::new(&bin)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(&data)
        .env("LEADFLOW_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child
        .id()
        .ok_or_else(|| anyhow::anyhow!("serve exited at once"))?;
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if let Ok(r) = client.get(format!("{base}/health")).send().await {
            let health: serde_json::Value = r.json().await.unwrap_or_default();
            if health["projections"]
                .as_array()
                .is_some_and(|ps| ps.iter().all(|p| p["lag"] == 0))
            {
                break;
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "serve did not become ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let secret = std::fs::read(data.join("jwt.secret"))?;
    let token = Auth::from_secret(&secret).issue(
        UserId::named("olga.supervisor"),
        Role::Supervisor,
        Duration::from_secs(600),
    );
    for query in [
        "{ board { totalCount columns { count } } }",
        "{ leads(filter: { stage: { in: [HANDOFF] } }, orderBy: [{ field: BUDGET, direction: DESC }], first: 100) { totalCount edges { node { id title } } } }",
        "{ report(kind: BY_MANAGER) { label count } }",
    ] {
        for _ in 0..20 {
            client.post(format!("{base}/graphql")).bearer_auth(&token).json(&serde_json::json!({ "query": query })).send().await?;
        }
    }
    let rss = rss_bytes(pid)?;
    child.kill().await?;
    let files = dir_size(&data);
    let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
    Ok(Figure {
        name: "serve_rss",
        value: mb(rss),
        unit: "MiB",
        limit: mb(files),
        limit_what: format!(
            "the size of the event store and read-model files it serves ({leads} leads)"
        ),
        goal: Some(1536.0),
        higher_is_better: false,
    })
}
