//! The simulator: one sample per port per interval, healthy noise plus the scenario's faults.
//! Deterministic for a seed. Timestamps advance by the interval from `base_ms`; how fast they
//! are sent is the caller's business (`--speedup`).

use super::fabric::Fabric;
use super::faults::FaultKind;
use super::scenario::Scenario;
use super::Rng;
use crate::events::types::IncidentScope;
use crate::sample::port::{LinkState, PhysState, Speed, Width};
use crate::sample::{Counter, Sample};
use crate::vocab::PredictionType;
use std::collections::BTreeMap;

/// A fault as the scorer sees it: which streams, when, and what it should be called.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Label {
    pub kind: FaultKind,
    pub streams: Vec<String>,
    pub start_ms: i64,
    pub end_ms: i64,
    pub expected: Option<PredictionType>,
    pub scope: Option<IncidentScope>,
}

struct PortState {
    /// The job-driven utilization level the port sits at, and when it next changes.
    level: f64,
    next_step: u64,
    lat0: f64,
    /// Background symbol errors per second (a plausible healthy BER on 200 Gb/s).
    symbol_errors_per_s: f64,
    counters: BTreeMap<Counter, u64>,
}

struct Active {
    kind: FaultKind,
    ports: Vec<usize>,
    start_tick: u64,
    end_tick: u64,
}

/// Healthy life of a fabric, as rates per second of sample time.
mod healthy {
    /// Mean time between job-driven traffic steps on a port.
    pub const TRAFFIC_STEP_S: f64 = 1200.0;
    /// Node reboots (a LinkDowned increment on both ends, one sample off the fabric).
    pub const REBOOTS_PER_NODE_S: f64 = 1.0 / (4.0 * 86_400.0);
    /// An operator clears a port's counters.
    pub const RESETS_PER_PORT_S: f64 = 1.0 / (3.0 * 86_400.0);
    /// A latency p99 outlier in a single sample.
    pub const LATENCY_OUTLIER_P: f64 = 0.003;
}

