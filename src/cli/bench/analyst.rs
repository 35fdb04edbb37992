//! `ibsight bench analyst`: a fault storm through the real analyst pool and the real Bedrock
//! SDK client, against a local InvokeModel server with a set model latency. Many ports of a
//! few switches fail together and keep re-raising the same anomalies; the figures show how
//! many model calls the cache and batching save, and that every distinct (stream, prediction
//! type) incident still gets its insight.

use super::quantile;
use crate::analyst::bedrock::{local_sdk_config, BedrockModel};
use crate::analyst::insight::InsightSource;
use crate::analyst::job::{AnomalyJob, Reading};
use crate::analyst::pool::{AnalystPool, Deliver};
use crate::analyst::service::Analyst;
use crate::analyst::{AnalystConfig, Backend};
use crate::cli::bench::fake_bedrock::FakeBedrock;
use crate::detect::rules::{Rule, Severity};
use crate::events::types::AnomalyDetectedV2;
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
}

/// Anomaly `i` of the storm: port `i % streams`, a link problem whose kind and severity are
/// fixed per port, re-raised as the link keeps flapping.
fn storm_job(i: usize, streams: usize) -> AnomalyJob {
    let port = i % streams;
    let (rule, metric, severity) = if port.is_multiple_of(3) {
        (Rule::LinkDowned, "LinkDownedCounter", Severity::Critical)
    } else {
        (Rule::SymbolErrors, "SymbolErrorCounter", Severity::Major)
    };
    let t = 1_750_000_000_000 + i as i64 * 1000;
    AnomalyJob {
        incident: None,
        stream_id: crate::sim::stream_id(port),
        anomaly_seq: (i / streams) as u64 * 3 + 2,
        anomaly: AnomalyDetectedV2 {
            anomaly_id: format!("{}:{metric}@{t}", rule.name()),
            rule,
            metric: metric.into(),
            value: 240.0 + (i % 7) as f64,
            baseline: None,
            delta_pct: None,
            threshold: 120.0,
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
    crate::cli::runtime()?.block_on(drive(args))
}

async fn drive(args: AnalystBenchArgs) -> anyhow::Result<()> {
    let fake = FakeBedrock::start(None).await?;
    fake.set_latency(Duration::from_millis(args.latency_ms));
    let cfg = AnalystConfig {
        backend: Backend::Bedrock,
        ..AnalystConfig::default()
    };
    let model = BedrockModel::from_sdk_config(
        &local_sdk_config(&fake.url()),
        &cfg.model_id,
        Duration::from_secs(cfg.timeout_s),
    );
    let analyst = Arc::new(Analyst::new(
        cfg,
        Some(model.into()),
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
    let input_tokens = c.input_tokens.load(std::sync::atomic::Ordering::Relaxed);
    let output_tokens = c.output_tokens.load(std::sync::atomic::Ordering::Relaxed);
    let cost_usd = c.cost_micro_usd.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e6;
    let per_call = |n: u64| (n as f64 / calls.max(1) as f64).round();
    let count = |s: InsightSource| seen.iter().filter(|(_, x, _)| *x == s).count();
    let figures = serde_json::json!({
        "anomalies": args.anomalies,
        "model_calls": calls,
        "insights": seen.len(),
        "calls_saved_pct": ((1.0 - calls as f64 / args.anomalies as f64) * 1000.0).round() / 10.0,
        "p95_ms": quantile(&mut latencies, 0.95).round(),
        "fallbacks": count(InsightSource::Fallback),
        "ai": count(InsightSource::Ai),
        "cache_hits": count(InsightSource::Cache),
        "incidents": incidents.len(),
        "incidents_with_model_insight": with_model_insight.len(),
        "latency_ms": args.latency_ms,
        // Token counts as the local server reports them (its estimate: characters / 4), priced
        // with the configured rates: the inputs of docs/OPERATIONS.md's cost model.
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "input_tokens_per_call": per_call(input_tokens),
        "output_tokens_per_call": per_call(output_tokens),
        "cost_usd": (cost_usd * 1e6).round() / 1e6,
        "cost_usd_per_call": (cost_usd / calls.max(1) as f64 * 1e6).round() / 1e6,
        "cost_usd_per_insight": (cost_usd / args.anomalies.max(1) as f64 * 1e6).round() / 1e6,
        "elapsed_s": (elapsed.as_secs_f64() * 100.0).round() / 100.0,
    });
    println!("{figures}");
    Ok(())
}
