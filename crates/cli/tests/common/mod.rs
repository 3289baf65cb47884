//! A `leadflow serve` process driven over real HTTP, shared by the binary's test files.

#![allow(dead_code)] // each test file uses its own part

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_leadflow");

/// A `leadflow serve` process; killed on drop.
pub struct Served {
    pub child: Child,
    pub address: String,
    /// What it printed on stdout up to the end of its startup lines.
    pub startup: String,
    /// Everything it printed, stdout and stderr, as it printed it.
    pub output: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    /// Starts `command` (which runs `leadflow serve --listen 127.0.0.1:0 ...`, perhaps through
    /// a wrapper) and waits for its startup lines.
    pub fn start(mut command: Command) -> Served {
        // Quiet unless the test asked for a level.
        if !command
            .get_envs()
            .any(|(k, v)| k == "LEADFLOW_LOG" && v.is_some())
        {
            command.env("LEADFLOW_LOG", "warn");
        }
        let mut child = command
            .env_remove("LEADFLOW_JWT_SECRET")
            .env_remove("LEADFLOW_CORS_ORIGINS")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start leadflow serve");
        // Drained all along: a full pipe would block the server's logging.
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .expect("stderr")
                    .push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let (tx, rx) = mpsc::channel();
        let output = stderr.clone();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                {
                    let mut all = output.lock().expect("output");
                    all.push_str(&line);
                    all.push('\n');
                }
                // Past the startup lines nobody listens; keep draining.
                let _ = tx.send(line);
            }
        });
        let mut startup = String::new();
        let mut address = None;
        while let Ok(line) = rx.recv_timeout(Duration::from_secs(120)) {
            startup.push_str(&line);
            startup.push('\n');
            if let Some(rest) = line.trim().strip_prefix("GraphQL:") {
                let url = rest.split_whitespace().next().expect("a URL");
                address = Some(
                    url.trim_start_matches("http://")
                        .trim_end_matches("/graphql")
                        .to_owned(),
                );
            }
            if address.is_some() && line.trim().is_empty() {
                break;
            }
        }
        let Some(address) = address else {
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(100));
            let err = stderr.lock().expect("stderr").clone();
            panic!("serve did not start:\n{startup}\n{err}");
        };
        Served {
            child,
            address,
            startup,
            output: stderr,
        }
    }
}

/// Every file under `dir`, however deep: where a test searches for what must not be there.
pub fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            all.extend(files(&path));
        } else {
            all.push(path);
        }
    }
    all
}

/// Runs a subcommand over `data` to its end: its stdout, or a panic with its stderr.
pub fn leadflow(data: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env("LEADFLOW_LOG", "warn")
        .env_remove("LEADFLOW_JWT_SECRET")
        .output()
        .expect("run leadflow");
    assert!(
        out.status.success(),
        "leadflow {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

/// `POST /graphql` with variables as `token`, at the server listening on `address`; the
/// answer's `data`, asserting it holds no error.
pub async fn gql(address: &str, token: &str, query: &str, variables: Value) -> Value {
    let answer: Value = client()
        .post(format!("http://{address}/graphql"))
        .bearer_auth(token)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("JSON");
    assert!(answer.get("errors").is_none(), "{answer}");
    answer["data"].clone()
}

pub async fn graphql(s: &Served, token: Option<&str>, query: &str) -> Value {
    let mut request = client()
        .post(format!("http://{}/graphql", s.address))
        .json(&json!({ "query": query }));
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    request
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("JSON")
}

/// A `leadflow node` process with everything it prints kept; killed on drop.
pub struct Node {
    pub child: std::process::Child,
    pub connection: String,
    pub output: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Node {
    pub fn start(dir: &Path) -> Node {
        use std::io::{BufRead as _, BufReader};
        let mut child = Command::new(BIN)
            .args(["node", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .env("LEADFLOW_LOG", "debug")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start leadflow node");
        let output = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let out = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(c) = line.trim().strip_prefix("connection string: ") {
                    let _ = tx.send(c.to_owned());
                }
                out.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let stderr = child.stderr.take().unwrap();
        let out = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                out.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let connection = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the node prints its connection string");
        Node {
            child,
            connection,
            output,
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
