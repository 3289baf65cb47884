//! The catalog through the binary: a user an admin creates over HTTP gets a token from
//! `leadflow token issue` while `serve` runs (the CLI reads the catalog beside the server), and
//! signs in with it; after `dismissUser` the same token is refused and `token issue` refuses to
//! issue another; the seed is written on the first start only.

mod common;

use std::process::Command;

use common::{graphql, leadflow, Served, BIN};

fn serve(data: &std::path::Path) -> Served {
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data);
    Served::start(command)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_issue_serves_a_user_an_admin_created_while_the_server_runs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Before any start: the default catalog's users get tokens.
    let admin = leadflow(&data, &["token", "issue", "--user", "admin"]);
    let server = serve(&data);
    let admin = admin.trim();
    let created = graphql(
        &server,
        Some(admin),
        r#"mutation { createUser(input: { name: "elena.manager", displayName: "Elena Orlova",
            role: MANAGER, department: "sales" }) { changed } }"#,
    )
    .await;
    assert_eq!(created["data"]["createUser"]["changed"], true, "{created}");

    let elena = leadflow(&data, &["token", "issue", "--user", "elena.manager"]);
    let me = graphql(&server, Some(elena.trim()), "{ me { name role } }").await;
    assert_eq!(me["data"]["me"]["name"], "elena.manager", "{me}");
    assert_eq!(me["data"]["me"]["role"], "MANAGER", "{me}");

    let dismissed = graphql(
        &server,
        Some(admin),
        r#"mutation { dismissUser(user: "elena.manager") { changed } }"#,
    )
    .await;
    assert_eq!(
        dismissed["data"]["dismissUser"]["changed"], true,
        "{dismissed}"
    );
    let refused = graphql(&server, Some(elena.trim()), "{ me { name } }").await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{refused}"
    );
    let out = Command::new(BIN)
        .args(["token", "issue", "--user", "elena.manager", "--data-dir"])
        .arg(&data)
        .env_remove("LEADFLOW_JWT_SECRET")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("dismissed"), "{err}");
    let out = Command::new(BIN)
        .args(["token", "issue", "--user", "nobody.here", "--data-dir"])
        .arg(&data)
        .env_remove("LEADFLOW_JWT_SECRET")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown user"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
