//! The analyst: turns anomalies into insights (prediction type, risk, explanation,
//! recommendations, confidence), with AWS Bedrock (Claude 3.5 Haiku) or the rules backend.
//!
//! - `job`, `insight`: what is asked and what is answered.
//! - `prompt`, `parse`: the model's prompt and the validation of its answer.
//! - `rules_backend`: deterministic insights; the fallback and the offline default;
//!   `numbers`: how an explanation prints a value, by its unit.
//! - `limiter`, `breaker`, `cache`, `cost`: quota, outage, repetition and budget control,
//!   each a small pure state machine driven by the pool's clock.
//! - `model`: what every model backend shares (the request, the answer, retries); `schema`:
//!   the insight schema the answer is forced into; `tier`: which prompt an incident gets.
//! - `bedrock`: the InvokeModel client; `openai`: any OpenAI-compatible chat-completions
//!   endpoint (an on-premises model); `service`: one ask of the model, within budget,
//!   breaker and limits, with the rules as the fallback; `pool`: the pooled analyst
//!   (`ractor::factory`); `health`: what `/readyz` says of the model.
//! - `template`: the prompt templates.

pub mod bedrock;
pub mod breaker;
pub mod cache;
pub mod cost;
pub mod health;
pub mod insight;
pub mod job;
pub mod limiter;
pub mod model;
pub mod numbers;
pub mod openai;
pub mod parse;
pub mod pool;
pub mod prompt;
pub mod rules_backend;
pub mod schema;
pub mod service;
pub mod template;
pub mod tier;

use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Deterministic, offline: the default when no AWS is configured.
    #[default]
    Rules,
    Bedrock,
    /// An OpenAI-compatible chat-completions endpoint (`analyst.openai`).
    #[serde(rename = "openai")]
    #[value(name = "openai")]
    OpenAi,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Rules => "rules",
            Backend::Bedrock => "bedrock",
            Backend::OpenAi => "openai",
        }
    }
}

/// Evidence budgets of the three prompt tiers, in tokens of the user message (4 characters a
/// token): past its budget, an incident's further ports are summed up in one line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TierBudgets {
    /// Rules risk 80 and above: the full prompt with its examples.
    pub critical_tokens: u32,
    /// Rules risk 60 to 79: the standard prompt, no examples.
    pub high_tokens: u32,
    /// Below 60: the minimal prompt.
    pub medium_tokens: u32,
}

