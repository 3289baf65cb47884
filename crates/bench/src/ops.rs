//! Ops figures: the API while every read model is rebuilt beside the live one. Query p99 (the
//! kanban header and a table page, read through the read side as the API reads them) and
//! command throughput during the rebuild, each beside the same run's idle figure over the
//! same copy of the data set, with the same load.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use leadflow_domain::{Catalog, FunnelId};
use leadflow_engine::{CommandMeta, Engine};
use leadflow_projections::query::{self, LeadFilter};
use leadflow_projections::{all_projections, ProjectionState, ReadSide, LEADS};
use leadflow_store::EventStore;
use leadflow_store_embedded::EmbeddedStore;

use crate::workload::{business_time, lead_id, path_step, PATH_LEN};
use crate::{percentile, read, Figure};

/// Concurrent writers: enough to keep the store's group commit busy, as an office would.
const WRITERS: u64 = 16;
/// The writers write flat out for `BURST`, then rest for the rest of each `CYCLE`: the
/// throughput is measured in the bursts, and the log grows by a bounded share of it. Flat out
/// for the whole rebuild of 1 M leads, they added 3.6 GB to the log (and more to every read
/// model) before the rebuild could end, and filled the disk.
const BURST: Duration = Duration::from_secs(2);
const CYCLE: Duration = Duration::from_secs(8);
/// How long the idle figures are measured: whole cycles.
const IDLE: Duration = Duration::from_secs(16);

/// What one phase measured.
struct Phase {
    queries: Vec<Duration>,
    /// Each query's parts: (waiting for a blocking thread, in SQLite, waiting to be resumed).
    parts: Vec<[Duration; 3]>,
    /// When each query started, from the phase's start.
    at: Vec<Duration>,
    commands: u64,
    elapsed: Duration,
}

impl Phase {
    fn rate(&self) -> f64 {
        self.commands as f64 / self.elapsed.as_secs_f64()
    }
}

