//! The AWS sinks against moto_server through the real SDK clients: `aws init`, insight items
//! in DynamoDB read back newest first through the GSI, critical alerts through an EventBridge
//! rule into SQS exactly once per incident, an outage of the AWS endpoint that delays but
//! loses or duplicates nothing, and a restart that resumes at the checkpoints.

mod common;

use common::{binary, get_json, now_ms, post_json, Moto, Outage, Server, AWS_UNSET};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const TABLE: &str = "iops-dashboard-metrics";

fn serve(
    dir: &std::path::Path,
    moto: &Moto,
    endpoint: &str,
    extra: &[(&'static str, &str)],
) -> Server {
    let mut env = moto.env();
    env.retain(|(k, _)| *k != "IBSIGHT_AWS__ENDPOINT_URL");
    env.push(("IBSIGHT_AWS__ENDPOINT_URL", endpoint.to_string()));
    env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::start_with(dir, &pairs, AWS_UNSET)
}

fn aws_init(moto: &Moto) {
    let out = std::process::Command::new(binary())
        .args(["aws", "init"])
        .envs(moto.env())
        .output()
        .expect("aws init");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_init_creates_the_table_the_gsi_and_ttl() {
    let moto = Moto::start();
    aws_init(&moto);
    let ddb = aws_sdk_dynamodb::Client::new(&moto.sdk().await);
    let table = ddb
        .describe_table()
        .table_name(TABLE)
        .send()
        .await
        .expect("describe");
    let t = table.table().expect("table");
    let keys: Vec<(&str, &str)> = t
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name(), k.key_type().as_str()))
        .collect();
    assert_eq!(keys, vec![("entity_id", "HASH"), ("timestamp", "RANGE")]);
    let gsi = &t.global_secondary_indexes()[0];
    assert_eq!(gsi.index_name(), Some("EntityTypeIndex"));
    let gsi_keys: Vec<&str> = gsi
        .key_schema()
        .iter()
        .map(|k| k.attribute_name())
        .collect();
    assert_eq!(gsi_keys, vec!["entity_type", "timestamp"]);
    let ttl = ddb
        .describe_time_to_live()
        .table_name(TABLE)
        .send()
        .await
        .expect("ttl");
    assert_eq!(
        ttl.time_to_live_description()
            .and_then(|d| d.attribute_name()),
        Some("ttl")
    );
    // Running it again changes nothing.
    aws_init(&moto);
}

/// A rule with the seed's pattern, targeting a fresh SQS queue. Returns the queue URL.
async fn critical_rule_to_queue(moto: &Moto) -> (aws_sdk_sqs::Client, String) {
    let pattern = json!({"source": ["iops.ai.lambda"], "detail-type": ["Critical Insight"],
        "detail": {"risk_score": [{"numeric": [">=", 80]}]}});
    rule_to_queue(moto, "critical", pattern).await
}

/// A rule named `name` with `pattern`, targeting a fresh SQS queue of the same name.
async fn rule_to_queue(moto: &Moto, name: &str, pattern: Value) -> (aws_sdk_sqs::Client, String) {
    let sdk = moto.sdk().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue = sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("queue");
    let url = queue.queue_url().expect("url").to_string();
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("attrs");
    let arn = attrs
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .expect("arn")
        .clone();
    let events = aws_sdk_eventbridge::Client::new(&sdk);
    events
        .put_rule()
        .name(name)
        .event_pattern(pattern.to_string())
        .send()
        .await
        .expect("rule");
    events
        .put_targets()
        .rule(name)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(arn)
                .build()
                .expect("target"),
        )
        .send()
        .await
        .expect("targets");
    (sqs, url)
}

/// Every EventBridge event now in the queue (deleting them), as its body.
async fn drain_events(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let got = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .send()
            .await
            .expect("receive");
        if got.messages().is_empty() {
            return out;
        }
        for m in got.messages() {
            out.push(serde_json::from_str(m.body().unwrap_or("{}")).expect("json"));
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await
                .expect("delete");
        }
    }
}

/// Every alert now in the queue (deleting them), as alert ids.
async fn drain(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for body in drain_events(sqs, url).await {
        assert_eq!(body["source"], "iops.ai.lambda");
        assert_eq!(body["detail-type"], "Critical Insight");
        assert!(body["detail"]["risk_score"].as_u64() >= Some(80), "{body}");
        ids.push(
            body["detail"]["alert_id"]
                .as_str()
                .expect("alert_id")
                .to_string(),
        );
    }
    ids
}

async fn table_items(moto: &Moto, entity_type: &str) -> Vec<Value> {
    let ddb = aws_sdk_dynamodb::Client::new(&moto.sdk().await);
    let out = ddb.scan().table_name(TABLE).send().await.expect("scan");
    out.items()
        .iter()
        .map(ibsight::aws::attr::from_item)
        .filter(|i| i["entity_type"] == entity_type)
        .collect()
}

