//! Fabric rules, from what a collector found by holding a port against the rest of the
//! fabric (`Sample::fabric`): a link below what most links of its kind run at (the
//! "non-optimal link" UFM reports, whether it trained low at start or later), and each way the
//! port differs from the expected topology. Both are judged per sample, with no memory: the
//! collector saw the whole fabric in the same sweep.

use super::rules::{Finding, Rule, Severity};
use crate::sample::port::{LinkState, MismatchKind};
use crate::sample::Sample;

/// The metric a topology finding is filed under: one per kind, so each kind is its own
/// anomaly and clears on its own.
pub fn topology_metric(kind: MismatchKind) -> &'static str {
    match kind {
        MismatchKind::MissingLink => "topology_missing_link",
        MismatchKind::Miswired => "topology_miswired",
        MismatchKind::NodeMissing => "topology_node_missing",
        MismatchKind::NodeUnexpected => "topology_node_unexpected",
    }
}

/// The metric of the non-optimal link rule: the link's data rate against its group's norm.
pub const NORM_METRIC: &str = "link_norm";

fn active(sample: &Sample) -> bool {
    sample.link.as_ref().and_then(|l| l.state) == Some(LinkState::Active)
}

/// The fabric findings of one sample.
pub fn findings(sample: &Sample) -> Vec<Finding> {
    let ts = sample.timestamp_ms;
    let finding = |rule, metric, value, threshold| {
        Finding::plain(rule, metric, value, threshold, Severity::Major, ts)
    };
    let mut out = Vec::new();
    if let (Some(norm), Some(link), true) = (&sample.fabric.norm, &sample.link, active(sample)) {
        if let (Some(width), Some(speed)) = (link.width, link.speed) {
            let narrower = width.lanes() < norm.width.lanes();
            let slower = speed.lane_gbps() < norm.speed.lane_gbps();
            if narrower || slower {
                let rate = f64::from(width.lanes()) * speed.lane_gbps();
                let norm_rate = f64::from(norm.width.lanes()) * norm.speed.lane_gbps();
                out.push(finding(Rule::NonOptimalLink, NORM_METRIC, rate, norm_rate));
            }
        }
    }
    for kind in MismatchKind::ALL {
        if sample
            .fabric
            .topology
            .iter()
            .flatten()
            .any(|m| m.kind == *kind)
        {
            out.push(finding(
                Rule::TopologyMismatch,
                topology_metric(*kind),
                1.0,
                0.0,
            ));
        }
    }
    out
}

/// The metric names the sample's fabric check lets these rules judge (for clearing): the norm
/// only on an active link with a norm, the topology only when it was checked.
pub fn observed(sample: &Sample) -> impl Iterator<Item = &'static str> {
    let norm = (sample.fabric.norm.is_some() && active(sample)).then_some(NORM_METRIC);
    let topology = sample
        .fabric
        .topology
        .is_some()
        .then(|| MismatchKind::ALL.iter().map(|k| topology_metric(*k)));
    norm.into_iter().chain(topology.into_iter().flatten())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::port::{FabricCheck, LinkInfo, LinkNorm, Mismatch, Speed, Width};

    fn sample(width: Width, speed: Speed, norm: Option<(Width, Speed)>) -> Sample {
        Sample {
            stream_id: "leaf01/p1".into(),
            link: Some(LinkInfo {
                state: Some(LinkState::Active),
                width: Some(width),
                speed: Some(speed),
                ..LinkInfo::default()
            }),
            fabric: FabricCheck {
                norm: norm.map(|(width, speed)| LinkNorm {
                    group: "leaf01 ca links".into(),
                    width,
                    speed,
                    links: 8,
                    at_norm: 7,
                }),
                topology: None,
            },
            ..Sample::default()
        }
    }

    fn rules(s: &Sample) -> Vec<(Rule, &'static str)> {
        findings(s).iter().map(|f| (f.rule, f.metric)).collect()
    }

    #[test]
    fn given_a_1x_link_among_4x_peers_then_it_is_non_optimal() {
        let s = sample(Width::X1, Speed::Hdr, Some((Width::X4, Speed::Hdr)));
        let f = findings(&s);
        assert_eq!(rules(&s), vec![(Rule::NonOptimalLink, NORM_METRIC)]);
        assert_eq!((f[0].value, f[0].threshold), (50.0, 200.0));
    }

    #[test]
    fn given_an_edr_link_among_hdr_peers_then_it_is_non_optimal() {
        let s = sample(Width::X4, Speed::Edr, Some((Width::X4, Speed::Hdr)));
        assert_eq!(rules(&s), vec![(Rule::NonOptimalLink, NORM_METRIC)]);
    }

    #[test]
    fn given_a_link_at_or_above_its_norm_then_nothing_fires() {
        for (w, sp) in [
            (Width::X4, Speed::Hdr),
            (Width::X4, Speed::Ndr),
            (Width::X12, Speed::Hdr),
        ] {
            let s = sample(w, sp, Some((Width::X4, Speed::Hdr)));
            assert!(findings(&s).is_empty(), "{w:?} {sp:?}");
            assert_eq!(observed(&s).collect::<Vec<_>>(), vec![NORM_METRIC]);
        }
    }

    #[test]
    fn given_no_norm_or_a_down_link_then_the_norm_is_neither_judged_nor_cleared() {
        let s = sample(Width::X1, Speed::Hdr, None);
        assert!(findings(&s).is_empty());
        assert_eq!(observed(&s).count(), 0);
        let mut down = sample(Width::X1, Speed::Hdr, Some((Width::X4, Speed::Hdr)));
        if let Some(l) = down.link.as_mut() {
            l.state = Some(LinkState::Down);
        }
        assert!(findings(&down).is_empty());
        assert_eq!(observed(&down).count(), 0);
    }

    #[test]
    fn given_a_topology_check_then_each_kind_found_fires_and_all_kinds_are_judged() {
        let mut s = sample(Width::X4, Speed::Hdr, None);
        s.fabric.topology = Some(vec![Mismatch {
            kind: MismatchKind::Miswired,
            expected: None,
        }]);
        assert_eq!(
            rules(&s),
            vec![(Rule::TopologyMismatch, "topology_miswired")]
        );
        assert_eq!(observed(&s).count(), 4);
        // When the port matches again, the check clears every kind;
        s.fabric.topology = Some(Vec::new());
        assert!(findings(&s).is_empty());
        assert_eq!(observed(&s).count(), 4);
        // and without a check nothing is judged.
        s.fabric.topology = None;
        assert_eq!(observed(&s).count(), 0);
    }
}
