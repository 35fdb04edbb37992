//! Detection thresholds. Gauge rules follow the seed plan; counter thresholds are rates per
//! hour over windows of sample time (defaults from infiniband-diags' error thresholds and
//! NVIDIA UFM's defaults), symbol errors a bit error rate (ibdiagnet's default 1e-12).

use crate::sample::port::Speed;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    /// EWMA smoothing factor for baselines, in (0, 1].
    pub ewma_alpha: f64,
    /// Samples a baseline needs before baseline-relative rules fire.
    pub warmup_samples: u64,
    /// Utilization above this percentage is saturation (a low-risk finding on its own).
    pub utilization_max_pct: f64,
    /// p99 latency above this multiple of its baseline is a spike.
    pub latency_factor: f64,
    /// Error rate (fraction) above this is packet loss.
    pub error_rate_max: f64,
    /// |latency − baseline| above this percentage of the baseline is a degradation.
    pub deviation_pct: f64,
    /// A gauge rule fires only when the value is also more than this many standard deviations
    /// from the stream's baseline (once the baseline is warm).
    pub sigma_k: f64,
    /// A gauge or congestion rule opens an anomaly only after firing on this many samples in a
    /// row.
    pub persist_samples: u32,
    /// Consecutive clear samples before an open anomaly resolves.
    pub clear_samples: u32,
    /// The short counter window, seconds of sample time.
    pub short_window_s: u64,
    /// The long counter window, seconds of sample time.
    pub long_window_s: u64,
    /// Symbol bit error rate above which a link is marginal, for any speed not listed in
    /// `symbol_ber_max_by_speed`.
    pub symbol_ber_max: f64,
    /// Per speed class ("QDR", "HDR", …), overriding `symbol_ber_max`.
    pub symbol_ber_max_by_speed: BTreeMap<String, f64>,
    /// Symbol errors per hour when the link rate is unknown (no BER can be computed).
    pub symbol_errors_per_hour: f64,
    /// LinkErrorRecoveryCounter increments per hour.
    pub link_recoveries_per_hour: f64,
    /// LinkDownedCounter increments (or departures from `active`) per hour that make a flap.
    /// One increment alone (a reboot) is not a fault.
    pub link_downs_per_hour: f64,
    /// LocalLinkIntegrityErrors per hour.
    pub link_integrity_per_hour: f64,
    /// PortRcvErrors per hour.
    pub rcv_errors_per_hour: f64,
    /// PortRcvRemotePhysicalErrors per hour.
    pub remote_physical_per_hour: f64,
    /// PortXmitDiscards per hour.
    pub xmit_discards_per_hour: f64,
    /// PortXmitConstraintErrors + PortRcvConstraintErrors per hour.
    pub constraint_errors_per_hour: f64,
    /// VL15Dropped per hour (UFM's default threshold is 50).
    pub vl15_dropped_per_hour: f64,
    /// Fraction of time the port was stalled with data to send (PortXmitWait) above which it is
    /// congested.
    pub congestion_stall_fraction: f64,
    /// Length of one PortXmitWait tick in ns; unset, a tick is the time to send 64 bytes at
    /// the link's rate.
    pub xmit_wait_tick_ns: Option<f64>,
    /// QP errors per second above which the HCA's queue pairs are failing.
    pub qp_errors_per_s: f64,
    /// A linked port out of `active` for this many samples in a row is down.
    pub link_down_samples: u32,
    /// A stream silent for this many of its own intervals is stale.
    pub stale_intervals: u32,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            ewma_alpha: 0.02,
            warmup_samples: 10,
            utilization_max_pct: 80.0,
            latency_factor: 2.0,
            error_rate_max: 0.05,
            deviation_pct: 20.0,
            sigma_k: 4.0,
            persist_samples: 3,
            clear_samples: 3,
            short_window_s: 300,
            long_window_s: 3600,
            symbol_ber_max: 1e-12,
            symbol_ber_max_by_speed: BTreeMap::new(),
            symbol_errors_per_hour: 120.0,
            link_recoveries_per_hour: 12.0,
            link_downs_per_hour: 3.0,
            link_integrity_per_hour: 12.0,
            rcv_errors_per_hour: 60.0,
            remote_physical_per_hour: 600.0,
            xmit_discards_per_hour: 600.0,
            constraint_errors_per_hour: 600.0,
            vl15_dropped_per_hour: 50.0,
            congestion_stall_fraction: 0.10,
            xmit_wait_tick_ns: None,
            qp_errors_per_s: 1.0,
            link_down_samples: 3,
            stale_intervals: 3,
        }
    }
}

