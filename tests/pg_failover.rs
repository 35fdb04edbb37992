//! A database failover under load: ibsight on a primary with a synchronous streaming standby
//! (pg_basebackup), its `store.url` naming both hosts with `target_session_attrs=read-write`.
//! The primary crashes and the standby is promoted while a client keeps posting; ingest
//! resumes by itself within 30 s, and every acknowledged sample is in the promoted database
//! exactly once.

mod common;

use common::pg::{pg_server, Servers};
use common::{now_ms, Server};
use ibsight::events::pg_store::PgStore;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const STREAMS: usize = 200;

fn port_of(url: &str) -> String {
    url.split_whitespace()
        .find_map(|kv| kv.strip_prefix("port="))
        .expect("port")
        .to_string()
}

fn batch(t: i64) -> Value {
    json!({"samples": (0..STREAMS)
        .map(|i| json!({"stream_id": format!("fo{i:03}/p1"), "timestamp": t, "utilization": 40 + (i % 5)}))
        .collect::<Vec<_>>()})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_resumes_by_itself_after_a_database_failover_and_loses_nothing() {
    // The shared server is not used, but its presence says PostgreSQL is installed.
    if common::pg::pg_url().is_none() {
        return;
    }
    let root = tempfile::tempdir().expect("tempdir");
    let (primary_dir, standby_dir) = (root.path().join("primary"), root.path().join("standby"));
    let mut servers = Servers(Vec::new());
    let primary = pg_server(&["start", primary_dir.to_str().expect("utf8")]);
    servers.0.push(primary_dir.clone());
    let standby = pg_server(&[
        "standby",
        primary_dir.to_str().expect("utf8"),
        standby_dir.to_str().expect("utf8"),
    ]);
    servers.0.push(standby_dir.clone());
    let url = format!(
        "host=127.0.0.1,127.0.0.1 port={},{} user=ibsight dbname=postgres \
         target_session_attrs=read-write connect_timeout=2",
        port_of(&primary),
        port_of(&standby)
    );
    let dir = tempfile::tempdir().expect("data");
    let config = dir.path().join("node.toml");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    std::fs::write(
        &config,
        format!(
            "[store]\nengine = \"postgres\"\nurl = {url:?}\nschema = \"failover\"\n\n[cluster]\n\
             node_id = \"n1\"\nnode_token = \"node-token-of-the-test-cluster\"\n\
             advertise_url = \"http://127.0.0.1:{port}\"\n"
        ),
    )
    .expect("config");
    let node = Server::start_full(
        &dir.path().join("data"),
        &format!("127.0.0.1:{port}"),
        &["--config", config.to_str().expect("utf8")],
        &[],
        &[],
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");

    // Post a batch a round; the primary crashes after round 10, and the standby is promoted a
    // second later (what Patroni or RDS does). Every refused round is retried until stored.
    let t0 = now_ms() - 3_600_000;
    let mut acknowledged = 0usize;
    let mut crashed_at = None;
    let mut resumed_after = None;
    for round in 0..30i64 {
        if round == 10 {
            pg_server(&["crash", primary_dir.to_str().expect("utf8")]);
            crashed_at = Some(Instant::now());
            let standby_dir = standby_dir.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs(1));
                pg_server(&["promote", standby_dir.to_str().expect("utf8")]);
            });
        }
        let body = batch(t0 + round * 1000);
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let (status, answer) = common::post_json(&client, &node.url, &body, None).await;
            if status == 202 {
                break;
            }
            assert_eq!(status, 503, "{answer}");
            assert!(Instant::now() < deadline, "ingest did not resume: {answer}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        acknowledged += 1;
        if let (Some(at), None) = (crashed_at, resumed_after) {
            resumed_after = Some(at.elapsed());
        }
    }
    let resumed_after = resumed_after.expect("rounds after the crash");
    eprintln!("ingest resumed {resumed_after:?} after the primary crashed");
    assert!(
        resumed_after < Duration::from_secs(30),
        "resumed after {resumed_after:?}"
    );
    node.terminate();

    // The promoted standby holds every acknowledged sample once, seqs without a gap.
    let store = PgStore::open(&standby, "failover", 2).expect("the promoted database");
    let (samples, _) = common::pg::log_counts(&store);
    assert_eq!(samples.len(), STREAMS);
    for (stream_id, n) in &samples {
        assert_eq!(
            *n, acknowledged,
            "{stream_id}: every acknowledged sample, once"
        );
    }
    drop(servers);
}
