//! The rules backend: deterministic and offline. It is the fallback whenever the model cannot
//! answer, and the embedded default when AI is off. Each detection rule maps to a prediction
//! type; risk follows severity; the explanation quotes the numbers; the recommendations are
//! specific to the cause.

use super::insight::{Insight, PredictionType};
use super::job::AnomalyJob;
use super::numbers::{number, Unit};
use crate::detect::rules::{Rule, Severity};
use crate::events::types::IncidentScope;

/// The prediction type a detection rule points to.
pub fn prediction_for(rule: Rule, metric: &str, delta_pct: Option<f64>) -> PredictionType {
    match rule {
        Rule::UtilizationHigh | Rule::Congestion => PredictionType::ResourceSaturation,
        Rule::LatencySpike => PredictionType::LatencySpike,
        Rule::ErrorRateHigh
        | Rule::PortRcvErrors
        | Rule::XmitDiscards
        | Rule::BufferOverrun
        | Rule::Vl15Dropped
        | Rule::RemotePhysical
        | Rule::ConstraintErrors => PredictionType::PacketLossDetected,
        Rule::LinkDowned
        | Rule::LinkDown
        | Rule::LinkFlapping
        | Rule::SymbolErrors
        | Rule::LinkErrorRecovery
        | Rule::LinkIntegrity => PredictionType::ConnectionInstability,
        Rule::WidthDegraded | Rule::SpeedDegraded | Rule::NonOptimalLink => {
            PredictionType::BandwidthThrottling
        }
        Rule::TopologyMismatch => match metric {
            "topology_miswired" | "topology_node_unexpected" => PredictionType::AnomalyDetected,
            _ => PredictionType::ConnectionInstability,
        },
        Rule::CounterSaturated | Rule::Stale => PredictionType::AnomalyDetected,
        Rule::QpErrorsHigh => PredictionType::QpErrorRateHigh,
        Rule::BaselineDeviation => match metric {
            "latency_p99" => PredictionType::PerformanceDegradation,
            "qp_errors" => PredictionType::QpErrorRateHigh,
            "error_rate" => PredictionType::PacketLossDetected,
            "bandwidth_gbps" if delta_pct.is_some_and(|d| d < 0.0) => {
                PredictionType::BandwidthThrottling
            }
            "utilization" | "bandwidth_gbps" if delta_pct.is_some_and(|d| d > 0.0) => {
                PredictionType::ResourceSaturation
            }
            _ => PredictionType::AnomalyDetected,
        },
    }
}

/// Risk of one finding on its own. A busy but healthy link, a saturated counter and a silent
/// stream are low risk; a link that is down or flaps is high (jobs on it fail).
pub fn risk_for(rule: Rule, severity: Severity) -> u8 {
    let base = match severity {
        Severity::Warning => 40,
        Severity::Major => 60,
        Severity::Critical => 85,
    };
    match rule {
        Rule::UtilizationHigh | Rule::CounterSaturated => base.min(35),
        Rule::Stale => 45,
        Rule::LinkDown | Rule::LinkFlapping | Rule::LinkDowned => base.max(82),
        Rule::LinkErrorRecovery | Rule::SymbolErrors | Rule::LinkIntegrity => base + 5,
        _ => base,
    }
}

/// What the value and threshold of a rule's finding measure.
fn unit(rule: Rule, metric: &str, threshold: f64) -> Unit {
    match rule {
        Rule::QpErrorsHigh => return Unit::PerSecond,
        Rule::SymbolErrors if threshold < 1e-3 => return Unit::BitErrorRate,
        Rule::Congestion => return Unit::FractionPct(" % of the time stalled"),
        Rule::ErrorRateHigh => return Unit::FractionPct(" % of packets"),
        Rule::Stale => return Unit::Seconds,
        Rule::WidthDegraded => return Unit::Lanes,
        Rule::SpeedDegraded => return Unit::GbpsPerLane,
        Rule::NonOptimalLink => return Unit::Gbps,
        Rule::LinkFlapping => return Unit::PerHour,
        _ => {}
    }
    match metric {
        "latency_p99" => Unit::Micros,
        "utilization" => Unit::Percent,
        "bandwidth_gbps" => Unit::Gbps,
        "error_rate" => Unit::FractionPct(" % of packets"),
        m if m.ends_with("Counter") || m.ends_with("Errors") || m.ends_with("Discards") => {
            Unit::PerHour
        }
        "VL15Dropped" => Unit::PerHour,
        _ => Unit::Plain,
    }
}

