//! Debian's Prometheus as the tests' own server: on a free loopback port, with a temporary
//! directory, stopped by its PID when dropped. `scripts/test` installs it (with Alertmanager);
//! `REQUIRE_PROM_TESTS=1` makes their absence a failure rather than a skip.

use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether the servers are here; panics if they are missing but required.
pub fn available() -> bool {
    let here = ["prometheus", "prometheus-alertmanager"].iter().all(|b| {
        Command::new(b)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if !here && std::env::var("REQUIRE_PROM_TESTS").is_ok_and(|v| v == "1") {
        panic!("prometheus and prometheus-alertmanager are required: run scripts/test");
    }
    here
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A server process of the test's own.
pub struct Process {
    child: Child,
    pub url: String,
    pub dir: tempfile::TempDir,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    /// Start `bin` with `args` (`{dir}` and `{port}` filled in) and wait until `ready` answers
    /// 200.
    async fn start(bin: &str, args: &[&str], dir: tempfile::TempDir, ready: &str) -> Process {
        let port = free_port();
        let d = dir.path().display().to_string();
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace("{dir}", &d).replace("{port}", &port.to_string()))
            .collect();
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log");
        let child = Command::new(bin)
            .args(&args)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {bin}: {e}"));
        let url = format!("http://127.0.0.1:{port}");
        let mut p = Process { child, url, dir };
        p.wait_ready(ready).await;
        p
    }

    async fn wait_ready(&mut self, ready: &str) {
        let deadline = Instant::now() + Duration::from_secs(90);
        let client = reqwest::Client::new();
        loop {
            let up = client
                .get(format!("{}{ready}", self.url))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if up {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("server exited ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "server never ready:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Prometheus scraping `targets` (host:port) at `path` every second, with `bearer` if given.
pub async fn prometheus(targets: &[&str], path: &str, bearer: Option<&str>) -> Process {
    let dir = tempfile::tempdir().expect("tempdir");
    let auth = bearer
        .map(|t| format!("    authorization:\n      credentials: {t}\n"))
        .unwrap_or_default();
    let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n  - job_name: ibsight\n    metrics_path: {path}\n{auth}    \
         static_configs:\n      - targets: [{}]\n",
        targets.join(", ")
    );
    std::fs::write(dir.path().join("prometheus.yml"), config).expect("config");
    Process::start(
        "prometheus",
        &[
            "--config.file={dir}/prometheus.yml",
            "--storage.tsdb.path={dir}/data",
            "--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        dir,
        "/-/ready",
    )
    .await
}

/// An instant query's result vector (`data.result`).
pub async fn query(prom: &Process, promql: &str) -> Vec<Value> {
    let encoded: String = promql
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/query?query={encoded}", prom.url))
        .send()
        .await
        .unwrap_or_else(|e| panic!("query {promql}: {e}"));
    let v: Value = r
        .json()
        .await
        .unwrap_or_else(|e| panic!("query {promql}: {e}"));
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// The value of a one-element result.
pub fn value(result: &[Value]) -> Option<f64> {
    result.first()?["value"][1].as_str()?.parse().ok()
}

/// Debian's Alertmanager, sending every group to `webhook` at once (group_wait and
/// group_interval of 1 s), resolved ones too.
pub async fn alertmanager(webhook: &str) -> Process {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "route:\n  receiver: hook\n  group_by: ['incident_id']\n  group_wait: 1s\n  \
         group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    \
         webhook_configs:\n      - url: '{webhook}'\n        send_resolved: true\n"
    );
    std::fs::write(dir.path().join("alertmanager.yml"), config).expect("config");
    Process::start(
        "prometheus-alertmanager",
        &[
            "--config.file={dir}/alertmanager.yml",
            "--storage.path={dir}/data",
            "--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        dir,
        "/-/ready",
    )
    .await
}

/// A receiver of the test's own: records every POST (path, headers, body) and answers
/// `status` (200 unless set).
#[derive(Clone, Default)]
pub struct Hook {
    pub got: std::sync::Arc<std::sync::Mutex<Vec<(String, axum::http::HeaderMap, Value)>>>,
    pub status: std::sync::Arc<std::sync::atomic::AtomicU16>,
}

impl Hook {
    /// Serve on a free loopback port; returns its base URL.
    pub async fn start(&self) -> String {
        self.status.store(200, std::sync::atomic::Ordering::SeqCst);
        let me = self.clone();
        let app = axum::Router::new().fallback(
            move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let me = me.clone();
                async move {
                    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    me.got
                        .lock()
                        .unwrap()
                        .push((uri.path().to_string(), headers, v));
                    axum::http::StatusCode::from_u16(
                        me.status.load(std::sync::atomic::Ordering::SeqCst),
                    )
                    .unwrap_or(axum::http::StatusCode::OK)
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    /// Bodies posted to `path`.
    pub fn bodies(&self, path: &str) -> Vec<Value> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _, _)| p == path)
            .map(|(_, _, v)| v.clone())
            .collect()
    }
}
