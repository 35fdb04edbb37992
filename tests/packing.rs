//! A running server packs old raw samples into segments, and every read gives them back as
//! they were written.

mod common;

use common::{eventually, now_ms, InProcess};
use ibsight::config::Config;
use serde_json::{json, Value};
use std::time::Duration;

const STREAMS: [&str; 3] = ["pk/1", "pk/2", "pk/3"];

async fn events_of(srv: &InProcess, stream: &str) -> Value {
    let (status, events) = srv
        .get(&format!("/v1/streams/{stream}/events?limit=1000"))
        .await;
    assert_eq!(status, 200, "{events}");
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_samples_a_snapshot_covers_are_packed_and_read_back_unchanged() {
    let mut config = Config::default();
    config.store.pack_after_s = 0;
    config.store.pack_interval_s = 1;
    config.store.segment_events = 10;
    config.store.snapshot_every = 4;
    let srv = InProcess::start(config).await;
    let t = now_ms() - 600_000;
    let mut samples = Vec::new();
    for i in 0..12 {
        for (k, stream) in STREAMS.iter().enumerate() {
            samples.push(json!({
                "stream_id": stream,
                "timestamp": t + i * 1000,
                "utilization": 40.0 + (i % 3) as f64 + k as f64 / 7.0,
                "latency_p99": 5.125,
                "counters": {"PortXmitData": 1_000_000 * i + 17 * k as i64, "SymbolErrorCounter": 0},
                "labels": {"rack": format!("r{k}")},
            }));
        }
    }
    let (status, answer) = srv.post(&json!({ "samples": samples })).await;
    assert_eq!(status, 202, "{answer}");
    let mut before = Vec::new();
    for stream in STREAMS {
        before.push(events_of(&srv, stream).await);
    }
    // 36 samples, snapshots every 4: three whole segments of 10 offsets are packed.
    let packed = ibsight::metrics::global().store_packed_samples.clone();
    let done = eventually(Duration::from_secs(15), || {
        let packed = packed.clone();
        async move { packed.get() >= 30 }
    })
    .await;
    assert!(done, "packed {} samples, not 30", packed.get());
    for (stream, before) in STREAMS.iter().zip(&before) {
        assert_eq!(&events_of(&srv, stream).await, before, "{stream}");
    }
    let (status, page) = srv.get("/v1/streams/pk/2/events?from_seq=3&limit=2").await;
    assert_eq!(status, 200);
    let seqs: Vec<u64> = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, vec![3, 4]);
    srv.stop().await;
}
