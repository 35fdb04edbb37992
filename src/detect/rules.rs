//! The rules' names and the gauge rules. Each turns one observation, judged against its
//! baseline, into a `Finding` with evidence and a severity.
//!
//! Gauge rules (seed plan): utilization > 80 %, p99 latency > 2× baseline, error rate > 5 %,
//! |delta| > 20 % of the latency baseline; each also needs the value to be more than k·σ from
//! the baseline once it is warm (the detector adds: for N samples in a row). Utilization and
//! bandwidth follow the jobs, so no baseline-deviation rule reads them. Counter rules live in
//! `counter_rules`, link rules in `link`.

use super::ewma::Ewma;
use super::DetectConfig;
use crate::sample::{Metric, Sample};
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
    /// A watched counter stuck at its maximum: errors are no longer counted.
    CounterSaturated,
    QpErrorsHigh,
    // Appended (bincode stores the index): link and further counter rules, staleness.
    LinkDown,
    LinkFlapping,
    WidthDegraded,
    SpeedDegraded,
    Stale,
    LinkIntegrity,
    BufferOverrun,
    Vl15Dropped,
    RemotePhysical,
    ConstraintErrors,
    /// A link below what most links of its kind run at (UFM's "non-optimal link").
    NonOptimalLink,
    /// The port differs from the expected topology (missing link, miswired, node missing or
    /// unexpected; the metric says which).
    TopologyMismatch,
}

impl Rule {
    pub const ALL: [Rule; 24] = [
        Rule::UtilizationHigh,
        Rule::LatencySpike,
        Rule::ErrorRateHigh,
        Rule::BaselineDeviation,
        Rule::LinkDowned,
        Rule::SymbolErrors,
        Rule::LinkErrorRecovery,
        Rule::PortRcvErrors,
        Rule::XmitDiscards,
        Rule::Congestion,
        Rule::CounterSaturated,
        Rule::QpErrorsHigh,
        Rule::LinkDown,
        Rule::LinkFlapping,
        Rule::WidthDegraded,
        Rule::SpeedDegraded,
        Rule::Stale,
        Rule::LinkIntegrity,
        Rule::BufferOverrun,
        Rule::Vl15Dropped,
        Rule::RemotePhysical,
        Rule::ConstraintErrors,
        Rule::NonOptimalLink,
        Rule::TopologyMismatch,
    ];

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
            Rule::LinkDown => "link_down",
            Rule::LinkFlapping => "link_flapping",
            Rule::WidthDegraded => "width_degraded",
            Rule::SpeedDegraded => "speed_degraded",
            Rule::Stale => "stale",
            Rule::LinkIntegrity => "link_integrity",
            Rule::BufferOverrun => "buffer_overrun",
            Rule::Vl15Dropped => "vl15_dropped",
            Rule::RemotePhysical => "remote_physical",
            Rule::ConstraintErrors => "constraint_errors",
            Rule::NonOptimalLink => "non_optimal_link",
            Rule::TopologyMismatch => "topology_mismatch",
        }
    }

    /// Whether the rule must fire on `persist_samples` samples in a row before it opens an
    /// anomaly (gauges and congestion: noisy by nature). Counter windows and link rules carry
    /// their own persistence.
    pub fn needs_persistence(self) -> bool {
        matches!(
            self,
            Rule::UtilizationHigh
                | Rule::LatencySpike
                | Rule::ErrorRateHigh
                | Rule::BaselineDeviation
                | Rule::Congestion
                | Rule::QpErrorsHigh
        )
    }

    /// Rules about the cable or the port's link (both ends of a cable see them); the rest are
    /// about traffic through the port.
    pub fn is_link_level(self) -> bool {
        matches!(
            self,
            Rule::LinkDown
                | Rule::LinkFlapping
                | Rule::LinkDowned
                | Rule::WidthDegraded
                | Rule::SpeedDegraded
                | Rule::SymbolErrors
                | Rule::LinkErrorRecovery
                | Rule::LinkIntegrity
                | Rule::Stale
                | Rule::NonOptimalLink
                | Rule::TopologyMismatch
        )
    }
}

