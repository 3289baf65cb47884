//! The read side over sealed personal fields (issue 20): the models open them with the
//! subjects' keys; without the master key, or with a wrong one, they wait at the first sealed
//! event (the status says why) and write nothing, least of all "erased"; once the key is back
//! they go on from there.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use uuid::Uuid;

use leadflow_codec::seal::{MasterKey, ERASED};
use leadflow_domain::commands::*;
use leadflow_domain::details::LeadDetails;
use leadflow_domain::values::{Name, Phone};
use leadflow_domain::{Actor, Catalog, LeadCommand, LeadId, Role, UserId};
use leadflow_engine::{CommandMeta, Engine, EngineConfig, FixedClock, Keyring, SequentialIds};
use leadflow_projections::{all_projections, query, ProjectionState, ReadSide, LEADS};
use leadflow_store::{EventStore, Position};
use leadflow_store_embedded::EmbeddedStore;

const WAIT: Duration = Duration::from_secs(10);

fn admin() -> Actor {
    Actor {
        user: UserId::named("admin"),
        role: Role::Admin,
    }
}

fn sealing_engine(store: &Arc<dyn EventStore>, master: &MasterKey) -> Engine {
    Engine::new(
        store.clone(),
        Arc::new(Catalog::default_catalog()),
        Arc::new(FixedClock::at(
            Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap(),
        )),
        Arc::new(SequentialIds::default()),
        EngineConfig {
            keyring: Some(keyring(store, Some(master.clone()))),
            ..EngineConfig::default()
        },
    )
}

fn register(id: LeadId, name: &str) -> LeadCommand {
    LeadCommand::Register(RegisterLead {
        lead_id: id,
        funnel: None,
        responsible: ResponsibleChoice::Creator,
        details: LeadDetails {
            contact_name: Some(Name::parse("contact", name).unwrap()),
            phones: vec![Phone::parse("+79031234567").unwrap()],
            comment: Some(
                leadflow_domain::values::Comment::parse("c", &format!("{name} called")).unwrap(),
            ),
            ..LeadDetails::titled(Name::parse("title", &format!("Pumps for {name}")).unwrap())
        },
    })
}

fn ivan() -> Actor {
    Actor {
        user: UserId::named("ivan.manager"),
        role: Role::Manager,
    }
}

fn keyring(store: &Arc<dyn EventStore>, master: Option<MasterKey>) -> Arc<Keyring> {
    Arc::new(Keyring::new(store.clone(), master))
}

fn reads(store: &Arc<dyn EventStore>, dir: &Path, keys: Arc<Keyring>) -> ReadSide {
    ReadSide::start_with_keys(dir, store.clone(), Some(keys), all_projections()).unwrap()
}

