//! The detection state of one stream and the two pure steps over it:
//! `evaluate` (judge a sample against the state) and `absorb` (fold the sample into the state).

use super::counter_rules;
use super::counters::{self, CounterReading};
use super::ewma::Ewma;
use super::fabric;
use super::gauges::{self, Rates};
use super::hysteresis::{self, OpenAnomaly, Transition};
use super::link::{self, LinkMemory};
use super::rules::{self, Finding, Rule, Severity};
use super::window::ErrorWindow;
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
    /// Increments of the watched error counters over the windows (only counters that had any).
    pub windows: BTreeMap<Counter, ErrorWindow>,
    /// Samples in a row each persistence-gated finding (by key) has fired, not yet open.
    pub streaks: BTreeMap<String, u32>,
    pub link: LinkMemory,
    /// The rates the last fresh sample gave from its data counters.
    pub rates: Rates,
}

/// What the rules say about one sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Findings that count: persistence-gated ones only once they have lasted.
    pub findings: Vec<Finding>,
    /// Every finding that fired on this sample, gated or not: key → (rule, metric).
    pub firing: BTreeMap<String, (Rule, &'static str)>,
    /// Gauges whose value passed a rule's threshold but stayed within k·σ of the baseline.
    pub within_noise: Vec<&'static str>,
    /// Metric and counter names the sample let the rules judge (for hysteresis). A saturated
    /// counter is not among them: it is never a clear sample.
    pub observed: BTreeSet<&'static str>,
    pub transitions: Vec<Transition>,
    /// What the sample's counters gave against the previous readings (`gauges::derive`).
    pub rates: Rates,
}

/// The counter findings of one sample and the counters it saw saturated.
fn counter_findings(
    state: &DetectorState,
    sample: &Sample,
    cfg: &DetectConfig,
    window_start_ms: i64,
) -> (Vec<Finding>, BTreeSet<Counter>) {
    let mut out = Vec::new();
    let mut saturated = BTreeSet::new();
    let link = sample.link.as_ref();
    let ts = sample.timestamp_ms;
    for (&counter, &value) in &sample.counters {
        let prev = state.counters.get(&counter);
        let (delta, reading) = counters::observe(counter, prev, value, ts);
        if let Some(f) = counter_rules::saturation_finding(counter, &reading) {
            out.push(f);
            saturated.insert(counter);
        }
        let Some(delta) = delta else { continue };
        if counter == Counter::PortXmitWait {
            let start = prev.map_or(window_start_ms, |p| p.timestamp_ms);
            out.extend(counter_rules::congestion_finding(&delta, link, cfg, start));
            continue;
        }
        let known = state.windows.get(&counter);
        if !counter_rules::is_watched(counter) || (delta.delta == 0 && known.is_none()) {
            continue;
        }
        let mut window = known.cloned().unwrap_or_default();
        let from = prev.map_or(ts, |p| p.timestamp_ms);
        window.add_spread(from, ts, delta.delta, cfg.long_window_ms());
        out.extend(counter_rules::window_findings(
            counter, &window, link, cfg, ts,
        ));
    }
    (out, saturated)
}

/// Judge `sample` against the state as it was before the sample.
pub fn evaluate(state: &DetectorState, sample: &Sample, cfg: &DetectConfig) -> Evaluation {
    // The gauges derived from the counters are judged as if the client had sent them.
    let rates = gauges::derive(&state.counters, sample);
    let value = |m| gauges::metric(sample, &rates, m);
    let window_start_ms = state.last_timestamp_ms.unwrap_or(sample.timestamp_ms);
    let (mut raw, within_noise) = rules::sample_gauge_findings(
        sample,
        value,
        |m| state.baselines.get(&m).copied(),
        cfg,
        window_start_ms,
    );
    let (counter_found, saturated) = counter_findings(state, sample, cfg, window_start_ms);
    raw.extend(counter_found);
    raw.extend(link::findings(&state.link, sample, cfg));
    raw.extend(fabric::findings(sample));
    let firing: BTreeMap<String, (Rule, &'static str)> =
        raw.iter().map(|f| (f.key(), (f.rule, f.metric))).collect();
    // A noisy rule counts once it has lasted `persist_samples` samples, or while open.
    let findings: Vec<Finding> = raw
        .into_iter()
        .filter(|f| {
            let key = f.key();
            !f.rule.needs_persistence()
                || state.open.contains_key(&key)
                || state.streaks.get(&key).copied().unwrap_or(0) + 1 >= cfg.persist_samples
        })
        .collect();
    // Only hysteresis reads `observed`, and only for open anomalies: skip it when none are.
    let mut observed: BTreeSet<&'static str> = if state.open.is_empty() {
        BTreeSet::new()
    } else {
        Metric::ALL
            .into_iter()
            .filter(|m| value(*m).is_some())
            .map(Metric::field)
            .chain(
                sample
                    .counters
                    .keys()
                    .filter(|c| !saturated.contains(c))
                    .map(|c| c.name()),
            )
            .chain(link::observed(sample))
            .chain(fabric::observed(sample))
            .collect()
    };
    if !findings.is_empty() {
        observed.extend(findings.iter().map(|f| f.metric));
    }
    let mut transitions =
        hysteresis::transitions(&state.open, &findings, &observed, cfg.clear_samples);
    // Data is back: a stale stream is stale no more.
    transitions.extend(
        state
            .open
            .values()
            .filter(|a| a.rule == Rule::Stale)
            .map(|a| Transition::Resolved(a.clone())),
    );
    Evaluation {
        findings,
        firing,
        within_noise,
        observed,
        transitions,
        rates,
    }
}

