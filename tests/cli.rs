//! The command line: config errors name the key, the listen policy, `ibsight events`.

mod common;

use common::{binary, now_ms, post_json, Server};
use serde_json::{json, Value};
use std::process::Command;

fn serve_fails_with(args: &[&str], env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(binary());
    cmd.arg("serve")
        .args(args)
        .arg("--data-dir")
        .arg(dir.path());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run");
    assert!(!out.status.success(), "serve should have failed");
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn a_bad_env_override_names_the_key() {
    let err = serve_fails_with(
        &["--listen", "127.0.0.1:0"],
        &[("IBSIGHT_DETECT__EWMA_ALPHA", "2.5")],
    );
    assert!(
        err.contains("detect.ewma_alpha") && err.contains("2.5"),
        "{err}"
    );
    let err = serve_fails_with(
        &["--listen", "127.0.0.1:0"],
        &[("IBSIGHT_STORE__ENGINE", "rocksdb")],
    );
    assert!(
        err.contains("store.engine") && err.contains("rocksdb"),
        "{err}"
    );
}

#[test]
fn an_unknown_key_in_the_file_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[ingest]\nmax_sample = 5\n").expect("write");
    let err = serve_fails_with(
        &[
            "--listen",
            "127.0.0.1:0",
            "--config",
            file.to_str().expect("utf8"),
        ],
        &[],
    );
    assert!(err.contains("max_sample"), "{err}");
    let err = serve_fails_with(&["--config", "/nonexistent.toml"], &[]);
    assert!(err.contains("/nonexistent.toml"), "{err}");
}

