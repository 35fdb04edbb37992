//! The on-premises backend (`analyst.backend = "openai"`) through its real HTTP client
//! against the local server's OpenAI-compatible side (`/v1/chat/completions`): the schema
//! forced by a function tool or a JSON-schema response format, the API key from the
//! environment, throttling and server errors retried, malformed answers falling back to the
//! rules, the circuit breaker, the budget at the configured price, and `eval --analyst openai`.

mod common;

use ibsight::analyst::insight::{InsightSource, PredictionType};
use ibsight::analyst::model::Model;
use ibsight::analyst::openai::{OpenAiConfig, OpenAiModel, OutputMode};
use ibsight::analyst::service::Analyst;
use ibsight::analyst::{AnalystConfig, Backend};
use ibsight::cli::bench::fake_bedrock::{FakeBedrock, FakeReply};
use ibsight::detect::rules::Severity;
use serde_json::json;
use std::time::Duration;

use common::latency_job as job;

fn cfg(base_url: &str, output: OutputMode) -> AnalystConfig {
    AnalystConfig {
        backend: Backend::OpenAi,
        max_retries: 3,
        timeout_s: 2,
        openai: OpenAiConfig {
            base_url: base_url.into(),
            model: "llama-3.1-70b-instruct".into(),
            api_key_env: "IBSIGHT_TEST_OPENAI_KEY".into(),
            output,
            ..OpenAiConfig::default()
        },
        ..AnalystConfig::default()
    }
}

async fn setup(
    output: OutputMode,
    tweak: impl FnOnce(&mut AnalystConfig),
) -> (FakeBedrock, Analyst) {
    let fake = FakeBedrock::start(None).await.expect("fake model server");
    let mut cfg = cfg(&fake.openai_url(), output);
    tweak(&mut cfg);
    let model =
        OpenAiModel::from_config(&cfg.openai, Duration::from_secs(cfg.timeout_s)).expect("client");
    let analyst = Analyst::new(
        cfg,
        Some(Model::from(model)),
        Duration::from_millis(5),
        ibsight::clock::now_ms(),
    );
    (fake, analyst)
}

#[tokio::test]
async fn a_forced_tool_call_becomes_an_ai_insight_with_the_key_and_no_cost() {
    // Set before any client reads it; no other test in this binary reads this variable.
    std::env::set_var("IBSIGHT_TEST_OPENAI_KEY", "sk-local-test");
    let (fake, analyst) = setup(OutputMode::Tools, |_| {}).await;
    let out = analyst
        .analyse(&[job("leaf1/p1", 3, Severity::Critical)])
        .await;
    let o = &out[0];
    assert_eq!(o.source, InsightSource::Ai, "{o:?}");
    assert_eq!(
        o.insight.prediction_type,
        PredictionType::PerformanceDegradation
    );
    assert_eq!(o.answer_form, Some("tool"));
    assert_eq!(o.model_id.as_deref(), Some("llama-3.1-70b-instruct"));
    assert!(o.input_tokens > 0 && o.output_tokens > 0, "{o:?}");
    assert_eq!(o.cost_usd, 0.0, "a local model is free unless priced");
    let r = &fake.received()[0];
    assert_eq!(r.protocol, "openai");
    assert_eq!(r.model_id, "llama-3.1-70b-instruct");
    assert_eq!(r.authorization.as_deref(), Some("Bearer sk-local-test"));
    assert_eq!(r.body["temperature"], 0.3);
    assert_eq!(r.body["max_tokens"], 1000);
    assert_eq!(r.body["messages"][0]["role"], "system");
    assert_eq!(r.body["tools"][0]["function"]["name"], "record_insights");
    assert_eq!(r.body["tool_choice"]["function"]["name"], "record_insights");
}

