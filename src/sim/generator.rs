//! The simulator: one sample per port per interval, healthy noise plus the scenario's faults.
//! Deterministic for a seed. Timestamps advance by the interval from `base_ms`; how fast they
//! are sent is the caller's business (`--speedup`).

use super::fabric::Fabric;
use super::faults::FaultKind;
use super::scenario::Scenario;
use super::Rng;
use crate::analyst::insight::PredictionType;
use crate::sample::{Counter, Sample};
use std::collections::BTreeMap;

/// A fault as the scorer sees it: which streams, when, and what it should be called.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Label {
    pub kind: FaultKind,
    pub streams: Vec<String>,
    pub start_ms: i64,
    pub end_ms: i64,
    pub expected: Option<PredictionType>,
}

struct PortState {
    util0: f64,
    lat0: f64,
    counters: BTreeMap<Counter, u64>,
}

struct Active {
    kind: FaultKind,
    ports: Vec<usize>,
    start_tick: u64,
    end_tick: u64,
}

pub struct Simulator {
    pub fabric: Fabric,
    pub scenario: Scenario,
    rng: Rng,
    ports: Vec<PortState>,
    faults: Vec<Active>,
    tick: u64,
    ticks: u64,
    pub base_ms: i64,
}

const ERROR_COUNTERS: [Counter; 5] = [
    Counter::SymbolErrorCounter,
    Counter::LinkErrorRecoveryCounter,
    Counter::LinkDownedCounter,
    Counter::PortRcvErrors,
    Counter::PortXmitDiscards,
];

impl Simulator {
    pub fn new(scenario: Scenario, base_ms: i64) -> Simulator {
        let fabric = Fabric::new(scenario.nodes);
        let mut rng = Rng::new(scenario.seed);
        let interval = scenario.interval_s;
        let faults: Vec<Active> = scenario
            .faults
            .iter()
            .map(|f| Active {
                kind: f.kind,
                ports: fabric.resolve(&f.target),
                start_tick: f.start_s / interval,
                end_tick: (f.start_s + f.duration_s) / interval,
            })
            .collect();
        let ports = (0..fabric.ports.len())
            .map(|i| {
                let mut counters: BTreeMap<Counter, u64> = ERROR_COUNTERS
                    .iter()
                    .map(|c| (*c, 0))
                    .chain([
                        (Counter::PortXmitWait, 0),
                        (Counter::PortXmitData, 0),
                        (Counter::PortRcvData, 0),
                    ])
                    .collect();
                // A counter nobody cleared sits at its maximum from the start: benign.
                if faults
                    .iter()
                    .any(|f| f.kind == FaultKind::CounterSaturation && f.ports.contains(&i))
                {
                    counters.insert(Counter::SymbolErrorCounter, 65_535);
                }
                PortState {
                    util0: 40.0 + 30.0 * rng.unit(),
                    lat0: 1.0 + 4.0 * rng.unit(),
                    counters,
                }
            })
            .collect();
        let ticks = scenario.duration_s / interval;
        Simulator {
            fabric,
            scenario,
            rng,
            ports,
            faults,
            tick: 0,
            ticks,
            base_ms,
        }
    }

    pub fn interval_ms(&self) -> i64 {
        self.scenario.interval_s as i64 * 1000
    }

    pub fn ticks(&self) -> u64 {
        self.ticks
    }

    pub fn labels(&self) -> Vec<Label> {
        self.faults
            .iter()
            .map(|f| Label {
                kind: f.kind,
                streams: f
                    .ports
                    .iter()
                    .map(|&i| self.fabric.ports[i].stream_id.clone())
                    .collect(),
                start_ms: self.base_ms + f.start_tick as i64 * self.interval_ms(),
                end_ms: self.base_ms + f.end_tick as i64 * self.interval_ms(),
                expected: f.kind.expected(),
            })
            .collect()
    }

    /// The next interval's samples, one per port; `None` when the run is over.
    pub fn next_tick(&mut self) -> Option<Vec<Sample>> {
        if self.tick >= self.ticks {
            return None;
        }
        let t = self.tick;
        let ts = self.base_ms + t as i64 * self.interval_ms();
        let dt = self.scenario.interval_s as f64;
        let mut out = Vec::with_capacity(self.ports.len());
        for i in 0..self.ports.len() {
            let active: Vec<(FaultKind, f64, u64)> = self
                .faults
                .iter()
                .filter(|f| f.ports.contains(&i) && t >= f.start_tick && t < f.end_tick)
                .map(|f| {
                    let progress = (t - f.start_tick) as f64 / (f.end_tick - f.start_tick) as f64;
                    (f.kind, progress, t - f.start_tick)
                })
                .collect();
            out.push(self.sample(i, ts, dt, &active));
        }
        self.tick += 1;
        Some(out)
    }

