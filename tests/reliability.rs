//! Reliability through the public surface: no stream bricked by retention, no sample dropped
//! silently, a triage endpoint that reads nothing before it checks auth, a bounded number of
//! streams, and a readiness probe that checks the write path.

mod common;

use common::{eventually, now_ms, InProcess};
use ibsight::config::Config;
use serde_json::{json, Value};
use std::time::Duration;

fn body(samples: Vec<Value>) -> Value {
    json!({ "samples": samples })
}

fn sample(stream: &str, ts: i64, util: f64) -> Value {
    json!({"stream_id": stream, "timestamp": ts, "utilization": util, "latency_p99": 5.0})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_idle_past_retention_accepts_its_next_sample() {
    let mut config = Config::default();
    config.actors.passivate_after_s = 1;
    config.store.snapshot_every = 1000;
    let srv = InProcess::start(config).await;
    let t = now_ms() - 60_000;
    let five: Vec<Value> = (0..5)
        .map(|i| sample("ret/p1", t + i * 1000, 50.0))
        .collect();
    assert_eq!(srv.post(&body(five)).await.0, 202);
    // Idle: the actor passivates and leaves a snapshot at its last seq.
    assert!(
        eventually(Duration::from_secs(10), || async {
            srv.node.router.active_streams() == 0
        })
        .await,
        "the stream never passivated"
    );
    let eight_days = 8 * 24 * 3600 * 1000;
    // The actor leaves the registry first and writes its snapshot as it stops; retention
    // removes only what a snapshot covers, so passes before the snapshot lands remove nothing.
    let mut removed = 0;
    for _ in 0..100 {
        removed += srv
            .node
            .retain_as_of(now_ms() + eight_days)
            .await
            .expect("retention");
        if removed >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(removed, 5, "retention removed the idle stream's samples");
    let (status, view) = srv.get("/v1/streams/ret%2Fp1").await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["last_seq"], 5);
    let (status, answer) = srv
        .post(&body(vec![sample("ret/p1", now_ms() - 1000, 50.0)]))
        .await;
    assert_eq!(
        (status, answer["accepted"].clone()),
        (202, json!(1)),
        "{answer}"
    );
    let (_, view) = srv.get("/v1/streams/ret%2Fp1").await;
    assert_eq!(view["last_seq"], 6);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_and_out_of_order_samples_are_stored_and_counted_never_dropped() {
    let srv = InProcess::start(Config::default()).await;
    let t = now_ms() - 60_000;
    // Out of order inside one request: applied in timestamp order, both fresh.
    let (status, answer) = srv
        .post(&body(vec![
            sample("late/p1", t + 4000, 50.0),
            sample("late/p1", t, 51.0),
        ]))
        .await;
    assert_eq!(status, 202);
    assert_eq!(
        (
            answer["accepted"].clone(),
            answer["late"].clone(),
            answer["duplicates"].clone()
        ),
        (json!(2), json!(0), json!(0)),
        "{answer}"
    );
    // Older than the stream's last timestamp, other values: stored as late data.
    let late = sample("late/p1", t + 2000, 60.0);
    let (_, answer) = srv.post(&body(vec![late.clone()])).await;
    assert_eq!(
        (answer["accepted"].clone(), answer["late"].clone()),
        (json!(0), json!(1)),
        "{answer}"
    );
    // Its retry is an exact repeat: a duplicate.
    let (_, answer) = srv.post(&body(vec![late])).await;
    assert_eq!(
        (answer["late"].clone(), answer["duplicates"].clone()),
        (json!(0), json!(1)),
        "{answer}"
    );
    // Same millisecond, other content: late, not a duplicate.
    let (_, answer) = srv
        .post(&body(vec![sample("late/p1", t + 4000, 99.0)]))
        .await;
    assert_eq!(answer["late"], 1, "{answer}");
    // Every late sample is in the log.
    let (_, events) = srv
        .get("/v1/streams/late%2Fp1/events?from_seq=1&limit=100")
        .await;
    let observed = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["event_type"] == "MetricObserved")
        .count();
    assert_eq!(observed, 4, "{events}");
    let text = srv
        .client
        .get(format!("{}/metrics", srv.url))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    assert!(
        text.lines().any(
            |l| l.starts_with("ibsight_ingest_samples_total{outcome=\"late\"}")
                && !l.ends_with(" 0")
        ),
        "late samples are not counted"
    );
    srv.stop().await;
}

async fn triage(srv: &InProcess, body: Vec<u8>, token: Option<&str>) -> u16 {
    let mut req = srv
        .client
        .post(format!("{}/v1/alerts/a%231/triage", srv.url))
        .header("content-type", "application/json")
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.map(|r| r.status().as_u16()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triage_checks_its_token_before_reading_and_reads_a_bounded_body() {
    let mut config = Config::default();
    config.auth.read_tokens = vec!["read-token-0123456789ab".into()];
    config.auth.triage_tokens = vec!["triage-token-0123456789".into()];
    let srv = InProcess::start(config).await;
    let verdict = br#"{"verdict": "confirmed"}"#.to_vec();
    // A read token cannot write verdicts; neither can no token.
    assert_eq!(triage(&srv, verdict.clone(), None).await, 401);
    assert_eq!(
        triage(&srv, verdict.clone(), Some("read-token-0123456789ab")).await,
        401
    );
    // 64 MiB without a token is refused before the body is read (the server may reset the
    // connection while the client still sends: either way nothing is buffered).
    let big = vec![b' '; 64 << 20];
    let status = triage(&srv, big.clone(), None).await;
    assert!(status == 401 || status == 0, "answered {status}");
    drop(big);
    // With the token, a body over the bound (small enough to be sent whole before the
    // answer) is 413.
    let over = vec![b' '; 5000];
    assert_eq!(
        triage(&srv, over, Some("triage-token-0123456789")).await,
        413
    );
    // A well-formed verdict on an unknown alert: 404, and nothing was appended.
    assert_eq!(
        triage(&srv, verdict, Some("triage-token-0123456789")).await,
        404
    );
    assert_eq!(srv.last_offset(), 0);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triage_is_refused_when_tokens_guard_the_api_but_none_is_for_triage() {
    let mut config = Config::default();
    config.auth.read_tokens = vec!["read-token-0123456789ab".into()];
    let srv = InProcess::start(config).await;
    let verdict = br#"{"verdict": "confirmed"}"#.to_vec();
    assert_eq!(
        triage(&srv, verdict, Some("read-token-0123456789ab")).await,
        403
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_streams_a_new_stream_gets_429_naming_the_cap_and_known_ones_still_flow() {
    let mut config = Config::default();
    config.ingest.max_streams = 3;
    let srv = InProcess::start(config).await;
    let t = now_ms() - 60_000;
    let first: Vec<Value> = (0..3)
        .map(|i| sample(&format!("cap/p{i}"), t, 50.0))
        .collect();
    assert_eq!(srv.post(&body(first)).await.0, 202);
    let before = srv.last_offset();
    // A request with one known and one new stream is refused whole.
    let (status, answer) = srv
        .post(&body(vec![
            sample("cap/p0", t + 1000, 50.0),
            sample("cap/p9", t, 50.0),
        ]))
        .await;
    assert_eq!(status, 429, "{answer}");
    let message = answer["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("ingest.max_streams (3)") && message.contains("cap/p9"),
        "{answer}"
    );
    assert_eq!(
        srv.last_offset(),
        before,
        "nothing of a refused request is written"
    );
    // Known streams keep flowing.
    let (status, answer) = srv
        .post(&body(vec![sample("cap/p0", t + 1000, 50.0)]))
        .await;
    assert_eq!(
        (status, answer["accepted"].clone()),
        (202, json!(1)),
        "{answer}"
    );
    // (The count is the `streams` view, kept by the writer: it survives restarts; see
    // events::streams' unit test.)
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_answers_ready_after_a_durable_probe_write() {
    let srv = InProcess::start(Config::default()).await;
    let (status, v) = srv.get("/readyz").await;
    assert_eq!((status, v["status"].clone()), (200, json!("ready")), "{v}");
    srv.stop().await;
}
