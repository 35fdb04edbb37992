//! `ibsight demo --fabric ibsim`: the demo on the real management stack. A fat tree runs in
//! ibsim under opensm; `collect`'s sweep reads it every second through infiniband-diags and
//! posts to the demo's server; the scenario's faults are injected through ibsim's console
//! (counters set on the port's PMA, cables pulled and plugged back). Faults the management
//! stack cannot show (utilization, latency, QP errors, a saturated counter) are listed and
//! skipped.

use crate::collect::ibsim::{fat_tree, Fabric};
use crate::collect::post::Poster;
use crate::collect::sweep::{Memory, Tools};
use crate::sim::faults::FaultKind;
use crate::sim::scenario::{FaultSpec, Scenario};
use std::time::Duration;

/// The ibsim fat tree for `nodes` HCAs: 16 hosts a leaf, two spines.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dims {
    pub leaves: usize,
    pub spines: usize,
    pub hosts: usize,
}

impl Dims {
    pub fn for_nodes(nodes: usize) -> Dims {
        Dims {
            leaves: nodes.max(1).div_ceil(16),
            spines: 2,
            hosts: 16,
        }
    }
}

/// Where a scenario target (`leaf02/p21`, `node020/mlx5_0/p1`, `leaf02`) is in the ibsim fat
/// tree: the node id and, unless the whole node is meant, its port.
pub fn locate(target: &str, d: Dims) -> Option<(String, Option<u8>)> {
    let number = |s: &str, prefix: &str| -> Option<usize> { s.strip_prefix(prefix)?.parse().ok() };
    let mut parts = target.split('/');
    let device = parts.next()?;
    let port = target
        .rsplit('/')
        .next()
        .filter(|_| target.contains('/'))
        .and_then(|p| number(p, "p"));
    if let Some(n) = number(device, "node") {
        return (1..=d.leaves * d.hosts)
            .contains(&n)
            .then(|| (format!("node{n:03} mlx5_0"), Some(1)));
    }
    if let Some(l) = number(device, "leaf") {
        let uplinks = d.hosts + d.spines;
        return (1..=d.leaves).contains(&l).then(|| {
            let port = port.map(|p| ((p.max(1) - 1) % uplinks + 1) as u8);
            (format!("leaf{l:02}"), port)
        });
    }
    if let Some(s) = number(device, "spine") {
        return (1..=d.spines).contains(&s).then(|| {
            let port = port.map(|p| ((p.max(1) - 1) % d.leaves + 1) as u8);
            (format!("spine{s:02}"), port)
        });
    }
    None
}

/// The console commands for `fault` at scenario second `at_s` (pure). Counters are set to what
/// they would read after the fault has run that long; a pulled cable is plugged back when the
/// fault ends.
pub fn commands(fault: &FaultSpec, at_s: u64, d: Dims) -> Vec<String> {
    let Some((node, port)) = locate(&fault.target, d) else {
        return Vec::new();
    };
    let end = fault.start_s + fault.duration_s;
    if at_s < fault.start_s || at_s > end {
        return Vec::new();
    }
    let e = at_s - fault.start_s;
    let at = |p: Option<u8>| match p {
        Some(p) => format!("\"{node}\"[{p}]"),
        None => format!("\"{node}\""),
    };
    let set = |counter: &str, v: u64| {
        format!(
            "PerformanceSet {} PortCounters.{counter}={v}",
            at(port.or(Some(1)))
        )
    };
    let ended = at_s == end;
    match fault.kind {
        FaultKind::SymbolErrors => vec![set("SymbolErrorCounter", (40 * (e + 1)).min(65_535))],
        FaultKind::PacketLoss => vec![set("PortRcvErrors", (50 * (e + 1)).min(65_535))],
        FaultKind::Congestion => vec![set("PortXmitWait", 5_000_000 * (e + 1))],
        FaultKind::CounterReset if e == 0 => vec![set("SymbolErrorCounter", 0)],
        FaultKind::LinkFlapping if ended => vec![format!("ReLink {}", at(port))],
        FaultKind::LinkFlapping => vec![
            format!(
                "{} {}",
                if e.is_multiple_of(2) {
                    "Unlink"
                } else {
                    "ReLink"
                },
                at(port)
            ),
            set("LinkDownedCounter", (e / 2 + 1).min(255)),
        ],
        FaultKind::SwitchEvent | FaultKind::SwitchDown if e == 0 => {
            vec![format!("Unlink {}", at(None))]
        }
        FaultKind::SwitchEvent | FaultKind::SwitchDown if ended => {
            vec![format!("ReLink {}", at(None))]
        }
        // A cable pulled: its host end becomes unreachable, the switch end goes down.
        FaultKind::LinkDown if e == 0 => vec![format!("Unlink {}", at(port.or(Some(1))))],
        FaultKind::LinkDown if ended => vec![format!("ReLink {}", at(port.or(Some(1))))],
        _ => Vec::new(),
    }
}

/// Fault kinds the management stack cannot show.
pub fn expressible(kind: FaultKind) -> bool {
    matches!(
        kind,
        FaultKind::SymbolErrors
            | FaultKind::PacketLoss
            | FaultKind::Congestion
            | FaultKind::CounterReset
            | FaultKind::LinkFlapping
            | FaultKind::SwitchEvent
            | FaultKind::SwitchDown
            | FaultKind::LinkDown
    )
}

