//! `ibsight bench analyst`: a fault storm through the real analyst pool and a real model
//! client (the Bedrock SDK, or the OpenAI-compatible client with `--backend openai`), against
//! the local model server with a set model latency. Many ports of a few switches fail
//! together and keep re-raising the same anomalies, as incidents: cable faults (both ends),
//! whole switches (every port), and load warnings. The same storm runs twice, with tiered
//! prompts and with every incident asked with the full prompt; the figures show the tokens
//! and model calls per incident of each, how many calls the cache and batching save, and that
//! every distinct (stream, prediction type) incident still gets its insight.

use super::quantile;
use crate::analyst::bedrock::{local_sdk_config, BedrockModel};
use crate::analyst::insight::InsightSource;
use crate::analyst::job::{AnomalyJob, Reading};
use crate::analyst::model::Model;
use crate::analyst::openai::{OpenAiConfig, OpenAiModel};
use crate::analyst::pool::{AnalystPool, Deliver};
use crate::analyst::service::Analyst;
use crate::analyst::{AnalystConfig, Backend};
use crate::cli::bench::fake_bedrock::FakeBedrock;
use crate::detect::rules::{Rule, Severity};
use crate::events::types::{
    AnomalyDetectedV2, IncidentMemberV1, IncidentNodeV1, IncidentScope, IncidentV2, MemberAnomalyV1,
};
use crate::sample::port::{NodeType, PeerPort, PortIdentity};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct AnalystBenchArgs {
    /// Anomalies in the storm.
    #[arg(long, default_value_t = 2000)]
    pub anomalies: usize,
    /// The model's latency per call.
    #[arg(long, default_value_t = 400)]
    pub latency_ms: u64,
    /// Failing ports (streams); 36 per switch.
    #[arg(long, default_value_t = 144)]
    pub streams: usize,
    /// The model protocol: bedrock (InvokeModel) or openai (chat completions).
    #[arg(long, value_enum, default_value = "bedrock")]
    pub backend: Backend,
}

const PORTS_PER_SWITCH: usize = 36;

/// What fails on port `port` of the storm, fixed per port: every 12th switch port's whole
/// switch (critical), a cable on every third (link down, critical), symbol errors on others
/// (major), and load on every fifth (a warning).
fn fault_of(port: usize) -> (Rule, &'static str, Severity, IncidentScope) {
    if port.is_multiple_of(PORTS_PER_SWITCH) {
        (
            Rule::LinkDown,
            "link_state",
            Severity::Critical,
            IncidentScope::Switch,
        )
    } else if port.is_multiple_of(3) {
        (
            Rule::LinkDowned,
            "LinkDownedCounter",
            Severity::Critical,
            IncidentScope::Link,
        )
    } else if port % 5 == 4 {
        (
            Rule::UtilizationHigh,
            "utilization",
            Severity::Warning,
            IncidentScope::Port,
        )
    } else {
        (
            Rule::SymbolErrors,
            "SymbolErrorCounter",
            Severity::Major,
            IncidentScope::Link,
        )
    }
}

fn switch_guid(port: usize) -> u64 {
    0x0002_c903_0000_0000 + (port / PORTS_PER_SWITCH) as u64
}

fn member(
    stream: String,
    guid: u64,
    port_num: u8,
    peer: u64,
    a: &MemberAnomalyV1,
) -> IncidentMemberV1 {
    IncidentMemberV1 {
        stream_id: stream,
        port: PortIdentity {
            node_guid: Some(guid),
            port_num: Some(port_num),
            node_type: Some(NodeType::Switch),
            ..PortIdentity::default()
        },
        peer: Some(PeerPort {
            node_guid: Some(peer),
            port_num: Some(1),
            node_desc: None,
        }),
        anomalies: vec![a.clone()],
        cleared: false,
    }
}

/// The incident the anomaly of `port` belongs to: the whole switch, the cable's two ends, or
/// the port alone.
fn incident_of(port: usize, scope: IncidentScope, a: &MemberAnomalyV1) -> IncidentV2 {
    let guid = switch_guid(port);
    let host = |p: usize| 0x0008_0000_0000_0000 + p as u64;
    let members: Vec<IncidentMemberV1> = match scope {
        IncidentScope::Switch => (0..PORTS_PER_SWITCH)
            .map(|i| {
                let p = port / PORTS_PER_SWITCH * PORTS_PER_SWITCH + i;
                member(crate::sim::stream_id(p), guid, i as u8 + 1, host(p), a)
            })
            .collect(),
        IncidentScope::Link => vec![
            member(
                crate::sim::stream_id(port),
                guid,
                (port % PORTS_PER_SWITCH) as u8 + 1,
                host(port),
                a,
            ),
            member(format!("host{port:04}/mlx5_0/p1"), host(port), 1, guid, a),
        ],
        _ => vec![member(
            crate::sim::stream_id(port),
            guid,
            (port % PORTS_PER_SWITCH) as u8 + 1,
            host(port),
            a,
        )],
    };
    IncidentV2 {
        incident_id: format!("inc-{port}"),
        scope,
        node: (scope == IncidentScope::Switch).then_some(IncidentNodeV1 {
            node_guid: guid,
            node_desc: None,
            node_type: Some(NodeType::Switch),
        }),
        members,
        severity: a.severity,
        opened_at_ms: a.detected_at_ms,
        resolved_at_ms: None,
        at_ms: a.detected_at_ms,
        merged_into: None,
        analyse: true,
        maintenance: vec![],
    }
}

