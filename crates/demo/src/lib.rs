//! The demo data set (`leadflow demo --leads N --seed S`): leads of both funnels, spread over
//! 90 days of business time and over every stage, made by running real commands through the
//! engine, so the data set is exactly what users would have produced and every rule of the
//! stage machine held for it.
//!
//! Each lead's story is a function of (seed, lead index) alone: its own random stream, its
//! own business clock, idempotency keys of the form `demo/{seed}/{index}/{step}` and a lead
//! id derived from the first of them. So the data set does not depend on the concurrency,
//! and running `generate` again on the same store appends nothing (every command replays),
//! which is how the demo data can be created "on first start" safely. A command the domain
//! refuses is a bug in the generator and stops it with the lead, step and rejection.
//!
//! It drives the engine and nothing else: no store of its own, no wall clock, no system
//! random source. Layout: `people` and `texts` hold the data, `cast` the users and catalog
//! codes, `card` the intake, `script` a lead's route, `legs` the commands of each leg (`sale` those into AwaitingSale),
//! `story` the execution of one lead.

mod card;
mod cast;
mod legs;
mod people;
mod sale;
mod script;
mod story;
mod texts;

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use futures::{StreamExt, TryStreamExt};

use leadflow_domain::{CommandName, Rejection, Stage};
use leadflow_engine::{Engine, EngineError};

use crate::cast::Cast;
use crate::story::{Story, Tally};

/// What to generate.
#[derive(Clone, Debug)]
pub struct DemoConfig {
    pub leads: u64,
    pub seed: u64,
    /// Business time of day 0; registrations spread over the 90 days that follow.
    pub start: DateTime<Utc>,
    /// Leads played at once (each lead's commands run in order).
    pub concurrency: usize,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            leads: 2000,
            seed: 42,
            start: Utc
                .with_ymd_and_hms(2026, 1, 5, 8, 0, 0)
                .single()
                .expect("a valid date"),
            concurrency: 32,
        }
    }
}

/// What a run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DemoReport {
    pub leads: u64,
    /// Commands that appended events.
    pub accepted: u64,
    /// Commands already recorded by an earlier run (idempotent replays): nothing appended.
    pub replayed: u64,
    /// Events appended by this run.
    pub events: u64,
    /// Leads per final stage; every stage is listed, with 0 when none ended there.
    pub by_stage: BTreeMap<Stage, u64>,
}

impl DemoReport {
    fn add(&mut self, tally: Tally, stage: Stage) {
        self.leads += 1;
        self.accepted += tally.accepted;
        self.replayed += tally.replayed;
        self.events += tally.events;
        *self.by_stage.entry(stage).or_default() += 1;
    }
}

/// Why the demo stopped. Whatever was appended stays; a rerun with the same seed replays it
/// and carries on.
///
/// ### Handling
/// `Catalog`: run the demo on the default catalog (or one with the named item). The others are
/// bugs in the generator, or a store failure (`Engine` with a store error: retry the run).
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("the catalog lacks {missing}, which the demo needs")]
    Catalog { missing: String },
    #[error("demo lead {lead} step {step} ({command}) was rejected: {rejection}")]
    Rejected {
        lead: u64,
        step: u32,
        command: CommandName,
        rejection: Rejection,
    },
    #[error("demo lead {lead} step {step} ({command}) changed nothing")]
    NoEffect {
        lead: u64,
        step: u32,
        command: CommandName,
    },
    #[error("demo lead {lead} step {step} ({command}) failed: {source}")]
    Engine {
        lead: u64,
        step: u32,
        command: CommandName,
        source: EngineError,
    },
    #[error("demo lead {lead} needs {what}, which it does not have")]
    Script { lead: u64, what: &'static str },
    #[error("cannot read back demo lead {lead}: {source}")]
    Readback { lead: u64, source: EngineError },
}

/// Generates `config.leads` leads through `engine`, calling `progress` with the number of
/// leads done after each one. The engine's catalog must hold what the default catalog holds
/// (two funnels `default` and `partners`, their departments, the reasons, sources and
/// channels); the engine's clock and id generator are never used.
pub async fn generate(
    engine: &Engine,
    config: &DemoConfig,
    progress: impl Fn(u64) + Send + Sync,
) -> Result<DemoReport, DemoError> {
    let catalog = engine.catalog();
    let cast = Cast::from_catalog(&catalog)?;
    let mut report = DemoReport {
        by_stage: Stage::ALL.iter().map(|s| (*s, 0)).collect(),
        ..DemoReport::default()
    };
    let cast = &cast;
    let mut leads = futures::stream::iter(0..config.leads)
        .map(|index| async move {
            let mut story = Story::new(engine, cast, config.seed, index);
            script::play(&mut story, config.start).await?;
            Ok::<_, DemoError>((story.tally, story.lead().stage))
        })
        .buffer_unordered(config.concurrency.max(1));
    while let Some((tally, stage)) = leads.try_next().await? {
        report.add(tally, stage);
        progress(report.leads);
    }
    Ok(report)
}
