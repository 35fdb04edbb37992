//! Three `ibsight serve` processes on loopback with one member list. 10,000 streams are posted
//! round-robin across the nodes: every stream's events end up on exactly one node, its owner,
//! and any node answers a query for any stream. Then one node is SIGKILLed during ingest: the
//! survivors answer 503 naming it for its part and keep storing the rest; after it restarts on
//! its data dir, the client's retries succeed and every acknowledged sample is there once.

mod common;

use common::{binary, now_ms, Server};
use ibsight::cluster::placement;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

const STREAMS: usize = 10_000;
const PER_REQUEST: usize = 500;
const TOKEN: &str = "node-token-of-the-test-cluster";

fn stream(i: usize) -> String {
    format!("sw{:04}/p{:02}", i / 36, i % 36 + 1)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

struct Cluster {
    ports: Vec<u16>,
    dirs: Vec<tempfile::TempDir>,
    configs: Vec<std::path::PathBuf>,
}

impl Cluster {
    fn new() -> Cluster {
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let dirs: Vec<tempfile::TempDir> =
            (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
        let configs = (0..3).map(|i| dirs[i].path().join("node.toml")).collect();
        let cluster = Cluster {
            ports,
            dirs,
            configs,
        };
        cluster.write_configs(3);
        cluster
    }

    /// Every node's config, with the first `members` nodes as the member list.
    fn write_configs(&self, members: usize) {
        let list: Vec<String> = self.ports[..members]
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{{ id = \"n{}\", url = \"http://127.0.0.1:{p}\" }}", i + 1))
            .collect();
        for (i, path) in self.configs.iter().enumerate() {
            std::fs::write(
                path,
                format!(
                    "[cluster]\nnode_id = \"n{}\"\nnode_token = \"{TOKEN}\"\nmembers = [{}]\n",
                    i + 1,
                    list.join(", ")
                ),
            )
            .expect("write config");
        }
    }

    /// Run an `ibsight` command; its last stdout line as JSON.
    fn cli(&self, args: &[&str]) -> Value {
        let out = std::process::Command::new(binary())
            .args(args)
            .output()
            .expect("ibsight");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        serde_json::from_str(text.lines().last().unwrap_or("")).expect("json summary")
    }

    fn config(&self, i: usize) -> String {
        self.configs[i].to_str().expect("utf8").to_string()
    }

    fn data_str(&self, i: usize) -> String {
        self.data(i).to_str().expect("utf8").to_string()
    }

    fn data(&self, i: usize) -> std::path::PathBuf {
        self.dirs[i].path().join("data")
    }

    fn start(&self, i: usize) -> Server {
        let config = self.configs[i].to_str().expect("utf8").to_string();
        Server::start_full(
            &self.data(i),
            &format!("127.0.0.1:{}", self.ports[i]),
            &["--config", &config],
            &[],
            &[],
        )
    }

    fn url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[i])
    }
}

fn batch(range: std::ops::Range<usize>, t: i64) -> Value {
    json!({"samples": range
        .map(|i| json!({"stream_id": stream(i), "timestamp": t, "utilization": 50 + (i % 7)}))
        .collect::<Vec<_>>()})
}

async fn post(client: &reqwest::Client, url: &str, body: &Value) -> (u16, Value) {
    match client
        .post(format!("{url}/v1/metrics"))
        .json(body)
        .send()
        .await
    {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or(Value::Null))
        }
        Err(e) => (0, json!({"error": e.to_string()})),
    }
}

async fn get(client: &reqwest::Client, url: impl AsRef<str>) -> Value {
    common::get_json(client, url.as_ref(), None).await.1
}

