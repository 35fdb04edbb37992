//! The prompt. The static part (role, fabric context, normal ranges, output contract, few-shot
//! examples) is the template's system text of the batch's tier (`config/prompts/`) and never
//! changes between calls of a tier, so a prompt cache can reuse it; the per-incident numbers
//! come last, in the user message, within the tier's evidence budget. Only numbers and
//! validated ids go in.

use super::job::AnomalyJob;
use super::model::ModelRequest;
use super::template::PromptTemplate;
use super::tier::Tier;
use super::TierBudgets;
use std::fmt::Write as _;

pub const MAX_TOKENS: u32 = 1000;
pub const TEMPERATURE: f64 = 0.3;
pub const TOP_P: f64 = 0.9;

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v}"))
}

/// The per-anomaly part: numbers and validated ids only. Past `budget_chars`, an incident's
/// further ports are summed up in one line (each anomaly's own numbers are always given).
pub fn user_prompt(jobs: &[&AnomalyJob], budget_chars: usize) -> String {
    let mut out = String::new();
    if jobs.len() == 1 {
        out.push_str("Analyse this anomaly.\n");
    } else {
        let _ = writeln!(
            out,
            "Analyse these {} anomalies. Record {} insights, one per anomaly, in this order.",
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
            // Each job gets its share of what is left of the budget.
            let left = jobs.len() - i;
            let share = budget_chars.saturating_sub(out.len()) / left;
            let until = out.len() + share;
            incident_part(&mut out, inc, until);
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
fn incident_part(out: &mut String, inc: &crate::events::types::IncidentV2, until: usize) {
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
    let mut listed = 0;
    for m in inc.members.iter().take(32) {
        if listed > 0 && out.len() >= until {
            break;
        }
        listed += 1;
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
    if inc.members.len() > listed {
        let more = &inc.members[listed..];
        let cleared = more.iter().filter(|m| m.cleared).count();
        let _ = writeln!(
            out,
            "  - and {} more ports ({} cleared)",
            more.len(),
            cleared
        );
    }
}

/// What the model is asked for `jobs` with the prompt of `tier`.
pub fn request(
    template: &PromptTemplate,
    tier: Tier,
    budgets: &TierBudgets,
    jobs: &[&AnomalyJob],
) -> ModelRequest {
    ModelRequest {
        system: template.system_for(tier).to_string(),
        user: user_prompt(jobs, tier.budget_tokens(budgets) as usize * 4),
        max_tokens: MAX_TOKENS,
        temperature: TEMPERATURE,
        top_p: TOP_P,
    }
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

    fn switch_incident(ports: usize) -> crate::events::types::IncidentV2 {
        use crate::events::types::{test_incident, IncidentScope};
        let names: Vec<String> = (0..ports).map(|p| format!("leaf04/p{p}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        test_incident("inc-1", IncidentScope::Switch, &names)
    }

    #[test]
    fn the_request_has_the_contracted_parameters() {
        let j = job("leaf1/p1");
        let r = request(
            &PromptTemplate::live(),
            Tier::Critical,
            &TierBudgets::default(),
            &[&j],
        );
        assert_eq!((r.max_tokens, r.temperature, r.top_p), (1000, 0.3, 0.9));
        for p in PredictionType::ALL {
            assert!(r.system.contains(p.name()), "{}", p.name());
        }
        let user = &r.user;
        assert!(user.contains("leaf1/p1") && user.contains("12") && user.contains("baseline 4"));
        assert!(user.contains("utilization: 85 (baseline 60)"), "{user}");
    }

    #[test]
    fn the_static_part_is_identical_across_anomalies_of_a_tier() {
        let (a, b) = (job("a"), job("b"));
        let (t, budgets) = (PromptTemplate::live(), TierBudgets::default());
        let ask = |j: &AnomalyJob, tier| request(&t, tier, &budgets, &[j]);
        let (x, y) = (ask(&a, Tier::High), ask(&b, Tier::High));
        assert_eq!(x.system, y.system);
        assert_ne!(x.hash(), y.hash());
        assert_eq!(x.hash(), ask(&a, Tier::High).hash());
        assert_ne!(x.system, ask(&a, Tier::Medium).system);
    }

    #[test]
    fn a_batch_asks_for_one_insight_each_in_order() {
        let (a, b) = (job("a"), job("b"));
        let user = user_prompt(&[&a, &b], 10_000);
        assert!(user.contains("Record 2 insights"));
        assert!(user.find("stream: a") < user.find("stream: b"));
    }

    #[test]
    fn given_a_switch_incident_when_the_tier_is_lower_then_fewer_ports_are_listed_and_the_rest_counted(
    ) {
        let mut j = job("leaf04/p0");
        j.incident = Some(switch_incident(30));
        let budgets = TierBudgets::default();
        let t = PromptTemplate::live();
        let full = request(&t, Tier::Critical, &budgets, &[&j]).user;
        let minimal = request(&t, Tier::Medium, &budgets, &[&j]).user;
        let listed = |u: &str| u.matches("  - port ").count();
        assert_eq!(listed(&full), 30, "{full}");
        assert!(listed(&minimal) >= 1 && listed(&minimal) < 30, "{minimal}");
        let more = 30 - listed(&minimal);
        assert!(
            minimal.contains(&format!("and {more} more ports (0 cleared)")),
            "{minimal}"
        );
        assert!(minimal.len() < full.len());
        // The anomaly's own numbers are always there.
        assert!(minimal.contains("latency_spike") && minimal.contains("leaf04/p0"));
    }
}
