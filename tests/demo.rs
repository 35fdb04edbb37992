//! `ibsight demo` and `ibsight simulate` through the built binary.

mod common;

use common::{binary, get_json, Server};
use std::process::Command;

#[test]
fn the_demo_prints_insights_for_the_injected_faults() {
    let out = Command::new(binary())
        .args(["demo", "--duration", "10s", "--listen", "127.0.0.1:0"])
        .env_remove("AI_ENABLED")
        .output()
        .expect("run demo");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "insight  inc-",
        "resource_saturation",
        "bandwidth_throttling",
        "connection_instability",
        "qp_error_rate_high",
        "ALERT",
        "[100%]",
        "detection quality",
        "recall 100.0%",
        "scope accuracy 100.0%",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_posts_a_scenario_to_a_running_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = Server::start(dir.path(), &[]);
    let labels = dir.path().join("labels.json");
    let url = srv.url.clone();
    let labels_arg = labels.clone();
    let status = tokio::task::spawn_blocking(move || {
        Command::new(binary())
            .args([
                "simulate",
                "--target",
                &url,
                "--scenario",
                "mixed",
                "--nodes",
                "64",
            ])
            .args([
                "--duration",
                "150s",
                "--speedup",
                "1000",
                "--seed",
                "5",
                "--labels-out",
            ])
            .arg(&labels_arg)
            .status()
            .expect("simulate")
    })
    .await
    .expect("join");
    assert!(status.success());
    let labels: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&labels).expect("labels")).expect("json");
    assert!(labels.as_array().is_some_and(|l| !l.is_empty()));
    let client = reqwest::Client::new();
    let (status, stream) = get_json(
        &client,
        &format!("{}/v1/streams/node001/mlx5_0/p1", srv.url),
        None,
    )
    .await;
    assert_eq!(status, 200);
    // 150 samples; the ones taken during the saturation fault do not feed the baseline.
    let baseline_samples = stream["metrics"]["utilization"]["samples"]
        .as_u64()
        .unwrap_or(0);
    assert!((100..150).contains(&baseline_samples), "{stream}");
    assert!(stream["last_seq"].as_u64() >= Some(150), "{stream}");
    assert!(
        stream["last_sample"]["labels"]["node"] == "node001",
        "{stream}"
    );
    srv.terminate();
}
