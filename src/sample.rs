//! A telemetry sample: one reading of one stream (a port or a link).
//!
//! `Sample` is the validated form; everything downstream (actors, detection, the event log)
//! trusts it. `validate` turns untrusted JSON into samples and reports every bad field.

mod counter;
pub mod port;
pub mod validate;

pub use counter::{max_for_width as counter_max_for_width, Counter};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A validated sample. Field units are in the names; `timestamp_ms` is epoch milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub stream_id: String,
    pub timestamp_ms: i64,
    pub latency_p99_us: Option<f64>,
    pub utilization_pct: Option<f64>,
    pub error_rate: Option<f64>,
    pub bandwidth_gbps: Option<f64>,
    pub qp_errors: Option<u64>,
    /// Cumulative IB port counters as read by perfquery.
    pub counters: BTreeMap<Counter, u64>,
    pub labels: BTreeMap<String, String>,
    /// Which port this is (GUID, port number, description, node type, LID).
    pub port: port::PortIdentity,
    /// The port at the other end of the cable, when linked.
    pub peer: Option<port::PeerPort>,
    /// State, physical state, width, speed and rate of the link.
    pub link: Option<port::LinkInfo>,
    /// BER, FEC and temperature, when the source has them.
    pub phy: port::PhyHealth,
    // Appended in `MetricObserved` v3.
    /// The port held against the rest of the fabric (its peers' norm, the expected topology).
    pub fabric: port::FabricCheck,
}

/// The sample as `MetricObserved` v2 stored it (before supported widths and speeds and the
/// fabric check). Frozen: it only decodes old records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleV2 {
    pub stream_id: String,
    pub timestamp_ms: i64,
    pub latency_p99_us: Option<f64>,
    pub utilization_pct: Option<f64>,
    pub error_rate: Option<f64>,
    pub bandwidth_gbps: Option<f64>,
    pub qp_errors: Option<u64>,
    pub counters: BTreeMap<Counter, u64>,
    pub labels: BTreeMap<String, String>,
    pub port: port::PortIdentity,
    pub peer: Option<port::PeerPort>,
    pub link: Option<port::LinkInfoV1>,
    pub phy: port::PhyHealth,
}

impl From<SampleV2> for Sample {
    fn from(v: SampleV2) -> Sample {
        Sample {
            stream_id: v.stream_id,
            timestamp_ms: v.timestamp_ms,
            latency_p99_us: v.latency_p99_us,
            utilization_pct: v.utilization_pct,
            error_rate: v.error_rate,
            bandwidth_gbps: v.bandwidth_gbps,
            qp_errors: v.qp_errors,
            counters: v.counters,
            labels: v.labels,
            port: v.port,
            peer: v.peer,
            link: v.link.map(Into::into),
            phy: v.phy,
            fabric: port::FabricCheck::default(),
        }
    }
}

impl From<&Sample> for SampleV2 {
    /// Only for samples that never had the newer fields (old segments read back).
    fn from(v: &Sample) -> SampleV2 {
        SampleV2 {
            stream_id: v.stream_id.clone(),
            timestamp_ms: v.timestamp_ms,
            latency_p99_us: v.latency_p99_us,
            utilization_pct: v.utilization_pct,
            error_rate: v.error_rate,
            bandwidth_gbps: v.bandwidth_gbps,
            qp_errors: v.qp_errors,
            counters: v.counters.clone(),
            labels: v.labels.clone(),
            port: v.port.clone(),
            peer: v.peer.clone(),
            link: v.link.as_ref().map(Into::into),
            phy: v.phy.clone(),
        }
    }
}

/// The sample as `MetricObserved` v1 stored it (before the port's identity, peer, link and
/// physical-layer health). Frozen: it only decodes old records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleV1 {
    pub stream_id: String,
    pub timestamp_ms: i64,
    pub latency_p99_us: Option<f64>,
    pub utilization_pct: Option<f64>,
    pub error_rate: Option<f64>,
    pub bandwidth_gbps: Option<f64>,
    pub qp_errors: Option<u64>,
    pub counters: BTreeMap<Counter, u64>,
    pub labels: BTreeMap<String, String>,
}

