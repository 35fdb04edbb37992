//! Test harnesses: an in-process server on port 0, and the built binary as a child process.
#![allow(dead_code)]

pub mod ibsim;
pub mod pg;
pub mod prom;

use ibsight::api;
use ibsight::config::Config;
use ibsight::node::Node;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn now_ms() -> i64 {
    ibsight::clock::now_ms()
}

/// A server running in this process, on a loopback port chosen by the OS.
pub struct InProcess {
    pub url: String,
    pub node: Arc<Node>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    pub client: reqwest::Client,
    _dir: Option<tempfile::TempDir>,
}

impl InProcess {
    pub async fn start(mut config: Config) -> InProcess {
        let dir = tempfile::tempdir().expect("tempdir");
        config.server.data_dir = dir.path().to_path_buf();
        Self::start_in(config, Some(dir)).await
    }

    pub async fn start_in(config: Config, dir: Option<tempfile::TempDir>) -> InProcess {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let node = Arc::new(Node::start(config.clone()).await.expect("node"));
        let state = node.app_state();
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(api::serve(listener, state, None, async {
            let _ = rx.await;
        }));
        InProcess {
            url,
            node,
            stop: Some(stop),
            handle: Some(handle),
            client: reqwest::Client::new(),
            _dir: dir,
        }
    }

    pub async fn post(&self, body: &Value) -> (u16, Value) {
        post_json(&self.client, &self.url, body, None).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        get_json(&self.client, &format!("{}{path}", self.url), None).await
    }

    /// The store's highest offset: proves whether anything was written.
    pub fn last_offset(&self) -> u64 {
        self.node.writer.store().last_offset()
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
    }
}

pub async fn post_json(
    client: &reqwest::Client,
    base: &str,
    body: &Value,
    token: Option<&str>,
) -> (u16, Value) {
    let mut req = client
        .post(format!("{base}/v1/metrics"))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let value = resp.json().await.unwrap_or(Value::Null);
    (status, value)
}

pub async fn get_json(client: &reqwest::Client, url: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = client.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Poll `cond` until it holds or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// The `ibsight` binary as a child process.
pub struct Server {
    pub child: Child,
    pub url: String,
}

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ibsight"))
}

impl Server {
    /// Start `ibsight serve` on port 0 in `data_dir` with extra env, and wait for its address.
    pub fn start(data_dir: &Path, env: &[(&str, &str)]) -> Server {
        Server::start_with(data_dir, env, &[])
    }

    /// Like `start`, also removing `unset` from the child's environment.
    pub fn start_with(data_dir: &Path, env: &[(&str, &str)], unset: &[&str]) -> Server {
        Server::start_full(data_dir, "127.0.0.1:0", &[], env, unset)
    }

    /// `ibsight serve --listen LISTEN --data-dir DIR ARGS…` with extra env.
    pub fn start_full(
        data_dir: &Path,
        listen: &str,
        args: &[&str],
        env: &[(&str, &str)],
        unset: &[&str],
    ) -> Server {
        let mut cmd = Command::new(binary());
        for k in unset {
            cmd.env_remove(k);
        }
        // Incidents are analysed after 0.3 s of calm here (3 s by default), unless a test
        // sets its own.
        cmd.env("IBSIGHT_INCIDENTS__SETTLE_MS", "300");
        cmd.args(["serve", "--listen", listen])
            .args(args)
            .arg("--data-dir")
            .arg(data_dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn ibsight");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read listening line");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Server {
            child,
            url: format!("http://{addr}"),
        }
    }

    pub fn kill9(mut self) {
        let _ = self.child.kill(); // SIGKILL on Unix
        let _ = self.child.wait();
    }

