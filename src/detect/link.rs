//! Link rules, from the port's link fields: a linked port that leaves `active` (link down),
//! state flaps within a window, and a width or speed below what the port had before or below
//! what it enables (a "non-optimal link", as UFM calls one that trained low from the start).
//! What a port merely supports is never a fault.

use super::rules::{Finding, Rule, Severity};
use super::window::ErrorWindow;
use super::DetectConfig;
use crate::sample::port::{LinkState, PeerPort};
use crate::sample::Sample;
use serde::{Deserialize, Serialize};

/// What a stream remembers of its link.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkMemory {
    /// Widest active width seen (lanes), and fastest lane speed (Mb/s), while active.
    pub best_lanes: u32,
    pub best_lane_mbps: u32,
    /// Whether the port has ever been seen active (only a linked port can go down).
    pub was_linked: bool,
    /// Samples in a row out of `active`.
    pub down_streak: u32,
    pub last_active: bool,
    /// Departures from `active`, over the counter windows.
    pub departures: ErrorWindow,
    /// The last peer the port reported (a down port reports none).
    pub last_peer: Option<PeerPort>,
}

fn lane_mbps(sample: &Sample) -> Option<u32> {
    let speed = sample.link.as_ref()?.speed?;
    Some((speed.lane_gbps() * 1000.0).round() as u32)
}

fn lanes(sample: &Sample) -> Option<u32> {
    Some(sample.link.as_ref()?.width?.lanes())
}

fn state(sample: &Sample) -> Option<LinkState> {
    sample.link.as_ref()?.state
}

/// The link findings of `sample` against what the stream remembers.
pub fn findings(mem: &LinkMemory, sample: &Sample, cfg: &DetectConfig) -> Vec<Finding> {
    let Some(state) = state(sample) else {
        return Vec::new();
    };
    let ts = sample.timestamp_ms;
    let finding = |rule, metric, value, threshold, severity| {
        Finding::plain(rule, metric, value, threshold, severity, ts)
    };
    let mut out = Vec::new();
    if state != LinkState::Active {
        let streak = mem.down_streak + 1;
        if mem.was_linked && streak >= cfg.link_down_samples {
            out.push(finding(
                Rule::LinkDown,
                "link_state",
                streak as f64,
                cfg.link_down_samples as f64,
                Severity::Major,
            ));
        }
    } else {
        if let Some(l) = lanes(sample) {
            let enabled = sample
                .link
                .as_ref()
                .and_then(|k| k.width_enabled.iter().map(|w| w.lanes()).max())
                .unwrap_or(0);
            let expected = mem.best_lanes.max(enabled);
            if l < expected {
                out.push(finding(
                    Rule::WidthDegraded,
                    "link_width",
                    l as f64,
                    expected as f64,
                    Severity::Major,
                ));
            }
        }
        if let Some(s) = lane_mbps(sample) {
            if s < mem.best_lane_mbps {
                out.push(finding(
                    Rule::SpeedDegraded,
                    "link_speed",
                    s as f64 / 1000.0,
                    mem.best_lane_mbps as f64 / 1000.0,
                    Severity::Major,
                ));
            }
        }
    }
    // Flaps: departures from active in the window, this one included.
    let departed = u64::from(mem.last_active && state != LinkState::Active);
    let long = cfg.long_window_ms();
    let count = mem.departures.count(ts, long) + departed;
    let per_hour = count as f64 * 3_600_000.0 / long as f64;
    if count >= 2 && per_hour >= cfg.link_downs_per_hour {
        out.push(finding(
            Rule::LinkFlapping,
            "link_state_changes",
            per_hour,
            cfg.link_downs_per_hour,
            Severity::from_ratio(per_hour / cfg.link_downs_per_hour),
        ));
    }
    out
}

/// The metric names a sample's link fields let the link rules judge (for clearing).
pub fn observed(sample: &Sample) -> impl Iterator<Item = &'static str> {
    let active = state(sample) == Some(LinkState::Active);
    let has_state = state(sample).is_some();
    [
        (has_state, "link_state"),
        (has_state, "link_state_changes"),
        (active, "link_width"),
        (active, "link_speed"),
    ]
    .into_iter()
    .filter(|(yes, _)| *yes)
    .map(|(_, m)| m)
}