async fn caught_up(client: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, stats) = get_json(client, &format!("{url}/v1/stats"), None).await;
        // Every projection has checkpointed the whole log (the correlator and the alerts
        // append events the others then read).
        let head = &stats["store"]["last_offset"];
        let done = stats["projections"]
            .as_array()
            .is_some_and(|p| !p.is_empty() && p.iter().all(|p| &p["checkpoint"] == head));
        let idle =
            stats["analyst"]["queue_depth"] == 0 && stats["analyst"]["incidents_waiting"] == 0;
        if done && idle {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "projections did not catch up: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A critical incident per stream (a receive buffer overrun, which goes on), and one
/// low-risk incident (a busy link) on `warn/1`.
fn storm(streams: &[&str], t: i64) -> Value {
    let mut samples = Vec::new();
    for s in streams {
        for (i, overruns) in [0, 1, 2].iter().enumerate() {
            samples.push(json!({"stream_id": s, "timestamp": t + i as i64 * 1000,
                "utilization": 50, "counters": {"ExcessiveBufferOverrunErrors": overruns}}));
        }
    }
    for (i, u) in [50, 85, 85, 85].iter().enumerate() {
        samples.push(
            json!({"stream_id": "warn/1", "timestamp": t + i as i64 * 1000, "utilization": u}),
        );
    }
    json!({ "samples": samples })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insights_and_alerts_reach_aws_exactly_once_through_outages_and_restarts() {
    let moto = Moto::start();
    aws_init(&moto);
    let (sqs, queue) = critical_rule_to_queue(&moto).await;
    let client = reqwest::Client::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let on = [
        ("IBSIGHT_DYNAMODB__ENABLED", "true"),
        ("IBSIGHT_EVENTBRIDGE__ENABLED", "true"),
    ];
    // ibsight reaches AWS through a link the test can cut.
    let mut link = Outage::start(&moto.url).await;
    let srv = serve(dir.path(), &moto, &link.url, &on);
    let t = now_ms() - 120_000;

    // Two critical incidents and one low-risk one.
    let (status, _) = post_json(
        &client,
        &srv.url,
        &storm(&["leaf1/p1", "leaf1/p2"], t),
        None,
    )
    .await;
    assert_eq!(status, 202);
    caught_up(&client, &srv.url).await;
    let mut alerts = drain(&sqs, &queue).await;
    alerts.sort();
    assert_eq!(
        alerts.len(),
        2,
        "one message per critical incident: {alerts:?}"
    );
    let insight_items = table_items(&moto, "insight").await;
    assert_eq!(insight_items.len(), 3);
    // The rules answered: no item is marked low confidence, and each carries the mark.
    assert!(
        insight_items.iter().all(|i| i["low_confidence"] == false),
        "{insight_items:?}"
    );
    assert_eq!(table_items(&moto, "alert").await.len(), 2);
    assert_eq!(table_items(&moto, "incident").await.len(), 3);
    let alert_items = table_items(&moto, "alert").await;
    assert!(
        alert_items
            .iter()
            .all(|a| a["incident_id"].as_str().is_some()),
        "{alert_items:?}"
    );

    // The GSI query answers the API, newest first.
    let (_, recent) = get_json(
        &client,
        &format!("{}/v1/insights/recent?limit=10", srv.url),
        None,
    )
    .await;
    let items = recent["insights"].as_array().expect("insights");
    assert_eq!(items.len(), 3, "{recent}");
    common::assert_newest_first(items);

    // AWS goes away during ingest (longer than the SDK's 5 s attempt timeout, so calls fail
    // and are retried): work waits, then everything lands exactly once.
    link.down();
    let (status, _) = post_json(
        &client,
        &srv.url,
        &storm(&["leaf2/p1", "leaf2/p2", "leaf2/p3"], t + 10_000),
        None,
    )
    .await;
    assert_eq!(status, 202, "ingest does not depend on AWS");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (_, stats) = get_json(&client, &format!("{}/v1/stats", srv.url), None).await;
    let behind: u64 = stats["projections"]
        .as_array()
        .expect("projections")
        .iter()
        .filter(|p| p["name"] == "dynamodb" || p["name"] == "eventbridge")
        .map(|p| p["events_behind"].as_u64().unwrap_or(0))
        .sum();
    assert!(
        behind > 0,
        "the AWS projections must be waiting during the outage: {stats}"
    );
    link.up().await;
    caught_up(&client, &srv.url).await;
    let more = drain(&sqs, &queue).await;
    assert_eq!(more.len(), 3, "three new critical incidents: {more:?}");
    // Three new insights: warn/1's anomaly is still open, so it adds none.
    assert_eq!(table_items(&moto, "insight").await.len(), 3 + 3);
    assert_eq!(table_items(&moto, "alert").await.len(), 5);
    srv.terminate();

    // A restart resumes at the checkpoints: no item or message twice.
    let srv = serve(dir.path(), &moto, &link.url, &on);
    caught_up(&client, &srv.url).await;
    assert!(
        drain(&sqs, &queue).await.is_empty(),
        "a restart re-sent alerts"
    );
    assert_eq!(table_items(&moto, "insight").await.len(), 6);
    assert_eq!(table_items(&moto, "alert").await.len(), 5);
    srv.terminate();
}

/// Poll the stats until `cond` holds.
async fn stats_until(
    client: &reqwest::Client,
    url: &str,
    what: &str,
    cond: impl Fn(&Value) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, stats) = get_json(client, &format!("{url}/v1/stats"), None).await;
        if cond(&stats) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {stats}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn behind(stats: &Value, name: &str) -> u64 {
    stats["projections"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == name)
        .and_then(|p| p["events_behind"].as_u64())
        .unwrap_or(u64::MAX)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_an_aws_outage_and_again_during_recovery_loses_nothing() {
    let moto = Moto::start();
    aws_init(&moto);
    let (sqs, queue) = critical_rule_to_queue(&moto).await;
    let client = reqwest::Client::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let on = [
        ("IBSIGHT_DYNAMODB__ENABLED", "true"),
        ("IBSIGHT_EVENTBRIDGE__ENABLED", "true"),
    ];
    let mut link = Outage::start(&moto.url).await;
    let srv = serve(dir.path(), &moto, &link.url, &on);
    let t = now_ms() - 120_000;
    let streams: Vec<String> = (1..=12).map(|i| format!("leaf9/p{i}")).collect();
    let names: Vec<&str> = streams.iter().map(String::as_str).collect();

    // AWS is down while twelve critical incidents are recorded and alerted locally.
    link.down();
    let (status, _) = post_json(&client, &srv.url, &storm(&names, t), None).await;
    assert_eq!(status, 202);
    stats_until(&client, &srv.url, "alerts decided, AWS behind", |s| {
        s["analyst"]["queue_depth"] == 0
            && s["analyst"]["incidents_waiting"] == 0
            && behind(s, "alerts") == 0
            && behind(s, "views") == 0
            && behind(s, "dynamodb") > 0
            && behind(s, "eventbridge") > 0
    })
    .await;
    // SIGKILL during the outage.
    srv.kill9();

    // Back up, AWS still down for a moment, then up: SIGKILL again as soon as the first items
    // arrive (during recovery).
    let srv = serve(dir.path(), &moto, &link.url, &on);
    tokio::time::sleep(Duration::from_millis(500)).await;
    link.up().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while table_items(&moto, "insight").await.is_empty() {
        assert!(Instant::now() < deadline, "nothing reached DynamoDB");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    srv.kill9();

    let srv = serve(dir.path(), &moto, &link.url, &on);
    caught_up(&client, &srv.url).await;
    // DynamoDB: every item exactly once (12 incidents' insights + the warning's; 12 alerts).
    assert_eq!(table_items(&moto, "insight").await.len(), 13);
    assert_eq!(table_items(&moto, "alert").await.len(), 12);
    // EventBridge: every alert at least once, by its deterministic id; duplicates only from a
    // crash between PutEvents and its checkpoint: at most the alerts of the page in flight
    // (here all 12 fit in one page, so at most 12; usually 0).
    let msgs = drain(&sqs, &queue).await;
    let mut unique = msgs.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 12, "every alert arrived: {msgs:?}");
    let duplicates = msgs.len() - unique.len();
    eprintln!(
        "eventbridge messages: {} for 12 alerts ({duplicates} duplicates)",
        msgs.len()
    );
    assert!(duplicates <= 12, "{duplicates} duplicates: {msgs:?}");
    srv.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recent_query_whose_filter_matches_nothing_stops_after_scan_max_items() {
    let moto = Moto::start();
    aws_init(&moto);
    let sink = ibsight::projections::dynamodb::DynamoSink::new(&moto.sdk().await, TABLE);
    let items: Vec<_> = (0..450)
        .map(|i| {
            ibsight::aws::attr::to_item(&json!({
                "entity_id": format!("insight#s/p1#{i}"),
                "timestamp": format!("2026-12-01T00:{:02}:{:02}Z", i / 60, i % 60),
                "entity_type": "insight",
                "risk_score": 10,
            }))
        })
        .collect();
    sink.put(items).await.expect("put");
    let (found, examined) = sink
        .recent_examined("insight", 10, 200, |_| false)
        .await
        .expect("query");
    assert!(found.is_empty());
    // Pages of 100: it stops at the first page boundary past 200, not after all 450.
    assert!((200..=300).contains(&examined), "examined {examined}");
    let (found, _) = sink
        .recent_examined("insight", 10, 200, |_| true)
        .await
        .expect("query");
    assert_eq!(found.len(), 10);
}

/// Every digest now in the queue (deleting them), as their `detail`.
async fn drain_digests(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for body in drain_events(sqs, url).await {
        assert_eq!(body["detail-type"], "Insight Digest", "{body}");
        out.push(body["detail"].clone());
    }
    out
}

/// The periodic digest (every 2 s here, hourly by default): each period's incidents opened by
/// type and scope, alerts raised, top ports, reach EventBridge as `Insight Digest` and
/// `GET /v1/digest`, the same digests on both, one per period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_digest_sums_up_each_period_on_eventbridge_and_the_api() {
    let moto = Moto::start();
    aws_init(&moto);
    let pattern = json!({"source": ["iops.ai.lambda"], "detail-type": ["Insight Digest"]});
    let (sqs, queue) = rule_to_queue(&moto, "digests", pattern).await;
    let client = reqwest::Client::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let on = [
        ("IBSIGHT_EVENTBRIDGE__ENABLED", "true"),
        ("IBSIGHT_ALERTS__DIGEST_PERIOD_S", "2"),
    ];
    let srv = serve(dir.path(), &moto, &moto.url, &on);
    let (status, _) = post_json(
        &client,
        &srv.url,
        &storm(&["leaf1/p1", "leaf1/p2"], now_ms() - 120_000),
        None,
    )
    .await;
    assert_eq!(status, 202);
    caught_up(&client, &srv.url).await;
    // The incidents and alerts fall in whichever periods they were recorded in; wait until
    // the digests have counted them all (three incidents, two of them paging).
    let mut digests: Vec<Value> = Vec::new();
    let sum =
        |ds: &[Value], key: &str| ds.iter().map(|d| d[key].as_u64().unwrap_or(0)).sum::<u64>();
    let deadline = Instant::now() + Duration::from_secs(60);
    while sum(&digests, "incidents_opened") < 3 || sum(&digests, "alerts_raised") < 2 {
        assert!(
            Instant::now() < deadline,
            "the digests never counted the storm: {digests:?}"
        );
        digests.extend(drain_digests(&sqs, &queue).await);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(sum(&digests, "incidents_opened"), 3, "{digests:?}");
    assert_eq!(sum(&digests, "alerts_raised"), 2, "{digests:?}");
    // By type and scope: the counts add up, each with its scope.
    let opened: Vec<Value> = digests
        .iter()
        .flat_map(|d| d["opened"].as_array().cloned().unwrap_or_default())
        .collect();
    assert_eq!(sum(&opened, "count"), 3, "{opened:?}");
    assert!(opened.iter().all(|c| c["scope"].is_string()), "{opened:?}");
    let top: Vec<String> = digests
        .iter()
        .flat_map(|d| d["top_ports"].as_array().cloned().unwrap_or_default())
        .filter(|p| p["worst_risk"].as_u64() >= Some(80))
        .filter_map(|p| p["stream_id"].as_str().map(String::from))
        .collect();
    assert!(
        top.contains(&"leaf1/p1".to_string()) && top.contains(&"leaf1/p2".to_string()),
        "the paging ports lead: {digests:?}"
    );
    // Periods follow each other without gap or overlap.
    let mut periods: Vec<(String, String)> = digests
        .iter()
        .map(|d| (d["period_start"].to_string(), d["period_end"].to_string()))
        .collect();
    periods.sort();
    assert!(periods.windows(2).all(|w| w[0].1 == w[1].0), "{periods:?}");

    // The API has the same digests, newest first.
    let (status, api) = get_json(&client, &format!("{}/v1/digest?limit=168", srv.url), None).await;
    assert_eq!(status, 200, "{api}");
    assert_eq!(api["period_s"], 2);
    let listed = api["digests"].as_array().expect("digests");
    let ends: Vec<i64> = listed
        .iter()
        .map(|d| d["period_end_ms"].as_i64().unwrap_or(0))
        .collect();
    assert!(
        ends.windows(2).all(|w| w[0] > w[1]),
        "newest first: {ends:?}"
    );
    for d in &digests {
        assert!(listed.contains(d), "{d} is not listed by the API");
    }
    let (status, bad) = get_json(&client, &format!("{}/v1/digest?limit=0", srv.url), None).await;
    assert_eq!(status, 400, "{bad}");
    assert!(bad.to_string().contains("limit"), "{bad}");
    srv.terminate();
}
