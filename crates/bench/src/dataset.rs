//! The large data set of the read-side figures: `leads` leads, each cut at a different point
//! of the Creatio path (and some disqualified), decided by the pure domain and appended one
//! lead per batch, like an import. Generated once and cached under `target/bench/`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use uuid::Uuid;

use leadflow_codec::seal::{self, MasterKey, SubjectKey};
use leadflow_codec::{lead, lead_stream, EventMetadata};
use leadflow_domain::commands::DisqualifyLead;
use leadflow_domain::{decide, evolve, Actor, Catalog, LeadCommand, ReasonCode, SubjectId};
use leadflow_store::{EventStore, ExpectedRevision, NewEvent, NewKey};
use leadflow_store_embedded::EmbeddedStore;

use crate::workload::{business_time, lead_id, path_step, PATH_LEN};

const IN_FLIGHT: u64 = 256;

/// The events of lead `i`: the path up to a step that depends on `i`, and for some leads a
/// disqualification after qualifying.
pub fn lead_events(catalog: &Catalog, i: u64) -> anyhow::Result<Vec<NewEvent>> {
    let steps = 1 + (i % PATH_LEN as u64) as usize;
    let mut commands: Vec<_> = (0..steps).map(|s| path_step(i, s)).collect();
    if i % 9 == 4 {
        // Registered, qualified, then disqualified with a reason.
        let reason = ["no-budget", "competitor", "spam", "price"][(i % 4) as usize];
        commands = vec![path_step(i, 0), path_step(i, 1)];
        let dq = DisqualifyLead {
            reason: ReasonCode::parse(reason)?,
            comment: None,
        };
        commands.push((LeadCommand::Disqualify(dq), commands[1].1));
    }
    decided(catalog, i, commands)
}

/// Decides `commands` for lead `i` in turn with the pure domain and encodes the events as an
/// import would append them (one command id per lead, business time of the lead).
pub fn decided(
    catalog: &Catalog,
    i: u64,
    commands: Vec<(LeadCommand, Actor)>,
) -> anyhow::Result<Vec<NewEvent>> {
    let mut state = None;
    let mut out = Vec::new();
    let command_id = Uuid::from_u64_pair(0x1b_0000, i);
    for (cmd, actor) in commands {
        let ctx = leadflow_domain::Context {
            now: business_time(i),
            actor,
            catalog,
        };
        for e in decide(state.as_ref(), &cmd, &ctx).map_err(|r| anyhow::anyhow!("lead {i}: {r}"))? {
            let meta = EventMetadata {
                actor: actor.into(),
                occurred_at: business_time(i),
                correlation_id: command_id,
                causation_id: command_id,
                command_id,
                command: None,
                version: e.version(),
                subject: None,
            };
            out.push(NewEvent {
                id: Uuid::new_v5(&command_id, &(out.len() as u32).to_be_bytes()),
                event_type: e.event_type().to_owned(),
                data: lead::encode(&e),
                metadata: meta.encode(),
                content_type: leadflow_store::ContentType::Json,
            });
            state = evolve(state, &e);
        }
    }
    Ok(out)
}

/// The master key of the sealed data set (a fixed one, so the cached set stays readable).
pub fn bench_master_key() -> MasterKey {
    MasterKey::parse_hex(&"b3".repeat(32)).expect("64 hex digits")
}

/// Seals `events` (lead `i`'s) as the engine does: one new key for the lead's subject,
/// wrapped by `master`, every personal field sealed under it; the key to store with them.
pub fn sealed(
    master: &MasterKey,
    i: u64,
    mut events: Vec<NewEvent>,
) -> anyhow::Result<(Vec<NewEvent>, NewKey)> {
    let subject = SubjectId::for_lead(lead_id(i)).as_uuid();
    let key = SubjectKey::generate()?;
    for e in &mut events {
        if !seal::has_personal_fields(&e.event_type) {
            continue;
        }
        e.data = seal::seal_payload(&e.data, &e.event_type, &key, subject, e.id)?;
        let mut meta = EventMetadata::decode(&e.metadata)?;
        meta.subject = Some(subject);
        e.metadata = meta.encode();
    }
    let wrapped = master.wrap(subject, &key)?;
    Ok((events, NewKey { subject, wrapped }))
}

/// The data directory holding `leads` leads, generating it if it is not cached yet.
pub async fn ensure(root: &Path, leads: u64) -> anyhow::Result<PathBuf> {
    generate(root, leads, false).await
}

/// [`ensure`] with every lead's personal fields sealed under [`bench_master_key`].
pub async fn ensure_sealed(root: &Path, leads: u64) -> anyhow::Result<PathBuf> {
    generate(root, leads, true).await
}

async fn generate(root: &Path, leads: u64, sealing: bool) -> anyhow::Result<PathBuf> {
    let dir = root.join(if sealing {
        format!("data-{leads}-sealed")
    } else {
        format!("data-{leads}")
    });
    let done = dir.join("complete");
    if done.exists() {
        return Ok(dir);
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    eprintln!(
        "generating the {leads}-lead data set under {} (once; cached) ...",
        dir.display()
    );
    let started = Instant::now();
    let store = EmbeddedStore::open(dir.join("events.db"))?;
    let catalog = Arc::new(Catalog::default_catalog());
    let tasks: Vec<_> = (0..IN_FLIGHT)
        .map(|lane| {
            let (store, catalog) = (store.clone(), catalog.clone());
            tokio::spawn(async move {
                let master = bench_master_key();
                for i in (lane..leads).step_by(IN_FLIGHT as usize) {
                    let batch = lead_events(&catalog, i)?;
                    let (batch, keys) = if sealing {
                        let (batch, key) = sealed(&master, i, batch)?;
                        (batch, vec![key])
                    } else {
                        (batch, Vec::new())
                    };
                    store
                        .append_with_keys(
                            &lead_stream(lead_id(i)),
                            ExpectedRevision::NoStream,
                            batch,
                            keys,
                        )
                        .await?;
                    if lane == 0 && i % 100_000 < IN_FLIGHT {
                        eprintln!("  {i} leads ...");
                    }
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    let events = store.head().await?.0;
    drop(store);
    std::fs::write(&done, format!("{leads} leads, {events} events\n"))?;
    eprintln!(
        "  {leads} leads, {events} events in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(dir)
}
