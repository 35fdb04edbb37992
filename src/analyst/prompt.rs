//! The prompt. The static part (role, fabric context, normal ranges, output contract, few-shot
//! examples) is the template's `system` text (`config/prompts/`) and never changes between
//! calls, so Bedrock's prompt cache can reuse it; the per-anomaly numbers come last, in the
//! user message. Only numbers and validated ids go in.

use super::job::AnomalyJob;
use super::template::PromptTemplate;
use serde_json::{json, Value};
use std::fmt::Write as _;

pub const MAX_TOKENS: u32 = 1000;
pub const TEMPERATURE: f64 = 0.3;
pub const TOP_P: f64 = 0.9;

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
        if let Some(inc) = &job.incident {
            incident_part(&mut out, inc);
        }
    }
    out
}

fn guid(g: Option<u64>) -> String {
    g.map_or_else(|| "unknown".into(), crate::sample::port::format_guid)
}

/// The incident around the anomaly: its scope, the node's role, and every member's evidence
/// with both ends of its link. GUIDs, port numbers, node types and rule names only: node
/// descriptions are fabric text and stay out of the prompt.
fn incident_part(out: &mut String, inc: &crate::events::types::IncidentV2) {
    let _ = writeln!(
        out,
        "- incident: scope {}, {} port(s), worst severity {}",
        inc.scope.name(),
        inc.members.len(),
        inc.severity.name()
    );
    if let Some(n) = &inc.node {
        let role = n.node_type.map_or("unknown", |t| t.name());
        let _ = writeln!(out, "- node: {} ({role})", guid(Some(n.node_guid)));
    }
    for m in inc.members.iter().take(32) {
        let role = m.port.node_type.map_or("unknown", |t| t.name());
        let peer = m.peer.as_ref().map_or_else(
            || "no peer known".into(),
            |p| {
                format!(
                    "peer {} port {}",
                    guid(p.node_guid),
                    p.port_num.unwrap_or(0)
                )
            },
        );
        let evidence: Vec<String> = m
            .anomalies
            .iter()
            .map(|a| {
                format!(
                    "{} on {} = {} (threshold {}, {})",
                    a.rule.name(),
                    crate::analyst::job::known_metric(&a.metric),
                    a.value,
                    a.threshold,
                    a.severity.name()
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "  - port {} of {} ({role}), {peer}: {}",
            m.port.port_num.unwrap_or(0),
            guid(m.port.node_guid),
            if m.cleared {
                "cleared".to_string()
            } else {
                evidence.join("; ")
            }
        );
    }
    if inc.members.len() > 32 {
        let _ = writeln!(out, "  - and {} more ports", inc.members.len() - 32);
    }
}

/// The InvokeModel body (Anthropic messages API on Bedrock).
pub fn request_body(template: &PromptTemplate, jobs: &[&AnomalyJob]) -> Value {
    json!({
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": MAX_TOKENS,
        "temperature": TEMPERATURE,
        "top_p": TOP_P,
        "system": template.system,
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

    use crate::analyst::insight::PredictionType;
    use crate::analyst::job::Reading;
    use crate::detect::rules::{Rule, Severity};
    use crate::events::types::AnomalyDetectedV2;

    fn job(stream: &str) -> AnomalyJob {
        AnomalyJob {
            incident: None,
            stream_id: stream.into(),
            anomaly_seq: 3,
            anomaly: AnomalyDetectedV2 {
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
                port: Default::default(),
                peer: None,
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
        let body = request_body(&PromptTemplate::live(), &[&j]);
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
        let t = PromptTemplate::live();
        let (x, y) = (request_body(&t, &[&a]), request_body(&t, &[&b]));
        assert_eq!(x["system"], y["system"]);
        assert_ne!(prompt_hash(&x), prompt_hash(&y));
        assert_eq!(prompt_hash(&x), prompt_hash(&request_body(&t, &[&a])));
    }

    #[test]
    fn a_batch_asks_for_an_array_in_order() {
        let (a, b) = (job("a"), job("b"));
        let user = user_prompt(&[&a, &b]);
        assert!(user.contains("JSON array of 2 objects"));
        assert!(user.find("stream: a") < user.find("stream: b"));
    }
}
