//! The rules backend: deterministic and offline. It is the fallback whenever the model cannot
//! answer, and the embedded default when AI is off. Each detection rule maps to a prediction
//! type; risk follows severity; the explanation quotes the numbers; the recommendations are
//! specific to the cause.

use super::insight::{Insight, PredictionType};
use super::job::AnomalyJob;
use crate::detect::rules::{Rule, Severity};

/// The prediction type a detection rule points to.
pub fn prediction_for(rule: Rule, metric: &str, delta_pct: Option<f64>) -> PredictionType {
    match rule {
        Rule::UtilizationHigh => PredictionType::ResourceSaturation,
        Rule::LatencySpike => PredictionType::LatencySpike,
        Rule::ErrorRateHigh | Rule::PortRcvErrors | Rule::XmitDiscards => {
            PredictionType::PacketLossDetected
        }
        Rule::LinkDowned | Rule::SymbolErrors | Rule::LinkErrorRecovery => {
            PredictionType::ConnectionInstability
        }
        Rule::Congestion => PredictionType::BandwidthThrottling,
        Rule::CounterSaturated => PredictionType::AnomalyDetected,
        Rule::QpErrorsHigh => PredictionType::QpErrorRateHigh,
        Rule::BaselineDeviation => match metric {
            "latency_p99" => PredictionType::PerformanceDegradation,
            "qp_errors" => PredictionType::QpErrorRateHigh,
            "error_rate" => PredictionType::PacketLossDetected,
            "bandwidth_gbps" if delta_pct.is_some_and(|d| d < 0.0) => {
                PredictionType::BandwidthThrottling
            }
            // More traffic than usual on a port is load building up.
            "utilization" | "bandwidth_gbps" if delta_pct.is_some_and(|d| d > 0.0) => {
                PredictionType::ResourceSaturation
            }
            _ => PredictionType::AnomalyDetected,
        },
    }
}

fn risk_for(rule: Rule, severity: Severity) -> u8 {
    let base = match severity {
        Severity::Warning => 45,
        Severity::Major => 65,
        Severity::Critical => 85,
    };
    // A link that went down or flaps is worse than its rate suggests: jobs on it fail.
    match rule {
        Rule::LinkDowned => base.max(90),
        Rule::LinkErrorRecovery | Rule::SymbolErrors => base + 5,
        _ => base,
    }
}

fn fmt(v: f64) -> String {
    if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

fn unit(rule: Rule, metric: &str) -> &'static str {
    if rule == Rule::QpErrorsHigh {
        return " errors/s";
    }
    match metric {
        "latency_p99" => " µs",
        "utilization" => " %",
        "bandwidth_gbps" => " Gbps",
        "SymbolErrorCounter" => " errors/h",
        "LinkErrorRecoveryCounter" => " recoveries/min",
        "PortRcvErrors" | "PortXmitDiscards" | "PortXmitWait" => " /s",
        "LinkDownedCounter" => " link-down events",
        _ => "",
    }
}

fn explanation(job: &AnomalyJob) -> String {
    let a = &job.anomaly;
    let u = unit(a.rule, &a.metric);
    let mut text = match a.rule {
        Rule::LinkDowned => format!(
            "Port {} went down {} time(s) between the last two readings.",
            job.stream_id,
            fmt(a.value)
        ),
        Rule::CounterSaturated => format!(
            "{} on {} is stuck at its maximum {}; further errors are invisible until it is cleared.",
            a.metric,
            job.stream_id,
            fmt(a.value)
        ),
        Rule::BaselineDeviation => format!(
            "{} on {} is {}{u}, more than {} % away from its baseline.",
            a.metric,
            job.stream_id,
            fmt(a.value),
            fmt(a.threshold)
        ),
        _ => format!(
            "{} on {} is {}{u}, past the {} threshold of {}{u}.",
            a.metric,
            job.stream_id,
            fmt(a.value),
            a.rule.name(),
            fmt(a.threshold)
        ),
    };
    if let (Some(b), Some(d)) = (a.baseline, a.delta_pct) {
        text.push_str(&format!(" Baseline {}{u}, {d:+.1} %.", fmt(b)));
    }
    if let Some(from) = a.escalated_from {
        text.push_str(&format!(
            " Escalated from {} to {}.",
            from.name(),
            a.severity.name()
        ));
    }
    let others: Vec<String> = job
        .readings
        .iter()
        .filter(|r| r.metric != a.metric)
        .map(|r| match r.baseline {
            Some(b) => format!("{} {} (baseline {})", r.metric, fmt(r.value), fmt(b)),
            None => format!("{} {}", r.metric, fmt(r.value)),
        })
        .collect();
    if !others.is_empty() {
        text.push_str(&format!(" Other readings: {}.", others.join(", ")));
    }
    text
}

