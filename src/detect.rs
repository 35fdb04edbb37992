//! Detection: baselines and rules as pure functions over numbers. No I/O, no clock.
//!
//! - `ewma`: per-metric EWMA mean/variance with warm-up.
//! - `config`: thresholds.
//! - `counters`: deltas of cumulative IB counters (width, saturation, reset).
//! - `gauges`: bandwidth and utilization derived from the data counters and the link rate.
//! - `window`: counter increments over windows of sample time (rates never come from one gap).
//! - `rules`: rule names and the gauge rules (threshold, k·σ; persistence in the detector).
//! - `counter_rules`: error counters per hour or as a BER, congestion as time stalled,
//!   saturation.
//! - `link`: link down, flaps, width and speed below the port's past or what it enables.
//! - `hysteresis`: which findings open, escalate or resolve an anomaly.
//! - `detector`: the per-stream detection state tying them together.
//!
//! Everything runs on the samples' own timestamps, so replayed or late telemetry yields the
//! same decisions as live telemetry.

pub mod config;
pub mod counter_rules;
pub mod counters;
pub mod detector;
pub mod ewma;
pub mod fabric;
pub mod gauges;
pub mod hysteresis;
pub mod link;
pub mod rules;
pub mod window;

pub use config::DetectConfig;
