//! Alerts into the operator's own tools, against Debian's real Alertmanager and a receiver the
//! test runs: one notification per incident, a silence made through Alertmanager's API stops
//! one, an Alertmanager outage delays an alert and loses none, the resolution arrives; and the
//! signed webhook sink beside it.

mod common;

use common::prom::{alertmanager, available, Hook};
use common::{now_ms, post_json, Outage, Server};
use ibsight::projections::notify::webhook::sign;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A receive buffer overrun that goes on: a critical incident on `stream`.
fn storm(stream: &str, t: i64) -> Value {
    let samples: Vec<Value> = [0, 1, 2]
        .iter()
        .enumerate()
        .map(|(i, o)| {
            json!({"stream_id": stream, "timestamp": t + i as i64 * 1000,
            "utilization": 50, "counters": {"ExcessiveBufferOverrunErrors": o}})
        })
        .collect();
    json!({ "samples": samples })
}

/// The same port calm again for `n` seconds after `t`.
fn calm(stream: &str, t: i64, n: i64) -> Value {
    let samples: Vec<Value> = (0..n)
        .map(|i| {
            json!({"stream_id": stream, "timestamp": t + i * 1000,
            "utilization": 50, "counters": {"ExcessiveBufferOverrunErrors": 2}})
        })
        .collect();
    json!({ "samples": samples })
}

/// Alertmanager's notifications (one per alert in each webhook body) about `node`, as status.
fn am_notices(hook: &Hook, node: &str) -> Vec<(String, String)> {
    hook.bodies("/am")
        .iter()
        .flat_map(|b| b["alerts"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["labels"]["node"] == node)
        .map(|a| {
            (
                a["status"].as_str().unwrap_or("").to_string(),
                a["labels"]["incident_id"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect()
}

async fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn am_alerts(am_url: &str) -> Vec<Value> {
    reqwest::get(format!("{am_url}/api/v2/alerts"))
        .await
        .expect("alerts")
        .json()
        .await
        .expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_alertmanager_once_per_incident_through_silences_outages_and_resolution() {
    if !available() {
        eprintln!("skipped: prometheus-alertmanager is not installed (scripts/test installs it)");
        return;
    }
    let hook = Hook::default();
    let hook_url = hook.start().await;
    let am = alertmanager(&format!("{hook_url}/am")).await;
    let mut link = Outage::start(&am.url).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let webhooks = dir.path().join("notify.toml");
    std::fs::write(
        &webhooks,
        format!(
            "[notify]\ndashboard_url = \"https://ibsight.example.org\"\n\
             [notify.alertmanager]\nenabled = true\nurl = \"{}\"\nresend_every_s = 2\n\
             [[notify.webhooks]]\nname = \"ops\"\nurl = \"{hook_url}/hook\"\n\
             secret_env = \"TEST_HOOK_SECRET\"\n",
            link.url
        ),
    )
    .expect("config");
    let config = webhooks.display().to_string();
    let srv = Server::start_full(
        &dir.path().join("data"),
        "127.0.0.1:0",
        &["--config", &config],
        &[
            ("TEST_HOOK_SECRET", "s3cret"),
            ("IBSIGHT_DETECT__CLEAR_SAMPLES", "3"),
        ],
        &[],
    );
    let client = reqwest::Client::new();
    let t = now_ms() - 600_000;

    // One critical incident: one notification, with the labels and the link.
    let (status, _) = post_json(&client, &srv.url, &storm("leaf1/p1", t), None).await;
    assert_eq!(status, 202);
    wait_for("leaf1 firing", Duration::from_secs(60), || {
        !am_notices(&hook, "leaf1").is_empty()
    })
    .await;
    let alert = am_alerts(&am.url)
        .await
        .into_iter()
        .find(|a| a["labels"]["node"] == "leaf1")
        .expect("leaf1 in Alertmanager");
    for label in [
        "alertname",
        "severity",
        "prediction_type",
        "incident_id",
        "scope",
        "node",
    ] {
        assert!(alert["labels"][label].is_string(), "{label}: {alert}");
    }
    assert_eq!(alert["labels"]["severity"], "critical");
    assert!(alert["annotations"]["description"]
        .as_str()
        .is_some_and(|d| !d.is_empty()));
    let incident = alert["labels"]["incident_id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(
        alert["generatorURL"],
        format!("https://ibsight.example.org/#incident={incident}")
    );

    // The webhook sink got it too, signed, with its delivery id.
    wait_for("webhook firing", Duration::from_secs(30), || {
        !hook.bodies("/hook").is_empty()
    })
    .await;
    {
        let got = hook.got.lock().unwrap();
        let (_, headers, body) = got.iter().find(|(p, _, _)| p == "/hook").expect("hook");
        let raw = serde_json::to_vec(body).expect("body");
        assert_eq!(
            headers["x-ibsight-signature"].to_str().unwrap(),
            sign(b"s3cret", &raw),
            "signature over the body"
        );
        assert_eq!(
            headers["x-ibsight-delivery"].to_str().unwrap(),
            body["id"].as_str().unwrap()
        );
        assert_eq!(body["status"], "firing");
    }

    // A silence made through Alertmanager's API: leaf2's alert arrives but notifies nobody.
    let silence = json!({"matchers": [{"name": "node", "value": "leaf2", "isRegex": false,
        "isEqual": true}], "startsAt": ibsight::clock::rfc3339(now_ms() - 1000),
        "endsAt": ibsight::clock::rfc3339(now_ms() + 3_600_000),
        "createdBy": "test", "comment": "recabling leaf2"});
    let r = client
        .post(format!("{}/api/v2/silences", am.url))
        .json(&silence)
        .send()
        .await
        .expect("silence");
    assert!(
        r.status().is_success(),
        "{}",
        r.text().await.unwrap_or_default()
    );
    post_json(&client, &srv.url, &storm("leaf2/p1", t), None).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let alerts = am_alerts(&am.url).await;
        if let Some(a) = alerts.iter().find(|a| a["labels"]["node"] == "leaf2") {
            assert_eq!(a["status"]["state"], "suppressed", "{a}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "leaf2 never reached Alertmanager"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // An outage: leaf3's alert waits, then arrives.
    link.down();
    post_json(&client, &srv.url, &storm("leaf3/p1", t), None).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(am_notices(&hook, "leaf3").is_empty());
    assert!(!am_alerts(&am.url)
        .await
        .iter()
        .any(|a| a["labels"]["node"] == "leaf3"));
    link.up().await;
    wait_for("leaf3 after the outage", Duration::from_secs(90), || {
        !am_notices(&hook, "leaf3").is_empty()
    })
    .await;

    // The resolution arrives.
    post_json(&client, &srv.url, &calm("leaf1/p1", t + 3000, 400), None).await;
    wait_for("leaf1 resolved", Duration::from_secs(90), || {
        am_notices(&hook, "leaf1")
            .iter()
            .any(|(s, _)| s == "resolved")
    })
    .await;

    // Re-sends every 2 s changed nothing: one firing notification per incident.
    tokio::time::sleep(Duration::from_secs(5)).await;
    for node in ["leaf1", "leaf3"] {
        let firing: Vec<_> = am_notices(&hook, node)
            .into_iter()
            .filter(|(s, _)| s == "firing")
            .collect();
        assert_eq!(firing.len(), 1, "{node}: {firing:?}");
    }
    assert!(am_notices(&hook, "leaf2").is_empty(), "silenced");
    assert!(hook
        .bodies("/hook")
        .iter()
        .any(|b| b["status"] == "resolved" && b["incident_id"] == incident.as_str()));
    srv.terminate();
    drop(am);
}