/// Cause-specific steps, 2 to 4.
pub fn recommendations(job: &AnomalyJob) -> Vec<String> {
    let port = &job.stream_id;
    let steps: Vec<String> = match job.anomaly.rule {
        Rule::LinkDowned | Rule::SymbolErrors | Rule::LinkErrorRecovery => vec![
            format!("Reseat or replace the cable on {port}; check the peer port's counters too"),
            format!("Run ibdiagnet / iblinkinfo on {port} to check link width and speed"),
            "Check the transceiver temperature and optical power (mlxlink)".into(),
            "Drain jobs from the attached node if the link keeps flapping".into(),
        ],
        Rule::UtilizationHigh | Rule::Congestion => vec![
            format!("Find the heaviest flows through {port} (ibdump or the scheduler's job map)"),
            "Check adaptive routing and the subnet manager's routing engine for hot spots".into(),
            "Spread the job's ranks or move it to a less loaded part of the fabric".into(),
        ],
        Rule::LatencySpike => vec![
            format!("Check PortXmitWait on {port} and its upstream switch for congestion"),
            "Review QoS / SL-to-VL mapping for the affected traffic class".into(),
            "Correlate with job start times on the nodes behind this port".into(),
        ],
        Rule::ErrorRateHigh | Rule::PortRcvErrors | Rule::XmitDiscards => vec![
            format!("Check {port} and its peer for symbol errors and link integrity errors"),
            "Inspect the cable and transceiver; replace if errors persist after reseating".into(),
            "Look for buffer overruns or credit starvation on the switch (PortXmitWait)".into(),
        ],
        Rule::CounterSaturated => vec![
            format!("Clear the counters on {port} (perfquery -R) so new errors become visible"),
            "Use the 64-bit extended counters (perfquery -x) where the HCA supports them".into(),
        ],
        Rule::QpErrorsHigh => vec![
            format!("Check the HCA behind {port}: firmware, driver and RDMA retry counters"),
            "Look for memory registration failures and RNR/transport retry exhaustion in the job's logs".into(),
            "Check the link under the QPs for errors (symbol errors, link recovery)".into(),
        ],
        Rule::BaselineDeviation => vec![
            format!(
                "Compare {} on {port} with its neighbours on the same switch",
                job.anomaly.metric
            ),
            "Correlate the change with job starts, firmware changes or subnet manager events"
                .into(),
            "Watch the stream for a few minutes: a lasting shift becomes the new baseline".into(),
        ],
    };
    steps.into_iter().take(4).collect()
}

/// The rules backend's insight for a job.
pub fn insight(job: &AnomalyJob) -> Insight {
    let a = &job.anomaly;
    Insight {
        prediction_type: prediction_for(a.rule, &a.metric, a.delta_pct),
        risk_score: risk_for(a.rule, a.severity),
        explanation: explanation(job),
        recommendations: recommendations(job),
        confidence: 0.6,
        notes: Vec::new(),
    }
}

#[cfg(test)]
pub(crate) mod tests;