/// Anomaly `i` of the storm: port `i % streams`, its fault re-raised as it persists.
fn storm_job(i: usize, streams: usize) -> AnomalyJob {
    let port = i % streams;
    let (rule, metric, severity, scope) = fault_of(port);
    let t = 1_750_000_000_000 + i as i64 * 1000;
    let anomaly_seq = (i / streams) as u64 * 3 + 2;
    let value = match rule {
        Rule::UtilizationHigh => 97.0,
        Rule::LinkDown => 1.0,
        _ => 240.0 + (i % 7) as f64,
    };
    let anomaly_id = format!("{}:{metric}@{t}", rule.name());
    let member_anomaly = MemberAnomalyV1 {
        anomaly_id: anomaly_id.clone(),
        anomaly_seq,
        rule,
        metric: metric.into(),
        value,
        threshold: if rule == Rule::UtilizationHigh {
            80.0
        } else {
            120.0
        },
        severity,
        detected_at_ms: t,
    };
    AnomalyJob {
        incident: Some(incident_of(port, scope, &member_anomaly)),
        stream_id: crate::sim::stream_id(port),
        anomaly_seq,
        anomaly: AnomalyDetectedV2 {
            anomaly_id,
            rule,
            metric: metric.into(),
            value,
            baseline: None,
            delta_pct: None,
            threshold: member_anomaly.threshold,
            severity,
            escalated_from: None,
            window_start_ms: t - 1000,
            window_end_ms: t,
            port: Default::default(),
            peer: None,
        },
        readings: vec![Reading {
            metric: "utilization",
            value: 60.0,
            baseline: Some(55.0),
        }],
        origin: Default::default(),
    }
}

pub fn run(args: AnalystBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.anomalies > 0, "--anomalies must be at least 1");
    anyhow::ensure!(args.streams > 0, "--streams must be at least 1");
    anyhow::ensure!(
        args.backend != Backend::Rules,
        "--backend: rules asks no model; use bedrock or openai"
    );
    crate::cli::runtime()?.block_on(async {
        let tiered = drive(&args, true).await?;
        let untiered = drive(&args, false).await?;
        let per = |v: &serde_json::Value| v["input_tokens_per_incident"].as_f64().unwrap_or(0.0);
        let saved = 100.0 * (1.0 - per(&tiered) / per(&untiered).max(1.0));
        let figures = serde_json::json!({
            "backend": args.backend.name(),
            "tiered": tiered,
            "untiered": untiered,
            "input_tokens_saved_by_tiers_pct": (saved * 10.0).round() / 10.0,
        });
        println!("{figures}");
        Ok(())
    })
}

/// The model client of `backend` against the local server.
fn model_for(backend: Backend, fake: &FakeBedrock, cfg: &AnalystConfig) -> anyhow::Result<Model> {
    let timeout = Duration::from_secs(cfg.timeout_s);
    Ok(match backend {
        Backend::OpenAi => OpenAiModel::from_config(
            &OpenAiConfig {
                base_url: fake.openai_url(),
                ..cfg.openai.clone()
            },
            timeout,
        )?
        .into(),
        _ => BedrockModel::from_sdk_config(&local_sdk_config(&fake.url()), &cfg.model_id, timeout)
            .into(),
    })
}