pub async fn rebuild_under_load(root: &Path, leads: u64) -> anyhow::Result<Vec<Figure>> {
    let data = read::read_models(root, leads).await?;
    // A copy: the other figures read the data set's own files.
    let scratch = root.join(format!("rebuild-under-load-{leads}"));
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch)?;
    }
    std::fs::create_dir_all(scratch.join("read"))?;
    // The store with its WAL (no process has it open now): the same log the models followed.
    for file in ["events.db", "events.db-wal"] {
        if data.join(file).exists() {
            std::fs::copy(data.join(file), scratch.join(file))?;
        }
    }
    for model in ["leads", "history", "transitions"] {
        for suffix in ["", "-wal"] {
            let file = format!("{model}.db{suffix}");
            if data.join("read").join(&file).exists() {
                std::fs::copy(
                    data.join("read").join(&file),
                    scratch.join("read").join(&file),
                )?;
            }
        }
    }
    let store: Arc<dyn EventStore> = Arc::new(EmbeddedStore::open(scratch.join("events.db"))?);
    let reads = Arc::new(ReadSide::start(
        &scratch.join("read"),
        store.clone(),
        all_projections(),
    )?);
    reads
        .wait_for(store.head().await?, Duration::from_secs(600))
        .await?;
    let engine = crate::engine(store.clone());
    let next = Arc::new(AtomicU64::new(leads + 1_000_000));

    // A model whose version changed since the data set's models were built is upgraded beside
    // the live one as the read side starts: that switch first, then the generations the
    // rebuild must reach.
    let upgraded = Instant::now();
    while reads.status().await.iter().any(|s| s.rebuild.is_some()) {
        anyhow::ensure!(
            upgraded.elapsed() < Duration::from_secs(1800),
            "a model's upgrade never switched in"
        );
        stop_if_failed(&reads).await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let idle = measure(&engine, &reads, &next, Until::Elapsed(IDLE)).await?;
    let switched: HashMap<&'static str, u32> = reads
        .status()
        .await
        .iter()
        .map(|s| (s.name, s.generation + 1))
        .collect();
    let started = Instant::now();
    reads.rebuild(&[], false).await?;
    let during = measure(&engine, &reads, &next, Until::Switched(switched)).await?;
    let rebuilt_in = started.elapsed();
    if let Some(refused) = reads.status().await.iter().find_map(|s| s.refused.clone()) {
        anyhow::bail!("the rebuild was refused: {refused}");
    }
    reads.shutdown();
    let _ = std::fs::remove_dir_all(&scratch);
    eprintln!(
        "  rebuilt every model beside the live ones in {:.1} s under load: {} queries, {} commands during it; idle: {} queries, {} commands in {:.0} s",
        rebuilt_in.as_secs_f64(),
        during.queries.len(),
        during.commands,
        idle.queries.len(),
        idle.commands,
        idle.elapsed.as_secs_f64()
    );
    for (name, phase) in [("idle", &idle), ("during the rebuild", &during)] {
        eprintln!("  the slowest 1 % of queries {name}: {}", tail_parts(phase));
    }
    let (mut idle_q, mut during_q) = (idle.queries.clone(), during.queries.clone());
    let idle_p99 = micros(percentile(&mut idle_q, 0.99));
    let during_p99 = micros(percentile(&mut during_q, 0.99));
    eprintln!(
        "  queries over twice the idle p99, per tenth of the rebuild: {}",
        slow_per_tenth(&during, Duration::from_secs_f64(2.0 * idle_p99 / 1e6))
    );
    Ok(vec![
        Figure {
            name: "query_p99_during_rebuild",
            value: during_p99,
            unit: "µs",
            limit: idle_p99,
            limit_what: format!(
                "p99 of the same queries (kanban header, table page) idle, same load, {leads} leads; goal: at most twice it"
            ),
            goal: Some(2.0 * idle_p99),
            higher_is_better: false,
        },
        Figure {
            name: "commands_per_sec_during_rebuild",
            value: during.rate(),
            unit: "commands/s",
            limit: idle.rate(),
            limit_what: format!(
                "commands/s of the same {WRITERS} writers idle, flat out {} s of every {} s, {leads} leads; goal: at least 70 % of it",
                BURST.as_secs(),
                CYCLE.as_secs()
            ),
            goal: Some(0.7 * idle.rate()),
            higher_is_better: true,
        },
    ])
}

