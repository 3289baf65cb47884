//! `GET /metrics` in the Prometheus text format, and the readiness rule of `/health/ready`.
//!
//! The product records through the `metrics` facade wherever the thing happens (the engine:
//! commands by name and outcome, rejections by rule, latency; the embedded store: appends and
//! events per group commit; the API: latency per root field). One process-wide Prometheus
//! recorder collects them; the read models' checkpoints, lag, rates and rebuild progress and
//! the store's size are gauges read at scrape time. Labels never carry an id, a token or
//! personal data: only names from the code (commands, rules, fields, read models).

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use leadflow_projections::runner::ProjectionStatus;

/// Latency buckets, in seconds: 0.5 ms to 10 s.
const SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Group-commit sizes: 1 to 4096, doubling.
const SIZES: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];

/// The process's recorder, installed on first use. A process serves one product, but tests
/// start several in one process: they share it, and its counters only ever go up.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Prefix("leadflow_append_group".to_owned()),
                        SIZES,
                    )
                })
                .expect("the buckets are not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("another metrics recorder is installed; /metrics shows only gauges");
            }
            handle
        })
        .clone()
}

/// Drains what the histograms gathered into their buckets now and then, so memory stays
/// bounded between scrapes (or with no scraper at all).
pub async fn upkeep(handle: PrometheusHandle) {
    let mut every = tokio::time::interval(Duration::from_secs(5));
    loop {
        every.tick().await;
        handle.run_upkeep();
    }
}

/// What `/health/ready` demands: every read model following the log by itself (not failed,
/// retrying, paused or stopped) and at most `max_lag` events behind its head.
#[derive(Clone, Debug)]
pub struct Readiness {
    pub max_lag: u64,
}

impl Default for Readiness {
    fn default() -> Self {
        Self { max_lag: 10_000 }
    }
}

impl Readiness {
    /// Why `status` is not ready, one reason per read model that is not; empty when ready.
    pub fn unready(&self, status: &[ProjectionStatus]) -> Vec<String> {
        status
            .iter()
            .filter_map(|p| {
                if p.state.is_unhealthy()
                    || matches!(
                        p.state,
                        leadflow_projections::ProjectionState::Paused
                            | leadflow_projections::ProjectionState::Stopped
                    )
                {
                    Some(format!("{} is {}", p.name, p.state.label()))
                } else if p.lag() > self.max_lag {
                    Some(format!(
                        "{} is {} events behind the log (at most {})",
                        p.name,
                        p.lag(),
                        self.max_lag
                    ))
                } else {
                    None
                }
            })
            .collect()
    }
}

/// The scrape: the read models' gauges and the store's size set now, then everything rendered.
pub fn render(handle: &PrometheusHandle, status: &[ProjectionStatus], store: &[PathBuf]) -> String {
    for p in status {
        let name = p.name;
        metrics::gauge!("leadflow_projection_checkpoint", "projection" => name)
            .set(p.checkpoint.0 as f64);
        metrics::gauge!("leadflow_projection_head", "projection" => name).set(p.head.0 as f64);
        metrics::gauge!("leadflow_projection_lag_events", "projection" => name).set(p.lag() as f64);
        metrics::gauge!("leadflow_projection_events_per_second", "projection" => name)
            .set(p.events_per_sec);
        metrics::gauge!("leadflow_projection_rebuild_progress", "projection" => name).set(
            p.rebuild
                .as_ref()
                .and_then(|b| b.rebuild_progress())
                .or(p.rebuild_progress())
                .unwrap_or(1.0),
        );
        metrics::gauge!("leadflow_projection_generation", "projection" => name)
            .set(f64::from(p.generation));
        for state in leadflow_projections::runner::ProjectionState::ALL {
            let on = if p.state == state { 1.0 } else { 0.0 };
            metrics::gauge!("leadflow_projection_state", "projection" => name, "state" => state.label())
                .set(on);
        }
    }
    let bytes: u64 = store
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    if !store.is_empty() {
        metrics::gauge!("leadflow_store_bytes").set(bytes as f64);
    }
    handle.render()
}
