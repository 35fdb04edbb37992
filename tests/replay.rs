//! `replay audit` over a log written by the real pipeline: an untouched log has no
//! divergence, a changed threshold shows up as divergences, a corrupt record is reported at its
//! offset.

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
            .any(|d| d.stream_id == "leaf01/p19"),
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
    assert_eq!(report.len(), 2);
    for v in &report {
        assert!(v.live > 0, "{v:?}");
        assert_eq!((v.rebuilt, v.differing), (v.live, 0), "{v:?}");
    }
    node.shutdown().await;
}
