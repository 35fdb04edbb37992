//! The alert decisions. A fingerprint raises once per window: the incident (whatever its
//! prediction type becomes as it grows), or for an insight outside any incident the (stream,
//! prediction type). A repeat inside the window is suppressed (and counted); a higher risk
//! tier inside the window re-raises as an escalation. Time is the insight's recorded time, so
//! replay decides alike.

use super::AlertsConfig;
use crate::analyst::insight::PredictionType;
use crate::events::types::{AlertRaisedV2, AlertSuppressedV1};
use crate::events::StreamEvent;
use std::collections::HashMap;

/// What the alert actor knows about one insight.
#[derive(Debug, Clone, PartialEq)]
pub struct InsightFacts {
    pub stream_id: String,
    /// The incident the insight answers, and its ports.
    pub incident_id: Option<String>,
    pub ports: Vec<String>,
    pub insight_seq: u64,
    pub anomaly_seq: u64,
    pub prediction_type: PredictionType,
    pub risk_score: u8,
    pub explanation: String,
    pub at_ms: i64,
    /// The rules answered because every port was in a maintenance window: planned work pages
    /// no one.
    pub in_maintenance: bool,
    /// A model answer below the confidence floor: the rules' risk for the same incident, which
    /// alerting follows instead of the model's.
    pub low_confidence_rules_risk: Option<u8>,
}