/// Play `scenario` on ibsim against the server at `base`, one sweep a second for `seconds`.
pub async fn play(scenario: &Scenario, base: &str, seconds: u64) -> anyhow::Result<()> {
    anyhow::ensure!(
        crate::collect::ibsim::installed(),
        "--fabric ibsim needs Debian's ibsim-utils, libumad2sim0, opensm and infiniband-diags"
    );
    let d = Dims::for_nodes(scenario.nodes);
    let net = fat_tree(d.leaves, d.spines, d.hosts);
    let mut fabric = tokio::task::spawn_blocking(move || Fabric::start(&net)).await??;
    println!(
        "ibsim fabric up: {} leaves, {} spines, {} hosts (opensm on smhost)",
        d.leaves,
        d.spines,
        d.leaves * d.hosts
    );
    for f in &scenario.faults {
        if !expressible(f.kind) {
            println!(
                "  skipped {} on {}: not visible to the management stack",
                f.kind.name(),
                f.target
            );
        }
    }
    let tools = Tools {
        ca: None,
        port: None,
        max_clients: 6,
        timeouts: crate::collect::tool::Timeouts::all(Duration::from_secs(30)),
        discover_every: 1,
        env: fabric.env("smhost"),
        topology: None,
    };
    let mut memory = Memory::default();
    let client = crate::collect::post::http_client(None, std::time::Duration::from_secs(30))
        .map_err(anyhow::Error::msg)?;
    let mut poster = Poster::new(client, base, None, 60);
    let speedup = (scenario.duration_s as f64 / seconds.max(1) as f64).max(1.0);
    let mut last_s = None;
    for tick in 0..=seconds {
        let at_s = (tick as f64 * speedup) as u64;
        // Every scenario second since the last tick, so no fault start or end is skipped.
        let from = last_s.map_or(0, |l: u64| l + 1);
        for s in from..=at_s {
            for f in &scenario.faults {
                for cmd in commands(f, s, d) {
                    println!("  inject  {cmd}");
                    fabric.console(&cmd)?;
                }
            }
        }
        last_s = Some(at_s);
        let swept = tools.sweep(&mut memory).await?;
        poster.push(swept.samples);
        let next = tokio::time::Instant::now() + Duration::from_secs(1);
        poster.drain(next).await;
        tokio::time::sleep_until(next).await;
    }
    let done = poster
        .drain(tokio::time::Instant::now() + Duration::from_secs(30))
        .await;
    anyhow::ensure!(done, "the last sweeps were not acknowledged");
    println!("ibsim: {} samples posted", poster.delivery.posted);
    drop(fabric);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(kind: FaultKind, target: &str) -> FaultSpec {
        FaultSpec {
            kind,
            target: target.into(),
            start_s: 10,
            duration_s: 4,
        }
    }

    const D: Dims = Dims {
        leaves: 4,
        spines: 2,
        hosts: 16,
    };

    #[test]
    fn scenario_targets_land_on_the_ibsim_fat_tree() {
        assert_eq!(
            locate("node020/mlx5_0/p1", D),
            Some(("node020 mlx5_0".into(), Some(1)))
        );
        assert_eq!(locate("leaf02/p21", D), Some(("leaf02".into(), Some(3))));
        assert_eq!(locate("spine01/p07", D), Some(("spine01".into(), Some(3))));
        assert_eq!(locate("leaf02", D), Some(("leaf02".into(), None)));
        assert_eq!(locate("node999/mlx5_0/p1", D), None);
    }

    #[test]
    fn a_flapping_link_is_pulled_and_plugged_and_left_plugged_at_the_end() {
        let f = fault(FaultKind::LinkFlapping, "node020/mlx5_0/p1");
        assert!(commands(&f, 9, D).is_empty());
        assert_eq!(commands(&f, 10, D)[0], "Unlink \"node020 mlx5_0\"[1]");
        assert_eq!(commands(&f, 11, D)[0], "ReLink \"node020 mlx5_0\"[1]");
        assert_eq!(
            commands(&f, 14, D),
            vec!["ReLink \"node020 mlx5_0\"[1]".to_string()]
        );
        assert!(commands(&f, 15, D).is_empty());
    }

    #[test]
    fn counters_grow_with_the_faults_age_and_a_switch_event_pulls_the_whole_switch() {
        let f = fault(FaultKind::SymbolErrors, "spine01/p07");
        assert_eq!(
            commands(&f, 12, D),
            vec!["PerformanceSet \"spine01\"[3] PortCounters.SymbolErrorCounter=120".to_string()]
        );
        let s = fault(FaultKind::SwitchEvent, "leaf02");
        assert_eq!(commands(&s, 10, D), vec!["Unlink \"leaf02\"".to_string()]);
        assert!(commands(&s, 12, D).is_empty());
        assert_eq!(commands(&s, 14, D), vec!["ReLink \"leaf02\"".to_string()]);
        assert!(commands(&fault(FaultKind::LatencySpike, "leaf01/p1"), 11, D).is_empty());
    }
}
