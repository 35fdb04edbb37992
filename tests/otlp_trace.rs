//! One traced request, end to end: `ibsight serve` exports spans over OTLP/HTTP to a receiver
//! in this test, which decodes them with the opentelemetry-proto types. A request carrying a
//! sampled `traceparent` and triggering an anomaly yields one trace: the HTTP span, the stream
//! actor's span, the store append, the analyst's batch with the model call (against the local
//! Bedrock-protocol server, with gen_ai attributes), and the sink writes to DynamoDB and
//! EventBridge (moto_server), each parented to the span that caused it. The sampler is
//! `parentbased_always_off`, so a request without a sampled caller exports nothing at all.

mod common;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use common::{binary, now_ms, Moto, Server, AWS_UNSET};
use ibsight::cli::bench::fake_bedrock::{FakeBedrock, FakeReply};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

#[derive(Clone, Default)]
struct Received {
    spans: Arc<Mutex<Vec<(String, Span)>>>,
}

/// `POST /v1/traces` as an OTLP/HTTP collector answers it: protobuf in, protobuf out.
async fn receive(State(r): State<Received>, body: Bytes) -> Vec<u8> {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export");
    let mut spans = r.spans.lock().expect("lock");
    for rs in request.resource_spans {
        let service = rs
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|a| a.key == "service.name")
            .and_then(|a| a.value.as_ref()?.value.as_ref())
            .map(|v| match v {
                AnyValue::StringValue(s) => s.clone(),
                other => format!("{other:?}"),
            })
            .unwrap_or_default();
        for ss in rs.scope_spans {
            spans.extend(ss.spans.into_iter().map(|s| (service.clone(), s)));
        }
    }
    ExportTraceServiceResponse::default().encode_to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attr(span: &Span, key: &str) -> Option<AnyValue> {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref()?.value.clone())
}

fn find<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    let found: Vec<&Span> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(
        found.len(),
        1,
        "exactly one {name:?} span in {:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    found[0]
}