impl Default for TierBudgets {
    fn default() -> Self {
        TierBudgets {
            critical_tokens: 2000,
            high_tokens: 600,
            medium_tokens: 250,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalystConfig {
    pub backend: Backend,
    /// Ask the model at all (`AI_ENABLED` overrides). Off: the rules backend answers.
    pub ai_enabled: bool,
    /// Fraction of anomalies sent to the model (`AI_SAMPLING_RATE` overrides).
    pub ai_sampling_rate: f64,
    pub model_id: String,
    /// Concurrent model calls.
    pub workers: usize,
    /// Jobs waiting for a worker; past this the oldest low-severity job gets the fallback.
    pub queue_capacity: usize,
    pub max_rpm: u32,
    pub max_tpm: u32,
    /// Per-call timeout.
    pub timeout_s: u64,
    /// Retries on throttling, 5xx and timeouts.
    pub max_retries: u32,
    /// Consecutive failures that open the circuit breaker…
    pub breaker_failures: u32,
    /// …for this long, before one probe call is let through.
    pub breaker_cool_off_s: u64,
    pub daily_budget_usd: f64,
    pub input_usd_per_mtok: f64,
    pub output_usd_per_mtok: f64,
    /// Reuse an insight for the same (stream, class, severity) within this window; 0 = off.
    pub cache_window_s: u64,
    /// Anomalies analysed in one call when several are queued.
    pub batch_max: usize,
    /// A prompt template file (see `config/prompts/`); empty: the built-in live template.
    pub prompt_file: String,
    /// A model answer less confident than this is kept, marked `low_confidence`, and its
    /// risk alone never raises a critical alert (alerting follows the rules' risk).
    pub min_confidence: f64,
    /// Ask with the prompt of the incident's tier (critical, high, medium); off: every
    /// incident gets the critical (full) prompt.
    pub tiered_prompts: bool,
    pub tiers: TierBudgets,
    /// The on-premises backend (`backend = "openai"`).
    pub openai: openai::OpenAiConfig,
}

impl Default for AnalystConfig {
    fn default() -> Self {
        AnalystConfig {
            backend: Backend::Rules,
            ai_enabled: true,
            ai_sampling_rate: 1.0,
            model_id: "anthropic.claude-3-5-haiku-20241022-v1:0".into(),
            workers: 4,
            queue_capacity: 1000,
            max_rpm: 1800,
            max_tpm: 400_000,
            timeout_s: 10,
            max_retries: 3,
            breaker_failures: 5,
            breaker_cool_off_s: 30,
            daily_budget_usd: 50.0,
            input_usd_per_mtok: 0.8,
            output_usd_per_mtok: 4.0,
            cache_window_s: 300,
            batch_max: 8,
            prompt_file: String::new(),
            min_confidence: 0.7,
            tiered_prompts: true,
            tiers: TierBudgets::default(),
            openai: openai::OpenAiConfig::default(),
        }
    }
}

impl AnalystConfig {
    /// The longest the model call of one batch can take: every attempt at its timeout plus
    /// the backoffs between them (each at most 5 s).
    pub fn call_budget(&self) -> Duration {
        Duration::from_secs(self.timeout_s) * (self.max_retries + 1)
            + Duration::from_secs(5 * u64::from(self.max_retries))
    }

    /// The longest one batch may take, rate-limiter wait included (as long again as the
    /// call). Past it the rules answer (`rate_limited`, `timeout`); the pool's watchdog waits
    /// longer than this, so it only ever stops a worker that is truly stuck.
    pub fn batch_deadline(&self) -> Duration {
        self.call_budget() * 2
    }

    /// The price per million tokens of the configured backend.
    pub fn pricing(&self) -> cost::Pricing {
        match self.backend {
            Backend::OpenAi => cost::Pricing {
                input_usd_per_mtok: self.openai.input_usd_per_mtok,
                output_usd_per_mtok: self.openai.output_usd_per_mtok,
            },
            _ => cost::Pricing {
                input_usd_per_mtok: self.input_usd_per_mtok,
                output_usd_per_mtok: self.output_usd_per_mtok,
            },
        }
    }

    /// The model id recorded on insights: Bedrock's model id, or the served model's name.
    pub fn recorded_model_id(&self) -> &str {
        match self.backend {
            Backend::OpenAi => &self.openai.model,
            _ => &self.model_id,
        }
    }

    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |key: &str, why: String| Err((format!("analyst.{key}"), why));
        if !(0.0..=1.0).contains(&self.ai_sampling_rate) {
            return bad(
                "ai_sampling_rate",
                format!("{} must be between 0 and 1", self.ai_sampling_rate),
            );
        }
        if !is_valid_model_id(&self.model_id) {
            return bad(
                "model_id",
                format!(
                    "{:?} is not a Bedrock model or inference profile id",
                    self.model_id
                ),
            );
        }
        for (key, v) in [
            ("workers", self.workers),
            ("queue_capacity", self.queue_capacity),
            ("batch_max", self.batch_max),
        ] {
            if v == 0 {
                return bad(key, "0 must be at least 1".into());
            }
        }
        if self.max_rpm == 0 || self.max_tpm == 0 {
            return bad("max_rpm", "rate limits must be at least 1".into());
        }
        if self.timeout_s == 0 {
            return bad("timeout_s", "0 must be at least 1".into());
        }
        for (key, v) in [
            ("daily_budget_usd", self.daily_budget_usd),
            ("input_usd_per_mtok", self.input_usd_per_mtok),
            ("output_usd_per_mtok", self.output_usd_per_mtok),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(key, format!("{v} must be a non-negative number"));
            }
        }
        if !(0.0..=1.0).contains(&self.min_confidence) {
            return bad(
                "min_confidence",
                format!("{} must be between 0 and 1", self.min_confidence),
            );
        }
        for (key, v) in [
            ("tiers.critical_tokens", self.tiers.critical_tokens),
            ("tiers.high_tokens", self.tiers.high_tokens),
            ("tiers.medium_tokens", self.tiers.medium_tokens),
        ] {
            if v < 50 {
                return bad(key, format!("{v} must be at least 50"));
            }
        }
        self.openai.validate()?;
        if let Err(e) = template::PromptTemplate::from_config(&self.prompt_file) {
            return bad("prompt_file", e.to_string());
        }
        Ok(())
    }
}

/// `anthropic.claude-…` ids and cross-region inference profiles such as `us.anthropic.…`.
pub fn is_valid_model_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 256
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'_' | b'/'))
}
