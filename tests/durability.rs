//! Durability through the real binary: a restart on the same data dir continues state and
//! seq, and a SIGKILL during concurrent ingest loses no acknowledged sample. Both engines.

mod common;

use common::{get_json, now_ms, post_json, Server};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn engines() -> [(&'static str, &'static str); 2] {
    [
        ("IBSIGHT_STORE__ENGINE", "fjall"),
        ("IBSIGHT_STORE__ENGINE", "sled"),
    ]
}

fn sample(stream: &str, ts: i64, util: f64) -> Value {
    json!({"stream_id": stream, "timestamp": ts, "utilization": util})
}

async fn restart_continues_state_and_seq(engine: (&str, &str)) {
    let dir = tempfile::tempdir().expect("tempdir");
    let client = reqwest::Client::new();
    let t = now_ms() - 600_000;
    let srv = Server::start(dir.path(), &[engine]);
    let batch: Vec<Value> = (0..5).map(|i| sample("r/1", t + i * 1000, 40.0)).collect();
    let (status, _) = post_json(&client, &srv.url, &json!({ "samples": batch }), None).await;
    assert_eq!(status, 202);
    srv.terminate();

    let srv = Server::start(dir.path(), &[engine]);
    let (status, state) = get_json(&client, &format!("{}/v1/streams/r/1", srv.url), None).await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(state["last_seq"], 5);
    assert_eq!(state["metrics"]["utilization"]["samples"], 5);
    // Already-seen samples stay duplicates after the restart; new ones continue the seq.
    let (_, answer) = post_json(&client, &srv.url, &sample("r/1", t + 4000, 40.0), None).await;
    assert_eq!(answer["duplicates"], 1);
    let hot: Vec<Value> = (5..8).map(|i| sample("r/1", t + i * 1000, 95.0)).collect();
    let (_, answer) = post_json(&client, &srv.url, &json!({ "samples": hot }), None).await;
    assert_eq!(
        answer,
        json!({"accepted": 3, "duplicates": 0, "late": 0, "anomalies": 1})
    );
    let (_, events) = get_json(
        &client,
        &format!("{}/v1/streams/r/1/events?from_seq=6", srv.url),
        None,
    )
    .await;
    let seqs: Vec<(u64, &str)> = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            (
                e["seq"].as_u64().expect("seq"),
                e["event_type"].as_str().expect("type"),
            )
        })
        .take(4)
        .collect();
    assert_eq!(
        seqs,
        vec![
            (6, "MetricObserved"),
            (7, "MetricObserved"),
            (8, "MetricObserved"),
            (9, "AnomalyDetected")
        ]
    );
    srv.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_on_the_same_data_dir_fjall() {
    restart_continues_state_and_seq(engines()[0]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_on_the_same_data_dir_sled() {
    restart_continues_state_and_seq(engines()[1]).await;
}

/// Writers post single-sample batches as fast as they can; every 202 is remembered. The
/// server is SIGKILLed mid-stream, restarted, and every acknowledged sample must be in the log.
/// With `packing`, fjall packs samples into 64-sample segments every second while the writers
/// run, and the kill waits until it has packed some.
async fn sigkill_loses_no_acknowledged_sample(engine: (&str, &str), packing: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let client = reqwest::Client::new();
    // Frequent snapshots, so recovery goes through snapshot + tail, not a full replay.
    let mut env = vec![engine, ("IBSIGHT_STORE__SNAPSHOT_EVERY", "7")];
    if packing {
        env.extend([
            ("IBSIGHT_STORE__PACK_AFTER_S", "0"),
            ("IBSIGHT_STORE__PACK_INTERVAL_S", "1"),
            ("IBSIGHT_STORE__SEGMENT_EVENTS", "64"),
        ]);
    }
    let srv = Server::start(dir.path(), &env);
    let url = srv.url.clone();
    let acked: Arc<Mutex<HashMap<String, Vec<i64>>>> = Arc::default();
    let t0 = now_ms() - 3_600_000;
    let mut writers = Vec::new();
    for w in 0..8 {
        let (client, url, acked) = (client.clone(), url.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..100_000i64 {
                let stream = format!("crash/{w}/{}", i % 4);
                let ts = t0 + i;
                let batch = json!({"samples": [sample(&stream, ts, 30.0)]});
                let resp = client
                    .post(format!("{url}/v1/metrics"))
                    .header("content-type", "application/json")
                    .body(batch.to_string())
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status().as_u16() == 202 => {
                        acked
                            .lock()
                            .expect("lock")
                            .entry(stream)
                            .or_default()
                            .push(ts);
                    }
                    Ok(r) => panic!("unexpected status {}", r.status()),
                    Err(_) => break, // the server is gone
                }
            }
        }));
    }
    // Let ingest run, then kill -9 in the middle of it.
    let started = std::time::Instant::now();
    while acked
        .lock()
        .expect("lock")
        .values()
        .map(Vec::len)
        .sum::<usize>()
        < 2000
        && started.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    while packing && packed_samples(&client, &url).await == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "nothing packed in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    srv.kill9();
    for w in writers {
        w.await.expect("writer");
    }
    let acked = acked.lock().expect("lock").clone();
    let total: usize = acked.values().map(Vec::len).sum();
    assert!(
        total >= 2000,
        "only {total} samples acknowledged before the kill"
    );

    let srv = Server::start(dir.path(), &env);
    for (stream, stamps) in &acked {
        let mut stored = Vec::new();
        let mut from = 1;
        loop {
            let (status, page) = get_json(
                &client,
                &format!(
                    "{}/v1/streams/{stream}/events?from_seq={from}&limit=1000",
                    srv.url
                ),
                None,
            )
            .await;
            assert_eq!(status, 200, "{stream}: {page}");
            let events = page["events"].as_array().expect("events");
            if events.is_empty() {
                break;
            }
            for e in events {
                if e["event_type"] == "MetricObserved" {
                    stored.push(e["payload"]["sample"]["timestamp_ms"].as_i64().expect("ts"));
                }
            }
            from = page["next_from_seq"].as_u64().expect("next");
        }
        for ts in stamps {
            assert!(
                stored.contains(ts),
                "{stream}: acknowledged sample {ts} lost"
            );
        }
        // Seqs are gapless and the state was rebuilt to the log's head.
        let (_, state) = get_json(&client, &format!("{}/v1/streams/{stream}", srv.url), None).await;
        assert_eq!(
            state["metrics"]["utilization"]["samples"].as_u64(),
            Some(stored.len() as u64)
        );
    }
    // The store opened cleanly and takes new writes.
    let (status, _) = post_json(
        &client,
        &srv.url,
        &sample("crash/after", now_ms(), 1.0),
        None,
    )
    .await;
    assert_eq!(status, 202);
    srv.terminate();
}

/// `ibsight_store_packed_samples_total` from the server's `/metrics`.
async fn packed_samples(client: &reqwest::Client, url: &str) -> u64 {
    let Ok(resp) = client.get(format!("{url}/metrics")).send().await else {
        return 0;
    };
    let text = resp.text().await.unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("ibsight_store_packed_samples_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_ingest_fjall() {
    sigkill_loses_no_acknowledged_sample(engines()[0], false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_ingest_and_packing_fjall() {
    sigkill_loses_no_acknowledged_sample(engines()[0], true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_ingest_sled() {
    sigkill_loses_no_acknowledged_sample(engines()[1], false).await;
}
