//! The trigger rules. Each turns one observation, judged against its baseline or its counter
//! rate, into a `Finding` with evidence and a severity.
//!
//! Gauge rules (seed plan): utilization > 80 %, p99 latency > 2× baseline, error rate > 5 %,
//! |delta| > 20 % of baseline. Counter rules (NVIDIA guidance): any LinkDowned increment,
//! symbol errors > 120/h, link error recovery > 5/min, receive errors > 10/s, transmit
//! discards > 100/s, PortXmitWait as congestion; QP errors > 1/s. Saturated and reset counters
//! are handled in the deltas and are not anomalies.

use super::counters::CounterDelta;
use super::ewma::Ewma;
use super::DetectConfig;
use crate::sample::{Counter, Metric, Sample};
use serde::{Deserialize, Serialize};

// Serde names are for JSON only: bincode encodes variants by index, so renaming them never
// changes stored bytes (the golden tests would say so).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    UtilizationHigh,
    LatencySpike,
    ErrorRateHigh,
    BaselineDeviation,
    LinkDowned,
    SymbolErrors,
    LinkErrorRecovery,
    PortRcvErrors,
    XmitDiscards,
    Congestion,
    /// Kept so older logs decode; saturation is reported in the stream's state, not as an anomaly.
    CounterSaturated,
    QpErrorsHigh,
}

impl Rule {
    pub fn name(self) -> &'static str {
        match self {
            Rule::UtilizationHigh => "utilization_high",
            Rule::LatencySpike => "latency_spike",
            Rule::ErrorRateHigh => "error_rate_high",
            Rule::BaselineDeviation => "baseline_deviation",
            Rule::LinkDowned => "link_downed",
            Rule::SymbolErrors => "symbol_errors",
            Rule::LinkErrorRecovery => "link_error_recovery",
            Rule::PortRcvErrors => "port_rcv_errors",
            Rule::XmitDiscards => "xmit_discards",
            Rule::Congestion => "congestion",
            Rule::CounterSaturated => "counter_saturated",
            Rule::QpErrorsHigh => "qp_errors_high",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Warning,
    Major,
    Critical,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Major => "major",
            Severity::Critical => "critical",
        }
    }

    /// Severity from how far a value is past its threshold (ratio ≥ 1).
    fn from_ratio(ratio: f64) -> Severity {
        if ratio >= 4.0 {
            Severity::Critical
        } else if ratio >= 2.0 {
            Severity::Major
        } else {
            Severity::Warning
        }
    }
}

/// A rule that fired on one sample, with its evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub rule: Rule,
    /// The JSON field or counter name the rule looked at.
    pub metric: &'static str,
    pub value: f64,
    pub baseline: Option<f64>,
    pub delta_pct: Option<f64>,
    pub threshold: f64,
    pub severity: Severity,
    pub window_start_ms: i64,
}

impl Finding {
    /// Identifies the anomaly this finding belongs to within its stream.
    pub fn key(&self) -> String {
        anomaly_key(self.rule, self.metric)
    }
}

pub fn anomaly_key(rule: Rule, metric: &str) -> String {
    format!("{}:{metric}", rule.name())
}

/// Below these baselines the relative-deviation rule is noise, not signal.
fn deviation_floor(metric: Metric) -> f64 {
    match metric {
        Metric::LatencyP99Us => 1.0,
        Metric::UtilizationPct => 5.0,
        Metric::ErrorRate => 0.001,
        Metric::BandwidthGbps => 1.0,
        Metric::QpErrors => 1.0,
    }
}

fn pct_delta(value: f64, baseline: f64) -> f64 {
    (value - baseline) / baseline * 100.0
}