impl DetectConfig {
    /// The symbol BER threshold for a link of `speed`.
    pub fn symbol_ber_for(&self, speed: Option<Speed>) -> f64 {
        speed
            .and_then(|s| self.symbol_ber_max_by_speed.get(s.name()).copied())
            .unwrap_or(self.symbol_ber_max)
    }

    pub fn short_window_ms(&self) -> i64 {
        self.short_window_s as i64 * 1000
    }

    pub fn long_window_ms(&self) -> i64 {
        self.long_window_s as i64 * 1000
    }

    /// Check ranges; the error names the key and the value.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |key: &str, why: String| Err((format!("detect.{key}"), why));
        if !(self.ewma_alpha > 0.0 && self.ewma_alpha <= 1.0) {
            return bad(
                "ewma_alpha",
                format!("{} must be in (0, 1]", self.ewma_alpha),
            );
        }
        for (key, v) in [
            ("clear_samples", self.clear_samples),
            ("persist_samples", self.persist_samples),
            ("link_down_samples", self.link_down_samples),
            ("stale_intervals", self.stale_intervals),
        ] {
            if v == 0 {
                return bad(key, "0 must be at least 1".into());
            }
        }
        if self.short_window_s < 60 || self.long_window_s < self.short_window_s {
            return bad(
                "long_window_s",
                format!(
                    "{} must be at least short_window_s ({}), which must be at least 60",
                    self.long_window_s, self.short_window_s
                ),
            );
        }
        for (speed, v) in &self.symbol_ber_max_by_speed {
            if Speed::parse(speed).is_none() {
                return bad(
                    &format!("symbol_ber_max_by_speed.{speed}"),
                    format!("{speed} is not a speed ({})", Speed::names()),
                );
            }
            if !(v.is_finite() && *v > 0.0) {
                return bad(
                    &format!("symbol_ber_max_by_speed.{speed}"),
                    format!("{v} must be a positive number"),
                );
            }
        }
        if let Some(v) = self.xmit_wait_tick_ns {
            if !(v.is_finite() && v > 0.0) {
                return bad(
                    "xmit_wait_tick_ns",
                    format!("{v} must be a positive number"),
                );
            }
        }
        for (key, v) in [
            ("utilization_max_pct", self.utilization_max_pct),
            ("latency_factor", self.latency_factor),
            ("error_rate_max", self.error_rate_max),
            ("deviation_pct", self.deviation_pct),
            ("sigma_k", self.sigma_k),
            ("symbol_ber_max", self.symbol_ber_max),
            ("symbol_errors_per_hour", self.symbol_errors_per_hour),
            ("link_recoveries_per_hour", self.link_recoveries_per_hour),
            ("link_downs_per_hour", self.link_downs_per_hour),
            ("link_integrity_per_hour", self.link_integrity_per_hour),
            ("rcv_errors_per_hour", self.rcv_errors_per_hour),
            ("remote_physical_per_hour", self.remote_physical_per_hour),
            ("xmit_discards_per_hour", self.xmit_discards_per_hour),
            (
                "constraint_errors_per_hour",
                self.constraint_errors_per_hour,
            ),
            ("vl15_dropped_per_hour", self.vl15_dropped_per_hour),
            ("congestion_stall_fraction", self.congestion_stall_fraction),
            ("qp_errors_per_s", self.qp_errors_per_s),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return bad(key, format!("{v} must be a positive number"));
            }
        }
        Ok(())
    }
}