impl InsightFacts {
    /// The risk alerting follows: a low-confidence model risk alone never pages anyone.
    pub fn alerting_risk(&self) -> u8 {
        self.low_confidence_rules_risk.unwrap_or(self.risk_score)
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Tracked {
    alert_id: String,
    raised_at_ms: i64,
    tier: u8,
    suppressed: u32,
}

/// The open fingerprints.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertBook {
    open: HashMap<String, Tracked>,
}

fn fingerprint(incident_id: Option<&str>, stream_id: &str, p: PredictionType) -> String {
    match incident_id {
        Some(id) => format!("incident {id}"),
        None => format!("{stream_id} {}", p.name()),
    }
}

/// Risk tiers: 80-89, 90-99, 100.
pub fn tier(risk: u8) -> u8 {
    risk / 10
}

pub fn decide(book: &AlertBook, facts: &InsightFacts, cfg: &AlertsConfig) -> Option<StreamEvent> {
    let risk = facts.alerting_risk();
    if risk < cfg.threshold || facts.in_maintenance {
        return None;
    }
    let window_ms = cfg.dedup_window_s as i64 * 1000;
    let key = fingerprint(
        facts.incident_id.as_deref(),
        &facts.stream_id,
        facts.prediction_type,
    );
    let live = book
        .open
        .get(&key)
        .filter(|t| facts.at_ms - t.raised_at_ms < window_ms);
    let raise = |escalated_from_tier| {
        StreamEvent::AlertRaised(AlertRaisedV2 {
            // Deterministic: the insight's stream (`#incidents` for an incident) and seq.
            alert_id: match facts.incident_id {
                Some(_) => format!(
                    "{}#{}",
                    crate::incidents::INCIDENT_STREAM,
                    facts.insight_seq
                ),
                None => format!("{}#{}", facts.stream_id, facts.insight_seq),
            },
            stream_id: facts.stream_id.clone(),
            incident_id: facts.incident_id.clone(),
            ports: facts.ports.clone(),
            prediction_type: facts.prediction_type,
            risk_score: risk,
            tier: tier(risk),
            escalated_from_tier,
            explanation: facts.explanation.clone(),
            insight_seq: facts.insight_seq,
            anomaly_seq: facts.anomaly_seq,
            raised_at_ms: facts.at_ms,
        })
    };
    Some(match live {
        None => raise(None),
        Some(t) if tier(risk) > t.tier => raise(Some(t.tier)),
        Some(t) => StreamEvent::AlertSuppressed(AlertSuppressedV1 {
            alert_id: t.alert_id.clone(),
            stream_id: facts.stream_id.clone(),
            prediction_type: facts.prediction_type,
            risk_score: risk,
            insight_seq: facts.insight_seq,
            suppressed_count: t.suppressed + 1,
            alert_raised_at_ms: t.raised_at_ms,
            at_ms: facts.at_ms,
        }),
    })
}

/// Forget fingerprints whose dedup window ended before `now_ms`: `decide` treats them as gone
/// already, so this changes no decision and keeps the book to one window's alerts.
pub fn prune(book: &mut AlertBook, now_ms: i64, cfg: &AlertsConfig) {
    let window_ms = cfg.dedup_window_s as i64 * 1000;
    book.open.retain(|_, t| now_ms - t.raised_at_ms < window_ms);
}

impl AlertBook {
    /// Fingerprints held.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

pub fn apply(book: &mut AlertBook, event: &StreamEvent) {
    match event {
        StreamEvent::AlertRaised(a) => {
            book.open.insert(
                fingerprint(a.incident_id.as_deref(), &a.stream_id, a.prediction_type),
                Tracked {
                    alert_id: a.alert_id.clone(),
                    raised_at_ms: a.raised_at_ms,
                    tier: a.tier,
                    suppressed: 0,
                },
            );
        }
        StreamEvent::AlertSuppressed(s) => {
            if let Some(t) = book.open.values_mut().find(|t| t.alert_id == s.alert_id) {
                t.suppressed = s.suppressed_count;
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> AlertsConfig {
        AlertsConfig::default()
    }

    fn facts(stream: &str, seq: u64, risk: u8, at_s: i64) -> InsightFacts {
        InsightFacts {
            stream_id: stream.into(),
            incident_id: None,
            ports: vec![stream.into()],
            insight_seq: seq,
            anomaly_seq: seq - 1,
            prediction_type: PredictionType::ConnectionInstability,
            risk_score: risk,
            explanation: "link flapping".into(),
            at_ms: at_s * 1000,
            in_maintenance: false,
            low_confidence_rules_risk: None,
        }
    }

    #[test]
    fn given_a_low_confidence_model_answer_then_the_rules_risk_decides_the_alert() {
        // The model says 95 but is unsure; the rules rate the same incident 60: no page.
        let unsure = InsightFacts {
            low_confidence_rules_risk: Some(60),
            ..facts("leaf1/p1", 2, 95, 0)
        };
        assert_eq!(
            kind(&decide(&AlertBook::default(), &unsure, &cfg())),
            "none"
        );
        // The rules rate it critical on their own: it pages, at the rules' risk.
        let unsure_but_critical = InsightFacts {
            low_confidence_rules_risk: Some(85),
            ..facts("leaf1/p1", 2, 40, 0)
        };
        match decide(&AlertBook::default(), &unsure_but_critical, &cfg()) {
            Some(StreamEvent::AlertRaised(a)) => assert_eq!((a.risk_score, a.tier), (85, 8)),
            other => panic!("expected a raise, got {other:?}"),
        }
        // A confident answer of 95 pages at 95.
        assert_eq!(
            kind(&decide(
                &AlertBook::default(),
                &facts("leaf1/p1", 2, 95, 0),
                &cfg()
            )),
            "raised leaf1/p1#2"
        );
    }

    /// Given these insights, when one more arrives, then this is decided.
    fn given(insights: &[InsightFacts]) -> AlertBook {
        let mut book = AlertBook::default();
        for f in insights {
            if let Some(e) = decide(&book, f, &cfg()) {
                apply(&mut book, &e);
            }
        }
        book
    }

    fn kind(e: &Option<StreamEvent>) -> String {
        match e {
            None => "none".into(),
            Some(StreamEvent::AlertRaised(a)) => match a.escalated_from_tier {
                Some(t) => format!("raised {} escalated from tier {t}", a.alert_id),
                None => format!("raised {}", a.alert_id),
            },
            Some(StreamEvent::AlertSuppressed(s)) => {
                format!("suppressed into {} x{}", s.alert_id, s.suppressed_count)
            }
            Some(other) => format!("{other:?}"),
        }
    }

    #[test]
    fn a_critical_insight_raises_and_below_threshold_does_not() {
        let book = given(&[]);
        assert_eq!(
            kind(&decide(&book, &facts("p1", 5, 85, 0), &cfg())),
            "raised p1#5"
        );
        assert_eq!(kind(&decide(&book, &facts("p1", 5, 79, 0), &cfg())), "none");
    }

    #[test]
    fn repeats_inside_the_window_are_suppressed_and_counted() {
        let book = given(&[facts("p1", 5, 85, 0), facts("p1", 9, 86, 60)]);
        assert_eq!(
            kind(&decide(&book, &facts("p1", 12, 84, 120), &cfg())),
            "suppressed into p1#5 x2"
        );
    }

    #[test]
    fn after_the_window_it_raises_again() {
        let book = given(&[facts("p1", 5, 85, 0)]);
        assert_eq!(
            kind(&decide(&book, &facts("p1", 20, 85, 300), &cfg())),
            "raised p1#20"
        );
    }

    #[test]
    fn a_higher_tier_inside_the_window_escalates() {
        let book = given(&[facts("p1", 5, 85, 0)]);
        assert_eq!(
            kind(&decide(&book, &facts("p1", 7, 95, 30), &cfg())),
            "raised p1#7 escalated from tier 8"
        );
        let book = given(&[facts("p1", 5, 85, 0), facts("p1", 7, 95, 30)]);
        assert_eq!(
            kind(&decide(&book, &facts("p1", 9, 96, 40), &cfg())),
            "suppressed into p1#7 x1"
        );
    }

    #[test]
    fn an_incident_alerts_once_whatever_type_its_insights_take() {
        let incident = |seq, risk, p, at_s| InsightFacts {
            incident_id: Some("inc-1".into()),
            ports: vec!["a".into(), "b".into()],
            prediction_type: p,
            ..facts("#incidents", seq, risk, at_s)
        };
        let first = incident(5, 85, PredictionType::BandwidthThrottling, 0);
        assert_eq!(
            kind(&decide(&given(&[]), &first, &cfg())),
            "raised #incidents#5"
        );
        let book = given(&[first]);
        let grown = incident(9, 88, PredictionType::ConnectionInstability, 10);
        assert_eq!(
            kind(&decide(&book, &grown, &cfg())),
            "suppressed into #incidents#5 x1"
        );
        let worse = incident(11, 95, PredictionType::ConnectionInstability, 20);
        assert_eq!(
            kind(&decide(&book, &worse, &cfg())),
            "raised #incidents#11 escalated from tier 8"
        );
    }

    #[test]
    fn a_critical_insight_on_planned_work_raises_nothing_and_leaves_the_book_alone() {
        let planned = InsightFacts {
            in_maintenance: true,
            ..facts("p1", 5, 99, 0)
        };
        assert_eq!(decide(&given(&[]), &planned, &cfg()), None);
        let book = given(&[planned]);
        assert_eq!(book.len(), 0);
        assert_eq!(
            kind(&decide(&book, &facts("p1", 7, 85, 10), &cfg())),
            "raised p1#7"
        );
    }

    #[test]
    fn fingerprints_are_per_stream_and_prediction_type() {
        let book = given(&[facts("p1", 5, 85, 0)]);
        assert_eq!(
            kind(&decide(&book, &facts("p2", 5, 85, 1), &cfg())),
            "raised p2#5"
        );
        let other = InsightFacts {
            prediction_type: PredictionType::LatencySpike,
            ..facts("p1", 6, 85, 1)
        };
        assert_eq!(kind(&decide(&book, &other, &cfg())), "raised p1#6");
    }

    #[test]
    fn the_book_forgets_fingerprints_past_their_window_without_changing_a_decision() {
        let cfg = cfg();
        let mut book = AlertBook::default();
        for (i, stream) in ["a", "b", "c"].iter().enumerate() {
            let raised = decide(&book, &facts(stream, 2, 90, i as i64), &cfg).expect("raise");
            apply(&mut book, &raised);
        }
        let later = cfg.dedup_window_s as i64 + 1;
        let before = decide(&book, &facts("a", 9, 90, later), &cfg);
        prune(&mut book, later * 1000, &cfg);
        assert_eq!(book.len(), 1, "only c is inside its window");
        assert_eq!(decide(&book, &facts("a", 9, 90, later), &cfg), before);
    }
}
