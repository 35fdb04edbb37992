//! The prompt. The static part (role, fabric context, normal ranges, output contract, few-shot
//! examples) is the `system` text and never changes between calls, so Bedrock's prompt cache
//! can reuse it; the per-anomaly numbers come last, in the user message. Only numbers and
//! validated ids go in.

use super::insight::PredictionType;
use super::job::AnomalyJob;
use serde_json::{json, Value};
use std::fmt::Write as _;

/// Bump when the prompt text changes; recorded on every insight for prompt tuning.
pub const TEMPLATE_VERSION: &str = "ib-insight-v1";

pub const MAX_TOKENS: u32 = 1000;
pub const TEMPERATURE: f64 = 0.3;
pub const TOP_P: f64 = 0.9;

/// The static system prompt.
pub fn system_prompt() -> String {
    let types = PredictionType::ALL
        .iter()
        .map(|p| p.name())
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "You are an InfiniBand network operations expert analysing anomalies detected on a \
production HPC fabric (HCAs, leaf and spine switches, RDMA traffic, queue pairs).

CONTEXT
- Each stream is one port or link. Samples carry p99 latency (µs), utilization (%), error rate \
(fraction), bandwidth (Gbps), QP errors and perfquery port counters.
- Normal p99 latency: under 5 µs. Normal utilization: 40-70 %. Acceptable error rate: under 0.1 %.
- SymbolErrorCounter above 120/h or any LinkDownedCounter increment means a marginal or failing \
link (cable, transceiver, connector). PortXmitWait growth means congestion (credit starvation). \
PortRcvErrors and PortXmitDiscards mean packet loss.

OUTPUT CONTRACT
Answer with JSON only. For one anomaly, one object; for several, a JSON array with one object \
per anomaly, in the order given. Each object:
{{\"prediction_type\": one of [{types}],
 \"risk_score\": integer 0-100 (80-100 critical: act now; 60-79 high: within 1 hour; \
40-59 medium: monitor; 0-39 low),
 \"explanation\": technical explanation citing the metrics and their deltas from baseline,
 \"recommendations\": 2 to 4 specific, actionable steps,
 \"confidence\": number 0.0-1.0}}

EXAMPLE 1
Input: latency_p99=12 µs (baseline 4 µs), utilization=45 %
Output: {{\"prediction_type\": \"latency_spike\", \"risk_score\": 65, \"explanation\": \
\"P99 latency is 3x its baseline while utilization is normal, pointing at congestion upstream.\", \
\"recommendations\": [\"Check PortXmitWait on the upstream switch\", \"Review QoS settings\"], \
\"confidence\": 0.88}}

EXAMPLE 2
Input: utilization=95 %, error_rate=0.0002
Output: {{\"prediction_type\": \"resource_saturation\", \"risk_score\": 90, \"explanation\": \
\"Port utilization is critical at 95 %; queues will build and latency will follow.\", \
\"recommendations\": [\"Move or throttle the heaviest job on this port\", \
\"Add or rebalance paths through adaptive routing\"], \"confidence\": 0.95}}"
    )
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v}"))
}

/// The per-anomaly part: numbers and validated ids only.
pub fn user_prompt(jobs: &[&AnomalyJob]) -> String {
    let mut out = String::new();
    if jobs.len() == 1 {
        out.push_str("Analyse this anomaly.\n");
    } else {
        let _ = writeln!(
            out,
            "Analyse these {} anomalies. Answer with a JSON array of {} objects, in this order.",
            jobs.len(),
            jobs.len()
        );
    }
    for (i, job) in jobs.iter().enumerate() {
        let a = &job.anomaly;
        let _ = writeln!(out, "\nANOMALY {}", i + 1);
        let _ = writeln!(out, "- stream: {}", job.stream_id);
        let _ = writeln!(
            out,
            "- rule: {} on {}; value {}; threshold {}; baseline {}; delta {} %; severity {}{}",
            a.rule.name(),
            a.metric,
            a.value,
            a.threshold,
            fmt_opt(a.baseline),
            a.delta_pct
                .map_or_else(|| "n/a".into(), |d| format!("{d:+.1}")),
            a.severity.name(),
            a.escalated_from
                .map(|f| format!(" (escalated from {})", f.name()))
                .unwrap_or_default()
        );
        let _ = writeln!(
            out,
            "- window: {} ms, ending at epoch ms {}",
            a.window_end_ms - a.window_start_ms,
            a.window_end_ms
        );
        for r in &job.readings {
            let _ = writeln!(
                out,
                "- {}: {} (baseline {})",
                r.metric,
                r.value,
                fmt_opt(r.baseline)
            );
        }
    }
    out
}

/// The InvokeModel body (Anthropic messages API on Bedrock).
pub fn request_body(jobs: &[&AnomalyJob]) -> Value {
    json!({
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": MAX_TOKENS,
        "temperature": TEMPERATURE,
        "top_p": TOP_P,
        "system": system_prompt(),
        "messages": [{"role": "user", "content": [{"type": "text", "text": user_prompt(jobs)}]}],
    })
}

/// FNV-1a 64 of the full prompt: identifies exactly what the model was asked.
pub fn prompt_hash(body: &Value) -> String {
    format!("{:016x}", crate::hash::fnv1a64(body.to_string().bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmp_template_matches() {
        assert_eq!(
            crate::analyst::template::PromptTemplate::live().system,
            system_prompt()
        );
    }
    use crate::analyst::job::Reading;
    use crate::detect::rules::{Rule, Severity};
    use crate::events::types::AnomalyDetectedV1;

    fn job(stream: &str) -> AnomalyJob {
        AnomalyJob {
            stream_id: stream.into(),
            anomaly_seq: 3,
            anomaly: AnomalyDetectedV1 {
                anomaly_id: "x".into(),
                rule: Rule::LatencySpike,
                metric: "latency_p99".into(),
                value: 12.0,
                baseline: Some(4.0),
                delta_pct: Some(200.0),
                threshold: 8.0,
                severity: Severity::Major,
                escalated_from: None,
                window_start_ms: 1000,
                window_end_ms: 2000,
            },
            readings: vec![Reading {
                metric: "utilization",
                value: 85.0,
                baseline: Some(60.0),
            }],
            origin: Default::default(),
        }
    }

    #[test]
    fn the_body_has_the_contracted_parameters() {
        let j = job("leaf1/p1");
        let body = request_body(&[&j]);
        assert_eq!(body["anthropic_version"], "bedrock-2023-05-31");
        assert_eq!(body["max_tokens"], 1000);
        assert_eq!(body["temperature"], 0.3);
        assert_eq!(body["top_p"], 0.9);
        let system = body["system"].as_str().expect("system");
        for p in PredictionType::ALL {
            assert!(system.contains(p.name()), "{}", p.name());
        }
        let user = body["messages"][0]["content"][0]["text"]
            .as_str()
            .expect("user");
        assert!(user.contains("leaf1/p1") && user.contains("12") && user.contains("baseline 4"));
        assert!(user.contains("utilization: 85 (baseline 60)"), "{user}");
    }

    #[test]
    fn the_static_part_is_identical_across_anomalies() {
        let (a, b) = (job("a"), job("b"));
        let (x, y) = (request_body(&[&a]), request_body(&[&b]));
        assert_eq!(x["system"], y["system"]);
        assert_ne!(prompt_hash(&x), prompt_hash(&y));
        assert_eq!(prompt_hash(&x), prompt_hash(&request_body(&[&a])));
    }

    #[test]
    fn a_batch_asks_for_an_array_in_order() {
        let (a, b) = (job("a"), job("b"));
        let user = user_prompt(&[&a, &b]);
        assert!(user.contains("JSON array of 2 objects"));
        assert!(user.find("stream: a") < user.find("stream: b"));
    }
}
