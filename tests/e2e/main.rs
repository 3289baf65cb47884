//! The end-to-end suite: the whole product served on a random port over a temporary data dir
//! (`leadflow_testkit::spawn_app`), driven only through real HTTP and WebSocket requests. One
//! test binary, so linking stays cheap. What each module covers is in `tests/README.md`.
//!
//! Every test runs on a multi-thread runtime: the read side's projection threads drive their
//! log subscriptions through it.
//!
//! Every test runs on both backends (a matrix, not a copy): `<module>::embedded::<test>` on the
//! embedded store, `<module>::esdb::<test>` through the EventStoreDB adapter against the
//! embedded node. A test is an `async fn(Backend)`; `on_both_backends!` at the end of its
//! module stamps out the two `#[tokio::test]`s.

/// Stamps out, for each named `async fn(Backend)` of the calling module, one tokio test per
/// backend.
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(leadflow_testkit::Backend::Embedded).await
                }
            )*
        }
        mod esdb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(leadflow_testkit::Backend::EsdbNode).await
                }
            )*
        }
    };
}

mod access;
mod audit;
mod bad_input;
mod catalog;
mod consistency;
mod creatio_path;
mod erasure_property;
mod errors;
mod ops;
mod privacy;
mod reports;
mod subscriptions;

use serde_json::{json, Value};

/// A lead as the web form sends it: unassigned, with a contact, an account and a budget.
pub fn web_form_lead(title: &str, budget: &str) -> Value {
    json!({
        "unassigned": true,
        "title": title,
        "budget": { "amount": budget },
        "contactName": "Pyotr Sidorov",
        "phones": ["+7 916 123-45-67"],
        "emails": ["p.sidorov@stroymash.example"],
        "accountName": "Stroymash",
        "region": "Moscow",
        "source": "website",
        "channel": "web-form",
        "inquiryType": "WEB_REQUEST",
    })
}

/// A lead a manager enters by hand: the manager becomes its responsible.
pub fn manual_lead(title: &str) -> Value {
    json!({
        "title": title,
        "contactName": "Elena Petrova",
        "phones": ["+7 495 765-43-21"],
        "source": "referral",
        "channel": "manual",
    })
}