/// A reading of another metric, in its own unit.
fn reading_unit(metric: &str) -> Unit {
    unit(Rule::BaselineDeviation, metric, 1.0)
}

fn explanation(job: &AnomalyJob) -> String {
    let a = &job.anomaly;
    let u = unit(a.rule, &a.metric, a.threshold);
    let (value, threshold) = (u.show(a.value), u.show(a.threshold));
    let mut text = match a.rule {
        Rule::LinkDown => format!(
            "Port {} has been out of the active state for {} samples in a row.",
            job.stream_id,
            number(a.value)
        ),
        Rule::Stale => format!(
            "No data from {} for {value} (stale after {threshold}).",
            job.stream_id
        ),
        Rule::WidthDegraded | Rule::SpeedDegraded => format!(
            "{} on {} is {value} where the port had or enables {threshold}.",
            a.metric, job.stream_id
        ),
        Rule::NonOptimalLink => format!(
            "{} runs at {value}, below the {threshold} that most links of its kind run at (a \
             non-optimal link).",
            job.stream_id
        ),
        Rule::TopologyMismatch => format!(
            "{} differs from the expected topology: {}.",
            job.stream_id,
            match a.metric.as_str() {
                "topology_missing_link" => "the link expected here is gone, while the node at its far end is still in the fabric",
                "topology_miswired" => "it links to another port than the expected topology says",
                "topology_node_missing" => "the node expected at the far end is not in the fabric",
                "topology_node_unexpected" => "a node that the expected topology does not list is on this link",
                other => other,
            }
        ),
        Rule::CounterSaturated => format!(
            "{} on {} is stuck at its maximum {}; further errors are invisible until it is cleared.",
            a.metric,
            job.stream_id,
            number(a.value)
        ),
        Rule::BaselineDeviation => format!(
            "{} on {} is {value}, more than {} % away from its baseline.",
            a.metric,
            job.stream_id,
            number(a.threshold)
        ),
        _ => format!(
            "{} on {} is {value}, past the {} threshold of {threshold}.",
            a.metric,
            job.stream_id,
            a.rule.name()
        ),
    };
    if let (Some(b), Some(d)) = (a.baseline, a.delta_pct) {
        text.push_str(&format!(" Baseline {}, {d:+.1} %.", u.show(b)));
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
        .map(|r| {
            let u = reading_unit(r.metric);
            match r.baseline {
                Some(b) => format!("{} {} (baseline {})", r.metric, u.show(r.value), u.show(b)),
                None => format!("{} {}", r.metric, u.show(r.value)),
            }
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
        Rule::LinkDowned
        | Rule::LinkDown
        | Rule::LinkFlapping
        | Rule::SymbolErrors
        | Rule::LinkErrorRecovery
        | Rule::LinkIntegrity => vec![
            format!("Reseat or replace the cable on {port}, and check the peer port for physical errors"),
            format!("Run iblinkinfo / ibdiagnet on {port} to check the link's state, width and speed"),
            "Check the transceiver temperature and optical power (mlxlink)".into(),
            "Drain jobs from the attached node if the link keeps flapping".into(),
        ],
        Rule::WidthDegraded | Rule::SpeedDegraded => vec![
            format!("Reseat or replace the cable on {port}: a lane that does not train lowers the width"),
            "Compare both ends' enabled width and speed (ibportstate) and firmware levels".into(),
            "Check the peer port for symbol errors and link recovery".into(),
        ],
        Rule::NonOptimalLink => vec![
            format!("Reseat or replace the cable on {port}: a lane that does not train lowers the width, a marginal cable the speed"),
            "Compare both ends' enabled and supported width and speed (ibportstate, mlxlink) with the other links of the same switch".into(),
            "Check the cable's part number: a slower cable or transceiver trains the link at its own rate".into(),
        ],
        Rule::TopologyMismatch => vec![
            format!("Compare the cabling at {port} with the expected topology (ibnetdiscover against the saved file, or ibdiagnet's topology check)"),
            "Check the cable's label and the patch plan; a moved cable breaks the routing the fabric was built for".into(),
            "If the change is intended, save the fabric again (ibnetdiscover > fabric.topo) so it becomes the expected topology".into(),
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
        Rule::XmitDiscards | Rule::Vl15Dropped | Rule::ConstraintErrors => vec![
            format!("Read the discard details on {port} (PortInactiveDiscards, PortNeighborMTUDiscards, PortSwLifetimeLimitDiscards, PortSwHOQLifetimeLimitDiscards)"),
            "Check the routing (a path through a down neighbour) and congestion (head-of-queue lifetime) on the VLs".into(),
            "Check the neighbour's MTU and that the peer port is active".into(),
        ],
        Rule::ErrorRateHigh | Rule::PortRcvErrors | Rule::RemotePhysical | Rule::BufferOverrun => vec![
            format!("Check {port} and its peer for symbol errors and link integrity errors"),
            "Inspect the cable and transceiver; replace if errors persist after reseating".into(),
            "Look for buffer overruns or credit starvation on the switch (PortXmitWait)".into(),
        ],
        Rule::CounterSaturated => vec![
            format!("Record the counters on {port}, then reset them (perfquery -R) so new errors become visible"),
            "Use the 64-bit extended counters (perfquery -x) where the HCA supports them".into(),
        ],
        Rule::Stale => vec![
            format!("Check that the collector or agent reading {port} is running"),
            "Check whether the node is still in the fabric (ibnetdiscover, the subnet manager's log)".into(),
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

/// Risk of an incident: its lead finding's, raised when the incident reaches further. A switch
/// or node that lost its links takes down every job through it.
fn incident_risk(job: &AnomalyJob) -> u8 {
    let a = &job.anomaly;
    let risk = risk_for(a.rule, a.severity);
    let Some(inc) = &job.incident else {
        return risk;
    };
    // Many links of one node gone (down, flapping, or its ports and hosts fallen silent):
    // every job through it is cut off.
    let links_gone = inc
        .members
        .iter()
        .flat_map(|m| m.anomalies.iter())
        .any(|x| crate::detect::rules::link_gone(x.rule));
    match inc.scope {
        IncidentScope::Switch | IncidentScope::Node | IncidentScope::Fabric if links_gone => {
            risk.max(92)
        }
        IncidentScope::Switch | IncidentScope::Node | IncidentScope::Fabric => (risk + 10).min(100),
        IncidentScope::Link | IncidentScope::Port => risk,
    }
}

/// The incident's scope and members, for the explanation.
fn incident_text(job: &AnomalyJob) -> String {
    let Some(inc) = &job.incident else {
        return String::new();
    };
    let ports: Vec<&str> = inc
        .members
        .iter()
        .map(|m| m.stream_id.as_str())
        .take(8)
        .collect();
    let more = inc.members.len().saturating_sub(ports.len());
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    match (&inc.node, inc.scope) {
        (Some(n), _) => format!(
            " {} {} ({}): {} ports affected ({}{more}).",
            inc.scope.name(),
            n.node_desc.as_deref().unwrap_or("?"),
            crate::sample::port::format_guid(n.node_guid),
            inc.members.len(),
            ports.join(", ")
        ),
        (None, IncidentScope::Link) => {
            format!(
                " Both ends of the link are affected: {}.",
                ports.join(" and ")
            )
        }
        _ => String::new(),
    }
}

/// The rules backend's insight for a job.
pub fn insight(job: &AnomalyJob) -> Insight {
    let a = &job.anomaly;
    let mut recommendations = recommendations(job);
    if job
        .incident
        .as_ref()
        .is_some_and(|i| matches!(i.scope, IncidentScope::Switch | IncidentScope::Node))
    {
        recommendations.insert(
            0,
            "Check the switch itself (power, management port, the subnet manager's view): many of its links failed together".into(),
        );
        recommendations.truncate(4);
    }
    // A switch or node whose links are gone is a connection problem, even when it is seen only
    // through its ports falling silent.
    let node_gone = job.incident.as_ref().is_some_and(|i| {
        matches!(i.scope, IncidentScope::Switch | IncidentScope::Node)
            && crate::detect::rules::link_gone(a.rule)
    });
    let prediction_type = if node_gone {
        PredictionType::ConnectionInstability
    } else {
        prediction_for(a.rule, &a.metric, a.delta_pct)
    };
    Insight {
        prediction_type,
        risk_score: incident_risk(job),
        explanation: format!("{}{}", explanation(job), incident_text(job)),
        recommendations,
        confidence: 0.6,
        notes: Vec::new(),
    }
}

#[cfg(test)]
pub(crate) mod tests;
