//! The front door, through the `leadflow` binary over real HTTP: no page, route or startup line
//! carries a token unless `--demo` prints its sign-in link; the secret rotates as documented;
//! every file the subcommands make is the service's alone; CORS, WebSocket origins and
//! compression.

mod common;

use std::io::{BufRead as _, BufReader, Read as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use common::{client, graphql, leadflow, Served, BIN};

fn serve(data: &Path, extra: &[&str]) -> Served {
    let mut command = Command::new(BIN);
    command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--demo-leads",
            "200",
            "--data-dir",
        ])
        .arg(data)
        .args(extra);
    Served::start(command)
}

/// A subcommand expected to fail: its stderr. One that runs on (a server that started) is
/// killed after a minute and fails the test.
fn leadflow_fails(data: &Path, args: &[&str]) -> String {
    let mut child = Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env("LEADFLOW_LOG", "warn")
        .env_remove("LEADFLOW_JWT_SECRET")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run leadflow");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("leadflow {args:?} should have failed, but runs on");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success(), "leadflow {args:?} should have failed");
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("stderr");
    err
}

/// Whether `text` holds anything of a JWT's shape: three base64url parts, the first `eyJ`.
fn has_jwt(text: &str) -> bool {
    let b64 = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    text.match_indices("eyJ").any(|(i, _)| {
        let parts: Vec<&str> = text[i..]
            .split(|c: char| !b64(c) && c != '.')
            .next()
            .unwrap_or("")
            .split('.')
            .collect();
        parts.len() >= 3 && parts[..3].iter().all(|p| p.len() >= 4)
    })
}

