//! The analyst through the real `aws-sdk-bedrockruntime` client against a local server that
//! speaks InvokeModel: success, fenced and prose answers, broken JSON, throttling, 5xx,
//! timeouts, the circuit breaker, the budget, the cache and batching. (That no label text reaches
//! the model is checked end to end in tests/analyst_e2e.rs, where labels actually exist.)

mod common;

use ibsight::analyst::bedrock::{local_sdk_config, BedrockModel};
use ibsight::analyst::insight::{InsightSource, PredictionType};
use ibsight::analyst::service::Analyst;
use ibsight::analyst::{AnalystConfig, Backend};
use ibsight::cli::bench::fake_bedrock::{FakeBedrock, FakeReply};
use ibsight::detect::rules::Severity;
use std::time::Duration;

const MODEL: &str = "anthropic.claude-3-5-haiku-20241022-v1:0";

use common::latency_job as job;

fn cfg() -> AnalystConfig {
    AnalystConfig {
        backend: Backend::Bedrock,
        max_retries: 3,
        timeout_s: 2,
        ..AnalystConfig::default()
    }
}

async fn setup(cfg: AnalystConfig, timeout: Duration) -> (FakeBedrock, Analyst) {
    let fake = FakeBedrock::start(None).await.expect("fake bedrock");
    let model =
        BedrockModel::from_sdk_config(&local_sdk_config(&fake.url()), &cfg.model_id, timeout);
    let analyst = Analyst::new(
        cfg,
        Some(model.into()),
        Duration::from_millis(5),
        ibsight::clock::now_ms(),
    );
    (fake, analyst)
}

const ANSWER: &str = r#"{"prediction_type":"latency_spike","risk_score":66,"explanation":"p99 is 3x baseline","recommendations":["Check PortXmitWait upstream","Review QoS"],"confidence":0.9}"#;

#[tokio::test]
async fn a_good_answer_becomes_an_ai_insight_with_its_accounting() {
    let (fake, analyst) = setup(cfg(), Duration::from_secs(2)).await;
    fake.script([FakeReply::Text(ANSWER.into())]);
    let out = analyst
        .analyse(&[job("leaf1/p1", 3, Severity::Major)])
        .await;
    let o = &out[0];
    assert_eq!(o.source, InsightSource::Ai, "{o:?}");
    assert_eq!(o.insight.prediction_type, PredictionType::LatencySpike);
    assert_eq!(o.insight.risk_score, 66);
    assert_eq!(o.insight.explanation, "p99 is 3x baseline");
    assert_eq!(o.attempts, 1);
    assert!(
        o.input_tokens > 0 && o.output_tokens > 0 && o.cost_usd > 0.0,
        "{o:?}"
    );
    assert_eq!(o.model_id.as_deref(), Some(MODEL));
    assert!(o.prompt_hash.is_some());

    let received = fake.received();
    assert_eq!(received.len(), 1);
    let r = &received[0];
    assert_eq!(r.model_id, MODEL, "the configured model id, ':' decoded");
    assert_eq!(r.body["temperature"], 0.3);
    assert_eq!(r.body["max_tokens"], 1000);
    assert_eq!(r.body["anthropic_version"], "bedrock-2023-05-31");
    assert!(
        r.authorization
            .as_deref()
            .is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256")),
        "the SDK signs with SigV4: {:?}",
        r.authorization
    );
}

#[tokio::test]
async fn fenced_json_and_prose_around_json_are_understood() {
    let (fake, analyst) = setup(cfg(), Duration::from_secs(2)).await;
    fake.script([
        FakeReply::Text(format!("```json\n{ANSWER}\n```")),
        FakeReply::Text(format!(
            "Sure. Here is the analysis:\n{ANSWER}\nHope this helps."
        )),
    ]);
    for seq in [1, 2] {
        let out = analyst
            .analyse(&[job(&format!("s{seq}"), seq, Severity::Major)])
            .await;
        assert_eq!(out[0].source, InsightSource::Ai, "{:?}", out[0]);
        assert_eq!(out[0].insight.risk_score, 66);
    }
}

#[tokio::test]
async fn broken_json_falls_back_to_the_rules() {
    let (fake, analyst) = setup(cfg(), Duration::from_secs(2)).await;
    fake.script([FakeReply::Text("{\"prediction_type\": \"latency_sp".into())]);
    let out = analyst.analyse(&[job("s", 1, Severity::Major)]).await;
    assert_eq!(out[0].source, InsightSource::Fallback);
    assert_eq!(out[0].reason.as_deref(), Some("parse_error"));
    assert!(
        out[0].insight.explanation.contains("latency_p99"),
        "rules explanation"
    );
}

