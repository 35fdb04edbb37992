//! Detection: baselines and rules as pure functions over numbers. No I/O, no clock.
//!
//! - `ewma`: per-metric EWMA mean/variance with warm-up.
//! - `counters`: deltas and rates of cumulative IB counters (width, saturation, reset).
//! - `rules`: the trigger rules, turning one sample plus the baselines into findings.
//! - `hysteresis`: which findings open, escalate or resolve an anomaly.
//! - `detector`: the per-stream detection state tying them together.
//!
//! Everything runs on the samples' own timestamps, so replayed or late telemetry yields the
//! same decisions as live telemetry.

pub mod counters;
pub mod detector;
pub mod ewma;
pub mod hysteresis;
pub mod rules;

use serde::{Deserialize, Serialize};

/// Detection thresholds. Defaults follow the seed plan and NVIDIA's port-counter guidance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    /// EWMA smoothing factor for baselines, in (0, 1].
    pub ewma_alpha: f64,
    /// Samples a baseline needs before baseline-relative rules fire.
    pub warmup_samples: u64,
    /// Utilization above this percentage is an anomaly.
    pub utilization_max_pct: f64,
    /// p99 latency above this multiple of its baseline is an anomaly.
    pub latency_factor: f64,
    /// Error rate (fraction) above this is an anomaly.
    pub error_rate_max: f64,
    /// |value − baseline| above this percentage of the baseline is an anomaly.
    pub deviation_pct: f64,
    /// Consecutive clear samples before an open anomaly resolves.
    pub clear_samples: u32,
    /// SymbolErrorCounter increments per hour above which a link is marginal.
    pub symbol_errors_per_hour: f64,
    /// LinkErrorRecoveryCounter increments per minute above which a link is unstable.
    pub link_recoveries_per_min: f64,
    /// PortRcvErrors per second.
    pub rcv_errors_per_s: f64,
    /// PortXmitDiscards per second.
    pub xmit_discards_per_s: f64,
    /// PortXmitWait ticks per second above which the port is congested.
    pub xmit_wait_per_s: f64,
    /// QP errors per second above which the HCA's queue pairs are failing.
    pub qp_errors_per_s: f64,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            ewma_alpha: 0.1,
            warmup_samples: 10,
            utilization_max_pct: 80.0,
            latency_factor: 2.0,
            error_rate_max: 0.05,
            deviation_pct: 20.0,
            clear_samples: 3,
            symbol_errors_per_hour: 120.0,
            link_recoveries_per_min: 5.0,
            rcv_errors_per_s: 10.0,
            xmit_discards_per_s: 100.0,
            xmit_wait_per_s: 1_000_000.0,
            qp_errors_per_s: 1.0,
        }
    }
}

impl DetectConfig {
    /// Check ranges; the error names the key and the value.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |key: &str, why: String| Err((format!("detect.{key}"), why));
        if !(self.ewma_alpha > 0.0 && self.ewma_alpha <= 1.0) {
            return bad(
                "ewma_alpha",
                format!("{} must be in (0, 1]", self.ewma_alpha),
            );
        }
        if self.clear_samples == 0 {
            return bad("clear_samples", "0 must be at least 1".into());
        }
        for (key, v) in [
            ("utilization_max_pct", self.utilization_max_pct),
            ("latency_factor", self.latency_factor),
            ("error_rate_max", self.error_rate_max),
            ("deviation_pct", self.deviation_pct),
            ("symbol_errors_per_hour", self.symbol_errors_per_hour),
            ("link_recoveries_per_min", self.link_recoveries_per_min),
            ("rcv_errors_per_s", self.rcv_errors_per_s),
            ("xmit_discards_per_s", self.xmit_discards_per_s),
            ("xmit_wait_per_s", self.xmit_wait_per_s),
            ("qp_errors_per_s", self.qp_errors_per_s),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return bad(key, format!("{v} must be a positive number"));
            }
        }
        Ok(())
    }
}