/// Every byte of every file under `dir`, as text.
fn everything_under(dir: &Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            text.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
        }
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_master_key_the_models_wait_and_go_on_once_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> =
        Arc::new(EmbeddedStore::open(dir.path().join("events.db")).unwrap());
    let master = MasterKey::generate().unwrap();
    let engine = sealing_engine(&store, &master);
    let id = LeadId::from_uuid(Uuid::from_u128(1));
    let position = engine
        .execute(
            id,
            LeadCommand::Register(RegisterLead {
                lead_id: id,
                funnel: None,
                responsible: ResponsibleChoice::Creator,
                details: LeadDetails {
                    contact_name: Some(Name::parse("contact", "Zinaida Kvasnikova").unwrap()),
                    phones: vec![Phone::parse("+79031234567").unwrap()],
                    ..LeadDetails::titled(Name::parse("title", "Pumps for Vologda").unwrap())
                },
            }),
            CommandMeta::by(ivan()),
        )
        .await
        .unwrap()
        .position
        .unwrap();
    assert!(!everything_under(dir.path()).contains("Kvasnikova"));

    let read_dir = dir.path().join("read");
    for master in [None, Some(MasterKey::generate().unwrap())] {
        let waiting = reads(&store, &read_dir, keyring(&store, master));
        let stuck = async {
            loop {
                let status = waiting.status().await;
                let leads = status.iter().find(|s| s.name == "leads").unwrap();
                if leads.state == ProjectionState::Retrying {
                    return leads.error.clone().unwrap_or_default();
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let error = tokio::time::timeout(WAIT, stuck)
            .await
            .expect("the models wait");
        assert!(error.starts_with("personal data keys: "), "{error}");
        assert!(
            waiting
                .wait_for(position, Duration::from_millis(300))
                .await
                .is_err(),
            "nothing past the sealed event is applied"
        );
        waiting.shutdown();
        let files = everything_under(&read_dir);
        assert!(
            !files.contains(ERASED),
            "an unreadable key is never 'erased'"
        );
        assert!(!files.contains("Kvasnikova"));
    }

    let back = Arc::new(reads(&store, &read_dir, keyring(&store, Some(master))));
    back.wait_for(position, WAIT).await.unwrap();
    let card = back
        .read(LEADS, move |c| query::card(c, id))
        .await
        .unwrap()
        .expect("the lead's card");
    assert_eq!(
        card.0.details.contact_name.unwrap().as_str(),
        "Zinaida Kvasnikova"
    );
    assert!(back
        .status()
        .await
        .iter()
        .all(|s| s.state != ProjectionState::Retrying && s.error.is_none()));
    back.shutdown();
}

/// An erasure reaches every model, live or rebuilt: a rebuild of every model from zero after
/// it gives exactly the rows of the models that were running when it happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_erasure_a_rebuild_from_zero_gives_the_rows_of_the_live_models() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> =
        Arc::new(EmbeddedStore::open(dir.path().join("events.db")).unwrap());
    let master = MasterKey::generate().unwrap();
    let engine = sealing_engine(&store, &master);
    let live_dir = dir.path().join("live");
    let live = Arc::new(reads(
        &store,
        &live_dir,
        keyring(&store, Some(master.clone())),
    ));
    let (anna, boris) = (
        LeadId::from_uuid(Uuid::from_u128(1)),
        LeadId::from_uuid(Uuid::from_u128(2)),
    );
    for (id, name) in [(anna, "Anna Quillfeather"), (boris, "Boris Kettleworth")] {
        engine
            .execute(id, register(id, name), CommandMeta::by(ivan()))
            .await
            .unwrap();
    }
    engine
        .execute(
            anna,
            LeadCommand::Disqualify(DisqualifyLead {
                reason: leadflow_domain::ReasonCode::parse("spam").unwrap(),
                comment: Some(
                    leadflow_domain::values::Comment::parse("c", "Anna Quillfeather hung up")
                        .unwrap(),
                ),
            }),
            CommandMeta::by(ivan()),
        )
        .await
        .unwrap();
    let subject = leadflow_domain::SubjectId::for_lead(anna);
    let erased = engine
        .execute_subject(
            leadflow_domain::SubjectCommand::Erase {
                subject,
                reason: leadflow_domain::ErasureReason::Request,
                ticket: None,
            },
            CommandMeta::by(admin()),
        )
        .await
        .unwrap()
        .position
        .unwrap();
    assert!(erased > Position::START);
    // A command on the erased lead still works, its new words under the successor.
    let supervisor = Actor {
        user: UserId::named("olga.supervisor"),
        role: Role::Supervisor,
    };
    let last = engine
        .execute(
            anna,
            LeadCommand::Reopen(ReopenLead {
                comment: Some(leadflow_domain::values::Comment::parse("c", "came back").unwrap()),
            }),
            CommandMeta::by(supervisor),
        )
        .await
        .unwrap()
        .position
        .unwrap();
    live.wait_for(last, WAIT).await.unwrap();
    let card = live
        .read(LEADS, move |c| query::card(c, anna))
        .await
        .unwrap()
        .unwrap()
        .0;
    assert_eq!(card.details.contact_name.unwrap().as_str(), ERASED);
    assert_eq!(card.details.title.as_str(), ERASED);
    assert_eq!(
        card.stage,
        leadflow_domain::Stage::Qualification,
        "reopened"
    );
    live.shutdown();

    let rebuilt_dir = dir.path().join("rebuilt");
    let rebuilt = reads(&store, &rebuilt_dir, keyring(&store, Some(master)));
    rebuilt.wait_for(last, WAIT).await.unwrap();
    rebuilt.shutdown();
    for model in ["leads.db", "history.db", "transitions.db"] {
        let (a, b) = (
            leadflow_projections::dump_tables(&live_dir.join(model)).unwrap(),
            leadflow_projections::dump_tables(&rebuilt_dir.join(model)).unwrap(),
        );
        assert_eq!(a, b, "{model}");
        let text = a.join("\n");
        assert!(!text.contains("Quillfeather"), "{model}: {text}");
        // (`transitions` holds no one's name, by design, nor `history`: the feed is written
        // from the lead's stream when read.)
        assert!(
            text.contains("Kettleworth") || model != "leads.db",
            "the other person stays: {model}"
        );
    }
}