#[tokio::test]
async fn throttling_is_retried_and_then_succeeds() {
    let (fake, analyst) = setup(cfg(), Duration::from_secs(2)).await;
    let throttle = FakeReply::Error {
        status: 429,
        error_type: "ThrottlingException".into(),
    };
    fake.script([throttle.clone(), throttle, FakeReply::Text(ANSWER.into())]);
    let out = analyst.analyse(&[job("s", 1, Severity::Major)]).await;
    assert_eq!(out[0].source, InsightSource::Ai, "{:?}", out[0]);
    assert_eq!(out[0].attempts, 3);
    assert_eq!(fake.received().len(), 3, "the retries reached the server");
}

#[tokio::test]
async fn persistent_throttling_falls_back_after_the_retry_cap() {
    let (fake, analyst) = setup(cfg(), Duration::from_secs(2)).await;
    fake.script((0..10).map(|_| FakeReply::Error {
        status: 429,
        error_type: "ThrottlingException".into(),
    }));
    let out = analyst.analyse(&[job("s", 1, Severity::Major)]).await;
    assert_eq!(out[0].source, InsightSource::Fallback);
    assert_eq!(out[0].reason.as_deref(), Some("throttled"));
    assert_eq!(out[0].attempts, 4, "1 call + 3 retries");
    assert_eq!(fake.received().len(), 4);
}

#[tokio::test]
async fn server_errors_are_retried_validation_errors_are_not() {
    let (fake, analyst) = setup(cfg(), Duration::from_secs(2)).await;
    fake.script([
        FakeReply::Error {
            status: 500,
            error_type: "InternalServerException".into(),
        },
        FakeReply::Text(ANSWER.into()),
    ]);
    let out = analyst.analyse(&[job("a", 1, Severity::Major)]).await;
    assert_eq!((out[0].source, out[0].attempts), (InsightSource::Ai, 2));

    fake.script([FakeReply::Error {
        status: 400,
        error_type: "ValidationException".into(),
    }]);
    let out = analyst.analyse(&[job("b", 2, Severity::Major)]).await;
    assert_eq!(out[0].source, InsightSource::Fallback);
    assert_eq!(out[0].reason.as_deref(), Some("rejected"));
    assert_eq!(out[0].attempts, 1, "no retry on a validation error");
}

#[tokio::test]
async fn a_slow_model_times_out_and_falls_back() {
    let cfg = AnalystConfig {
        max_retries: 1,
        ..cfg()
    };
    let (fake, analyst) = setup(cfg, Duration::from_millis(200)).await;
    let slow = || {
        FakeReply::Slow(
            Duration::from_secs(2),
            Box::new(FakeReply::Text(ANSWER.into())),
        )
    };
    fake.script([slow(), slow()]);
    let out = analyst.analyse(&[job("s", 1, Severity::Major)]).await;
    assert_eq!(out[0].source, InsightSource::Fallback);
    assert_eq!(out[0].reason.as_deref(), Some("timeout"));
    assert_eq!(out[0].attempts, 2);
}

#[tokio::test]
async fn the_circuit_breaker_opens_then_a_probe_closes_it() {
    let cfg = AnalystConfig {
        max_retries: 0,
        breaker_failures: 2,
        breaker_cool_off_s: 1,
        ..cfg()
    };
    let (fake, analyst) = setup(cfg, Duration::from_secs(2)).await;
    let err = || FakeReply::Error {
        status: 503,
        error_type: "ServiceUnavailableException".into(),
    };
    fake.script([err(), err()]);
    for seq in 1..=2 {
        let out = analyst
            .analyse(&[job(&format!("s{seq}"), seq, Severity::Major)])
            .await;
        assert_eq!(out[0].reason.as_deref(), Some("server_error"));
    }
    let out = analyst.analyse(&[job("s3", 3, Severity::Major)]).await;
    assert_eq!(out[0].source, InsightSource::Fallback);
    assert_eq!(out[0].reason.as_deref(), Some("breaker_open"));
    assert_eq!(
        fake.received().len(),
        2,
        "no call while the breaker is open"
    );
    // After the cool-off one probe goes through; it succeeds and closes the breaker.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let out = analyst.analyse(&[job("s4", 4, Severity::Major)]).await;
    assert_eq!(out[0].source, InsightSource::Ai);
    let out = analyst.analyse(&[job("s5", 5, Severity::Major)]).await;
    assert_eq!(out[0].source, InsightSource::Ai);
}

