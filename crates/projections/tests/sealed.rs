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
use leadflow_store::EventStore;
use leadflow_store_embedded::EmbeddedStore;

const WAIT: Duration = Duration::from_secs(10);

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
    let engine = Engine::new(
        store.clone(),
        Arc::new(Catalog::default_catalog()),
        Arc::new(FixedClock::at(
            Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap(),
        )),
        Arc::new(SequentialIds::default()),
        EngineConfig {
            keyring: Some(keyring(&store, Some(master.clone()))),
            ..EngineConfig::default()
        },
    );
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