/// Silence after which a stream of `interval_ms` is stale: at the `intervals`-th report it
/// missed (half an interval of slack for the jitter of sweep times), so a port that falls
/// silent is judged at the same sweep as its peer's link going down.
pub fn stale_after(interval_ms: i64, intervals: u32) -> i64 {
    interval_ms * i64::from(intervals) - interval_ms / 2
}

/// The finding of a stream silent since `last_ms`, judged at fabric time `now_ms`; `None`
/// when it is already open or not silent for `stale_intervals` of its interval.
pub fn stale_finding(
    state: &DetectorState,
    interval_ms: i64,
    now_ms: i64,
    cfg: &DetectConfig,
) -> Option<Finding> {
    let last = state.last_timestamp_ms?;
    let silent = now_ms - last;
    let limit = stale_after(interval_ms.max(1), cfg.stale_intervals);
    let open = state.open.values().any(|a| a.rule == Rule::Stale);
    (!open && interval_ms > 0 && silent > limit).then(|| {
        let (value, threshold) = (silent as f64 / 1000.0, limit as f64 / 1000.0);
        Finding::plain(
            Rule::Stale,
            "stale",
            value,
            threshold,
            Severity::Major,
            last,
        )
    })
}

/// A lasting shift: an anomaly on `metric` open for more than this much sample time.
const LASTING_SHIFT_MS: i64 = 10 * 60 * 1000;

fn long_open(state: &DetectorState, metric: &str, now_ms: i64) -> bool {
    state
        .open
        .values()
        .any(|a| a.metric == metric && now_ms - a.opened_at_ms > LASTING_SHIFT_MS)
}

/// Fold a sample into the state: baselines, counter readings and windows, persistence streaks,
/// the link, clear streaks, last timestamp. Opening and resolving anomalies is done by applying
/// their events, not here.
///
/// The gauges derived from the data counters (`gauges`) are judged and learned as if the
/// client had sent them; the sample itself (the stored event) stays as it came.
pub fn absorb(state: &mut DetectorState, sample: &Sample, eval: &Evaluation, cfg: &DetectConfig) {
    state.rates = eval.rates;
    let fires = |metric: &str| eval.firing.values().any(|(_, m)| *m == metric);
    for metric in Metric::ALL {
        let Some(value) = gauges::metric(sample, &eval.rates, metric) else {
            continue;
        };
        // An anomalous value does not teach the baseline: the fault is not the new normal, and
        // the baseline is still right when the fault ends. Only an anomaly open for a long time
        // (a lasting shift) lets the baseline follow, slowly.
        // Past a threshold but within the noise: it teaches slowly, so a slow drift cannot
        // widen the band that judges it.
        let slow = if fires(metric.field()) {
            if long_open(state, metric.field(), sample.timestamp_ms) {
                true
            } else {
                continue;
            }
        } else {
            eval.within_noise.contains(&metric.field())
        };
        let baseline = state.baselines.entry(metric).or_default();
        if slow {
            baseline.nudge(value, cfg.ewma_alpha * 0.1);
        } else {
            baseline.update(value, cfg.ewma_alpha);
        }
    }
    let ts = sample.timestamp_ms;
    for (&counter, &value) in &sample.counters {
        let prev = state.counters.get(&counter);
        let from = prev.map_or(ts, |p| p.timestamp_ms);
        let (delta, reading) = counters::observe(counter, prev, value, ts);
        state.counters.insert(counter, reading);
        if counter == Counter::PortXmitWait || !counter_rules::is_watched(counter) {
            continue;
        }
        let n = delta.map_or(0, |d| d.delta);
        if n > 0 || state.windows.contains_key(&counter) {
            let w = state.windows.entry(counter).or_default();
            w.add_spread(from, ts, n, cfg.long_window_ms());
            if w.is_empty() {
                state.windows.remove(&counter);
            }
        }
    }
    let gated: BTreeSet<&String> = eval
        .firing
        .iter()
        .filter(|(_, (rule, _))| rule.needs_persistence())
        .map(|(k, _)| k)
        .collect();
    state.streaks.retain(|k, _| gated.contains(k));
    for k in gated {
        *state.streaks.entry(k.clone()).or_insert(0) += 1;
    }
    link::absorb(&mut state.link, sample, cfg);
    hysteresis::track_clear_streaks(&mut state.open, &eval.findings, &eval.observed);
    state.last_timestamp_ms = Some(ts);
}

#[cfg(test)]
mod tests;