fn code(answer: &Value) -> &str {
    answer["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("")
}

fn token_of(startup: &str) -> String {
    let at = startup.find("#token=").expect("a sign-in link") + "#token=".len();
    startup[at..]
        .split_whitespace()
        .next()
        .expect("a token")
        .to_owned()
}

/// Every non-API route a browser or a probe might fetch.
async fn pages(s: &Served) -> Vec<(String, String)> {
    let mut all = Vec::new();
    for path in [
        "/",
        "/graphql",
        "/health",
        "/graphql/ws",
        "/nothing-here",
        "/#token=x",
    ] {
        let response = client()
            .get(format!("http://{}{path}", s.address))
            .send()
            .await
            .expect("GET");
        let headers = format!("{:?}", response.headers());
        let body = response.text().await.expect("a body");
        all.push((path.to_owned(), format!("{headers}\n{body}")));
    }
    all
}

#[test]
fn the_jwt_detector_finds_tokens_and_nothing_else() {
    assert!(has_jwt(
        "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl x"
    ));
    assert!(has_jwt("\"#token=eyJhbGci.eyJzdWIi.abcd\""));
    assert!(!has_jwt("the eyJ prefix alone, or eyJabc.def"));
}

#[tokio::test(flavor = "multi_thread")]
async fn without_demo_no_page_or_line_carries_a_token_and_queries_need_one() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path(), &[]);
    assert!(
        !has_jwt(&s.startup),
        "startup printed a token:\n{}",
        s.startup
    );
    assert!(
        s.startup.contains("leadflow token issue --user NAME"),
        "{}",
        s.startup
    );
    for (path, page) in pages(&s).await {
        assert!(!has_jwt(&page), "{path} carries a token:\n{page}");
    }
    let home = client()
        .get(format!("http://{}/", s.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(home.contains("graphiql"), "GraphiQL is served");
    assert!(
        home.contains("integrity=\"sha384-"),
        "its scripts are pinned with SRI"
    );
    let answer = graphql(&s, None, "{ me { name role } }").await;
    assert_eq!(code(&answer), "UNAUTHENTICATED", "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_link_signs_in_for_hours_and_no_page_carries_its_token() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path(), &["--demo"]);
    let token = token_of(&s.startup);
    assert!(s.startup.contains("for 8 hours"), "{}", s.startup);
    for (path, page) in pages(&s).await {
        assert!(!has_jwt(&page), "{path} carries a token:\n{page}");
    }
    let answer = graphql(&s, Some(&token), "{ me { name role } }").await;
    assert_eq!(answer["data"]["me"]["role"], "SUPERVISOR", "{answer}");
    // It lives eight hours, not a month.
    let claims = token.split('.').nth(1).unwrap();
    let claims = String::from_utf8(base64url(claims)).unwrap();
    let claims: Value = serde_json::from_str(&claims).unwrap();
    let ttl = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(ttl, 8 * 3600, "{claims}");
}

fn base64url(s: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'-' => 62,
        _ => 63,
    };
    let bits: Vec<u8> = s.bytes().map(value).collect();
    bits.chunks(4)
        .flat_map(|c| {
            let n = c
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, v)| n | u32::from(*v) << (18 - 6 * i));
            let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            bytes[..c.len() - 1].to_vec()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_secret_refuses_old_tokens_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let old = leadflow(data, &["token", "issue", "--user", "ivan.manager"]);
    let s = serve(data, &[]);
    let answer = graphql(&s, Some(old.trim()), "{ me { name } }").await;
    assert_eq!(answer["data"]["me"]["name"], "ivan.manager", "{answer}");
    drop(s);

    let said = leadflow(data, &["token", "rotate"]);
    assert!(said.contains("restart the server"), "{said}");
    let new = leadflow(data, &["token", "issue", "--user", "ivan.manager"]);
    let s = serve(data, &[]);
    let answer = graphql(&s, Some(old.trim()), "{ me { name } }").await;
    assert_eq!(code(&answer), "UNAUTHENTICATED", "{answer}");
    let answer = graphql(&s, Some(new.trim()), "{ me { name } }").await;
    assert_eq!(answer["data"]["me"]["name"], "ivan.manager", "{answer}");
    drop(s);

    let secret = data.join("jwt.secret");
    for (content, says) in [(&b"too short"[..], "holds 9 bytes"), (b"", "holds 0 bytes")] {
        std::fs::write(&secret, content).unwrap();
        let err = leadflow_fails(data, &["serve", "--listen", "127.0.0.1:0"]);
        assert!(err.contains(says) && err.contains("jwt.secret"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_file_the_subcommands_make_is_the_services_alone() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    leadflow(&data, &["demo", "--leads", "30"]);
    leadflow(&data, &["token", "issue", "--user", "olga.supervisor"]);
    leadflow(&data, &["projections", "run"]);
    leadflow(&data, &["projections", "status"]);
    let s = serve(&data, &[]);
    let answer = graphql(&s, None, "{ __typename }").await;
    assert!(answer["data"].is_object(), "{answer}");
    drop(s);
    let mut node = Command::new(BIN)
        .args(["node", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(node.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("leadflow node"), "{line}");
    node.kill().unwrap();
    node.wait().unwrap();

    let mut seen = 0;
    walk(&data, &mut |path, is_dir, mode| {
        seen += 1;
        let wanted = if is_dir { 0o700 } else { 0o600 };
        assert_eq!(mode, wanted, "{} is {mode:04o}", path.display());
    });
    assert!(seen >= 6, "the walk saw {seen} entries");

    std::fs::set_permissions(
        data.join("jwt.secret"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let err = leadflow_fails(&data, &["serve", "--listen", "127.0.0.1:0"]);
    assert!(
        err.contains("jwt.secret") && err.contains("chmod 600"),
        "{err}"
    );
}

fn walk(path: &Path, visit: &mut dyn FnMut(&Path, bool, u32)) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    visit(path, meta.is_dir(), meta.permissions().mode() & 0o777);
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            walk(&entry.unwrap().path(), visit);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_for_allowed_origins_only_and_sockets_from_others_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path(), &["--cors-origin", "http://localhost:5173"]);
    let preflight = |origin: &'static str| {
        client()
            .request(
                reqwest::Method::OPTIONS,
                format!("http://{}/graphql", s.address),
            )
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization,content-type",
            )
            .send()
    };
    let allowed = preflight("http://localhost:5173").await.unwrap();
    assert!(allowed.status().is_success(), "{allowed:?}");
    let h = allowed.headers();
    assert_eq!(h["access-control-allow-origin"], "http://localhost:5173");
    let allow_headers = h["access-control-allow-headers"].to_str().unwrap();
    assert!(allow_headers.contains("authorization") && allow_headers.contains("content-type"));
    assert!(h["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));

    let other = preflight("http://evil.example").await.unwrap();
    assert!(
        other.headers().get("access-control-allow-origin").is_none(),
        "{other:?}"
    );

    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let socket = |origin: Option<&str>| {
        let mut request = format!("ws://{}/graphql/ws", s.address)
            .into_client_request()
            .unwrap();
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
        if let Some(o) = origin {
            request.headers_mut().insert("Origin", o.parse().unwrap());
        }
        tokio_tungstenite::connect_async(request)
    };
    match socket(Some("http://evil.example")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 403),
        other => panic!("a refused origin got {:?}", other.map(|(_, r)| r.status())),
    }
    for origin in [
        None,
        Some("http://localhost:5173"),
        Some(&*format!("http://{}", s.address)),
    ] {
        let (_, response) = socket(origin).await.expect("served");
        assert_eq!(response.status(), 101, "{origin:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_answer_comes_back_compressed_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path(), &["--demo"]);
    let token = token_of(&s.startup);
    let query = json!({ "query": "{ leads(first: 100) { nodes { id title stage contactName phone email source channel createdAt } } }" });
    let fetch = |encoding: Option<&'static str>| {
        let mut request = client()
            .post(format!("http://{}/graphql", s.address))
            .bearer_auth(&token)
            .json(&query);
        if let Some(e) = encoding {
            request = request.header("Accept-Encoding", e);
        }
        request.send()
    };
    // The read models catch up with the demo's events after the server starts.
    let mut tries = 0;
    let plain = loop {
        let plain = fetch(None).await.unwrap();
        assert!(plain.headers().get("content-encoding").is_none());
        let plain: Value = serde_json::from_slice(&plain.bytes().await.unwrap()).unwrap();
        let rows = plain["data"]["leads"]["nodes"]
            .as_array()
            .map_or(0, Vec::len);
        if rows == 100 {
            break plain;
        }
        tries += 1;
        assert!(tries < 300, "100 leads never showed, {rows} did");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let gzip = fetch(Some("gzip")).await.unwrap();
    assert_eq!(gzip.headers()["content-encoding"], "gzip");
    let body = gzip.bytes().await.unwrap();
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_end(&mut json)
        .unwrap();
    assert!(
        body.len() * 3 < json.len(),
        "{} -> {}",
        json.len(),
        body.len()
    );
    assert_eq!(serde_json::from_slice::<Value>(&json).unwrap(), plain);

    let br = fetch(Some("br")).await.unwrap();
    assert_eq!(br.headers()["content-encoding"], "br");
    let body = br.bytes().await.unwrap();
    let mut json = Vec::new();
    brotli::Decompressor::new(&body[..], 4096)
        .read_to_end(&mut json)
        .unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&json).unwrap(), plain);
}
