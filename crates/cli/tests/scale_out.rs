//! Scale-out on the production store: two `leadflow serve` processes over one `leadflow node`
//! (the EventStoreDB protocol), each with read models of its own in its own data directory,
//! sharing the token secret and the master key. A command through either is read on both
//! after a `consistency` wait on its position, and each keeps its own models at the head.

mod common;

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use common::{gql, leadflow, Node, Served, BIN};

fn serve(data: &Path, store: &str) -> Served {
    let mut command = Command::new(BIN);
    command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--store",
            store,
            "--data-dir",
        ])
        .arg(data);
    Served::start(command)
}

const REGISTER: &str = "mutation($t: String!) { registerLead(input: { title: $t, unassigned: true }) { lead { id } position } }";
const TABLE: &str = "query($at: Position) { leads(first: 50, consistency: $at) { totalCount edges { node { title } } } }";

fn titles(page: &Value) -> Vec<String> {
    let mut all: Vec<String> = page["leads"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["title"].as_str().unwrap().to_owned())
        .collect();
    all.sort();
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serve_nodes_over_one_log_write_on_either_and_read_on_both() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("node"));
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    let a = serve(&a_dir, &node.connection);
    // One secret for tokens and one master key for personal data, shared by the nodes.
    std::fs::create_dir_all(&b_dir).unwrap();
    for file in ["jwt.secret", "master.key"] {
        std::fs::copy(a_dir.join(file), b_dir.join(file)).unwrap();
    }
    let b = serve(&b_dir, &node.connection);
    let olga = leadflow(
        &a_dir,
        &[
            "token",
            "issue",
            "--user",
            "olga.supervisor",
            "--store",
            &node.connection,
        ],
    );
    let olga = olga.trim();

    let mut expected = Vec::new();
    for (n, through) in [&a, &b, &a, &b].into_iter().enumerate() {
        let title = format!("Lead {n}");
        let written = gql(&through.address, olga, REGISTER, json!({ "t": title })).await;
        let at = written["registerLead"]["position"].clone();
        expected.push(title);
        expected.sort();
        // Read on both at the write's position: each from its own read models.
        for reader in [&a, &b] {
            let page = gql(&reader.address, olga, TABLE, json!({ "at": at })).await;
            assert_eq!(
                titles(&page),
                expected,
                "through {n}, read on {}",
                reader.address
            );
        }
    }
    // Each node keeps read models of its own.
    for d in [&a_dir, &b_dir] {
        assert!(d.join("read").join("leads.db").is_file());
    }
    assert!(!node.connection.is_empty());
    drop((a, b));
}
