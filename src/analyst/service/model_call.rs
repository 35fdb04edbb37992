//! One ask of the model for a batch of jobs, with the prompt of the batch's tier, in four
//! steps: `admit` (the daily budget, the circuit breaker, the token bucket, which waits and
//! never drops), `call` (the backend's call with retries, by the batch's deadline, in its own
//! span), `record` (the one place the call's outcome reaches the counters, the breaker, the
//! bucket and the budget) and `outcomes` (each job's insight: the model's where its answer
//! reads, from the tool call or from text, marked when unsure; the rules' otherwise).

use super::{cache_key, Analyst, InsightOutcome};
use crate::analyst::insight::{Insight, InsightSource};
use crate::analyst::job::AnomalyJob;
use crate::analyst::model::{self, Attempted, Model, ModelRequest};
use crate::analyst::tier::Tier;
use crate::analyst::{parse, prompt, rules_backend};
use crate::telemetry::context;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tracing::Instrument;

/// What recording a call gave: its latency, its cost (0 when it failed) and when.
struct CallFigures {
    latency_ms: u64,
    cost_usd: f64,
    now_ms: i64,
}

impl Analyst {
    pub(super) async fn ask_model(&self, jobs: &[&AnomalyJob]) -> Vec<InsightOutcome> {
        let Some(model) = &self.model else {
            return jobs
                .iter()
                .map(|j| self.rules_outcome(j, InsightSource::Rules, "rules_backend"))
                .collect();
        };
        // The batch finishes by its deadline whatever happens, so the pool's watchdog (longer)
        // never kills a worker that is only waiting.
        let deadline = tokio::time::Instant::now() + self.cfg.batch_deadline();
        // The rules' answers, made once: the prompt's tier follows the risk of the batch's most
        // severe job, and they answer whatever the model does not.
        let rules: Vec<Insight> = jobs.iter().map(|j| rules_backend::insight(j)).collect();
        let tier = Tier::for_batch(rules.iter().map(|r| r.risk_score), self.cfg.tiered_prompts);
        let request = prompt::request(&self.template, tier, &self.cfg.tiers, jobs);
        // A rough token estimate (4 characters a token) reserved up front, settled after.
        let est_tokens = request.estimated_input_tokens() + prompt::MAX_TOKENS;
        if let Err(reason) = self
            .admit(est_tokens, deadline - self.cfg.call_budget())
            .await
        {
            return rules
                .into_iter()
                .map(|r| self.outcome(r, InsightSource::Fallback, Some(reason)))
                .collect();
        }
        let attempted = self.call(model, &request, deadline).await;
        let call = self.record(&attempted, est_tokens);
        let asked = Asked {
            model_id: model.model_id(),
            hash: request.hash(),
            tier,
            rules,
        };
        self.outcomes(jobs, attempted, &call, asked)
    }