async fn drive(args: &AnalystBenchArgs, tiered: bool) -> anyhow::Result<serde_json::Value> {
    let fake = FakeBedrock::start(None).await?;
    fake.set_latency(Duration::from_millis(args.latency_ms));
    let cfg = AnalystConfig {
        backend: args.backend,
        tiered_prompts: tiered,
        ..AnalystConfig::default()
    };
    let model = model_for(args.backend, &fake, &cfg)?;
    let analyst = Arc::new(Analyst::new(
        cfg,
        Some(model),
        Duration::from_millis(200),
        crate::clock::now_ms(),
    ));
    type Seen = Vec<(AnomalyJob, InsightSource, Duration)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let submitted: Arc<Mutex<HashMap<(String, u64), Instant>>> = Arc::default();
    let (sink, times) = (seen.clone(), submitted.clone());
    let deliver: Deliver = Arc::new(move |job, outcome| {
        let started = times
            .lock()
            .expect("lock")
            .get(&(job.stream_id.clone(), job.anomaly_seq))
            .copied()
            .unwrap_or_else(Instant::now);
        sink.lock()
            .expect("lock")
            .push((job, outcome.source, started.elapsed()));
    });
    let pool = AnalystPool::start(analyst.clone(), deliver, Duration::from_millis(20)).await?;

    // The storm arrives over about a second, as detections on many ports fire together.
    let started = Instant::now();
    let per_tick = args.anomalies.div_ceil(50);
    for tick in 0..50 {
        for i in tick * per_tick..((tick + 1) * per_tick).min(args.anomalies) {
            let job = storm_job(i, args.streams);
            submitted
                .lock()
                .expect("lock")
                .insert((job.stream_id.clone(), job.anomaly_seq), Instant::now());
            pool.submit(job);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while seen.lock().expect("lock").len() < args.anomalies {
        anyhow::ensure!(Instant::now() < deadline, "insights did not all arrive");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = started.elapsed();
    pool.stop();
    fake.stop();

    let seen = seen.lock().expect("lock").clone();
    let mut latencies: Vec<f64> = seen
        .iter()
        .map(|(_, _, d)| d.as_secs_f64() * 1000.0)
        .collect();
    let incidents: HashSet<(String, &'static str)> = seen
        .iter()
        .map(|(j, _, _)| {
            let a = &j.anomaly;
            let p = crate::analyst::rules_backend::prediction_for(a.rule, &a.metric, a.delta_pct);
            (j.stream_id.clone(), p.name())
        })
        .collect();
    let with_model_insight: HashSet<(String, &'static str)> = seen
        .iter()
        .filter(|(_, s, _)| matches!(s, InsightSource::Ai | InsightSource::Cache))
        .map(|(j, _, _)| {
            let a = &j.anomaly;
            let p = crate::analyst::rules_backend::prediction_for(a.rule, &a.metric, a.delta_pct);
            (j.stream_id.clone(), p.name())
        })
        .collect();
    let calls = fake.received().len();
    let c = &analyst.counters;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    let input_tokens = load(&c.input_tokens);
    let output_tokens = load(&c.output_tokens);
    let cost_usd = load(&c.cost_micro_usd) as f64 / 1e6;
    let per_call = |n: u64| (n as f64 / calls.max(1) as f64).round();
    // An incident here is a distinct (stream, prediction type): what the cache and the
    // operator tell apart.
    let per_incident = |n: f64| (n / incidents.len().max(1) as f64 * 10.0).round() / 10.0;
    let count = |s: InsightSource| seen.iter().filter(|(_, x, _)| *x == s).count();
    let mut tiers: std::collections::BTreeMap<&str, usize> = Default::default();
    for r in fake.received() {
        let system = r.body["system"]
            .as_str()
            .or(r.body["messages"][0]["content"].as_str())
            .unwrap_or("");
        let tier = [
            crate::analyst::tier::Tier::Critical,
            crate::analyst::tier::Tier::High,
            crate::analyst::tier::Tier::Medium,
        ]
        .into_iter()
        .find(|t| analyst.template().system_for(*t) == system)
        .map_or("unknown", |t| t.name());
        *tiers.entry(tier).or_default() += 1;
    }
    let figures = serde_json::json!({
        "tiered_prompts": tiered,
        "anomalies": args.anomalies,
        "model_calls": calls,
        "calls_by_tier": tiers,
        "insights": seen.len(),
        "calls_saved_pct": ((1.0 - calls as f64 / args.anomalies as f64) * 1000.0).round() / 10.0,
        "p95_ms": quantile(&mut latencies, 0.95).round(),
        "fallbacks": count(InsightSource::Fallback),
        "ai": count(InsightSource::Ai),
        "cache_hits": count(InsightSource::Cache),
        "incidents": incidents.len(),
        "incidents_with_model_insight": with_model_insight.len(),
        "model_calls_per_incident": (calls as f64 / incidents.len().max(1) as f64 * 1000.0).round() / 1000.0,
        "latency_ms": args.latency_ms,
        // Token counts as the local server reports them (its estimate: characters / 4), priced
        // with the configured rates: the inputs of docs/OPERATIONS.md's cost model.
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "input_tokens_per_call": per_call(input_tokens),
        "output_tokens_per_call": per_call(output_tokens),
        "input_tokens_per_incident": per_incident(input_tokens as f64),
        "output_tokens_per_incident": per_incident(output_tokens as f64),
        "cost_usd": (cost_usd * 1e6).round() / 1e6,
        "cost_usd_per_call": (cost_usd / calls.max(1) as f64 * 1e6).round() / 1e6,
        "cost_usd_per_incident": (cost_usd / incidents.len().max(1) as f64 * 1e6).round() / 1e6,
        "elapsed_s": (elapsed.as_secs_f64() * 100.0).round() / 100.0,
    });
    Ok(figures)
}