impl From<SampleV1> for Sample {
    fn from(v: SampleV1) -> Sample {
        Sample {
            stream_id: v.stream_id,
            timestamp_ms: v.timestamp_ms,
            latency_p99_us: v.latency_p99_us,
            utilization_pct: v.utilization_pct,
            error_rate: v.error_rate,
            bandwidth_gbps: v.bandwidth_gbps,
            qp_errors: v.qp_errors,
            counters: v.counters,
            labels: v.labels,
            ..Sample::default()
        }
    }
}

/// The gauge metrics that carry an EWMA baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Metric {
    LatencyP99Us,
    UtilizationPct,
    ErrorRate,
    BandwidthGbps,
    QpErrors,
}

impl Metric {
    pub const ALL: [Metric; 5] = [
        Metric::LatencyP99Us,
        Metric::UtilizationPct,
        Metric::ErrorRate,
        Metric::BandwidthGbps,
        Metric::QpErrors,
    ];

    /// The JSON field name of the metric, as posted by collectors.
    pub fn field(self) -> &'static str {
        match self {
            Metric::LatencyP99Us => "latency_p99",
            Metric::UtilizationPct => "utilization",
            Metric::ErrorRate => "error_rate",
            Metric::BandwidthGbps => "bandwidth_gbps",
            Metric::QpErrors => "qp_errors",
        }
    }
}

impl Sample {
    /// The metric values it carries: each gauge present and each counter count as one.
    pub fn value_count(&self) -> usize {
        [
            self.latency_p99_us.is_some(),
            self.utilization_pct.is_some(),
            self.error_rate.is_some(),
            self.bandwidth_gbps.is_some(),
            self.qp_errors.is_some(),
        ]
        .iter()
        .filter(|p| **p)
        .count()
            + self.counters.len()
    }

    /// The value of a gauge metric, if the sample carries it.
    pub fn metric(&self, metric: Metric) -> Option<f64> {
        match metric {
            Metric::LatencyP99Us => self.latency_p99_us,
            Metric::UtilizationPct => self.utilization_pct,
            Metric::ErrorRate => self.error_rate,
            Metric::BandwidthGbps => self.bandwidth_gbps,
            Metric::QpErrors => self.qp_errors.map(|v| v as f64),
        }
    }

    /// The sample as the JSON object a collector would post (used by the HTTP bench and tests).
    pub fn to_json(&self) -> serde_json::Value {
        let mut obj = serde_json::Map::new();
        obj.insert("stream_id".into(), self.stream_id.clone().into());
        obj.insert("timestamp".into(), self.timestamp_ms.into());
        for metric in Metric::ALL {
            if let Some(v) = self.metric(metric) {
                let value = match metric {
                    Metric::QpErrors => serde_json::Value::from(v as u64),
                    _ => serde_json::Value::from(v),
                };
                obj.insert(metric.field().into(), value);
            }
        }
        if !self.counters.is_empty() {
            let counters: serde_json::Map<_, _> = self
                .counters
                .iter()
                .map(|(c, v)| (c.name().to_string(), serde_json::Value::from(*v)))
                .collect();
            obj.insert("counters".into(), counters.into());
        }
        port::to_json(
            &self.port,
            self.peer.as_ref(),
            self.link.as_ref(),
            &self.phy,
            &mut obj,
        );
        port::fabric_to_json(&self.fabric, &mut obj);
        if !self.labels.is_empty() {
            let labels: serde_json::Map<_, _> = self
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::from(v.clone())))
                .collect();
            obj.insert("labels".into(), labels.into());
        }
        serde_json::Value::Object(obj)
    }
}