#[tokio::test]
async fn an_exhausted_budget_falls_back_without_calling() {
    let cfg = AnalystConfig {
        daily_budget_usd: 0.000_001,
        ..cfg()
    };
    let (fake, analyst) = setup(cfg, Duration::from_secs(2)).await;
    let first = analyst.analyse(&[job("a", 1, Severity::Major)]).await;
    assert_eq!(
        first[0].source,
        InsightSource::Ai,
        "the first call spends the budget"
    );
    let out = analyst.analyse(&[job("b", 2, Severity::Major)]).await;
    assert_eq!(out[0].source, InsightSource::Fallback);
    assert_eq!(out[0].reason.as_deref(), Some("budget_exhausted"));
    assert_eq!(fake.received().len(), 1);
}

#[tokio::test]
async fn a_cache_hit_makes_no_call() {
    let (fake, analyst) = setup(cfg(), Duration::from_secs(2)).await;
    fake.script([FakeReply::Text(ANSWER.into())]);
    let first = analyst.analyse(&[job("a", 1, Severity::Major)]).await;
    assert_eq!(first[0].source, InsightSource::Ai);
    let again = analyst.analyse(&[job("a", 7, Severity::Major)]).await;
    assert_eq!(again[0].source, InsightSource::Cache);
    assert_eq!(again[0].insight, first[0].insight);
    assert_eq!(fake.received().len(), 1);
    // Another severity is another question.
    let other = analyst.analyse(&[job("a", 8, Severity::Critical)]).await;
    assert_eq!(other[0].source, InsightSource::Ai);
    assert_eq!(fake.received().len(), 2);
}

#[tokio::test]
async fn a_batch_call_maps_insights_back_by_index() {
    let (fake, analyst) = setup(cfg(), Duration::from_secs(2)).await;
    let answer = format!(
        "[{}, {{\"prediction_type\": 3}}, {}]",
        ANSWER,
        ANSWER
            .replace("latency_spike", "rdma_timeout")
            .replace("66", "91")
    );
    let as_tool: serde_json::Value =
        serde_json::from_str(&format!("{{\"insights\": {answer}}}")).expect("json");
    // The same batch answered as the forced tool call, then as text (the fallback form).
    fake.script([FakeReply::Tool(as_tool), FakeReply::Text(answer)]);
    for (round, form) in [(0u64, "tool"), (10, "text")] {
        let jobs = [
            // Other streams each round: the cache would answer the first round's again.
            job(&format!("{form}-a"), 1 + round, Severity::Major),
            job(&format!("{form}-b"), 2 + round, Severity::Major),
            job(&format!("{form}-c"), 3 + round, Severity::Critical),
        ];
        let out = analyst.analyse(&jobs).await;
        let received = fake.received();
        assert_eq!(
            received.len() as u64,
            1 + round / 10,
            "one call for three anomalies"
        );
        let user = received.last().expect("asked").body["messages"][0]["content"][0]["text"]
            .as_str()
            .expect("prompt")
            .to_string();
        assert!(user.contains("Record 3 insights"), "{user}");
        assert_eq!(out[0].source, InsightSource::Ai, "{form}");
        assert_eq!(out[0].insight.prediction_type, PredictionType::LatencySpike);
        assert_eq!(
            out[1].source,
            InsightSource::Fallback,
            "{form}: the malformed element falls back alone"
        );
        assert_eq!(out[1].reason.as_deref(), Some("parse_error"));
        assert_eq!(out[2].source, InsightSource::Ai);
        assert_eq!(out[2].insight.prediction_type, PredictionType::RdmaTimeout);
        assert_eq!(out[2].insight.risk_score, 91);
        assert!(out
            .iter()
            .all(|o| o.batch_size == 3 && o.answer_form == Some(form)));
    }
    let c = &analyst.counters;
    let get = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        (
            get(&c.tool_answers),
            get(&c.text_answers),
            get(&c.invalid_answers)
        ),
        (1, 1, 2)
    );
}

#[tokio::test]
async fn the_request_forces_the_insight_tool_with_the_seed_parameters() {
    let (fake, analyst) = setup(cfg(), Duration::from_secs(2)).await;
    let out = analyst
        .analyse(&[job("leaf1/p1", 3, Severity::Critical)])
        .await;
    assert_eq!(out[0].source, InsightSource::Ai, "{:?}", out[0]);
    assert_eq!(out[0].answer_form, Some("tool"));
    let body = &fake.received()[0].body;
    assert_eq!(body["anthropic_version"], "bedrock-2023-05-31");
    assert_eq!(body["max_tokens"], 1000);
    assert_eq!(body["temperature"], 0.3);
    assert_eq!(body["tools"][0]["name"], "record_insights");
    assert_eq!(
        body["tool_choice"],
        serde_json::json!({"type": "tool", "name": "record_insights"})
    );
    let required = &body["tools"][0]["input_schema"]["properties"]["insights"]["items"]["required"];
    assert_eq!(required.as_array().map(Vec::len), Some(5), "{required}");
    assert_eq!(fake.received()[0].model_id, MODEL);
}