    /// Whether the model may be asked now: within the daily budget, the breaker closed, and
    /// the token bucket able to reserve `est_tokens` before `call_by` (waiting for it if need
    /// be). The reason the rules answer instead, when not.
    async fn admit(
        &self,
        est_tokens: u32,
        call_by: tokio::time::Instant,
    ) -> Result<(), &'static str> {
        {
            let now = crate::clock::now_ms();
            let mut control = self.control();
            if !control.budget.allows(now) {
                return Err("budget_exhausted");
            }
            if !control.breaker.allow(now) {
                return Err("breaker_open");
            }
        }
        loop {
            let wait = self
                .control()
                .limiter
                .reserve(est_tokens, crate::clock::now_ms());
            if wait == 0 {
                return Ok(());
            }
            let wait = Duration::from_millis(wait as u64);
            if tokio::time::Instant::now() + wait > call_by {
                self.control().breaker.on_abandoned();
                return Err("rate_limited");
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// One model call, with its retries, finished by `deadline`, in its own span.
    async fn call(
        &self,
        model: &Model,
        request: &ModelRequest,
        deadline: tokio::time::Instant,
    ) -> Attempted {
        let span = model_span(model.system(), model.model_id());
        let started = std::time::Instant::now();
        let attempted = match tokio::time::timeout_at(
            deadline,
            model::invoke_with_retries(model, request, self.cfg.max_retries, self.retry_base)
                .instrument(span.clone()),
        )
        .await
        {
            Ok(attempted) => attempted,
            Err(_) => Attempted {
                result: Err(model::CallError::Timeout(started.elapsed())),
                attempts: self.cfg.max_retries + 1,
                latency: started.elapsed(),
            },
        };
        span.record("attempts", i64::from(attempted.attempts));
        match &attempted.result {
            Ok(a) => {
                span.record("gen_ai.usage.input_tokens", i64::from(a.input_tokens));
                span.record("gen_ai.usage.output_tokens", i64::from(a.output_tokens));
                if let Some(reason) = &a.stop_reason {
                    span.record("gen_ai.response.finish_reasons", reason.as_str());
                }
            }
            Err(e) => {
                span.record("error.type", e.reason());
                span.record("otel.status_code", "ERROR");
            }
        }
        attempted
    }

    /// The one place a call's outcome is recorded: the counters and the latency histogram,
    /// the breaker, the token bucket (settled against the estimate) and the budget. Its cost.
    fn record(&self, attempted: &Attempted, est_tokens: u32) -> CallFigures {
        let c = &self.counters;
        c.calls.fetch_add(1, Ordering::Relaxed);
        c.attempts
            .fetch_add(u64::from(attempted.attempts), Ordering::Relaxed);
        let latency_ms = attempted.latency.as_millis() as u64;
        crate::metrics::global()
            .bedrock_latency
            .observe(attempted.latency.as_secs_f64());
        c.call_latency_ms_total
            .fetch_add(latency_ms, Ordering::Relaxed);
        let now = crate::clock::now_ms();
        c.recent.lock().expect("recent calls lock").record(
            now,
            latency_ms,
            attempted.result.is_ok(),
        );
        let mut control = self.control();
        let answer = match &attempted.result {
            Ok(answer) => answer,
            Err(e) => {
                c.call_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, attempts = attempted.attempts, "model call failed; rules answer");
                control.breaker.on_failure(now);
                control.limiter.settle(est_tokens, 0, now);
                return CallFigures {
                    latency_ms,
                    cost_usd: 0.0,
                    now_ms: now,
                };
            }
        };
        let cost = self
            .pricing
            .cost_usd(answer.input_tokens, answer.output_tokens);
        control.breaker.on_success();
        control.budget.record(cost, now);
        control
            .limiter
            .settle(est_tokens, answer.input_tokens + answer.output_tokens, now);
        c.input_tokens
            .fetch_add(u64::from(answer.input_tokens), Ordering::Relaxed);
        c.output_tokens
            .fetch_add(u64::from(answer.output_tokens), Ordering::Relaxed);
        c.cost_micro_usd
            .fetch_add((cost * 1_000_000.0).round() as u64, Ordering::Relaxed);
        CallFigures {
            latency_ms,
            cost_usd: cost,
            now_ms: now,
        }
    }

    /// Each job's outcome from the call: the model's insight where its answer parses (and,
    /// when confident, cached), the rules' otherwise, each carrying its share of the call's
    /// figures. An insight less confident than `min_confidence` is kept, marked, with the
    /// rules' risk that alerting then follows.
    fn outcomes(
        &self,
        jobs: &[&AnomalyJob],
        attempted: Attempted,
        call: &CallFigures,
        asked: Asked,
    ) -> Vec<InsightOutcome> {
        let n = jobs.len() as u32;
        let stamp = |mut o: InsightOutcome, input: u32, output: u32, cost: f64| {
            o.model_id = Some(asked.model_id.to_string());
            o.prompt_hash = Some(asked.hash.clone());
            o.prompt_tier = Some(asked.tier.name());
            o.input_tokens = input;
            o.output_tokens = output;
            o.cost_usd = cost;
            o.latency_ms = call.latency_ms;
            o.attempts = attempted.attempts;
            o.batch_size = n;
            o
        };
        let answer = match attempted.result {
            Ok(answer) => answer,
            Err(ref e) => {
                return asked
                    .rules
                    .into_iter()
                    .map(|r| {
                        let o = self.outcome(r, InsightSource::Fallback, Some(e.reason()));
                        stamp(o, 0, 0, 0.0)
                    })
                    .collect();
            }
        };
        let fillers: Vec<Vec<String>> = jobs
            .iter()
            .map(|j| rules_backend::recommendations(j))
            .collect();
        let (parsed, form) = read_answer(&answer, &fillers);
        let c = &self.counters;
        match form {
            "tool" => c.tool_answers.fetch_add(1, Ordering::Relaxed),
            _ => c.text_answers.fetch_add(1, Ordering::Relaxed),
        };
        let share = |total: u32| total / n.max(1);
        jobs.iter()
            .zip(parsed)
            .zip(asked.rules)
            .map(|((job, parsed), rules)| {
                let o = match parsed {
                    Ok(insight) => {
                        let low = insight.confidence < self.cfg.min_confidence;
                        if low {
                            c.low_confidence.fetch_add(1, Ordering::Relaxed);
                        } else {
                            self.control()
                                .cache
                                .put(cache_key(job), insight.clone(), call.now_ms);
                        }
                        let reason = low.then_some("low_confidence");
                        let mut o = self.outcome(insight, InsightSource::Ai, reason);
                        o.low_confidence = low;
                        o.rules_risk = low.then_some(rules.risk_score);
                        o
                    }
                    Err(e) => {
                        c.invalid_answers.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(error = %e, stream_id = %job.stream_id, form, "unusable model answer; rules answer");
                        self.outcome(rules, InsightSource::Fallback, Some("parse_error"))
                    }
                };
                let mut o = stamp(o, share(answer.input_tokens), share(answer.output_tokens), call.cost_usd / f64::from(n.max(1)));
                o.answer_form = Some(form);
                o
            })
            .collect()
    }
}

/// What a batch was asked with, for its outcomes, and the rules' answer to each job.
struct Asked<'a> {
    model_id: &'a str,
    hash: String,
    tier: Tier,
    rules: Vec<Insight>,
}