/// Gauge rules for one metric of one sample against its baseline (before the sample updates it).
pub fn gauge_findings(
    metric: Metric,
    value: f64,
    baseline: Option<&Ewma>,
    cfg: &DetectConfig,
    window_start_ms: i64,
) -> Vec<Finding> {
    let warm = baseline.filter(|b| b.is_warm(cfg.warmup_samples));
    let mut out = Vec::new();
    let finding = |rule, threshold: f64, severity| Finding {
        rule,
        metric: metric.field(),
        value,
        baseline: baseline.map(|b| b.mean),
        delta_pct: baseline
            .filter(|b| b.mean != 0.0)
            .map(|b| pct_delta(value, b.mean)),
        threshold,
        severity,
        window_start_ms,
    };
    match metric {
        Metric::UtilizationPct if value > cfg.utilization_max_pct => {
            let severity = if value >= 98.0 {
                Severity::Critical
            } else if value >= 90.0 {
                Severity::Major
            } else {
                Severity::Warning
            };
            out.push(finding(
                Rule::UtilizationHigh,
                cfg.utilization_max_pct,
                severity,
            ));
        }
        Metric::ErrorRate if value > cfg.error_rate_max => {
            let severity = Severity::from_ratio(value / cfg.error_rate_max);
            out.push(finding(Rule::ErrorRateHigh, cfg.error_rate_max, severity));
        }
        Metric::LatencyP99Us => {
            if let Some(b) = warm.filter(|b| b.mean > 0.0) {
                let limit = b.mean * cfg.latency_factor;
                if value > limit {
                    let severity = Severity::from_ratio(value / b.mean / 2.0);
                    out.push(finding(Rule::LatencySpike, limit, severity));
                }
            }
        }
        _ => {}
    }
    if let Some(b) = warm.filter(|b| b.mean.abs() >= deviation_floor(metric)) {
        let delta = pct_delta(value, b.mean);
        // One finding per metric: a specific rule that fired already explains the deviation.
        if delta.abs() > cfg.deviation_pct && out.is_empty() {
            let severity = Severity::from_ratio(delta.abs() / cfg.deviation_pct / 2.0 + 0.5);
            out.push(finding(
                Rule::BaselineDeviation,
                cfg.deviation_pct,
                severity,
            ));
        }
    }
    out
}

/// Counter rules for one counter delta.
pub fn counter_findings(
    counter: Counter,
    delta: &CounterDelta,
    cfg: &DetectConfig,
    window_start_ms: i64,
) -> Vec<Finding> {
    let per_s = delta.per_second();
    let finding = |rule, value: f64, threshold: f64, severity| Finding {
        rule,
        metric: counter.name(),
        value,
        baseline: None,
        delta_pct: None,
        threshold,
        severity,
        window_start_ms,
    };
    let rate_rule = |rule, rate: f64, threshold: f64| {
        (rate > threshold).then(|| {
            finding(
                rule,
                rate,
                threshold,
                Severity::from_ratio(rate / threshold),
            )
        })
    };
    let fired = match counter {
        Counter::LinkDownedCounter if delta.delta > 0 => Some(finding(
            Rule::LinkDowned,
            delta.delta as f64,
            0.0,
            Severity::Critical,
        )),
        Counter::SymbolErrorCounter => rate_rule(
            Rule::SymbolErrors,
            per_s * 3600.0,
            cfg.symbol_errors_per_hour,
        ),
        Counter::LinkErrorRecoveryCounter => rate_rule(
            Rule::LinkErrorRecovery,
            per_s * 60.0,
            cfg.link_recoveries_per_min,
        ),
        Counter::PortRcvErrors => rate_rule(Rule::PortRcvErrors, per_s, cfg.rcv_errors_per_s),
        Counter::PortXmitDiscards => rate_rule(Rule::XmitDiscards, per_s, cfg.xmit_discards_per_s),
        Counter::PortXmitWait => rate_rule(Rule::Congestion, per_s, cfg.xmit_wait_per_s),
        _ => None,
    };
    let out: Vec<Finding> = fired.into_iter().collect();
    // A saturated or reset counter is not a fault in itself: the delta treats the reading as a
    // lower bound (saturated) or counts from zero (reset); the stream's state shows saturation.
    out
}

/// QP errors per second of sample time (the field counts errors since the previous sample).
pub fn qp_finding(
    qp_errors: f64,
    elapsed_ms: i64,
    cfg: &DetectConfig,
    window_start_ms: i64,
) -> Option<Finding> {
    if elapsed_ms <= 0 {
        return None;
    }
    let per_s = qp_errors * 1000.0 / elapsed_ms as f64;
    (per_s > cfg.qp_errors_per_s).then(|| Finding {
        rule: Rule::QpErrorsHigh,
        metric: Metric::QpErrors.field(),
        value: per_s,
        baseline: None,
        delta_pct: None,
        threshold: cfg.qp_errors_per_s,
        severity: Severity::from_ratio(per_s / cfg.qp_errors_per_s),
        window_start_ms,
    })
}

/// All gauge findings of a sample (counter findings need the stream's previous readings).
pub fn sample_gauge_findings(
    sample: &Sample,
    baseline: impl Fn(Metric) -> Option<Ewma>,
    cfg: &DetectConfig,
    window_start_ms: i64,
) -> Vec<Finding> {
    let elapsed_ms = sample.timestamp_ms - window_start_ms;
    Metric::ALL
        .into_iter()
        .filter_map(|m| sample.metric(m).map(|v| (m, v)))
        .flat_map(|(m, v)| {
            // QP errors are a rate; their own rule explains them better than a deviation.
            let qp = (m == Metric::QpErrors)
                .then(|| qp_finding(v, elapsed_ms, cfg, window_start_ms))
                .flatten();
            match qp {
                Some(f) => vec![f],
                None => gauge_findings(m, v, baseline(m).as_ref(), cfg, window_start_ms),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