/// Fold the sample's link fields into the memory.
pub fn absorb(mem: &mut LinkMemory, sample: &Sample, cfg: &DetectConfig) {
    if let Some(peer) = &sample.peer {
        mem.last_peer = Some(peer.clone());
    }
    let Some(state) = state(sample) else {
        return;
    };
    let ts = sample.timestamp_ms;
    let departed = u64::from(mem.last_active && state != LinkState::Active);
    mem.departures.add(ts, departed, cfg.long_window_ms());
    if state == LinkState::Active {
        mem.was_linked = true;
        mem.down_streak = 0;
        if let Some(l) = lanes(sample) {
            mem.best_lanes = mem.best_lanes.max(l);
        }
        if let Some(s) = lane_mbps(sample) {
            mem.best_lane_mbps = mem.best_lane_mbps.max(s);
        }
    } else {
        mem.down_streak = mem.down_streak.saturating_add(1);
    }
    mem.last_active = state == LinkState::Active;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::port::{LinkInfo, Speed, Width};

    fn sample(ts: i64, state: LinkState, width: Width, speed: Speed) -> Sample {
        Sample {
            stream_id: "s".into(),
            timestamp_ms: ts,
            link: Some(LinkInfo {
                state: Some(state),
                width: Some(width),
                speed: Some(speed),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn active(ts: i64) -> Sample {
        sample(ts, LinkState::Active, Width::X4, Speed::Hdr)
    }

    fn down(ts: i64) -> Sample {
        sample(ts, LinkState::Down, Width::X4, Speed::Hdr)
    }

    /// Feed samples through findings + absorb; the rules of the last sample.
    fn run(samples: &[Sample]) -> Vec<Rule> {
        let cfg = DetectConfig::default();
        let mut mem = LinkMemory::default();
        let mut last = Vec::new();
        for s in samples {
            last = findings(&mem, s, &cfg).iter().map(|f| f.rule).collect();
            absorb(&mut mem, s, &cfg);
        }
        last
    }

    #[test]
    fn given_a_linked_port_when_it_stays_down_for_n_samples_then_the_link_is_down() {
        let mut s = vec![active(0), down(10_000), down(20_000)];
        assert_eq!(run(&s), Vec::<Rule>::new());
        s.push(down(30_000));
        assert_eq!(run(&s), vec![Rule::LinkDown]);
    }

    #[test]
    fn given_a_port_never_linked_when_it_is_down_then_nothing_fires() {
        assert!(run(&[down(0), down(10_000), down(20_000), down(30_000)]).is_empty());
    }

    #[test]
    fn given_one_reboot_when_the_link_returns_then_nothing_fires() {
        let s = [active(0), down(10_000), active(20_000), active(30_000)];
        assert!(run(&s).is_empty());
    }

    #[test]
    fn given_three_departures_within_the_hour_then_the_link_flaps() {
        let mut s = Vec::new();
        for i in 0..3 {
            s.push(active(i * 60_000));
            s.push(down(i * 60_000 + 10_000));
        }
        s.push(active(200_000));
        assert_eq!(run(&s), vec![Rule::LinkFlapping]);
    }

    #[test]
    fn given_a_4x_link_when_it_retrains_at_1x_then_its_width_is_degraded() {
        let s = [
            active(0),
            sample(10_000, LinkState::Active, Width::X1, Speed::Hdr),
        ];
        assert_eq!(run(&s), vec![Rule::WidthDegraded]);
    }

    #[test]
    fn given_a_link_that_came_up_at_1x_when_it_enables_4x_then_it_is_non_optimal() {
        let mut s = sample(0, LinkState::Active, Width::X1, Speed::Hdr);
        if let Some(l) = s.link.as_mut() {
            l.width_enabled = vec![Width::X1, Width::X4];
        }
        assert_eq!(run(&[s]), vec![Rule::WidthDegraded]);
    }

    #[test]
    fn given_an_hdr_link_when_it_retrains_at_edr_then_its_speed_is_degraded() {
        let s = [
            active(0),
            sample(10_000, LinkState::Active, Width::X4, Speed::Edr),
        ];
        assert_eq!(run(&s), vec![Rule::SpeedDegraded]);
    }

    #[test]
    fn given_a_steady_link_then_nothing_fires() {
        let s: Vec<Sample> = (0..20).map(|i| active(i * 10_000)).collect();
        assert!(run(&s).is_empty());
    }
}
