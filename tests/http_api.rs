//! Black-box tests of the HTTP API against a real server on a loopback port.

mod common;

use common::{eventually, now_ms, InProcess};
use ibsight::config::Config;
use serde_json::{json, Value};
use std::time::Duration;

fn sample(stream: &str, ts: i64, util: f64) -> Value {
    json!({"stream_id": stream, "timestamp": ts, "utilization": util, "latency_p99": 5.0,
           "counters": {"SymbolErrorCounter": 0, "LinkDownedCounter": 1}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_batch_is_durable_and_visible() {
    let srv = InProcess::start(Config::default()).await;
    let t = now_ms() - 60_000;
    let body = json!({"samples": [
        sample("sw1/p1", t, 50.0),
        sample("sw1/p2", t, 50.0),
        sample("sw1/p1", t + 1000, 92.0),
        sample("sw1/p1", t + 2000, 92.0),
        sample("sw1/p1", t + 3000, 92.0),
    ]});
    let (status, answer) = srv.post(&body).await;
    assert_eq!(status, 202, "{answer}");
    // Utilization over 80 % for three samples in a row opens one anomaly.
    assert_eq!(
        answer,
        json!({"accepted": 5, "duplicates": 0, "late": 0, "anomalies": 1})
    );
    let (status, events) = srv.get("/v1/streams/sw1/p1/events").await;
    assert_eq!(status, 200, "{events}");
    let types: Vec<&str> = events["events"]
        .as_array()
        .expect("events")
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
    let anomaly = &events["events"][4];
    assert_eq!(anomaly["seq"], 5);
    assert_eq!(anomaly["payload"]["rule"], "utilization_high");
    assert_eq!(anomaly["payload"]["metric"], "utilization");
    assert_eq!(anomaly["payload"]["value"], 92.0);
    assert_eq!(anomaly["payload"]["baseline"], 50.0);

    // The anomaly's incident gets its insight (rules backend by default) in `#incidents`.
    let insight_recorded = eventually(Duration::from_secs(10), || async {
        let (_, events) = srv.get("/v1/streams/%23incidents/events").await;
        events["events"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["event_type"] == "InsightGenerated"))
    })
    .await;
    assert!(insight_recorded, "no insight for the anomaly's incident");
    let (_, incident_events) = srv.get("/v1/streams/%23incidents/events").await;
    let events = incident_events["events"].as_array().expect("events");
    assert_eq!(events[0]["event_type"], "IncidentOpened");
    assert_eq!(events[0]["payload"]["members"][0]["stream_id"], "sw1/p1");
    let insight = &events
        .iter()
        .find(|e| e["event_type"] == "InsightGenerated")
        .expect("insight")["payload"];
    assert_eq!(insight["anomaly_seq"], 1);
    assert_eq!(insight["source"], "rules");
    assert_eq!(insight["prediction_type"], "resource_saturation");
    assert!(
        insight["risk_score"].as_u64() < Some(50),
        "busy but healthy: {insight}"
    );
    assert!(
        insight["explanation"]
            .as_str()
            .is_some_and(|e| e.contains("92")),
        "{insight}"
    );

    let (status, state) = srv.get("/v1/streams/sw1/p1").await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(state["last_seq"], 5);
    // The anomalous 92 % does not feed the baseline.
    assert_eq!(state["metrics"]["utilization"]["samples"], 1);
    assert_eq!(state["metrics"]["utilization"]["mean"], 50.0);
    assert_eq!(state["open_anomalies"][0]["rule"], "utilization_high");
    assert_eq!(state["last_sample"]["utilization"], 92.0);
    assert_eq!(state["counters"]["LinkDownedCounter"]["value"], 1);

    let (status, stats) = srv.get("/v1/stats").await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["analyst"]["insights"], 1);
    assert_eq!(stats["analyst"]["rules"], 1);
    assert_eq!(stats["analyst"]["queue_depth"], 0);

    // Paging through the events.
    let (_, page) = srv
        .get("/v1/streams/sw1/p1/events?from_seq=2&limit=1")
        .await;
    assert_eq!(page["events"][0]["seq"], 2);
    assert_eq!(page["next_from_seq"], 3);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_request_is_counted_as_duplicates() {
    let srv = InProcess::start(Config::default()).await;
    let t = now_ms() - 60_000;
    let body = json!({"samples": [sample("a", t, 10.0), sample("a", t + 1, 10.0)]});
    assert_eq!(srv.post(&body).await.0, 202);
    let offset = srv.last_offset();
    let (status, answer) = srv.post(&body).await;
    assert_eq!(status, 202);
    assert_eq!(
        answer,
        json!({"accepted": 0, "duplicates": 2, "late": 0, "anomalies": 0})
    );
    assert_eq!(
        srv.last_offset(),
        offset,
        "a duplicate must not be stored again"
    );
    // A single sample object works too.
    let (status, answer) = srv.post(&sample("a", t + 2, 10.0)).await;
    assert_eq!((status, answer["accepted"].clone()), (202, json!(1)));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_class_is_400_naming_the_field_and_writes_nothing() {
    let srv = InProcess::start(Config::default()).await;
    let t = now_ms() - 60_000;
    let cases: Vec<(&str, Value)> = vec![
        (
            "stream_id",
            json!({"stream_id": "bad id", "timestamp": t, "utilization": 1}),
        ),
        ("stream_id", json!({"timestamp": t, "utilization": 1})),
        ("timestamp", json!({"stream_id": "a", "utilization": 1})),
        (
            "timestamp",
            json!({"stream_id": "a", "timestamp": "noon", "utilization": 1}),
        ),
        (
            "timestamp",
            json!({"stream_id": "a", "timestamp": now_ms() + 600_000, "utilization": 1}),
        ),
        (
            "latency_p99",
            json!({"stream_id": "a", "timestamp": t, "latency_p99": -1}),
        ),
        (
            "utilization",
            json!({"stream_id": "a", "timestamp": t, "utilization": 101}),
        ),
        (
            "error_rate",
            json!({"stream_id": "a", "timestamp": t, "error_rate": 2}),
        ),
        (
            "bandwidth_gbps",
            json!({"stream_id": "a", "timestamp": t, "bandwidth_gbps": "fast"}),
        ),
        (
            "qp_errors",
            json!({"stream_id": "a", "timestamp": t, "qp_errors": 0.5}),
        ),
        (
            "latency_p99",
            json!({"stream_id": "a", "timestamp": t, "latency_p99": "NaN"}),
        ),
        (
            "counters.LinkDownedCounter",
            // (A value past the basic width is the extended counter; a negative one is wrong.)
            json!({"stream_id": "a", "timestamp": t, "counters": {"LinkDownedCounter": -1}}),
        ),
        (
            "counters.Bogus",
            json!({"stream_id": "a", "timestamp": t, "counters": {"Bogus": 1}}),
        ),
        (
            "labels",
            json!({"stream_id": "a", "timestamp": t, "utilization": 1, "labels": ["x"]}),
        ),
        (
            "labels.k",
            json!({"stream_id": "a", "timestamp": t, "utilization": 1, "labels": {"k": "v".repeat(65)}}),
        ),
        (
            "extra",
            json!({"stream_id": "a", "timestamp": t, "utilization": 1, "extra": true}),
        ),
        ("", json!({"stream_id": "a", "timestamp": t})),
    ];
    for (field, bad) in cases {
        // The bad sample rides along with a good one: neither may be written.
        let body = json!({"samples": [sample("good", t, 10.0), bad]});
        let (status, answer) = srv.post(&body).await;
        assert_eq!(status, 400, "{field}: {answer}");
        assert_eq!(answer["error"], "invalid_batch", "{answer}");
        let details = answer["details"].as_array().expect("details");
        assert!(
            details
                .iter()
                .any(|d| d["index"] == 1 && d["field"] == field),
            "{field}: {answer}"
        );
        assert_eq!(srv.last_offset(), 0, "{field}: something was written");
    }
    let (status, _) = srv.get("/v1/streams/good").await;
    assert_eq!(status, 404);
    let (status, answer) = srv.post(&json!({"samples": "nope"})).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(srv.last_offset(), 0);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_wrong_media_type_and_malformed_json() {
    let mut config = Config::default();
    config.ingest.max_samples = 5;
    let srv = InProcess::start(config).await;
    let t = now_ms() - 60_000;
    let many: Vec<Value> = (0..6).map(|i| sample("a", t + i, 1.0)).collect();
    let (status, answer) = srv.post(&json!({ "samples": many })).await;
    assert_eq!(status, 413, "{answer}");

    let big = format!("{{\"samples\":[\"{}\"]}}", "x".repeat(9 * 1024 * 1024));
    // A client of its own that keeps no idle connection: the server stops reading at the
    // limit and closes this connection, which must not be handed to the next request.
    let once = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let resp = once
        .post(format!("{}/v1/metrics", srv.url))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await;
    // 413, or the connection closed by the server while the client was still sending the
    // rest of the body (it answers 413 and stops reading at the limit).
    match resp {
        Ok(resp) => assert_eq!(resp.status().as_u16(), 413),
        Err(e) => assert!(e.is_request() || e.is_body(), "{e}"),
    }
    assert_eq!(srv.last_offset(), 0);

    let resp = srv
        .client
        .post(format!("{}/v1/metrics", srv.url))
        .header("content-type", "text/plain")
        .body(sample("a", t, 1.0).to_string())
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 415);

    let resp = srv
        .client
        .post(format!("{}/v1/metrics", srv.url))
        .header("content-type", "application/json")
        .body("{\"samples\": [")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 400);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["error"], "invalid_json");
    assert_eq!(srv.last_offset(), 0);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_guard_ingest_and_reads() {
    let mut config = Config::default();
    config.auth.ingest_tokens = vec!["ingest-token-0123456789".into()];
    config.auth.read_tokens = vec!["read-token-0123456789ab".into()];
    let srv = InProcess::start(config).await;
    let body = sample("a", now_ms() - 1000, 1.0);
    let c = &srv.client;
    assert_eq!(common::post_json(c, &srv.url, &body, None).await.0, 401);
    assert_eq!(
        common::post_json(c, &srv.url, &body, Some("wrong-token-0123456789"))
            .await
            .0,
        401
    );
    assert_eq!(
        common::post_json(c, &srv.url, &body, Some("read-token-0123456789ab"))
            .await
            .0,
        401
    );
    assert_eq!(srv.last_offset(), 0);
    assert_eq!(
        common::post_json(c, &srv.url, &body, Some("ingest-token-0123456789"))
            .await
            .0,
        202
    );
    let url = format!("{}/v1/streams/a", srv.url);
    assert_eq!(common::get_json(c, &url, None).await.0, 401);
    assert_eq!(
        common::get_json(c, &url, Some("read-token-0123456789ab"))
            .await
            .0,
        200
    );
    // Health endpoints stay open for probes.
    assert_eq!(
        common::get_json(c, &format!("{}/healthz", srv.url), None)
            .await
            .0,
        200
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_actor_is_restarted_and_its_stream_keeps_working() {
    let srv = InProcess::start(Config::default()).await;
    let t = now_ms() - 60_000;
    assert_eq!(srv.post(&sample("p", t, 10.0)).await.0, 202);
    assert_eq!(srv.node.router.restarts(), 0);
    srv.node.router.inject_panic("p").await.expect("inject");
    // Generous: with RUST_BACKTRACE set, the panic hook symbolizes a backtrace of the debug
    // binary before the supervisor hears of the failure, which can take seconds (2.5 s here
    // with a cold page cache). A 5 s deadline once ran out on CI.
    let restarted = eventually(Duration::from_secs(60), || async {
        srv.node.router.restarts() == 1
    })
    .await;
    assert!(
        restarted,
        "the supervisor did not restart the panicked actor"
    );
    // The restarted actor rebuilt its state from the log.
    let (status, state) = srv.get("/v1/streams/p").await;
    assert_eq!(
        (status, state["last_seq"].clone()),
        (200, json!(1)),
        "{state}"
    );
    let (status, answer) = srv.post(&sample("p", t + 1000, 10.0)).await;
    assert_eq!(
        (status, answer["accepted"].clone()),
        (202, json!(1)),
        "{answer}"
    );
    let (_, state) = srv.get("/v1/streams/p").await;
    assert_eq!(state["last_seq"], 2);
    assert_eq!(state["metrics"]["utilization"]["samples"], 2);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_actors_are_passivated_and_reactivated_from_the_log() {
    let mut config = Config::default();
    config.actors.passivate_after_s = 1;
    let srv = InProcess::start(config).await;
    let t = now_ms() - 60_000;
    for i in 0..3 {
        assert_eq!(srv.post(&sample("idle", t + i * 1000, 10.0)).await.0, 202);
    }
    assert_eq!(srv.node.router.active_streams(), 1);
    let passivated = eventually(Duration::from_secs(10), || async {
        srv.node.router.active_streams() == 0
    })
    .await;
    assert!(passivated, "idle actor was not passivated");
    let (status, state) = srv.get("/v1/streams/idle").await;
    assert_eq!(status, 200);
    assert_eq!(state["last_seq"], 3);
    assert_eq!(state["metrics"]["utilization"]["samples"], 3);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_streams_and_bad_queries() {
    let srv = InProcess::start(Config::default()).await;
    assert_eq!(srv.get("/v1/streams/nope").await.0, 404);
    assert_eq!(srv.get("/v1/streams/nope/events").await.0, 404);
    assert_eq!(srv.post(&sample("q", now_ms() - 1, 1.0)).await.0, 202);
    let (status, answer) = srv.get("/v1/streams/q/events?limit=abc").await;
    assert_eq!(status, 400);
    assert_eq!(
        answer["message"].as_str().map(|m| m.contains("limit")),
        Some(true)
    );
    assert_eq!(srv.get("/v1/streams/q/events?limit=0").await.0, 400);
    assert_eq!(srv.get("/v1/streams/q/events?frm=1").await.0, 400);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_past_the_in_flight_bound_is_refused_not_queued() {
    let srv = InProcess::start(Config::default()).await;
    let bounded = ibsight::ingest::Ingestor::new(srv.node.router.clone(), 2);
    let t = now_ms() - 10_000;
    let samples: Vec<_> = (0..3)
        .map(|i| ibsight::sample::Sample {
            stream_id: "o".into(),
            timestamp_ms: t + i,
            latency_p99_us: Some(1.0),
            utilization_pct: None,
            error_rate: None,
            bandwidth_gbps: None,
            qp_errors: None,
            counters: Default::default(),
            labels: Default::default(),
            ..Default::default()
        })
        .collect();
    let result = bounded.ingest(samples.clone(), Default::default()).await;
    assert!(
        matches!(result, Err(ibsight::ingest::IngestError::Overloaded { .. })),
        "{result:?}"
    );
    assert_eq!(srv.last_offset(), 0, "an overloaded request writes nothing");
    let ok = bounded
        .ingest(samples[..2].to_vec(), Default::default())
        .await
        .expect("within bound");
    assert_eq!(ok.accepted, 2);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_port_identity_or_link_fields_are_named_and_nothing_is_written() {
    let srv = InProcess::start(Config::default()).await;
    let t = now_ms() - 1000;
    let good = json!({"stream_id": "leaf01/p1", "timestamp": t, "utilization": 5,
        "node_guid": "0x0002c90300a1b2c3", "link": {"state": "active", "width": "4x"}});
    for (field, bad) in [
        ("node_guid", json!({"node_guid": "0xnothex"})),
        ("link.width", json!({"link": {"width": "3x"}})),
        ("link.state", json!({"link": {"state": "sideways"}})),
    ] {
        let mut sample = sample("leaf01/p2", t, 5.0);
        for (k, v) in bad.as_object().expect("object") {
            sample[k] = v.clone();
        }
        let (status, answer) = srv.post(&json!({"samples": [good.clone(), sample]})).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["details"][0]["field"], field, "{answer}");
        assert_eq!(answer["details"][0]["index"], 1, "{answer}");
        assert_eq!(srv.last_offset(), 0, "nothing of the request is written");
    }
    // A counter over its basic width, and one not in the IBA, in the same sweep.
    let extended = json!({"stream_id": "leaf01/p3", "timestamp": t,
        "counters": {"SymbolErrorCounter": 70000, "PortRcvSwitchRelayErrors": 1}});
    assert_eq!(srv.post(&json!({"samples": [extended]})).await.0, 202);
    let unknown = json!({"stream_id": "leaf01/p4", "timestamp": t, "counters": {"FooErrors": 1}});
    let (status, answer) = srv.post(&json!({"samples": [unknown]})).await;
    assert_eq!(
        (status, answer["details"][0]["field"].clone()),
        (400, json!("counters.FooErrors"))
    );
    srv.stop().await;
}
