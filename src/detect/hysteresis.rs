//! Hysteresis: an anomaly opens once, stays open while its condition holds (escalating when
//! its severity rises), and resolves after its metric was seen clear `clear_samples` times in
//! a row. A sample that does not carry the metric neither holds nor clears it.

use super::rules::{Finding, Rule, Severity};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// An anomaly that is open on a stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenAnomaly {
    pub anomaly_id: String,
    pub rule: Rule,
    pub metric: String,
    pub severity: Severity,
    pub opened_at_ms: i64,
    pub last_value: f64,
    /// Consecutive samples in which the metric was observed and the rule did not fire.
    pub clear_streak: u32,
}

/// What one sample does to the open anomalies.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    Opened(Finding),
    Escalated { finding: Finding, from: Severity },
    Resolved(OpenAnomaly),
}

/// The transitions a sample's findings cause. `observed` holds the metric names the sample
/// carried; `open` is keyed by `Finding::key`.
pub fn transitions(
    open: &BTreeMap<String, OpenAnomaly>,
    findings: &[Finding],
    observed: &BTreeSet<&'static str>,
    clear_samples: u32,
) -> Vec<Transition> {
    let mut out = Vec::new();
    let mut firing = BTreeSet::new();
    for f in findings {
        let key = f.key();
        match open.get(&key) {
            None => out.push(Transition::Opened(f.clone())),
            Some(a) if f.severity > a.severity => out.push(Transition::Escalated {
                finding: f.clone(),
                from: a.severity,
            }),
            Some(_) => {}
        }
        firing.insert(key);
    }
    for (key, a) in open {
        let clear = !firing.contains(key) && observed.contains(a.metric.as_str());
        if clear && a.clear_streak + 1 >= clear_samples {
            out.push(Transition::Resolved(a.clone()));
        }
    }
    out
}

/// Update clear streaks after a sample (the part of hysteresis that is not an event).
pub fn track_clear_streaks(
    open: &mut BTreeMap<String, OpenAnomaly>,
    findings: &[Finding],
    observed: &BTreeSet<&'static str>,
) {
    for (key, a) in open.iter_mut() {
        if let Some(f) = findings.iter().find(|f| &f.key() == key) {
            a.clear_streak = 0;
            a.last_value = f.value;
        } else if observed.contains(a.metric.as_str()) {
            a.clear_streak += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(severity: Severity) -> Finding {
        Finding {
            rule: Rule::UtilizationHigh,
            metric: "utilization",
            value: 91.0,
            baseline: Some(50.0),
            delta_pct: Some(82.0),
            threshold: 80.0,
            severity,
            window_start_ms: 0,
        }
    }

    fn open_one(severity: Severity, clear_streak: u32) -> BTreeMap<String, OpenAnomaly> {
        let f = finding(severity);
        BTreeMap::from([(
            f.key(),
            OpenAnomaly {
                anomaly_id: "a".into(),
                rule: f.rule,
                metric: "utilization".into(),
                severity,
                opened_at_ms: 0,
                last_value: 91.0,
                clear_streak,
            },
        )])
    }

    fn observed() -> BTreeSet<&'static str> {
        BTreeSet::from(["utilization"])
    }

    #[test]
    fn opens_once_then_holds() {
        let f = [finding(Severity::Major)];
        let t = transitions(&BTreeMap::new(), &f, &observed(), 3);
        assert!(matches!(t.as_slice(), [Transition::Opened(_)]));
        let t = transitions(&open_one(Severity::Major, 0), &f, &observed(), 3);
        assert!(t.is_empty(), "held anomaly must not reopen: {t:?}");
    }

    #[test]
    fn escalates_only_upwards() {
        let t = transitions(
            &open_one(Severity::Warning, 0),
            &[finding(Severity::Critical)],
            &observed(),
            3,
        );
        assert!(matches!(
            t.as_slice(),
            [Transition::Escalated {
                from: Severity::Warning,
                ..
            }]
        ));
        let t = transitions(
            &open_one(Severity::Critical, 0),
            &[finding(Severity::Warning)],
            &observed(),
            3,
        );
        assert!(t.is_empty());
    }

    #[test]
    fn resolves_after_clear_samples_in_a_row() {
        let mut open = open_one(Severity::Major, 0);
        for _ in 0..2 {
            assert!(transitions(&open, &[], &observed(), 3).is_empty());
            track_clear_streaks(&mut open, &[], &observed());
        }
        let t = transitions(&open, &[], &observed(), 3);
        assert!(matches!(t.as_slice(), [Transition::Resolved(_)]));
    }

    #[test]
    fn a_firing_sample_resets_the_clear_streak() {
        let mut open = open_one(Severity::Major, 2);
        track_clear_streaks(&mut open, &[finding(Severity::Major)], &observed());
        assert_eq!(open.values().next().map(|a| a.clear_streak), Some(0));
    }

    #[test]
    fn a_sample_without_the_metric_neither_holds_nor_clears() {
        let mut open = open_one(Severity::Major, 2);
        let other = BTreeSet::from(["latency_p99"]);
        assert!(transitions(&open, &[], &other, 3).is_empty());
        track_clear_streaks(&mut open, &[], &other);
        assert_eq!(open.values().next().map(|a| a.clear_streak), Some(2));
    }
}