/// Stream id → MetricObserved count, from one node's log (read with the server stopped).
fn samples_on(dir: &Path) -> HashMap<String, usize> {
    let out = std::process::Command::new(binary())
        .args(["events", "--data-dir"])
        .arg(dir)
        .output()
        .expect("ibsight events");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut counts = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let e: Value = serde_json::from_str(line).expect("a JSON event");
        if e["event_type"] == "MetricObserved" {
            *counts
                .entry(e["stream_id"].as_str().expect("id").to_string())
                .or_insert(0) += 1;
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_the_streams_and_survive_a_killed_member() {
    let cluster = Cluster::new();
    let mut nodes: Vec<Option<Server>> = (0..3).map(|i| Some(cluster.start(i))).collect();
    let client = reqwest::Client::new();
    let t = now_ms() - 60_000;

    // Two samples per stream, requests round-robin over the three nodes.
    let mut request = 0;
    for round in 0..2 {
        for start in (0..STREAMS).step_by(PER_REQUEST) {
            let node = request % 3;
            request += 1;
            let body = batch(start..start + PER_REQUEST, t + round * 1000);
            let (status, answer) = post(&client, &cluster.url(node), &body).await;
            assert_eq!(status, 202, "node {node}: {answer}");
            assert_eq!(
                answer["accepted"], PER_REQUEST,
                "summed over the owners: {answer}"
            );
        }
    }

    // Any node answers for any stream (the owner serves it, the others proxy).
    for i in (0..STREAMS).step_by(97) {
        for node in 0..3 {
            let url = format!("{}/v1/streams/{}", cluster.url(node), stream(i));
            let v: Value = get(&client, &url).await;
            assert_eq!(v["last_seq"], 2, "{url}: {v}");
        }
    }
    let c: Value = get(&client, format!("{}/v1/cluster", cluster.url(0))).await;
    let members = c["members"].as_array().expect("members");
    assert_eq!(members.len(), 3, "{c}");
    assert!(members.iter().all(|m| m["reachable"] == true), "{c}");
    assert_eq!(
        members
            .iter()
            .map(|m| m["shards"].as_u64().unwrap_or(0))
            .sum::<u64>(),
        1024
    );
    // The fabric view of any node covers every member's streams.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let f: Value = get(&client, format!("{}/v1/fabric", cluster.url(1))).await;
        if f["streams"] == STREAMS {
            assert!(f["partial"].is_null(), "{}", f["partial"]);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "fabric streams: {}",
            f["streams"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let ids: Vec<String> = ["n1", "n2", "n3"].iter().map(|s| s.to_string()).collect();
    let owner = |s: &str| {
        placement::owner_of(placement::shard_of(s, 1024), &ids)
            .expect("owner")
            .to_string()
    };

    // An anomaly on a stream n2 owns, posted to n1: its insight is listed by n3 (merged).
    let hot = (0..STREAMS)
        .map(stream)
        .find(|s| owner(s) == "n2")
        .expect("n2 owns some");
    let spike = json!({ "samples": common::hot(&hot, t + 1500) });
    assert_eq!(post(&client, &cluster.url(0), &spike).await.0, 202);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let v: Value = get(
            &client,
            format!("{}/v1/insights/recent?limit=5", cluster.url(2)),
        )
        .await;
        if v["insights"]
            .as_array()
            .is_some_and(|a| a.iter().any(|i| i["related_entity"] == hot.as_str()))
        {
            assert!(v["partial"].is_null(), "{v}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no merged insight: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A third round, posted to n1 and n2 only; n3 is killed part-way.
    let mut failed: Vec<Value> = Vec::new();
    let mut acknowledged: HashSet<String> = HashSet::new();
    for (k, start) in (0..STREAMS).step_by(PER_REQUEST).enumerate() {
        if k == 5 {
            nodes[2].take().expect("n3").kill9();
        }
        let body = batch(start..start + PER_REQUEST, t + 2000);
        let (status, answer) = post(&client, &cluster.url(k % 2), &body).await;
        match status {
            202 => {
                acknowledged.extend((start..start + PER_REQUEST).map(stream));
            }
            503 => {
                let message = answer["error"]["message"]
                    .as_str()
                    .or_else(|| answer["message"].as_str())
                    .unwrap_or_default()
                    .to_string();
                assert!(
                    message.contains("n3"),
                    "names the unavailable node: {answer}"
                );
                // The survivors' part is stored already.
                acknowledged.extend(
                    (start..start + PER_REQUEST)
                        .map(stream)
                        .filter(|s| owner(s) != "n3"),
                );
                failed.push(body);
            }
            other => panic!("unexpected answer {other}: {answer}"),
        }
    }
    assert!(
        !failed.is_empty(),
        "requests after the kill hit n3's shards"
    );
    // While n3 is down, its streams are unavailable and the others are served.
    let n1_stream = (0..STREAMS)
        .map(stream)
        .find(|s| owner(s) == "n1")
        .expect("n1 owns some");
    let v: Value = get(
        &client,
        format!("{}/v1/streams/{n1_stream}", cluster.url(1)),
    )
    .await;
    assert_eq!(v["last_seq"], 3, "{v}");
    let v: Value = get(&client, format!("{}/v1/insights/recent", cluster.url(0))).await;
    assert_eq!(v["partial"], true, "{v}");
    assert_eq!(v["unavailable_members"], json!(["n3"]), "{v}");

    // n3 comes back on its data dir; the client's retries now succeed.
    nodes[2] = Some(cluster.start(2));
    for body in &failed {
        let (status, answer) = post(&client, &cluster.url(0), body).await;
        assert_eq!(status, 202, "{answer}");
        assert!(
            answer["duplicates"].as_u64() > Some(0),
            "the stored part is not stored twice: {answer}"
        );
        acknowledged.extend(
            body["samples"]
                .as_array()
                .expect("samples")
                .iter()
                .map(|s| s["stream_id"].as_str().expect("id").to_string()),
        );
    }
    for s in nodes.iter_mut().filter_map(Option::take) {
        s.terminate();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Every stream's samples are on its owner only, each acknowledged sample exactly once.
    let mut found: BTreeMap<String, (String, usize)> = BTreeMap::new();
    for (i, node) in ids.iter().enumerate() {
        for (stream_id, n) in samples_on(&cluster.data(i)) {
            if let Some((other, _)) = found.insert(stream_id.clone(), (node.clone(), n)) {
                panic!("{stream_id} is on {other} and {node}");
            }
        }
    }
    assert_eq!(found.len(), STREAMS);
    for (stream_id, (node, n)) in &found {
        assert_eq!(node, &owner(stream_id), "{stream_id} is on its owner");
        let expected = if *stream_id == hot { 6 } else { 3 };
        assert_eq!(*n, expected, "{stream_id}: each sample once");
    }
    assert_eq!(acknowledged.len(), STREAMS);
}

/// Growing from two members to three: `cluster export` on the old owners, `cluster import` on
/// the new one, `cluster drop` on the old ones; then every stream is on its new owner only, its
/// history continues (the next sample is seq 3), and the moved insight raises no second alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_member_takes_its_shards_with_their_history() {
    const N: usize = 2000;
    let cluster = Cluster::new();
    cluster.write_configs(2);
    let three: Vec<String> = ["n1", "n2", "n3"].iter().map(|s| s.to_string()).collect();
    let owner3 = |s: &str| {
        placement::owner_of(placement::shard_of(s, 1024), &three)
            .expect("owner")
            .to_string()
    };
    let client = reqwest::Client::new();
    let t = now_ms() - 60_000;
    let mut nodes: Vec<Server> = (0..2).map(|i| cluster.start(i)).collect();
    for round in 0..2 {
        let (status, answer) = post(
            &client,
            &cluster.url(round as usize % 2),
            &batch(0..N, t + round * 1000),
        )
        .await;
        assert_eq!(status, 202, "{answer}");
    }
    // A critical spike on a stream that will move to n3: one alert, on its old owner.
    let hot = (0..N)
        .map(stream)
        .find(|s| owner3(s) == "n3")
        .expect("some move");
    let spike = json!({ "samples": common::overrun(&hot, t + 1500) });
    assert_eq!(post(&client, &cluster.url(0), &spike).await.0, 202);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let v: Value = get(&client, format!("{}/v1/alerts/recent", cluster.url(0))).await;
        if v["alerts"].as_array().is_some_and(|a| a.len() == 1) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no alert: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for n in nodes.drain(..) {
        n.terminate();
    }

    // The plan, then the move (nodes stopped).
    let plan = cluster.cli(&[
        "cluster",
        "plan",
        "--members",
        "n1,n2,n3",
        "--config",
        &cluster.config(0),
    ]);
    assert!(plan["moving"].as_u64() > Some(200), "{plan}");
    let mut files = Vec::new();
    for i in 0..2 {
        let file = cluster.dirs[i].path().join("moving.ibs");
        let out = cluster.cli(&[
            "cluster",
            "export",
            "--members",
            "n1,n2,n3",
            "--config",
            &cluster.config(i),
            "--data-dir",
            &cluster.data_str(i),
            "--out",
            file.to_str().expect("utf8"),
        ]);
        assert!(out["streams"].as_u64() > Some(0), "{out}");
        files.push(file);
    }
    cluster.write_configs(3);
    std::fs::create_dir_all(cluster.data(2)).expect("mkdir");
    let mut imported = 0;
    for (i, file) in files.iter().enumerate() {
        let out = cluster.cli(&[
            "cluster",
            "import",
            "--config",
            &cluster.config(2),
            "--data-dir",
            &cluster.data_str(2),
            "--in",
            file.to_str().expect("utf8"),
            "--from",
            &format!("n{}", i + 1),
        ]);
        imported += out["streams"].as_u64().unwrap_or(0);
    }
    let expected_moves = (0..N).map(stream).filter(|s| owner3(s) == "n3").count() as u64;
    assert_eq!(imported, expected_moves);
    // Writing the old member list back for the drop: it needs to know what it owned.
    cluster.write_configs(2);
    for i in 0..2 {
        let out = cluster.cli(&[
            "cluster",
            "drop",
            "--members",
            "n1,n2,n3",
            "--config",
            &cluster.config(i),
            "--data-dir",
            &cluster.data_str(i),
        ]);
        assert!(out["records_removed"].as_u64() > Some(0), "{out}");
    }
    cluster.write_configs(3);

    // Three members: every stream continues its history on its owner.
    let mut nodes: Vec<Server> = (0..3).map(|i| cluster.start(i)).collect();
    let (status, answer) = post(&client, &cluster.url(2), &batch(0..N, t + 2000)).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["accepted"], N, "{answer}");
    let v: Value = get(&client, format!("{}/v1/streams/{hot}", cluster.url(0))).await;
    assert!(
        v["last_seq"].as_u64() > Some(3),
        "the moved history is replayed: {v}"
    );
    // n3 itself raised nothing for the moved insight (asked with the node token: local view).
    let local: Value = client
        .get(format!("{}/v1/alerts/recent", cluster.url(2)))
        .header(ibsight::cluster::peers::NODE_TOKEN_HEADER, TOKEN)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(local["alerts"].as_array().map(Vec::len), Some(0), "{local}");
    for n in nodes.drain(..) {
        n.terminate();
    }
    let mut found: BTreeMap<String, String> = BTreeMap::new();
    for (i, node) in three.iter().enumerate() {
        for (stream_id, n) in samples_on(&cluster.data(i)) {
            let expected = if stream_id == hot { 5 } else { 3 };
            assert_eq!(n, expected, "{stream_id} on {node}");
            assert!(
                found.insert(stream_id.clone(), node.clone()).is_none(),
                "{stream_id} twice"
            );
        }
    }
    assert_eq!(found.len(), N);
    for (stream_id, node) in &found {
        assert_eq!(node, &owner3(stream_id), "{stream_id}");
    }
}
