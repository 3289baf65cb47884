//! One lead's story as it runs: its random stream, its business clock, and the commands it
//! sends through the engine, each under an idempotency key made of (seed, lead index, step).
//! The lead's state after each command comes from the engine's `Outcome`, so task and deal
//! ids are read, not guessed.
//!
//! A command already recorded (a second run on the same store) is answered `Replayed` with
//! the lead as it is *now*, not as it was right after that command. The story needs the
//! latter to pick its next step, so on the first replay it reads the lead's stream once and
//! folds it up to the replayed command's last revision. What to do at each step is the
//! script's business (`script.rs`).

use chrono::{DateTime, Datelike, Duration, Timelike, Utc, Weekday};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use leadflow_codec::lead_stream;
use leadflow_domain::{evolve, Actor, Lead, LeadAggregate, LeadCommand, LeadEvent, LeadId};
use leadflow_engine::{CommandMeta, Engine, EngineError, OutcomeKind};

use crate::cast::{Cast, Team};
use crate::DemoError;

/// What one lead's story did.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tally {
    pub accepted: u64,
    pub replayed: u64,
    pub events: u64,
}

/// The lead's stored stream, read back on the first replay, and how far it is folded.
struct Readback {
    events: Vec<(u64, LeadEvent)>,
    folded: usize,
    state: Option<Lead>,
}

pub struct Story<'a> {
    pub engine: &'a Engine,
    pub cast: &'a Cast<'a>,
    pub team: &'a Team,
    pub rng: ChaCha8Rng,
    pub seed: u64,
    pub index: u64,
    pub lead_id: LeadId,
    /// Business time of the next command; only ever moves forward.
    pub now: DateTime<Utc>,
    step: u32,
    lead: Option<Lead>,
    readback: Option<Readback>,
    pub tally: Tally,
}

/// Working hours in UTC: 09:00-19:00 Moscow time, Monday to Friday.
const DAY_STARTS_UTC: u32 = 6;
const DAY_ENDS_UTC: u32 = 16;

/// The idempotency key of step `step` of lead `index`.
fn key(seed: u64, index: u64, step: u32) -> String {
    format!("demo/{seed}/{index}/{step}")
}

impl<'a> Story<'a> {
    /// Lead `index`'s story: its own ChaCha stream of the seed, so leads are independent of
    /// each other and of the order they run in.
    pub fn new(engine: &'a Engine, cast: &'a Cast<'a>, seed: u64, index: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(index);
        let team = if rng.random_bool(0.7) {
            &cast.sales
        } else {
            &cast.partners
        };
        Self {
            engine,
            cast,
            team,
            rng,
            seed,
            index,
            lead_id: engine.new_lead_id(Some(&key(seed, index, 0))),
            now: DateTime::<Utc>::MIN_UTC,
            step: 0,
            lead: None,
            readback: None,
            tally: Tally::default(),
        }
    }

    /// The lead after the last command.
    pub fn lead(&self) -> &Lead {
        self.lead
            .as_ref()
            .expect("the script registers the lead before anything else")
    }

    /// Lets business time pass: a random span between `min` and `max`, then on to working
    /// hours if it ends outside them (people act during the working day).
    pub fn wait(&mut self, min: Duration, max: Duration) {
        let span = self
            .rng
            .random_range(min.num_minutes()..=max.num_minutes().max(min.num_minutes()));
        self.now += Duration::minutes(span);
        let hour = self.now.hour();
        if !(DAY_STARTS_UTC..DAY_ENDS_UTC).contains(&hour) {
            let day = if hour >= DAY_ENDS_UTC {
                self.now + Duration::days(1)
            } else {
                self.now
            };
            let morning = day
                .date_naive()
                .and_hms_opt(DAY_STARTS_UTC, 0, 0)
                .expect("a valid time")
                .and_utc();
            self.now = morning + Duration::minutes(self.rng.random_range(0..300));
        }
        while matches!(self.now.weekday(), Weekday::Sat | Weekday::Sun) {
            self.now += Duration::days(1);
        }
    }

    /// A moment `min`..`max` after now (a due date, a next check), without moving the clock.
    pub fn later(&mut self, min: Duration, max: Duration) -> DateTime<Utc> {
        let span = self
            .rng
            .random_range(min.num_minutes()..=max.num_minutes().max(min.num_minutes()));
        self.now + Duration::minutes(span)
    }

    /// The actor for the lead's responsible, or the team's supervisor when there is none.
    pub fn responsible_or_supervisor(&self) -> Actor {
        match self.lead().responsible {
            Some(user) => self.cast.actor(user),
            None => self.team.supervisor,
        }
    }

    /// Sends the next command at the current business time. Any refusal is a bug in the
    /// script and ends the story with the lead, step and reason.
    pub async fn run(&mut self, actor: Actor, command: LeadCommand) -> Result<(), DemoError> {
        let step = self.step;
        let name = command.name();
        let meta = CommandMeta::by(actor)
            .with_key(key(self.seed, self.index, step))
            .at(self.now);
        let outcome = match self.engine.execute(self.lead_id, command, meta).await {
            Ok(o) => o,
            Err(EngineError::Rejected(rejection)) => {
                return Err(DemoError::Rejected {
                    lead: self.index,
                    step,
                    command: name,
                    rejection,
                })
            }
            Err(source) => {
                return Err(DemoError::Engine {
                    lead: self.index,
                    step,
                    command: name,
                    source,
                })
            }
        };
        self.step += 1;
        match outcome.kind {
            OutcomeKind::Appended => {
                self.tally.accepted += 1;
                self.tally.events += outcome.events.len() as u64;
                self.lead = outcome.state;
            }
            OutcomeKind::Replayed => {
                self.tally.replayed += 1;
                let revision = outcome.revision.expect("a recorded command has a revision");
                self.lead = self.state_at(revision).await?;
            }
            // Not recorded, so a second run would not find it: the script must not send it.
            OutcomeKind::Unchanged => {
                return Err(DemoError::NoEffect {
                    lead: self.index,
                    step,
                    command: name,
                })
            }
        }
        Ok(())
    }

    /// The lead as it was at stream revision `revision`, from the stored stream.
    async fn state_at(&mut self, revision: u64) -> Result<Option<Lead>, DemoError> {
        let read_error = |source| DemoError::Readback {
            lead: self.index,
            source,
        };
        let rb = self.readback.get_or_insert_with(|| Readback {
            events: Vec::new(),
            folded: 0,
            state: None,
        });
        if rb.events.last().is_none_or(|(r, _)| *r < revision) {
            let from = rb.events.last().map_or(0, |(r, _)| r + 1);
            let stream = lead_stream(self.lead_id);
            let recorded = self
                .engine
                .store()
                .read_stream(&stream, from, usize::MAX)
                .await
                .map_err(|e| read_error(e.into()))?;
            for r in recorded {
                let (_, event) = self
                    .engine
                    .decode_recorded::<LeadAggregate>(&r)
                    .await
                    .map_err(read_error)?;
                rb.events.push((r.revision, event));
            }
        }
        while let Some((r, event)) = rb.events.get(rb.folded) {
            if *r > revision {
                break;
            }
            rb.state = evolve(rb.state.take(), event);
            rb.folded += 1;
        }
        Ok(rb.state.clone())
    }
}
