//! With no AWS configured: anomalies → rules insights → deduplicated alerts, served from the
//! embedded views by `/v1/insights/recent` and `/v1/alerts/recent`; a restart resumes the
//! projections at their checkpoints without duplicates.

mod common;

use common::{get_json, now_ms, post_json, Server};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn until(
    client: &reqwest::Client,
    url: &str,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, v) = get_json(client, url, None).await;
        if status == 200 && ok(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: last answer {status} {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn util(stream: &str, ts: i64, u: f64) -> Value {
    json!({"stream_id": stream, "timestamp": ts, "utilization": u})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insights_and_deduplicated_alerts_from_the_embedded_views() {
    let client = reqwest::Client::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = Server::start(dir.path(), &[]);
    let t = now_ms() - 60_000;
    // "a": a receive buffer overrun (critical): an incident, an alert. Then the other end of
    // a's cable, "a2", overruns too: the incident becomes a link incident and is analysed
    // again, inside the 5-minute window: one suppressed repeat. "b": a busy link (low risk):
    // an insight, no alert.
    let cable = |stream: &str, guid: &str, peer: &str, ts: i64, overruns: u64| {
        json!({"stream_id": stream, "timestamp": ts, "utilization": 50,
            "node_guid": guid, "port_num": 1, "node_type": "switch",
            "peer": {"node_guid": peer, "port_num": 1},
            "counters": {"ExcessiveBufferOverrunErrors": overruns}})
    };
    let (a, a2) = ("0x00000000000000a1", "0x00000000000000a2");
    let mut samples = vec![cable("a", a, a2, t, 0), cable("a", a, a2, t + 1000, 1)];
    samples.extend(
        [50.0, 85.0, 85.0, 85.0]
            .iter()
            .enumerate()
            .map(|(i, u)| util("b", t + i as i64 * 1000, *u)),
    );
    let (status, answer) = post_json(&client, &srv.url, &json!({ "samples": samples }), None).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["anomalies"], 2);
    let alerts_url = format!("{}/v1/alerts/recent", srv.url);
    until(&client, &alerts_url, "a's alert", |v| {
        v["alerts"].as_array().is_some_and(|a| a.len() == 1)
    })
    .await;
    let body = json!({"samples": [cable("a2", a2, a, t, 0), cable("a2", a2, a, t + 1000, 1)]});
    let (status, answer) = post_json(&client, &srv.url, &body, None).await;
    assert_eq!((status, &answer["anomalies"]), (202, &json!(1)), "{answer}");

    let alerts = until(
        &client,
        &alerts_url,
        "one alert with one suppressed repeat",
        |v| {
            v["alerts"]
                .as_array()
                .is_some_and(|a| a.len() == 1 && a[0]["suppressed"] == 1)
        },
    )
    .await;
    let alert = &alerts["alerts"][0];
    assert_eq!(alert["related_entity"], "a");
    assert!(alert["incident_id"].is_string(), "{alert}");
    assert_eq!(alert["entity_type"], "alert");
    assert!(alert["risk_score"].as_u64() >= Some(80));

    let insights_url = format!("{}/v1/insights/recent", srv.url);
    let insights = until(&client, &insights_url, "three insights", |v| {
        v["insights"].as_array().is_some_and(|a| a.len() == 3)
    })
    .await;
    let items = insights["insights"].as_array().expect("insights");
    common::assert_newest_first(items);
    for i in items {
        assert_eq!(i["entity_type"], "insight");
        assert!(i["entity_id"]
            .as_str()
            .is_some_and(|e| e.starts_with("insight#")));
        assert!(i["recommendations"]
            .as_array()
            .is_some_and(|r| (2..=4).contains(&r.len())));
        assert!(i["evidence"]["rule"].is_string(), "{i}");
        assert!(i["ttl"].as_i64() > Some(0));
    }
    let (_, critical) = get_json(&client, &format!("{insights_url}?min_risk=80"), None).await;
    assert_eq!(critical["insights"].as_array().map(Vec::len), Some(2));
    let (_, only_b) = get_json(
        &client,
        &format!("{insights_url}?stream_id=b&limit=10"),
        None,
    )
    .await;
    let only_b = only_b["insights"].as_array().expect("insights");
    assert_eq!(only_b.len(), 1);
    assert_eq!(only_b[0]["related_entity"], "b");
    let (status, _) = get_json(&client, &format!("{insights_url}?limit=0"), None).await;
    assert_eq!(status, 400);

    // An operator marks the alert a false positive (its id holds '#', sent as %23).
    let alert_id = alert["alert_id"].as_str().expect("alert_id").to_string();
    let triage_url = format!(
        "{}/v1/alerts/{}/triage",
        srv.url,
        alert_id.replace('#', "%23")
    );
    let triage = |body: Value, url: String| {
        let client = client.clone();
        async move {
            let r = client.post(url).json(&body).send().await.expect("post");
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, answer) = triage(json!({"verdict": "false_positive"}), triage_url.clone()).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["triage_seq"], 1);
    let (status, answer) = triage(json!({"verdict": "maybe"}), triage_url.clone()).await;
    assert_eq!(status, 400);
    assert!(answer.to_string().contains("verdict"), "{answer}");
    let unknown = format!("{}/v1/alerts/zz%231/triage", srv.url);
    assert_eq!(
        triage(json!({"verdict": "confirmed"}), unknown).await.0,
        404
    );
    let false_positives = |text: String| -> f64 {
        text.lines()
            .find(|l| l.starts_with("ibsight_alert_triage_total{verdict=\"false_positive\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0)
    };
    let scrape = |url: String| {
        let client = client.clone();
        async move {
            client
                .get(url)
                .send()
                .await
                .expect("scrape")
                .text()
                .await
                .expect("text")
        }
    };
    assert_eq!(
        false_positives(scrape(format!("{}/metrics", srv.url)).await),
        1.0
    );
    srv.terminate();

    // Restart: the projections resume at their checkpoints; nothing is written twice.
    let srv = Server::start(dir.path(), &[]);
    let stats_url = format!("{}/v1/stats", srv.url);
    until(&client, &stats_url, "projections caught up", |v| {
        v["projections"]
            .as_array()
            .is_some_and(|p| p.iter().all(|p| p["events_behind"] == 0))
    })
    .await;
    let alerts_url = format!("{}/v1/alerts/recent", srv.url);
    let insights_url = format!("{}/v1/insights/recent", srv.url);
    let (_, alerts) = get_json(&client, &alerts_url, None).await;
    assert_eq!(
        alerts["alerts"].as_array().map(Vec::len),
        Some(1),
        "{alerts}"
    );
    let (_, insights) = get_json(&client, &insights_url, None).await;
    assert_eq!(insights["insights"].as_array().map(Vec::len), Some(3));
    let (_, alert_log) = get_json(
        &client,
        &format!("{}/v1/streams/%23alerts/events", srv.url),
        None,
    )
    .await;
    // The alert stream reads like any other (read-only).
    assert_eq!(
        alert_log["events"].as_array().map(Vec::len),
        Some(2),
        "{alert_log}"
    );
    let (_, incidents) = get_json(&client, &format!("{}/v1/incidents", srv.url), None).await;
    let incidents = incidents["incidents"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(incidents.len(), 2, "{incidents:?}");
    let link = incidents
        .iter()
        .find(|i| i["scope"] == "link")
        .expect("a link incident");
    assert_eq!(link["alerted"], true);
    assert_eq!(link["ports"].as_array().map(Vec::len), Some(2));
    assert_eq!(link["prediction_type"], "packet_loss_detected");
    // The verdicts are in the log: the counter is back after the restart.
    assert_eq!(
        false_positives(scrape(format!("{}/metrics", srv.url)).await),
        1.0
    );
    srv.terminate();

    let out = std::process::Command::new(common::binary())
        .args(["events", "--stream", "#alerts", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("events");
    let types: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("json")["event_type"]
                .as_str()
                .expect("type")
                .to_string()
        })
        .collect();
    assert_eq!(
        types,
        vec!["AlertRaised", "AlertSuppressed"],
        "exactly one decision per insight"
    );
}

/// The dashboard's endpoints: insight filters by type and switch, the fabric by worst open
/// risk, a stream's series against its baseline, the AI health figures; bad parameters are
/// named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_endpoints_filter_aggregate_and_name_bad_parameters() {
    let client = reqwest::Client::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = Server::start(dir.path(), &[]);
    let t = now_ms() - 60_000;
    let mut samples = Vec::new();
    let overrun = |ts: i64, n: u64| {
        json!({"stream_id": "leafA/p1", "timestamp": ts, "utilization": 50,
            "counters": {"ExcessiveBufferOverrunErrors": n}})
    };
    for i in 0..30 {
        samples.push(overrun(t + i * 1000, 0));
        samples.push(util("leafB/p1", t + i * 1000, 50.0));
        samples.push(util("leafB/p2", t + i * 1000, 50.0));
    }
    samples.push(overrun(t + 30_000, 1)); // critical: stays open
    for i in 30..33 {
        samples.push(util("leafB/p1", t + i * 1000, 85.0)); // a busy link: low risk
        samples.push(util("leafB/p2", t + i * 1000, 50.0)); // (a port that stops is stale)
    }
    let (status, answer) = post_json(&client, &srv.url, &json!({ "samples": samples }), None).await;
    assert_eq!(status, 202, "{answer}");

    let fabric_url = format!("{}/v1/fabric", srv.url);
    let fabric = until(&client, &fabric_url, "both anomalies with insights", |v| {
        v["switches"].as_array().is_some_and(|s| {
            s.len() == 2
                && s.iter()
                    .all(|s| s["at_risk"][0]["prediction_types"][0].is_string())
        })
    })
    .await;
    assert_eq!(fabric["streams"], 3);
    assert_eq!(fabric["switches_total"], 2);
    assert_eq!(
        fabric["switches"][0]["switch"], "leafA",
        "worst first: {fabric}"
    );
    assert!(
        fabric["switches"][0]["worst_risk"].as_u64() >= Some(80),
        "{fabric}"
    );
    assert_eq!(fabric["switches"][1]["switch"], "leafB");
    assert_eq!(fabric["switches"][1]["ports"], 2);
    assert_eq!(fabric["switches"][1]["ports_with_open_anomalies"], 1);
    let (_, capped) = get_json(&client, &format!("{fabric_url}?max_switches=1"), None).await;
    assert_eq!(capped["switches"].as_array().map(Vec::len), Some(1));
    assert_eq!(capped["switches_total"], 2);

    let recent = format!("{}/v1/insights/recent", srv.url);
    let (_, by_switch) = get_json(&client, &format!("{recent}?switch=leafB"), None).await;
    let items = by_switch["insights"].as_array().expect("insights");
    assert_eq!(items.len(), 1, "{by_switch}");
    assert_eq!(items[0]["related_entity"], "leafB/p1");
    let (_, by_type) = get_json(
        &client,
        &format!("{recent}?prediction_type=packet_loss_detected&min_risk=80"),
        None,
    )
    .await;
    let items = by_type["insights"].as_array().expect("insights");
    assert_eq!(items.len(), 1, "{by_type}");
    assert_eq!(items[0]["related_entity"], "leafA/p1");

    let (status, series) = get_json(
        &client,
        &format!("{}/v1/streams/leafB/p1/series?points=10", srv.url),
        None,
    )
    .await;
    assert_eq!(status, 200, "{series}");
    assert_eq!(series["t"].as_array().map(Vec::len), Some(10));
    assert_eq!(series["metrics"]["utilization"]["value"][9], 85.0);
    assert_eq!(series["metrics"]["utilization"]["mean"][9], 50.0);
    assert_eq!(series["anomalies"][0]["kind"], "detected");
    assert_eq!(series["anomalies"][0]["metric"], "utilization");

    let (status, health) = get_json(&client, &format!("{}/v1/ai/health", srv.url), None).await;
    assert_eq!(status, 200);
    assert_eq!(health["backend"], "rules");
    assert_eq!(health["prompt_version"], "ib-insight-v3");
    assert_eq!(health["calls"]["calls"], 0);
    assert!(health["daily_budget_usd"].as_f64() > Some(0.0), "{health}");

    for (path, field) in [
        ("/v1/fabric?max_ports=0", "max_ports"),
        ("/v1/fabric?switches=1", "switches"),
        ("/v1/streams/leafA/p1/series?points=0", "points"),
        ("/v1/streams/leafA/p1/series?points=abc", "points"),
        (
            "/v1/insights/recent?prediction_type=bogus",
            "prediction_type",
        ),
    ] {
        let (status, body) = get_json(&client, &format!("{}{path}", srv.url), None).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.to_string().contains(field), "{path}: {body}");
    }
    let (status, _) = get_json(
        &client,
        &format!("{}/v1/streams/nope/1/series", srv.url),
        None,
    )
    .await;
    assert_eq!(status, 404);
    srv.terminate();
}