/// How long a phase of [`measure`] lasts.
enum Until {
    Elapsed(Duration),
    /// Until every model serves the generation named for it (checked every 100 ms).
    Switched(HashMap<&'static str, u32>),
}

/// Writers (in bursts) and a reader (throughout) until `until`. The commands are counted over
/// the bursts' time.
async fn measure(
    engine: &Arc<Engine>,
    reads: &Arc<ReadSide>,
    next: &Arc<AtomicU64>,
    until: Until,
) -> anyhow::Result<Phase> {
    let stop = Arc::new(AtomicBool::new(false));
    let bursting = Arc::new(AtomicBool::new(true));
    let commands = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let (engine, stop, commands, next) =
                (engine.clone(), stop.clone(), commands.clone(), next.clone());
            let bursting = bursting.clone();
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    if !bursting.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    for step in 0..PATH_LEN {
                        let (cmd, actor) = path_step(i, step);
                        engine
                            .execute(lead_id(i), cmd, CommandMeta::by(actor).at(business_time(i)))
                            .await?;
                        commands.fetch_add(1, Ordering::SeqCst);
                    }
                }
                Ok::<_, anyhow::Error>(())
            })
        })
        .collect();
    let reader = {
        let (reads, stop) = (reads.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut samples, mut parts, mut at) = (Vec::new(), Vec::new(), Vec::new());
            let phase = Instant::now();
            let funnel = FunnelId::parse("default")?;
            let filter = LeadFilter {
                funnel: Some("default".to_owned()),
                ..LeadFilter::default()
            };
            while !stop.load(Ordering::SeqCst) {
                let (funnel, filter) = (funnel.clone(), filter.clone());
                let started = Instant::now();
                let (from, to) = reads
                    .read(LEADS, move |c| {
                        let from = Instant::now();
                        query::board(c, &Catalog::default_catalog(), &funnel, false, None)?;
                        Ok((from, Instant::now()))
                    })
                    .await?;
                samples.push(started.elapsed());
                parts.push([from - started, to - from, to.elapsed()]);
                at.push(started - phase);
                let started = Instant::now();
                let (from, to) = reads
                    .read(LEADS, move |c| {
                        let from = Instant::now();
                        query::leads_page(c, &filter, &[], 50, None)?;
                        Ok((from, Instant::now()))
                    })
                    .await?;
                samples.push(started.elapsed());
                parts.push([from - started, to - from, to.elapsed()]);
                at.push(started - phase);
            }
            Ok::<_, anyhow::Error>((samples, parts, at))
        })
    };
    let started = Instant::now();
    // The bursts' time so far, and when the one under way began.
    let (mut burst_time, mut burst_from) = (Duration::ZERO, Some(Instant::now()));
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let in_burst = started.elapsed().as_nanos() % CYCLE.as_nanos() < BURST.as_nanos();
        match (in_burst, burst_from) {
            (false, Some(from)) => {
                bursting.store(false, Ordering::SeqCst);
                burst_time += from.elapsed();
                burst_from = None;
            }
            (true, None) => {
                bursting.store(true, Ordering::SeqCst);
                burst_from = Some(Instant::now());
            }
            _ => {}
        }
        let done = match &until {
            Until::Elapsed(d) => started.elapsed() >= *d,
            // Switched, and following the log again: a switch shows the new generation while
            // it is still held, before its worker is resumed.
            Until::Switched(generations) => reads.status().await.iter().all(|s| {
                generations.get(s.name) == Some(&s.generation)
                    && s.rebuild.is_none()
                    && s.state != ProjectionState::Paused
            }),
        };
        if done {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(1800),
            "the rebuild never switched in"
        );
        stop_if_failed(reads).await?;
    }
    stop.store(true, Ordering::SeqCst);
    let elapsed = burst_time + burst_from.map_or(Duration::ZERO, |from| from.elapsed());
    for w in writers {
        w.await??;
    }
    let (queries, parts, at) = reader.await??;
    Ok(Phase {
        queries,
        parts,
        at,
        commands: commands.load(Ordering::SeqCst),
        elapsed,
    })
}

/// Where the slowest 1 % of a phase's queries spent their time, on average.
fn tail_parts(phase: &Phase) -> String {
    let mut parts = phase.parts.clone();
    parts.sort_by_key(|p| std::cmp::Reverse(p[0] + p[1] + p[2]));
    let tail = &parts[..parts.len().div_ceil(100)];
    let mean = |i: usize| micros(tail.iter().map(|p| p[i]).sum::<Duration>()) / tail.len() as f64;
    format!(
        "{} queries, mean {:.0} µs waiting for a thread, {:.0} µs in SQLite, {:.0} µs waiting to be resumed",
        tail.len(),
        mean(0),
        mean(1),
        mean(2)
    )
}

/// How many of a phase's queries took longer than `over`, in each tenth of its time.
fn slow_per_tenth(phase: &Phase, over: Duration) -> String {
    let end = phase
        .at
        .last()
        .copied()
        .unwrap_or_default()
        .max(Duration::from_millis(1));
    let mut tenths = [0u32; 10];
    for (q, at) in phase.queries.iter().zip(&phase.at) {
        if *q > over {
            let i = (at.as_secs_f64() / end.as_secs_f64() * 10.0) as usize;
            tenths[i.min(9)] += 1;
        }
    }
    format!("{tenths:?} of {}", phase.queries.len())
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// An error naming the model (live, or a generation being built) that stopped failed: it
/// waits for an operator, so a run waiting for it to catch up or switch would wait for ever.
async fn stop_if_failed(reads: &ReadSide) -> anyhow::Result<()> {
    for s in reads.status().await {
        for model in std::iter::once(&s).chain(s.rebuild.as_deref()) {
            if model.state == ProjectionState::Failed {
                anyhow::bail!(
                    "the {} model (generation {}) failed: {}",
                    model.name,
                    model.generation,
                    model.error.as_deref().unwrap_or("no error recorded")
                );
            }
        }
    }
    Ok(())
}