    fn sample(&mut self, i: usize, ts: i64, dt: f64, active: &[(FaultKind, f64, u64)]) -> Sample {
        let rng = &mut self.rng;
        let p = &mut self.ports[i];
        let mut util = (p.util0 * (1.0 + 0.08 * (rng.unit() - 0.5))).clamp(0.0, 100.0);
        let mut lat = p.lat0 * (1.0 + 0.08 * (rng.unit() - 0.5));
        let mut error_rate = 0.00001 * rng.unit();
        let mut qp = 0u64;
        let mut bw_factor = 1.0;
        let mut wait_per_s = util / 100.0 * 20_000.0;
        let add = |c: Counter, n: u64, counters: &mut BTreeMap<Counter, u64>| {
            let v = counters.entry(c).or_insert(0);
            // The simulated fabric is read like perfquery without -x: error counters are
            // basic and saturate; the data and wait counters are extended.
            let max = if c.has_extended() {
                u64::MAX
            } else {
                crate::sample::counter_max_for_width(c.basic_width_bits())
            };
            *v = v.saturating_add(n).min(max);
        };
        for &(kind, progress, since) in active {
            match kind {
                FaultKind::ResourceSaturation => util = 96.0 + 3.0 * rng.unit(),
                FaultKind::LatencySpike => lat *= 4.0,
                FaultKind::GradualDegradation => lat *= 1.1 + 0.8 * progress,
                FaultKind::LinkFlapping => {
                    if since % 3 == 0 {
                        add(Counter::LinkDownedCounter, 1, &mut p.counters);
                    }
                    add(Counter::LinkErrorRecoveryCounter, 2, &mut p.counters);
                }
                FaultKind::SymbolErrors => add(Counter::SymbolErrorCounter, 5, &mut p.counters),
                FaultKind::PacketLoss => {
                    add(
                        Counter::PortXmitDiscards,
                        (300.0 * dt) as u64,
                        &mut p.counters,
                    );
                    add(Counter::PortRcvErrors, (20.0 * dt) as u64, &mut p.counters);
                }
                FaultKind::QpErrorStorm => qp = 40,
                FaultKind::Congestion => {
                    wait_per_s = 3_000_000.0;
                    bw_factor = 0.55;
                }
                FaultKind::SwitchEvent => {
                    if since % 2 == 0 {
                        add(Counter::LinkDownedCounter, 1, &mut p.counters);
                    }
                    add(Counter::SymbolErrorCounter, 3, &mut p.counters);
                }
                FaultKind::CounterReset => {
                    if since == 0 {
                        for v in p.counters.values_mut() {
                            *v = 0;
                        }
                    }
                }
                FaultKind::CounterSaturation => {}
            }
        }
        if active.iter().any(|(k, _, _)| *k == FaultKind::PacketLoss) {
            error_rate = 0.02;
        }
        util = util.clamp(0.0, 100.0);
        let bandwidth = util * 2.0 * bw_factor;
        // 4-byte words per interval at the current bandwidth.
        let words = (bandwidth * 1e9 / 8.0 / 4.0 * dt) as u64;
        add(Counter::PortXmitData, words, &mut p.counters);
        add(Counter::PortRcvData, words, &mut p.counters);
        add(
            Counter::PortXmitWait,
            (wait_per_s * dt) as u64,
            &mut p.counters,
        );
        let port = &self.fabric.ports[i];
        Sample {
            stream_id: port.stream_id.clone(),
            timestamp_ms: ts,
            latency_p99_us: Some((lat * 1000.0).round() / 1000.0),
            utilization_pct: Some((util * 100.0).round() / 100.0),
            error_rate: Some(error_rate),
            bandwidth_gbps: Some((bandwidth * 100.0).round() / 100.0),
            qp_errors: Some(qp),
            counters: p.counters.clone(),
            labels: port.labels.clone(),
            port: port.identity.clone(),
            peer: Some(port.peer_port.clone()),
            link: Some(super::fabric::healthy_link()),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seed: u64) -> Vec<Vec<Sample>> {
        let mut s = Scenario::load("mixed").expect("mixed");
        s.seed = seed;
        s.duration_s = 40;
        s.faults.retain(|f| f.start_s + f.duration_s <= 40);
        let mut sim = Simulator::new(s, 1_700_000_000_000);
        std::iter::from_fn(|| sim.next_tick()).collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_samples() {
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn healthy_ports_look_healthy() {
        let ticks = run(7);
        for s in ticks.iter().flatten() {
            let u = s.utilization_pct.expect("util");
            assert!(
                (35.0..=75.0).contains(&u) || u >= 95.0,
                "{} util {u}",
                s.stream_id
            );
            assert!(s.latency_p99_us.expect("lat") <= 25.0);
        }
        // Data counters only grow (no reset in the first 40 s).
        let first = &ticks[0][0].counters[&Counter::PortXmitData];
        let last = &ticks[39][0].counters[&Counter::PortXmitData];
        assert!(last > first);
    }
}