#[test]
fn non_loopback_without_tokens_is_refused() {
    let err = serve_fails_with(&["--listen", "0.0.0.0:0"], &[]);
    assert!(
        err.contains("non-loopback") && err.contains("--insecure"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_prints_the_log_as_json_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = Server::start(dir.path(), &[]);
    let client = reqwest::Client::new();
    let t = now_ms() - 10_000;
    let mut samples = common::spike("e/1", t);
    samples.push(json!({"stream_id": "e/2", "timestamp": t, "utilization": 10}));
    let body = json!({ "samples": samples });
    assert_eq!(post_json(&client, &srv.url, &body, None).await.0, 202);
    // Wait for the incident's insight, so the log is complete before the server stops.
    let insights =
        common::incident_insights(&client, &srv.url, "e/1", std::time::Duration::from_secs(10))
            .await;
    assert_eq!(insights.len(), 1, "no insight");
    srv.terminate();

    let run = |extra: &[&str]| {
        let out = Command::new(binary())
            .arg("events")
            .arg("--data-dir")
            .arg(dir.path())
            .args(extra)
            .output()
            .expect("run events");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf8")
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("each line is JSON"))
            .collect::<Vec<_>>()
    };
    let all = run(&[]);
    let offsets: Vec<u64> = all
        .iter()
        .map(|e| e["offset"].as_u64().expect("offset"))
        .collect();
    // e/1's four samples and anomaly, e/2's sample, the incident and its insight.
    assert_eq!(offsets, (1..=8).collect::<Vec<u64>>());
    let one = run(&["--stream", "e/1"]);
    let types: Vec<&str> = one
        .iter()
        .map(|e| e["event_type"].as_str().expect("type"))
        .collect();
    assert_eq!(
        types,
        vec![
            "MetricObserved",
            "MetricObserved",
            "MetricObserved",
            "MetricObserved",
            "AnomalyDetected"
        ]
    );
    assert_eq!(one[4]["payload"]["rule"], "utilization_high");

    let out = Command::new(binary())
        .args(["events", "--data-dir", "/nonexistent/ibsight"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/ibsight"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_audit_reports_divergences_in_a_time_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = Server::start(dir.path(), &[]);
    let client = reqwest::Client::new();
    let t = now_ms() - 10_000;
    let body = json!({ "samples": common::spike("r/1", t) });
    assert_eq!(post_json(&client, &srv.url, &body, None).await.0, 202);
    srv.terminate();
    let audit = |env: &[(&str, &str)], extra: &[&str]| {
        let out = Command::new(binary())
            .args(["replay", "audit", "--data-dir"])
            .arg(dir.path())
            .args(extra)
            .envs(env.iter().copied())
            .output()
            .expect("audit");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf8")
    };
    let clean = audit(&[], &[]);
    assert!(clean.contains("\"divergences\":0"), "{clean}");
    let stricter = [("IBSIGHT_DETECT__UTILIZATION_MAX_PCT", "99.0")];
    let diverged = audit(&stricter, &[]);
    assert!(
        diverged.contains("divergence r/1 seq 5 unexpected"),
        "{diverged}"
    );
    let later = (now_ms() + 60_000).to_string();
    let none = audit(&stricter, &["--from", &later]);
    assert!(none.contains("\"divergences\":0"), "{none}");
}

/// A store in use by a running server is audited from a snapshot copy, and the server goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_audit_reads_a_live_store_from_a_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = Server::start(dir.path(), &[]);
    let client = reqwest::Client::new();
    let t = now_ms() - 10_000;
    let body = json!({ "samples": common::spike("live/1", t) });
    assert_eq!(post_json(&client, &srv.url, &body, None).await.0, 202);
    let out = Command::new(binary())
        .args(["replay", "audit", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("audit");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("snapshot copy"), "{stderr}");
    let stdout = String::from_utf8(out.stdout).expect("utf8");
    assert!(stdout.contains("\"divergences\":0"), "{stdout}");
    assert!(stdout.contains("\"matched\":1"), "{stdout}");
    // The server was not disturbed.
    let more =
        json!({"samples": [{"stream_id": "live/1", "timestamp": t + 5000, "utilization": 50}]});
    assert_eq!(post_json(&client, &srv.url, &more, None).await.0, 202);
    srv.terminate();
}

/// A cluster needs PostgreSQL: the config errors name the key and the value.
#[test]
fn cluster_config_errors_name_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("c.toml");
    for (text, key) in [
        ("[store]\nengine = \"postgres\"\n", "store.url"),
        (
            "[store]\nengine = \"postgres\"\nurl = \"host=127.0.0.1\"\n",
            "cluster.node_id",
        ),
        ("[cluster]\nnode_id = \"n1\"\n", "cluster.node_id"),
        (
            "[store]\nengine = \"postgres\"\nurl = \"host=127.0.0.1\"\n[cluster]\nnode_id = \"n1\"\n\
             node_token = \"a-token-of-16-chars-or-more\"\nadvertise_url = \"127.0.0.1:1\"\n",
            "cluster.advertise_url",
        ),
    ] {
        std::fs::write(&config, text).expect("write");
        let out = Command::new(binary())
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .output()
            .expect("serve");
        assert!(!out.status.success(), "{text}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(key), "{key}: {stderr}");
    }
}

/// `bench ingest` prints the figures the performance targets are checked by, closed and open
/// loop: throughput, latency per batch and to a durable anomaly, RSS per stream, CPU and disk
/// bytes per value.
#[test]
fn bench_ingest_prints_every_figure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("latency.csv");
    let log_arg = log.to_str().expect("utf-8 path");
    for extra in [&["--latency-log", log_arg][..], &["--rate", "4000"][..]] {
        let out = Command::new(binary())
            .args([
                "bench",
                "ingest",
                "--samples",
                "3000",
                "--streams",
                "100",
                "--batch",
                "100",
                "--anomaly-every",
                "3",
            ])
            .args(extra)
            .env("RUST_LOG", "error")
            .output()
            .expect("bench");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let v: serde_json::Value =
            serde_json::from_str(text.lines().last().expect("a line")).expect("json");
        assert_eq!(v["accepted"], 3000, "{v}");
        assert_eq!(v["late"], 0, "{v}");
        // 8 values a sample, and the overrun counter on one stream in ten (about 300).
        let values = v["values"].as_u64().expect("values");
        assert!((3000 * 8 + 250..=3000 * 8 + 350).contains(&values), "{v}");
        for key in [
            "samples_per_s",
            "p50_ms",
            "p99_ms",
            "p99_to_durable_anomaly_ms",
            "rss_per_stream_kib",
            "process_cpu_us_per_value",
            "disk_bytes_per_value",
        ] {
            assert!(v[key].as_f64().is_some_and(|x| x > 0.0), "{key}: {v}");
        }
        assert!(v["anomaly_batches"].as_u64() > Some(0), "{v}");
    }
    // The latency log: a header, then one line per batch (8 workers, each its 375 samples in
    // batches of at most 100: 32), in time order,
    // the anomaly flag set on the batches that opened one.
    let csv = std::fs::read_to_string(&log).expect("latency log");
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("at_s,latency_ms,anomaly"));
    let rows: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').map(|x| x.parse().expect("number")).collect())
        .collect();
    assert_eq!(rows.len(), 32, "{csv}");
    assert!(rows.windows(2).all(|w| w[0][0] <= w[1][0]), "{csv}");
    assert!(rows.iter().all(|r| r[1] > 0.0), "{csv}");
    assert!(rows.iter().any(|r| r[2] == 1.0), "{csv}");
}

/// `bench analyst` runs the same storm with tiered prompts and without, on either model
/// protocol, and prints the tokens and model calls per incident of each: tiers ask the same
/// incidents with fewer input tokens.
#[test]
fn bench_analyst_prints_tokens_per_incident_tiered_and_untiered() {
    for backend in ["bedrock", "openai"] {
        let out = Command::new(binary())
            .args([
                "bench",
                "analyst",
                "--anomalies",
                "600",
                "--latency-ms",
                "20",
            ])
            .args(["--backend", backend])
            .env("RUST_LOG", "error")
            .output()
            .expect("bench");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let v: serde_json::Value =
            serde_json::from_str(text.lines().last().expect("a line")).expect("json");
        assert_eq!(v["backend"], backend, "{v}");
        for run in ["tiered", "untiered"] {
            let r = &v[run];
            assert_eq!(r["insights"], 600, "{run}: {v}");
            assert_eq!(r["fallbacks"], 0, "{run}: {v}");
            assert_eq!(
                r["incidents"], r["incidents_with_model_insight"],
                "{run}: {v}"
            );
            for key in ["input_tokens_per_incident", "model_calls_per_incident"] {
                assert!(r[key].as_f64().is_some_and(|x| x > 0.0), "{run} {key}: {v}");
            }
        }
        let tiers = v["tiered"]["calls_by_tier"].as_object().expect("tiers");
        assert!(
            tiers.len() >= 2,
            "a storm of mixed severity uses several tiers: {v}"
        );
        assert_eq!(
            v["untiered"]["calls_by_tier"],
            serde_json::json!({"critical": v["untiered"]["model_calls"]})
        );
        let (t, u) = (
            v["tiered"]["input_tokens_per_incident"]
                .as_f64()
                .unwrap_or(0.0),
            v["untiered"]["input_tokens_per_incident"]
                .as_f64()
                .unwrap_or(0.0),
        );
        assert!(
            t < u,
            "tiers cost fewer input tokens per incident: {t} vs {u}"
        );
        assert!(
            v["input_tokens_saved_by_tiers_pct"].as_f64() > Some(0.0),
            "{v}"
        );
    }
}
