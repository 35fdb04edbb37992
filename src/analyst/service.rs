//! The analyst service: one call answers a batch of anomaly jobs, each with an insight and
//! its provenance. Per job it picks the source — rules by choice (AI off, not sampled), a
//! cached insight, or the model — and for the model it applies, in order: the daily budget,
//! the circuit breaker, the rate limiter (which waits, never drops), the call with retries,
//! then parsing (`model_call`). Whatever fails, the rules backend answers with source `fallback` and the
//! reason, so every job gets an insight.

use super::breaker::CircuitBreaker;
use super::cache::{CacheKey, InsightCache};
use super::cost::{DailyBudget, Pricing};
use super::health::RecentCalls;
use super::insight::{Insight, InsightSource};
use super::job::AnomalyJob;
use super::limiter::RateLimiter;
use super::model::Model;
use super::template::PromptTemplate;
use super::{rules_backend, AnalystConfig, Backend};
use crate::events::types::InsightGeneratedV2;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// An insight with everything recorded about how it was made.
#[derive(Debug, Clone, PartialEq)]
pub struct InsightOutcome {
    pub insight: Insight,
    pub source: InsightSource,
    /// Why the rules answered or why the model was not used (`not_sampled`, `ai_disabled`,
    /// `breaker_open`, `budget_exhausted`, `throttled`, `timeout`, `parse_error`, …).
    pub reason: Option<String>,
    pub model_id: Option<String>,
    pub prompt_version: String,
    pub prompt_hash: Option<String>,
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub cost_usd: f64,
    pub latency_ms: u64,
    pub attempts: u32,
    /// Anomalies answered by the same model call (1 when not batched).
    pub batch_size: u32,
    /// A model answer below `analyst.min_confidence`.
    pub low_confidence: bool,
    /// The rules' risk for the same job, kept with a low-confidence answer.
    pub rules_risk: Option<u8>,
    /// The prompt tier the model was asked with.
    pub prompt_tier: Option<&'static str>,
    /// How the model's answer was read: `tool` or `text`.
    pub answer_form: Option<&'static str>,
}

impl InsightOutcome {
    /// The event that records this outcome for the anomaly at `anomaly_seq`.
    pub fn into_event(self, anomaly_seq: u64, anomaly_id: String) -> InsightGeneratedV2 {
        InsightGeneratedV2 {
            anomaly_seq,
            anomaly_id,
            prediction_type: self.insight.prediction_type,
            risk_score: self.insight.risk_score,
            explanation: self.insight.explanation,
            recommendations: self.insight.recommendations,
            confidence: self.insight.confidence,
            notes: self.insight.notes,
            source: self.source,
            reason: self.reason,
            model_id: self.model_id,
            prompt_version: self.prompt_version,
            prompt_hash: self.prompt_hash,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cost_usd: self.cost_usd,
            latency_ms: self.latency_ms,
            attempts: self.attempts,
            batch_size: self.batch_size,
            low_confidence: self.low_confidence,
            rules_risk: self.rules_risk,
            prompt_tier: self.prompt_tier.map(str::to_string),
            answer_form: self.answer_form.map(str::to_string),
        }
    }
}

/// Counters for the metrics endpoint.
#[derive(Debug, Default)]
pub struct AnalystCounters {
    pub calls: AtomicU64,
    /// Calls that got no usable answer after their retries (throttled, 5xx, timeout, …).
    pub call_failures: AtomicU64,
    pub attempts: AtomicU64,
    pub call_latency_ms_total: AtomicU64,
    pub insights: AtomicU64,
    pub ai: AtomicU64,
    pub rules: AtomicU64,
    pub fallbacks: AtomicU64,
    pub cache_hits: AtomicU64,
    pub input_tokens: AtomicU64,
    pub output_tokens: AtomicU64,
    /// Cost in micro-dollars (integers add up exactly).
    pub cost_micro_usd: AtomicU64,
    /// Model answers read from the schema-forced tool call…
    pub tool_answers: AtomicU64,
    /// …and from text (a model or server that did not call the tool).
    pub text_answers: AtomicU64,
    /// Insights in a model answer that failed validation (the rules answered them).
    pub invalid_answers: AtomicU64,
    /// Model insights below `analyst.min_confidence`.
    pub low_confidence: AtomicU64,
    /// The last minutes of model calls, for calls per minute and p95 latency.
    pub recent: Mutex<RecentCalls>,
}

struct Control {
    limiter: RateLimiter,
    breaker: CircuitBreaker,
    budget: DailyBudget,
    cache: InsightCache,
}

pub struct Analyst {
    cfg: AnalystConfig,
    model: Option<Model>,
    pricing: Pricing,
    retry_base: Duration,
    template: PromptTemplate,
    control: Mutex<Control>,
    pub counters: AnalystCounters,
}

/// A deterministic sampling decision for a job, stable across replays.
pub fn sampled(job: &AnomalyJob, rate: f64) -> bool {
    if rate >= 1.0 {
        return true;
    }
    if rate <= 0.0 {
        return false;
    }
    let h = crate::hash::fnv1a64(job.stream_id.bytes().chain(job.anomaly_seq.to_le_bytes()));
    (h % 10_000) as f64 / 10_000.0 < rate
}

fn cache_key(job: &AnomalyJob) -> CacheKey {
    let a = &job.anomaly;
    CacheKey {
        stream_id: job.stream_id.clone(),
        class: rules_backend::prediction_for(a.rule, &a.metric, a.delta_pct),
        severity: a.severity,
    }
}