#[tokio::test]
async fn a_low_confidence_answer_is_kept_marked_with_the_rules_risk_and_not_cached() {
    let (fake, analyst) = setup(cfg(), Duration::from_secs(2)).await;
    fake.set_answer(95, 0.3);
    let j = job("leaf1/p1", 3, Severity::Major);
    let rules_risk = ibsight::analyst::rules_backend::insight(&j).risk_score;
    let out = analyst.analyse(std::slice::from_ref(&j)).await;
    let o = &out[0];
    assert_eq!(o.source, InsightSource::Ai, "{o:?}");
    assert_eq!((o.insight.risk_score, o.insight.confidence), (95, 0.3));
    assert!(o.low_confidence);
    assert_eq!(o.rules_risk, Some(rules_risk));
    assert_eq!(o.reason.as_deref(), Some("low_confidence"));
    let c = &analyst.counters;
    assert_eq!(
        c.low_confidence.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    // Not reused: the same question is asked again.
    let again = analyst
        .analyse(&[job("leaf1/p1", 5, Severity::Major)])
        .await;
    assert_eq!(again[0].source, InsightSource::Ai);
    assert_eq!(fake.received().len(), 2);
    // At the floor it is confident.
    fake.set_answer(95, 0.7);
    let sure = analyst
        .analyse(&[job("leaf2/p1", 7, Severity::Major)])
        .await;
    assert!(
        !sure[0].low_confidence && sure[0].rules_risk.is_none(),
        "{:?}",
        sure[0]
    );
}

#[tokio::test]
async fn the_prompt_tier_follows_the_rules_risk_and_untiered_asks_the_full_prompt() {
    use ibsight::analyst::tier::Tier;
    for tiered in [true, false] {
        let (fake, analyst) = setup(
            AnalystConfig {
                tiered_prompts: tiered,
                ..cfg()
            },
            Duration::from_secs(2),
        )
        .await;
        let template = analyst.template().clone();
        for (i, severity) in [Severity::Critical, Severity::Major, Severity::Warning]
            .into_iter()
            .enumerate()
        {
            let j = job(&format!("p{i}"), 3, severity);
            let want = if tiered {
                Tier::for_risk(ibsight::analyst::rules_backend::insight(&j).risk_score)
            } else {
                Tier::Critical
            };
            let out = analyst.analyse(&[j]).await;
            assert_eq!(out[0].prompt_tier, Some(want.name()), "{severity:?}");
            let body = &fake.received()[i].body;
            assert_eq!(body["system"], template.system_for(want), "{severity:?}");
        }
    }
}

#[tokio::test]
async fn ai_off_or_unsampled_anomalies_get_rules_insights() {
    let (fake, analyst) = setup(
        AnalystConfig {
            ai_enabled: false,
            ..cfg()
        },
        Duration::from_secs(2),
    )
    .await;
    let out = analyst.analyse(&[job("a", 1, Severity::Major)]).await;
    assert_eq!(
        (out[0].source, out[0].reason.as_deref()),
        (InsightSource::Rules, Some("ai_disabled"))
    );
    let (fake2, sampled_out) = setup(
        AnalystConfig {
            ai_sampling_rate: 0.0,
            ..cfg()
        },
        Duration::from_secs(2),
    )
    .await;
    let out = sampled_out.analyse(&[job("a", 1, Severity::Major)]).await;
    assert_eq!(
        (out[0].source, out[0].reason.as_deref()),
        (InsightSource::Rules, Some("not_sampled"))
    );
    assert!(fake.received().is_empty() && fake2.received().is_empty());
}

#[tokio::test]
async fn an_unreachable_model_falls_back() {
    let (fake, analyst) = setup(
        AnalystConfig {
            max_retries: 1,
            ..cfg()
        },
        Duration::from_secs(2),
    )
    .await;
    fake.stop();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let out = analyst.analyse(&[job("a", 1, Severity::Major)]).await;
    assert_eq!(out[0].source, InsightSource::Fallback);
    assert_eq!(
        out[0].reason.as_deref(),
        Some("unreachable"),
        "{:?}",
        out[0]
    );
}
