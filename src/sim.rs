//! Synthetic fabric telemetry, deterministic for a seed.
//!
//! - `fabric`: the topology (nodes, HCAs, leaf and spine switches) and its port streams.
//! - `faults`: fault injectors with their expected prediction type, and benign events (counter
//!   resets and saturation) that must not alert.
//! - `scenario`: TOML scenarios (`config/scenarios/`) of faults over a run.
//! - `generator`: turns a fabric and a scenario into samples, tick by tick, with labels.
//! - this file: the PRNG and the flat steady-state generator the ingest benchmark uses.

pub mod fabric;
pub mod faults;
pub mod generator;
pub mod scenario;
pub mod score;

use crate::sample::{Counter, Sample};
use std::collections::BTreeMap;

/// A small, fast, deterministic PRNG (SplitMix64), so runs are reproducible.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The stream id of port `index` in a fabric of 36-port switches.
pub fn stream_id(index: usize) -> String {
    format!("sw{:04}/p{:02}", index / 36, index % 36 + 1)
}

/// Sample `k` (0-based) of stream `index`: healthy, noisy telemetry, one sample per second
/// per stream from `base_ms`, with slowly growing data counters.
pub fn steady_sample(rng: &mut Rng, index: usize, k: u64, base_ms: i64) -> Sample {
    let data = 1_000_000 * k + (rng.next_u64() % 1000);
    Sample {
        stream_id: stream_id(index),
        timestamp_ms: base_ms + k as i64 * 1000,
        latency_p99_us: Some(4.0 + rng.unit()),
        utilization_pct: Some(45.0 + 10.0 * rng.unit()),
        error_rate: Some(0.0001 * rng.unit()),
        bandwidth_gbps: Some(180.0 + 20.0 * rng.unit()),
        qp_errors: Some(0),
        counters: BTreeMap::from([
            (Counter::SymbolErrorCounter, 0),
            (Counter::PortXmitData, data),
            (Counter::PortRcvData, data),
        ]),
        labels: BTreeMap::new(),
        ..Default::default()
    }
}
