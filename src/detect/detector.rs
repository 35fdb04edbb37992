//! The detection state of one stream and the two pure steps over it:
//! `evaluate` (judge a sample against the state) and `absorb` (fold the sample into the state).

use super::counters::{self, CounterReading};
use super::ewma::Ewma;
use super::hysteresis::{self, OpenAnomaly, Transition};
use super::rules::{self, Finding};
use super::DetectConfig;
use crate::sample::{Counter, Metric, Sample};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DetectorState {
    pub baselines: BTreeMap<Metric, Ewma>,
    pub counters: BTreeMap<Counter, CounterReading>,
    pub open: BTreeMap<String, OpenAnomaly>,
    pub last_timestamp_ms: Option<i64>,
}

/// What the rules say about one sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub findings: Vec<Finding>,
    /// Metric and counter names the sample carried (for hysteresis).
    pub observed: BTreeSet<&'static str>,
    pub transitions: Vec<Transition>,
}

/// Judge `sample` against the state as it was before the sample.
pub fn evaluate(state: &DetectorState, sample: &Sample, cfg: &DetectConfig) -> Evaluation {
    let window_start_ms = state.last_timestamp_ms.unwrap_or(sample.timestamp_ms);
    let mut findings = rules::sample_gauge_findings(
        sample,
        |m| state.baselines.get(&m).copied(),
        cfg,
        window_start_ms,
    );
    // Only hysteresis reads `observed`, and only for open anomalies: skip it when none are.
    let mut observed: BTreeSet<&'static str> = if state.open.is_empty() {
        BTreeSet::new()
    } else {
        Metric::ALL
            .into_iter()
            .filter(|m| sample.metric(*m).is_some())
            .map(Metric::field)
            .chain(sample.counters.keys().map(|c| c.name()))
            .collect()
    };
    for (&counter, &value) in &sample.counters {
        let prev = state.counters.get(&counter);
        if let (Some(delta), _) = counters::observe(counter, prev, value, sample.timestamp_ms) {
            let start = prev.map_or(window_start_ms, |p| p.timestamp_ms);
            findings.extend(rules::counter_findings(counter, &delta, cfg, start));
        }
    }
    if !findings.is_empty() {
        observed.extend(findings.iter().map(|f| f.metric));
    }
    let transitions = hysteresis::transitions(&state.open, &findings, &observed, cfg.clear_samples);
    Evaluation {
        findings,
        observed,
        transitions,
    }
}

/// A lasting shift: an anomaly on `metric` open for more than this much sample time.
const LASTING_SHIFT_MS: i64 = 10 * 60 * 1000;

fn long_open(state: &DetectorState, metric: &str, now_ms: i64) -> bool {
    state
        .open
        .values()
        .any(|a| a.metric == metric && now_ms - a.opened_at_ms > LASTING_SHIFT_MS)
}

/// Fold a sample into the state: baselines, counter readings, clear streaks, last timestamp.
/// Opening and resolving anomalies is done by applying their events, not here.
pub fn absorb(state: &mut DetectorState, sample: &Sample, eval: &Evaluation, cfg: &DetectConfig) {
    for metric in Metric::ALL {
        let Some(value) = sample.metric(metric) else {
            continue;
        };
        // An anomalous value does not teach the baseline: the fault is not the new normal, and
        // the baseline is still right when the fault ends. Only an anomaly open for a long time
        // (a lasting shift) lets the baseline follow, slowly.
        let firing = eval.findings.iter().any(|f| f.metric == metric.field());
        let alpha = if !firing {
            cfg.ewma_alpha
        } else if long_open(state, metric.field(), sample.timestamp_ms) {
            cfg.ewma_alpha * 0.1
        } else {
            continue;
        };
        state
            .baselines
            .entry(metric)
            .or_default()
            .update(value, alpha);
    }
    for (&counter, &value) in &sample.counters {
        let (_, reading) = counters::observe(
            counter,
            state.counters.get(&counter),
            value,
            sample.timestamp_ms,
        );
        state.counters.insert(counter, reading);
    }
    hysteresis::track_clear_streaks(&mut state.open, &eval.findings, &eval.observed);
    state.last_timestamp_ms = Some(sample.timestamp_ms);
}