fn assert_parent(child: &Span, parent: &Span) {
    assert_eq!(
        hex(&child.parent_span_id),
        hex(&parent.span_id),
        "{:?} should be a child of {:?}",
        child.name,
        parent.name
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_is_one_trace_from_http_to_the_sinks() {
    let received = Received::default();
    let app = axum::Router::new()
        .route("/v1/traces", post(receive))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let collector = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let fake = FakeBedrock::start(None).await.expect("fake bedrock");
    fake.script([FakeReply::Text(
        json!({
            "prediction_type": "connection_instability",
            "risk_score": 91,
            "explanation": "fake model: the link is flapping",
            "recommendations": ["Reseat the cable"],
            "confidence": 0.9,
        })
        .to_string(),
    )]);
    let moto = Moto::start();
    let init = std::process::Command::new(binary())
        .args(["aws", "init"])
        .envs(moto.env())
        .output()
        .expect("aws init");
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );

    let mut env: Vec<(&str, String)> = moto
        .env()
        .into_iter()
        .filter(|(k, _)| *k != "IBSIGHT_AWS__ENDPOINT_URL")
        .collect();
    env.extend([
        ("AWS_ENDPOINT_URL_DYNAMODB", moto.url.clone()),
        ("AWS_ENDPOINT_URL_EVENTBRIDGE", moto.url.clone()),
        ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", fake.url()),
        ("IBSIGHT_ANALYST__BACKEND", "bedrock".into()),
        ("IBSIGHT_DYNAMODB__ENABLED", "true".into()),
        ("IBSIGHT_EVENTBRIDGE__ENABLED", "true".into()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.clone()),
        ("OTEL_SERVICE_NAME", "ibsight-under-test".into()),
        ("OTEL_TRACES_SAMPLER", "parentbased_always_off".into()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
    ]);
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = Server::start_with(dir.path(), &pairs, AWS_UNSET);
    let client = reqwest::Client::new();
    let t = now_ms() - 10_000;

    // Not sampled (no caller): must export nothing, though it writes events.
    let quiet = json!({"samples": [
        {"stream_id": "leaf9/p1", "timestamp": t, "utilization": 40},
    ]});
    let answer = client
        .post(format!("{}/v1/metrics", srv.url))
        .json(&quiet)
        .send()
        .await
        .expect("post");
    assert_eq!(answer.status(), 202);

    // Sampled by the caller, with a critical anomaly (its incident alerts): the traced request.
    let spike = json!({ "samples": common::overrun("leaf2/p4", t) });
    let answer = client
        .post(format!("{}/v1/metrics", srv.url))
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
        .json(&spike)
        .send()
        .await
        .expect("post");
    assert_eq!(answer.status(), 202);

    let deadline = Instant::now() + Duration::from_secs(60);
    let spans = loop {
        let spans: Vec<(String, Span)> = received.spans.lock().expect("lock").clone();
        let names: Vec<&str> = spans.iter().map(|(_, s)| s.name.as_str()).collect();
        if names.contains(&"dynamodb.BatchWriteItem") && names.contains(&"events.PutEvents") {
            break spans;
        }
        assert!(
            Instant::now() < deadline,
            "the sink spans never arrived; got {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    srv.terminate();

    assert!(spans
        .iter()
        .all(|(service, _)| service == "ibsight-under-test"));
    let trace_ids: std::collections::BTreeSet<String> =
        spans.iter().map(|(_, s)| hex(&s.trace_id)).collect();
    assert_eq!(
        trace_ids.into_iter().collect::<Vec<_>>(),
        vec![TRACE_ID.to_string()],
        "one trace, the caller's; the unsampled request exported nothing"
    );
    let spans: Vec<Span> = spans.into_iter().map(|(_, s)| s).collect();

    let http = find(&spans, "POST /v1/metrics");
    assert_eq!(
        hex(&http.parent_span_id),
        CALLER_SPAN,
        "continues the caller"
    );
    let actor = find(&spans, "stream.observe");
    assert_parent(actor, http);
    assert_eq!(
        attr(actor, "stream_id"),
        Some(AnyValue::StringValue("leaf2/p4".into()))
    );
    let append = find(&spans, "store.append");
    assert_parent(append, actor);
    let batch = find(&spans, "analyst.batch");
    assert_parent(batch, actor);
    let model = find(&spans, "chat anthropic.claude-3-5-haiku-20241022-v1:0");
    assert_parent(model, batch);
    assert_eq!(
        attr(model, "gen_ai.system"),
        Some(AnyValue::StringValue("aws.bedrock".into()))
    );
    assert_eq!(
        attr(model, "gen_ai.request.model"),
        Some(AnyValue::StringValue(
            "anthropic.claude-3-5-haiku-20241022-v1:0".into()
        ))
    );
    assert_eq!(
        attr(model, "gen_ai.response.finish_reasons"),
        Some(AnyValue::StringValue("end_turn".into()))
    );
    for tokens in ["gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"] {
        assert!(
            matches!(attr(model, tokens), Some(AnyValue::IntValue(n)) if n > 0),
            "{tokens}: {:?}",
            attr(model, tokens)
        );
    }
    // The insight (and the alert it raised) carry the analyst's span in their envelope; the
    // sink writes continue from it. A sink write covers one page of the log: its parent is the
    // page's first traced event and the others are links, so when the incident's item (whose
    // envelope is the stream actor's) and the insight's item land in one page, the write is the
    // actor's child with a link to the analyst's batch; in two pages, one write each.
    let continues = |s: &Span| {
        s.parent_span_id == batch.span_id || s.links.iter().any(|l| l.span_id == batch.span_id)
    };
    for name in ["dynamodb.BatchWriteItem", "events.PutEvents"] {
        let sinks: Vec<&Span> = spans.iter().filter(|s| s.name == name).collect();
        assert!(sinks.iter().any(|s| continues(s)), "{name}");
        for sink in sinks {
            if continues(sink) {
                assert!(sink.start_time_unix_nano >= model.end_time_unix_nano);
            }
            if sink.parent_span_id != batch.span_id {
                assert_eq!(name, "dynamodb.BatchWriteItem");
                assert_parent(sink, actor);
            }
        }
    }
}
