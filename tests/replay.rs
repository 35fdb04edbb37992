//! Replays over a log written by the real pipeline: an untouched log audits with no
//! divergence, a changed threshold shows up as divergences, a corrupt record is reported at its
//! offset, a rebuilt projection equals the live one, and a candidate prompt is asked about the
//! recorded anomalies (through the real SDK, against the local Bedrock-protocol server) with
//! the log left byte for byte as it was.

mod common;

use ibsight::config::Config;
use ibsight::detect::DetectConfig;
use ibsight::events::codec::EventRecord;
use ibsight::events::{NewEvent, WriteOp};
use ibsight::node::Node;
use ibsight::replay::audit::audit;
use ibsight::sim::generator::Simulator;
use ibsight::sim::scenario::Scenario;

async fn node_with_scenario(dir: &std::path::Path) -> Node {
    let mut config = Config::default();
    config.server.data_dir = dir.to_path_buf();
    let node = Node::start(config).await.expect("node");
    let scenario = Scenario::load("mixed").expect("mixed");
    let base = ibsight::clock::now_ms() - 600_000;
    let mut sim = Simulator::new(scenario, base);
    while let Some(samples) = sim.next_tick() {
        node.ingestor
            .ingest(samples, Default::default())
            .await
            .expect("ingest");
    }
    ibsight::eval::settle(&node).await.expect("settle");
    node
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untouched_log_audits_clean_and_a_changed_threshold_diverges() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = node_with_scenario(dir.path()).await;
    let store = node.writer.store().clone();
    let report = audit(store.as_ref(), &DetectConfig::default(), None, |_| {}).expect("audit");
    assert!(report.corrupt.is_empty(), "{:?}", report.corrupt);
    assert!(
        report.divergences.is_empty(),
        "{:?}",
        &report.divergences[..report.divergences.len().min(5)]
    );
    assert!(report.recorded_anomaly_events > 30, "{report:?}");
    assert_eq!(report.matched, report.recorded_anomaly_events);

    let stricter = DetectConfig {
        utilization_max_pct: 99.5,
        ..DetectConfig::default()
    };
    let changed = audit(store.as_ref(), &stricter, None, |_| {}).expect("audit");
    assert!(
        changed
            .divergences
            .iter()
            .any(|d| d.stream_id == "node001/mlx5_0/p1"),
        "the saturated port's anomaly is no longer derived: {:?}",
        changed.divergences
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_is_reported_with_its_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::default();
    config.server.data_dir = dir.path().to_path_buf();
    let node = Node::start(config).await.expect("node");
    let record = EventRecord {
        stream_id: "c/1".into(),
        seq: 1,
        recorded_at_ms: 0,
        event_type: "MetricObserved".into(),
        schema_version: 1,
        correlation_id: None,
        payload: vec![1, 2, 3],
        trace: None,
    };
    let good = NewEvent::new(&record);
    let mut bad = NewEvent::new(&EventRecord {
        seq: 2,
        ..record.clone()
    });
    let last = bad.frame.len() - 1;
    bad.frame[last] ^= 0x40;
    let offsets = node
        .writer
        .write(vec![WriteOp::Append(good), WriteOp::Append(bad)])
        .await
        .expect("write");
    let report = audit(
        node.writer.store().as_ref(),
        &DetectConfig::default(),
        None,
        |_| {},
    )
    .expect("audit");
    assert_eq!(report.corrupt.len(), 1, "{report:?}");
    assert_eq!(report.corrupt[0].offset, offsets[1]);
    assert!(
        report.corrupt[0].reason.contains("crc"),
        "{:?}",
        report.corrupt
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_of_the_views_equals_the_live_views() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = node_with_scenario(dir.path()).await;
    let report = ibsight::replay::rebuild::verify_views(&node.writer)
        .await
        .expect("rebuild");
    assert_eq!(report.len(), 4, "insights, alerts, fabric, incidents");
    for v in &report {
        assert!(v.live > 0, "{v:?}");
        assert_eq!((v.rebuilt, v.differing), (v.live, 0), "{v:?}");
    }
    node.shutdown().await;
}

/// Every file under `dir`, with its bytes.
fn tree(dir: &std::path::Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.insert(path.clone(), std::fs::read(&path).expect("read"));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_prompt_is_asked_about_the_recorded_anomalies_and_the_log_is_untouched() {
    use ibsight::cli::bench::fake_bedrock::FakeBedrock;
    let dir = tempfile::tempdir().expect("tempdir");
    let node = node_with_scenario(dir.path()).await;
    node.shutdown().await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let before = tree(dir.path());

    let work = tempfile::tempdir().expect("tempdir");
    let candidate = work.path().join("candidate.toml");
    std::fs::write(
        &candidate,
        "version = \"ib-insight-v3-terse\"\n\
         system = \"\"\"You are a terse InfiniBand expert. Types: {prediction_types}. JSON only.\"\"\"\n",
    )
    .expect("write candidate");
    let report = work.path().join("report.jsonl");
    let fake = FakeBedrock::start(None).await.expect("fake bedrock");
    let mut cmd = std::process::Command::new(common::binary());
    cmd.args(["replay", "prompts", "--data-dir"])
        .arg(dir.path())
        .arg("--prompt")
        .arg(&candidate)
        .args(["--analyst", "bedrock", "--limit", "12", "--out"])
        .arg(&report)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("IBSIGHT_AWS__ENDPOINT_URL", fake.url())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("run replay prompts");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("a summary line")).expect("json");
    assert_eq!(summary["anomalies"], 12, "{summary}");
    assert_eq!(
        summary["compared"], 12,
        "every recorded anomaly had an insight: {summary}"
    );
    assert_eq!(summary["new_prompt_version"], "ib-insight-v3-terse");
    assert_eq!(
        summary["old_prompt_versions"],
        serde_json::json!(["ib-insight-v3"])
    );
    let calls = summary["calls"].as_u64().expect("calls");
    assert!((2..=12).contains(&calls), "batched calls: {summary}");
    assert!(summary["input_tokens"].as_u64() > Some(0), "{summary}");
    assert!(summary["cost_usd"].as_f64() > Some(0.0), "{summary}");
    assert!(
        summary["type_agreement_pct"].as_f64().is_some(),
        "{summary}"
    );
    assert!(
        summary["mean_abs_delta_risk"].as_f64().is_some(),
        "{summary}"
    );

    let rows: Vec<serde_json::Value> = std::fs::read_to_string(&report)
        .expect("report")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON row"))
        .collect();
    assert_eq!(rows.len(), 12);
    for row in &rows {
        assert_eq!(row["old"]["source"], "rules", "{row}");
        assert_eq!(row["old"]["prompt_version"], "ib-insight-v3", "{row}");
        assert_eq!(row["new"]["source"], "ai", "{row}");
        assert_eq!(row["new"]["prompt_version"], "ib-insight-v3-terse", "{row}");
        assert!(
            row["new"]["explanation"]
                .as_str()
                .is_some_and(|e| e.starts_with("fake model analysis")),
            "{row}"
        );
        for side in ["old", "new"] {
            for field in ["prediction_type", "risk_score", "confidence", "explanation"] {
                assert!(!row[side][field].is_null(), "{side}.{field}: {row}");
            }
        }
    }
    let received = fake.received();
    assert_eq!(received.len() as u64, calls);
    for r in &received {
        let system = r.body["system"].as_str().unwrap_or_default();
        assert!(
            system.starts_with("You are a terse InfiniBand expert"),
            "{system}"
        );
        assert!(
            system.contains("connection_instability"),
            "types filled in: {system}"
        );
    }

    let after = tree(dir.path());
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "same files"
    );
    assert!(before == after, "the log's bytes changed");
}