#[tokio::test]
async fn a_json_schema_response_format_is_read_as_the_schema_s_answer() {
    let (fake, analyst) = setup(OutputMode::JsonSchema, |c| {
        c.openai.input_usd_per_mtok = 1.0;
        c.openai.output_usd_per_mtok = 2.0;
    })
    .await;
    let out = analyst.analyse(&[job("a", 1, Severity::Major)]).await;
    assert_eq!(out[0].source, InsightSource::Ai, "{:?}", out[0]);
    assert_eq!(out[0].answer_form, Some("tool"), "schema-forced content");
    assert!(out[0].cost_usd > 0.0, "priced per token as configured");
    let body = &fake.received()[0].body;
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert!(body.get("tools").is_none());
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_rejections_are_not() {
    let (fake, analyst) = setup(OutputMode::Tools, |_| {}).await;
    let err = |status: u16, t: &str| FakeReply::Error {
        status,
        error_type: t.into(),
    };
    fake.script([
        err(429, "rate_limit_exceeded"),
        err(503, "overloaded"),
        FakeReply::Insight,
    ]);
    let out = analyst.analyse(&[job("a", 1, Severity::Major)]).await;
    assert_eq!(
        (out[0].source, out[0].attempts),
        (InsightSource::Ai, 3),
        "{:?}",
        out[0]
    );

    fake.script((0..4).map(|_| err(429, "rate_limit_exceeded")));
    let out = analyst.analyse(&[job("b", 2, Severity::Major)]).await;
    assert_eq!(out[0].source, InsightSource::Fallback);
    assert_eq!(
        (out[0].reason.as_deref(), out[0].attempts),
        (Some("throttled"), 4)
    );

    fake.script([err(404, "model_not_found")]);
    let out = analyst.analyse(&[job("c", 3, Severity::Major)]).await;
    assert_eq!(
        (out[0].reason.as_deref(), out[0].attempts),
        (Some("rejected"), 1)
    );
}

#[tokio::test]
async fn malformed_answers_fall_back_to_the_rules_and_are_counted() {
    let (fake, analyst) = setup(OutputMode::Tools, |_| {}).await;
    fake.script([
        // Text where a tool call was forced, and not even JSON.
        FakeReply::Text("I think the link is flapping.".into()),
        // A tool call that breaks the schema.
        FakeReply::Tool(
            json!({"insights": [{"prediction_type": "link_flap", "risk_score": "high"}]}),
        ),
        // Old-style text JSON still reads, as the counted fallback.
        FakeReply::TextInsight,
    ]);
    let mut reasons = Vec::new();
    for (i, s) in ["a", "b", "c"].iter().enumerate() {
        let out = analyst
            .analyse(&[job(s, i as u64 + 1, Severity::Major)])
            .await;
        reasons.push((out[0].source, out[0].reason.clone(), out[0].answer_form));
    }
    assert_eq!(
        reasons,
        vec![
            (
                InsightSource::Fallback,
                Some("parse_error".into()),
                Some("text")
            ),
            (
                InsightSource::Fallback,
                Some("parse_error".into()),
                Some("tool")
            ),
            (InsightSource::Ai, None, Some("text")),
        ]
    );
    let c = &analyst.counters;
    let get = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        (
            get(&c.tool_answers),
            get(&c.text_answers),
            get(&c.invalid_answers)
        ),
        (1, 2, 2)
    );
}

#[tokio::test]
async fn the_breaker_opens_on_an_outage_and_the_rules_answer_meanwhile() {
    let (fake, analyst) = setup(OutputMode::Tools, |c| {
        c.max_retries = 0;
        c.breaker_failures = 2;
        c.breaker_cool_off_s = 60;
    })
    .await;
    let down = || FakeReply::Error {
        status: 502,
        error_type: "bad_gateway".into(),
    };
    fake.script([down(), down()]);
    for seq in 1..=2 {
        let out = analyst
            .analyse(&[job(&format!("s{seq}"), seq, Severity::Major)])
            .await;
        assert_eq!(out[0].reason.as_deref(), Some("server_error"));
    }
    let out = analyst.analyse(&[job("s3", 3, Severity::Major)]).await;
    assert_eq!(out[0].reason.as_deref(), Some("breaker_open"));
    assert_eq!(
        fake.received().len(),
        2,
        "no call while the breaker is open"
    );
}

#[tokio::test]
async fn an_unreachable_server_falls_back() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let c = AnalystConfig {
        max_retries: 1,
        ..cfg(&format!("http://127.0.0.1:{port}/v1"), OutputMode::Tools)
    };
    let model = OpenAiModel::from_config(&c.openai, Duration::from_secs(2)).expect("client");
    let analyst = Analyst::new(c, Some(model.into()), Duration::from_millis(5), 0);
    let out = analyst.analyse(&[job("a", 1, Severity::Major)]).await;
    assert_eq!(out[0].source, InsightSource::Fallback);
    assert_eq!(out[0].reason.as_deref(), Some("unreachable"));
}

/// `ibsight eval --analyst openai` runs a scenario with the configured endpoint, and
/// reports the model's answers.
#[test]
fn eval_runs_against_an_openai_compatible_server() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let fake = rt.block_on(FakeBedrock::start(None)).expect("fake");
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("ibsight.toml");
    std::fs::write(
        &config,
        format!(
            "[analyst.openai]\nbase_url = \"{}\"\nmodel = \"local-model\"\n",
            fake.openai_url()
        ),
    )
    .expect("config");
    let out = dir.path().join("report.json");
    // The key's variable is not mistaken for a config key (IBSIGHT_<SECTION>__<KEY> only).
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_ibsight"))
        .env("IBSIGHT_OPENAI_API_KEY", "sk-eval")
        .args([
            "eval",
            "--scenario",
            "mixed",
            "--analyst",
            "openai",
            "--config",
        ])
        .arg(&config)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run eval");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("(openai analyst)"), "{stdout}");
    assert!(stdout.contains("schema-valid"), "{stdout}");
    let received = fake.received();
    assert!(!received.is_empty(), "the model was asked");
    assert!(received.iter().all(|r| r.protocol == "openai"
        && r.model_id == "local-model"
        && r.authorization.as_deref() == Some("Bearer sk-eval")));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out).expect("report")).expect("json");
    let q = &report["analyst_quality"];
    // Batching answers several incidents in one call.
    let answers = q["model_answers"].as_u64().unwrap_or(0);
    assert!(answers >= received.len() as u64, "{q}");
    assert_eq!(q["schema_valid"], q["model_answers"], "{q}");
    fake.stop();
}