impl Analyst {
    /// `model` is `None` for the rules backend. `retry_base` is the first backoff step.
    pub fn new(
        cfg: AnalystConfig,
        model: Option<Model>,
        retry_base: Duration,
        now_ms: i64,
    ) -> Analyst {
        let control = Control {
            limiter: RateLimiter::new(cfg.max_rpm, cfg.max_tpm, now_ms),
            breaker: CircuitBreaker::new(
                cfg.breaker_failures,
                cfg.breaker_cool_off_s as i64 * 1000,
                cfg.batch_deadline().as_millis() as i64,
            ),
            budget: DailyBudget::new(cfg.daily_budget_usd),
            cache: InsightCache::new(cfg.cache_window_s as i64 * 1000, 100_000),
        };
        Analyst {
            pricing: cfg.pricing(),
            model: if cfg.backend == Backend::Rules {
                None
            } else {
                model
            },
            cfg,
            retry_base,
            template: PromptTemplate::live(),
            control: Mutex::new(control),
            counters: AnalystCounters::default(),
        }
    }

    /// Ask with `template` instead of the live prompt.
    pub fn with_template(mut self, template: PromptTemplate) -> Analyst {
        self.template = template;
        self
    }

    pub fn template(&self) -> &PromptTemplate {
        &self.template
    }

    /// Whether the circuit breaker is holding calls back.
    pub fn breaker_open(&self) -> bool {
        self.control().breaker.is_open()
    }

    /// Count at least `spent_usd` as spent today (the log's figure: one daily budget across
    /// restarts, and across the nodes of a cluster as the analyst moves between them).
    pub fn restore_spent_today(&self, spent_usd: f64) {
        self.control()
            .budget
            .at_least(spent_usd, crate::clock::now_ms());
    }

    /// Spend of the current UTC day, in USD.
    pub fn spent_today_usd(&self) -> f64 {
        self.control().budget.spent_today(crate::clock::now_ms())
    }

    pub fn config(&self) -> &AnalystConfig {
        &self.cfg
    }

    fn control(&self) -> std::sync::MutexGuard<'_, Control> {
        self.control.lock().expect("analyst control lock poisoned")
    }

    /// The rules backend's answer, with its provenance.
    pub fn rules_outcome(
        &self,
        job: &AnomalyJob,
        source: InsightSource,
        reason: &str,
    ) -> InsightOutcome {
        self.outcome(rules_backend::insight(job), source, Some(reason))
    }

    /// `insight` with its provenance, nothing of a model call yet.
    pub(super) fn outcome(
        &self,
        insight: Insight,
        source: InsightSource,
        reason: Option<&str>,
    ) -> InsightOutcome {
        InsightOutcome {
            insight,
            source,
            reason: reason.map(str::to_string),
            model_id: None,
            prompt_version: self.template.version.clone(),
            prompt_hash: None,
            input_tokens: 0,
            output_tokens: 0,
            cost_usd: 0.0,
            latency_ms: 0,
            attempts: 0,
            batch_size: 1,
            low_confidence: false,
            rules_risk: None,
            prompt_tier: None,
            answer_form: None,
        }
    }

    /// Answer `jobs` (one model call at most), one outcome per job in the same order.
    pub async fn analyse(&self, jobs: &[AnomalyJob]) -> Vec<InsightOutcome> {
        let now = crate::clock::now_ms();
        let mut out: Vec<Option<InsightOutcome>> = vec![None; jobs.len()];
        let mut to_model = Vec::new();
        for (i, job) in jobs.iter().enumerate() {
            let route = if self.model.is_none() {
                Some((InsightSource::Rules, "rules_backend"))
            } else if !self.cfg.ai_enabled {
                Some((InsightSource::Rules, "ai_disabled"))
            } else if !sampled(job, self.cfg.ai_sampling_rate) {
                Some((InsightSource::Rules, "not_sampled"))
            } else {
                None
            };
            if let Some((source, reason)) = route {
                out[i] = Some(self.rules_outcome(job, source, reason));
                continue;
            }
            if let Some(hit) = self.control().cache.get(&cache_key(job), now).cloned() {
                let mut o = self.rules_outcome(job, InsightSource::Cache, "cache_hit");
                o.insight = hit;
                o.reason = None;
                o.model_id = Some(self.cfg.recorded_model_id().to_string());
                out[i] = Some(o);
                continue;
            }
            to_model.push(i);
        }
        if !to_model.is_empty() {
            let asked: Vec<&AnomalyJob> = to_model.iter().map(|&i| &jobs[i]).collect();
            for (slot, outcome) in to_model.iter().zip(self.ask_model(&asked).await) {
                out[*slot] = Some(outcome);
            }
        }
        let outcomes: Vec<InsightOutcome> = out
            .into_iter()
            .enumerate()
            .map(|(i, o)| {
                o.unwrap_or_else(|| {
                    self.rules_outcome(&jobs[i], InsightSource::Fallback, "internal")
                })
            })
            .collect();
        for o in &outcomes {
            self.count_outcome(o);
        }
        outcomes
    }

    /// Count an outcome by source (for the metrics endpoint).
    pub fn count_outcome(&self, o: &InsightOutcome) {
        let c = &self.counters;
        c.insights.fetch_add(1, Ordering::Relaxed);
        let which = match o.source {
            InsightSource::Ai => &c.ai,
            InsightSource::Rules => &c.rules,
            InsightSource::Fallback => &c.fallbacks,
            InsightSource::Cache => &c.cache_hits,
        };
        which.fetch_add(1, Ordering::Relaxed);
    }
}

mod model_call;