    pub fn terminate(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A latency-spike anomaly job of `stream`, as the stream actors submit them.
pub fn latency_job(
    stream: &str,
    seq: u64,
    severity: ibsight::detect::rules::Severity,
) -> ibsight::analyst::job::AnomalyJob {
    use ibsight::analyst::job::{AnomalyJob, Reading};
    use ibsight::detect::rules::Rule;
    use ibsight::events::types::AnomalyDetectedV2;
    AnomalyJob {
        incident: None,
        stream_id: stream.into(),
        anomaly_seq: seq,
        anomaly: AnomalyDetectedV2 {
            anomaly_id: format!("latency_spike:latency_p99@{seq}"),
            rule: Rule::LatencySpike,
            metric: "latency_p99".into(),
            value: 12.0,
            baseline: Some(4.0),
            delta_pct: Some(200.0),
            threshold: 8.0,
            severity,
            escalated_from: None,
            window_start_ms: 1000,
            window_end_ms: 2000,
            port: Default::default(),
            peer: None,
        },
        readings: vec![Reading {
            metric: "utilization",
            value: 55.0,
            baseline: Some(50.0),
        }],
        origin: Default::default(),
    }
}

/// A moto_server of this test's own, on a free loopback port (DynamoDB, EventBridge, SQS).
/// `scripts/test` installs moto into `.venv`; `MOTO_SERVER_BIN` may name another binary.
pub struct Moto {
    child: Child,
    pub url: String,
}

impl Moto {
    pub fn start() -> Moto {
        let bin = std::env::var("MOTO_SERVER_BIN")
            .unwrap_or_else(|_| format!("{}/.venv/bin/moto_server", env!("CARGO_MANIFEST_DIR")));
        assert!(
            Path::new(&bin).exists(),
            "moto_server not found at {bin}: run scripts/test, which installs it"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn moto_server");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Moto { child, url }
    }

    /// The environment `ibsight` needs to use this server through the AWS provider chain.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("IBSIGHT_AWS__ENDPOINT_URL", self.url.clone()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }

    pub async fn sdk(&self) -> aws_config::SdkConfig {
        use aws_sdk_dynamodb::config::{Credentials, Region, SharedCredentialsProvider};
        aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&self.url)
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "testing", "testing", None, None, "test",
            )))
            .build()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Environment variables an `ibsight` child must not inherit when it talks to local servers.
pub const AWS_UNSET: &[&str] = &[
    "AWS_BEARER_TOKEN_BEDROCK",
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_EVENTBRIDGE",
    "AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
    "AI_ENABLED",
    "AI_SAMPLING_RATE",
];

/// A TCP proxy on loopback that can be taken down (connections refused, open ones cut) and
/// brought back on the same port: an outage between ibsight and a server, where nothing sent
/// during the outage reaches the server.
pub struct Outage {
    pub url: String,
    port: u16,
    target: std::net::SocketAddr,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Outage {
    pub async fn start(target_url: &str) -> Outage {
        let target: std::net::SocketAddr = target_url
            .trim_start_matches("http://")
            .parse()
            .expect("target address");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let mut o = Outage {
            url: format!("http://127.0.0.1:{port}"),
            port,
            target,
            task: None,
        };
        o.task = Some(tokio::spawn(Self::serve(listener, target)));
        o
    }

    async fn serve(listener: tokio::net::TcpListener, target: std::net::SocketAddr) {
        let mut conns = tokio::task::JoinSet::new();
        while let Ok((mut inbound, _)) = listener.accept().await {
            conns.spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    }

    /// Refuse new connections and cut the open ones.
    pub fn down(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    pub async fn up(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "cannot rebind port {}: {e}",
                        self.port
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        self.task = Some(tokio::spawn(Self::serve(listener, self.target)));
    }
}

/// Read-model items must come newest first (by their fixed-width `timestamp`).
pub fn assert_newest_first(items: &[serde_json::Value]) {
    let stamps: Vec<&str> = items
        .iter()
        .map(|i| i["timestamp"].as_str().expect("timestamp"))
        .collect();
    let mut sorted = stamps.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(stamps, sorted, "newest first");
}

/// Samples of `stream` from `t` that open one anomaly: a steady port whose utilization goes to
/// 97 % for three samples in a row (the rule's persistence).
pub fn spike(stream: &str, t: i64) -> Vec<Value> {
    [50, 97, 97, 97]
        .iter()
        .enumerate()
        .map(|(i, u)| serde_json::json!({"stream_id": stream, "timestamp": t + i as i64 * 1000, "utilization": u}))
        .collect()
}

/// Samples of `stream` from `t`, 100 ms apart, at 99 % for three samples in a row: one
/// anomaly on a stream that already has a baseline.
pub fn hot(stream: &str, t: i64) -> Vec<Value> {
    (0..3)
        .map(|i| serde_json::json!({"stream_id": stream, "timestamp": t + i * 100, "utilization": 99}))
        .collect()
}

/// Samples of `stream` from `t`, 100 ms apart, that open one critical anomaly at once: a
/// receive buffer overrun (any increase is critical), so its incident raises an alert.
pub fn overrun(stream: &str, t: i64) -> Vec<Value> {
    (0..2)
        .map(|i| serde_json::json!({"stream_id": stream, "timestamp": t + i * 100, "utilization": 50, "counters": {"ExcessiveBufferOverrunErrors": i}}))
        .collect()
}

/// The `InsightGenerated` payloads of the incidents `stream` is in, waiting up to `timeout`
/// for at least one.
pub async fn incident_insights(
    client: &reqwest::Client,
    url: &str,
    stream: &str,
    timeout: Duration,
) -> Vec<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let (_, page) = get_json(
            client,
            &format!("{url}/v1/streams/%23incidents/events?limit=1000"),
            None,
        )
        .await;
        let events = page["events"].as_array().cloned().unwrap_or_default();
        let mine: std::collections::HashSet<String> = events
            .iter()
            .filter(|e| {
                e["event_type"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("Incident"))
            })
            .filter(|e| {
                e["payload"]["members"]
                    .as_array()
                    .is_some_and(|ms| ms.iter().any(|m| m["stream_id"] == stream))
            })
            .filter_map(|e| e["payload"]["incident_id"].as_str().map(String::from))
            .collect();
        let insights: Vec<Value> = events
            .iter()
            .filter(|e| e["event_type"] == "InsightGenerated")
            .filter(|e| {
                e["payload"]["anomaly_id"]
                    .as_str()
                    .is_some_and(|id| mine.contains(id))
            })
            .map(|e| e["payload"].clone())
            .collect();
        if !insights.is_empty() || Instant::now() > deadline {
            return insights;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A fake sysfs under `root` with one HCA port (`node042 mlx5_0`, port 1, active 4X HDR, 7
/// symbol errors), as the agent reads it; returns the port's directory.
#[allow(dead_code)]
pub fn sysfs_hca(root: &Path) -> PathBuf {
    let dev = root.join("mlx5_0");
    let port = dev.join("ports/1");
    std::fs::create_dir_all(port.join("counters")).expect("dirs");
    for (file, text) in [
        (dev.join("node_guid"), "0002:c903:00a1:b2c3"),
        (dev.join("node_desc"), "node042 mlx5_0"),
        (dev.join("node_type"), "1: CA"),
        (port.join("state"), "4: ACTIVE"),
        (port.join("phys_state"), "5: LinkUp"),
        (port.join("rate"), "200 Gb/sec (4X HDR)"),
        (port.join("lid"), "0x1a"),
        (port.join("counters/symbol_error"), "7"),
        (port.join("counters/port_xmit_data"), "123456789012"),
    ] {
        std::fs::write(file, format!("{text}\n")).expect("write");
    }
    port
}

/// The environment of a server whose analyst asks the local Bedrock-protocol server at
/// `endpoint`, through the real AWS SDK and its provider chain, plus `extra`.
pub fn bedrock_env(endpoint: &str, extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let mut env: Vec<(&'static str, String)> = vec![
        ("IBSIGHT_ANALYST__BACKEND", "bedrock".into()),
        ("IBSIGHT_ANALYST__MAX_RETRIES", "1".into()),
        ("IBSIGHT_AWS__ENDPOINT_URL", endpoint.into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    env
}

/// What must not leak from the test's own environment into such a server.
pub const BEDROCK_UNSET: &[&str] = &[
    "AWS_BEARER_TOKEN_BEDROCK",
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
    "AI_ENABLED",
    "AI_SAMPLING_RATE",
];

/// `ibsight serve` with the analyst on the local Bedrock-protocol server at `endpoint`.
pub fn serve_with_bedrock(
    data_dir: &Path,
    endpoint: &str,
    extra: &[(&'static str, &str)],
) -> Server {
    let env = bedrock_env(endpoint, extra);
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::start_with(data_dir, &pairs, BEDROCK_UNSET)
}