/// Rules saying the link itself is gone: they tie a port to its peer's node.
pub fn link_gone(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::LinkDown | Rule::Stale | Rule::LinkFlapping | Rule::LinkDowned
    )
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
    pub fn from_ratio(ratio: f64) -> Severity {
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
    /// A finding without a baseline (link, fabric and topology rules), its window starting at
    /// the sample's time `at_ms`.
    pub fn plain(
        rule: Rule,
        metric: &'static str,
        value: f64,
        threshold: f64,
        severity: Severity,
        at_ms: i64,
    ) -> Finding {
        Finding {
            rule,
            metric,
            value,
            baseline: None,
            delta_pct: None,
            threshold,
            severity,
            window_start_ms: at_ms,
        }
    }

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

/// Gauge rules for one metric of one sample against its baseline (before the sample updates
/// it), with the k·σ noise gate applied.
pub fn gauge_findings(
    metric: Metric,
    value: f64,
    baseline: Option<&Ewma>,
    cfg: &DetectConfig,
    window_start_ms: i64,
) -> Vec<Finding> {
    gauge_verdict(metric, value, baseline, cfg, window_start_ms).0
}

/// The gauge findings past the noise gate, and whether a rule's threshold was passed by a
/// value still within k·σ of the baseline (such a value is noise, but no ordinary one: it
/// teaches the baseline only slowly, so a slow drift cannot widen its own band).
pub fn gauge_verdict(
    metric: Metric,
    value: f64,
    baseline: Option<&Ewma>,
    cfg: &DetectConfig,
    window_start_ms: i64,
) -> (Vec<Finding>, bool) {
    let out = threshold_findings(metric, value, baseline, cfg, window_start_ms);
    let warm = baseline.filter(|b| b.is_warm(cfg.warmup_samples));
    // Once the baseline is warm, a value within k·σ of it is the stream's own noise.
    if !out.is_empty() && warm.is_some_and(|b| (value - b.mean).abs() <= cfg.sigma_k * b.stddev()) {
        return (Vec::new(), true);
    }
    (out, false)
}

/// The seed's threshold rules alone.
fn threshold_findings(
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
        // A busy link that is otherwise healthy is a low-risk saturation finding.
        Metric::UtilizationPct if value > cfg.utilization_max_pct => {
            out.push(finding(
                Rule::UtilizationHigh,
                cfg.utilization_max_pct,
                Severity::Warning,
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
    let follows_jobs = matches!(metric, Metric::UtilizationPct | Metric::BandwidthGbps);
    if let Some(b) = warm.filter(|b| !follows_jobs && b.mean.abs() >= deviation_floor(metric)) {
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

/// All gauge findings of a sample (counter findings need the stream's previous readings), and
/// the metrics whose threshold a value passed while still within the stream's noise.
///
/// `value` gives each gauge of the sample: what the client sent, or what detection derived
/// from its counters (`gauges::metric`).
pub fn sample_gauge_findings(
    sample: &Sample,
    value: impl Fn(Metric) -> Option<f64>,
    baseline: impl Fn(Metric) -> Option<Ewma>,
    cfg: &DetectConfig,
    window_start_ms: i64,
) -> (Vec<Finding>, Vec<&'static str>) {
    let elapsed_ms = sample.timestamp_ms - window_start_ms;
    let mut findings = Vec::new();
    let mut within_noise = Vec::new();
    for (m, v) in Metric::ALL
        .into_iter()
        .filter_map(|m| value(m).map(|v| (m, v)))
    {
        // QP errors are a rate; their own rule explains them better than a deviation.
        let qp = (m == Metric::QpErrors)
            .then(|| qp_finding(v, elapsed_ms, cfg, window_start_ms))
            .flatten();
        match qp {
            Some(f) => findings.push(f),
            None => {
                let (found, noise) =
                    gauge_verdict(m, v, baseline(m).as_ref(), cfg, window_start_ms);
                findings.extend(found);
                if noise {
                    within_noise.push(m.field());
                }
            }
        }
    }
    (findings, within_noise)
}

#[cfg(test)]
mod tests;