pub struct Simulator {
    pub fabric: Fabric,
    pub scenario: Scenario,
    rng: Rng,
    ports: Vec<PortState>,
    faults: Vec<Active>,
    /// Node reboots under way: port index and the tick it is back.
    rebooting: BTreeMap<usize, u64>,
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

/// The ports a fault touches: its targets, plus the other end of each cable for a link fault
/// and the peers of every port for a switch fault.
fn fault_ports(fabric: &Fabric, kind: FaultKind, target: &str) -> Vec<usize> {
    let mut ports = fabric.resolve(target);
    if kind.is_link() || kind.is_switch() {
        let peers: Vec<usize> = ports.iter().filter_map(|&i| fabric.peer_of(i)).collect();
        ports.extend(peers);
    }
    ports.sort_unstable();
    ports.dedup();
    ports
}

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
                ports: fault_ports(&fabric, f.kind, &f.target),
                start_tick: f.start_s / interval,
                end_tick: (f.start_s + f.duration_s) / interval,
            })
            .collect();
        let ports = (0..fabric.ports.len())
            .map(|i| {
                let mut counters: BTreeMap<Counter, u64> = ERROR_COUNTERS
                    .iter()
                    .map(|c| (*c, (rng.unit() * 40.0) as u64))
                    .chain([
                        (Counter::PortXmitWait, 0),
                        (Counter::PortXmitData, 0),
                        (Counter::PortRcvData, 0),
                    ])
                    .collect();
                if faults
                    .iter()
                    .any(|f| f.kind == FaultKind::CounterSaturation && f.ports.contains(&i))
                {
                    counters.insert(Counter::SymbolErrorCounter, 65_535);
                }
                PortState {
                    level: 10.0 + 65.0 * rng.unit(),
                    next_step: 0,
                    lat0: 1.0 + 4.0 * rng.unit(),
                    // A BER of 1e-16 to 1e-14 at 200 Gb/s.
                    symbol_errors_per_s: 2e-5 * 10f64.powf(2.0 * rng.unit()),
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
            rebooting: BTreeMap::new(),
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
                scope: f.kind.expected_scope(),
            })
            .collect()
    }

    /// Reboots starting this tick (hosts only, never on a port a fault touches).
    fn start_reboots(&mut self, t: u64, dt: f64) {
        self.rebooting.retain(|_, back| *back > t);
        for i in 0..self.ports.len() {
            let host = self.fabric.ports[i].labels.contains_key("node");
            if !host || self.rng.unit() >= healthy::REBOOTS_PER_NODE_S * dt {
                continue;
            }
            if self.faults.iter().any(|f| f.ports.contains(&i)) {
                continue;
            }
            self.rebooting.insert(i, t + 1);
            if let Some(p) = self.fabric.peer_of(i) {
                self.rebooting.insert(p, t + 1);
            }
        }
    }

    /// The next interval's samples, one per reporting port; `None` when the run is over.
    pub fn next_tick(&mut self) -> Option<Vec<Sample>> {
        if self.tick >= self.ticks {
            return None;
        }
        let t = self.tick;
        let ts = self.base_ms + t as i64 * self.interval_ms();
        let dt = self.scenario.interval_s as f64;
        self.start_reboots(t, dt);
        let mut out = Vec::with_capacity(self.ports.len());
        for i in 0..self.ports.len() {
            let active: Vec<(FaultKind, f64, u64)> = self
                .faults
                .iter()
                .filter(|f| f.ports.contains(&i))
                .filter(|f| {
                    let from = if f.kind == FaultKind::WidthDegradedFromStart {
                        0
                    } else {
                        f.start_tick
                    };
                    t >= from && t < f.end_tick
                })
                .map(|f| {
                    let span = (f.end_tick - f.start_tick).max(1) as f64;
                    let progress = t.saturating_sub(f.start_tick) as f64 / span;
                    (f.kind, progress, t.saturating_sub(f.start_tick))
                })
                .collect();
            out.extend(self.sample(i, t, ts, dt, &active));
        }
        self.tick += 1;
        Some(out)
    }

    fn sample(
        &mut self,
        i: usize,
        t: u64,
        ts: i64,
        dt: f64,
        active: &[(FaultKind, f64, u64)],
    ) -> Option<Sample> {
        let host = self.fabric.ports[i].labels.contains_key("node");
        let rebooting = self.rebooting.get(&i).copied();
        let rng = &mut self.rng;
        let p = &mut self.ports[i];
        if t >= p.next_step {
            p.level = 10.0 + 65.0 * rng.unit();
            p.next_step = t + (healthy::TRAFFIC_STEP_S / dt * 2.0 * rng.unit()) as u64 + 1;
        }
        if rng.unit() < healthy::RESETS_PER_PORT_S * dt {
            p.counters.values_mut().for_each(|v| *v = 0);
        }
        let mut util = (p.level + 5.0 * (rng.unit() - 0.5)).clamp(0.0, 100.0);
        let mut lat = p.lat0 * (1.0 + 0.15 * util / 100.0) * (1.0 + 0.16 * (rng.unit() - 0.5));
        if rng.unit() < healthy::LATENCY_OUTLIER_P {
            lat *= 1.6;
        }
        let mut error_rate = 0.00001 * rng.unit();
        let mut qp = 0u64;
        let mut bw_factor = 1.0;
        let mut stall = 0.0005 * util / 100.0;
        let mut link = super::fabric::healthy_link();
        let mut silent = false;
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
        let poisson_ish = |rate: f64, rng: &mut Rng| {
            let whole = rate.floor();
            whole as u64 + u64::from(rng.unit() < rate - whole)
        };
        let background = poisson_ish(p.symbol_errors_per_s * dt, rng);
        add(Counter::SymbolErrorCounter, background, &mut p.counters);
        if let Some(back) = rebooting {
            // The host is off the fabric for this sample; both ends count one link down.
            if back == t + 1 {
                add(Counter::LinkDownedCounter, 1, &mut p.counters);
            }
            if host {
                silent = true;
            } else {
                link.state = Some(LinkState::Down);
                link.phys_state = Some(PhysState::Polling);
            }
        }
        for &(kind, progress, since) in active {
            match kind {
                FaultKind::ResourceSaturation => util = 96.0 + 3.0 * rng.unit(),
                FaultKind::LatencySpike => lat *= 4.0,
                FaultKind::GradualDegradation => lat *= 1.1 + 0.8 * progress,
                FaultKind::LinkFlapping => {
                    if since % 3 == 0 {
                        add(Counter::LinkDownedCounter, 1, &mut p.counters);
                        link.state = Some(LinkState::Down);
                    }
                    add(Counter::LinkErrorRecoveryCounter, 2, &mut p.counters);
                }
                FaultKind::SymbolErrors => add(
                    Counter::SymbolErrorCounter,
                    (5.0 * dt) as u64,
                    &mut p.counters,
                ),
                FaultKind::PacketLoss => {
                    add(
                        Counter::PortXmitDiscards,
                        (300.0 * dt) as u64,
                        &mut p.counters,
                    );
                    add(Counter::PortRcvErrors, (20.0 * dt) as u64, &mut p.counters);
                    error_rate = 0.02;
                }
                FaultKind::QpErrorStorm => qp = (40.0 * dt) as u64,
                FaultKind::Congestion => {
                    stall = 0.4;
                    bw_factor = 0.55;
                }
                FaultKind::SwitchEvent => {
                    if since % 2 == 0 {
                        add(Counter::LinkDownedCounter, 1, &mut p.counters);
                        link.state = Some(LinkState::Down);
                    }
                    add(
                        Counter::SymbolErrorCounter,
                        (3.0 * dt) as u64,
                        &mut p.counters,
                    );
                }
                FaultKind::CounterReset => {
                    if since == 0 {
                        p.counters.values_mut().for_each(|v| *v = 0);
                    }
                }
                // Set up in `new`: a counter nobody cleared for years, full from the start.
                FaultKind::CounterSaturation => {}
                FaultKind::WidthDegraded | FaultKind::WidthDegradedFromStart => {
                    link.width = Some(Width::X1);
                    link.rate_gbps = Some(50.0);
                }
                FaultKind::SpeedDegraded => {
                    link.speed = Some(Speed::Edr);
                    link.rate_gbps = Some(100.0);
                }
                FaultKind::LinkDown | FaultKind::SwitchDown => {
                    let own = self.fabric.ports[i].labels.contains_key("switch")
                        && self.scenario.faults.iter().any(|f| {
                            f.kind == FaultKind::SwitchDown
                                && self.fabric.ports[i].device == f.target
                        });
                    if host || own {
                        // Unreachable: no sample at all.
                        silent = true;
                    } else {
                        link.state = Some(LinkState::Down);
                        link.phys_state = Some(PhysState::Polling);
                    }
                }
                FaultKind::StalePort => silent = true,
            }
        }
        if silent {
            return None;
        }
        util = util.clamp(0.0, 100.0);
        let down = link.state != Some(LinkState::Active);
        let rate = link.rate_gbps.unwrap_or(200.0);
        let bandwidth = if down {
            0.0
        } else {
            util / 100.0 * rate * bw_factor
        };
        // 4-byte words per interval at the current bandwidth.
        let words = (bandwidth * 1e9 / 8.0 / 4.0 * dt) as u64;
        add(Counter::PortXmitData, words, &mut p.counters);
        add(Counter::PortRcvData, words, &mut p.counters);
        // Ticks of 64 bytes at the link rate.
        let ticks = stall * dt * rate * 1e9 / 512.0;
        add(Counter::PortXmitWait, ticks as u64, &mut p.counters);
        let port = &self.fabric.ports[i];
        Some(Sample {
            stream_id: port.stream_id.clone(),
            timestamp_ms: ts,
            latency_p99_us: (!down).then_some((lat * 1000.0).round() / 1000.0),
            utilization_pct: Some(if down {
                0.0
            } else {
                (util * 100.0).round() / 100.0
            }),
            error_rate: Some(error_rate),
            bandwidth_gbps: Some((bandwidth * 100.0).round() / 100.0),
            qp_errors: Some(qp),
            counters: p.counters.clone(),
            labels: port.labels.clone(),
            port: port.identity.clone(),
            peer: (!down).then(|| port.peer_port.clone()),
            link: Some(link),
            ..Default::default()
        })
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
            // Job-driven levels of 10 to 75 %, ±2.5 points of jitter.
            assert!((7.5..=77.5).contains(&u), "{} util {u}", s.stream_id);
            assert!(s.latency_p99_us.expect("lat") <= 25.0);
        }
        // Data counters only grow (no reset in the first 40 s).
        let first = &ticks[0][0].counters[&Counter::PortXmitData];
        let last = &ticks[39][0].counters[&Counter::PortXmitData];
        assert!(last > first);
    }
}