/// The insights in a model's answer, and how they were read: from the schema-forced tool
/// call (`tool`), or from text when the model gave none (`text`).
fn read_answer(
    answer: &model::ModelAnswer,
    fillers: &[Vec<String>],
) -> (
    Vec<Result<crate::analyst::insight::Insight, parse::ParseError>>,
    &'static str,
) {
    let n = fillers.len();
    let (result, form) = match &answer.tool_input {
        Some(input) => (parse::parse_tool(input, fillers), "tool"),
        None if n == 1 => (
            Ok(vec![parse::parse_insight(&answer.text, &fillers[0])]),
            "text",
        ),
        None => (parse::parse_batch(&answer.text, fillers), "text"),
    };
    let parsed = result.unwrap_or_else(|e| vec![Err(e); n]);
    (parsed, form)
}

/// The model call's span, with the OpenTelemetry gen_ai attributes (only when traced).
fn model_span(system: &'static str, model_id: &str) -> tracing::Span {
    context::child(|| {
        tracing::info_span!(
            "chat",
            otel.name = %format_args!("chat {model_id}"),
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            gen_ai.system = system,
            gen_ai.operation.name = "chat",
            gen_ai.request.model = model_id,
            gen_ai.request.max_tokens = i64::from(prompt::MAX_TOKENS),
            gen_ai.request.temperature = prompt::TEMPERATURE,
            gen_ai.usage.input_tokens = tracing::field::Empty,
            gen_ai.usage.output_tokens = tracing::field::Empty,
            gen_ai.response.finish_reasons = tracing::field::Empty,
            error.type = tracing::field::Empty,
            attempts = tracing::field::Empty,
        )
    })
}
