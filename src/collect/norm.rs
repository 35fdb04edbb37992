//! The fabric norm (pure): what most links of one kind run at, given to each port of a sweep
//! so that detection can tell a link that runs below its peers (UFM's "non-optimal link"),
//! whether it trained low at start or later.
//!
//! A link's group is the switch it hangs off and the kind of link: the CA links of one switch
//! (both ends of each), or the switch links of one switch (its own end of each). A group's
//! norm is the width and speed that at least three quarters of its links run at, when it has
//! at least `MIN_LINKS` links; otherwise the port gets its tier's norm (every CA link, or every
//! switch link, of the fabric) on the same terms. A group without a clear majority has no
//! norm, and nothing is judged against it: a fabric of mixed generations stays quiet. Nor does
//! a port get a norm that either end of its link cannot reach, by the supported widths and
//! speeds the ports report (an EDR HCA among HDR ones runs as fast as it can).

use crate::sample::port::{LinkNorm, LinkState, NodeType, Speed, Width};
use crate::sample::Sample;
use std::collections::{BTreeMap, HashMap};

/// Fewer links than this make no norm.
pub const MIN_LINKS: usize = 3;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Group {
    /// The CA links of one switch (by GUID).
    CaLinksOf(u64),
    /// The switch links of one switch.
    SwitchLinksOf(u64),
    CaTier,
    SwitchTier,
}

type End = (u64, u8);
/// A group's distinct links (by their two ends) and what each runs at.
type Links = HashMap<(End, End), (Width, Speed)>;

/// A port's active link: its group, its tier, the link's key (its two ends in order) and rate.
struct Active {
    group: Group,
    tier: Group,
    link: (End, End),
    at: (Width, Speed),
}

fn active(s: &Sample, types: &HashMap<u64, NodeType>) -> Option<Active> {
    let link = s.link.as_ref()?;
    if link.state != Some(LinkState::Active) {
        return None;
    }
    let at = (link.width?, link.speed?);
    let me = (s.port.node_guid?, s.port.port_num?);
    let peer = s.peer.as_ref()?;
    let far = (peer.node_guid?, peer.port_num?);
    let is_switch = |g: u64| types.get(&g) == Some(&NodeType::Switch);
    let (group, tier) = match (is_switch(me.0), is_switch(far.0)) {
        (true, true) => (Group::SwitchLinksOf(me.0), Group::SwitchTier),
        (true, false) => (Group::CaLinksOf(me.0), Group::CaTier),
        (false, true) => (Group::CaLinksOf(far.0), Group::CaTier),
        (false, false) => (Group::CaTier, Group::CaTier),
    };
    Some(Active {
        group,
        tier,
        link: (me.min(far), me.max(far)),
        at,
    })
}

/// The (width, speed) of at least three quarters of a group's distinct links, and the counts.
fn majority(links: &Links) -> Option<((Width, Speed), u32, u32)> {
    if links.len() < MIN_LINKS {
        return None;
    }
    let mut count: BTreeMap<(Width, Speed), u32> = BTreeMap::new();
    for at in links.values() {
        *count.entry(*at).or_default() += 1;
    }
    let (at, n) = count.into_iter().max_by_key(|(_, n)| *n)?;
    let total = links.len() as u32;
    (n * 4 >= total * 3).then_some((at, total, n))
}

fn name(group: &Group, descs: &HashMap<u64, String>) -> String {
    let desc = |g: &u64| {
        descs
            .get(g)
            .cloned()
            .unwrap_or_else(|| format!("{g:#018x}"))
    };
    match group {
        Group::CaLinksOf(g) => format!("CA links of {}", desc(g)),
        Group::SwitchLinksOf(g) => format!("switch links of {}", desc(g)),
        Group::CaTier => "CA links of the fabric".into(),
        Group::SwitchTier => "switch links of the fabric".into(),
    }
}

/// Give every active port of one sweep the norm of its group (or tier).
pub fn annotate(samples: &mut [Sample]) {
    let mut types = HashMap::new();
    let mut descs = HashMap::new();
    for s in samples.iter() {
        if let (Some(g), Some(t)) = (s.port.node_guid, s.port.node_type) {
            types.insert(g, t);
        }
        if let (Some(g), Some(d)) = (s.port.node_guid, &s.port.node_desc) {
            descs.insert(g, d.clone());
        }
    }
    let actives: Vec<Option<Active>> = samples.iter().map(|s| active(s, &types)).collect();
    // What each end supports (empty: not reported, so not limiting).
    let supported: HashMap<End, (Vec<Width>, Vec<Speed>)> = samples
        .iter()
        .filter_map(|s| {
            let l = s.link.as_ref()?;
            let end = (s.port.node_guid?, s.port.port_num?);
            Some((end, (l.width_supported.clone(), l.speed_supported.clone())))
        })
        .collect();
    let reaches = |end: &End, (w, sp): (Width, Speed)| {
        supported.get(end).is_none_or(|(ws, ss)| {
            (ws.is_empty() || ws.contains(&w)) && (ss.is_empty() || ss.contains(&sp))
        })
    };
    let mut groups: HashMap<Group, Links> = HashMap::new();
    for a in actives.iter().flatten() {
        for g in [&a.group, &a.tier] {
            groups.entry(g.clone()).or_default().insert(a.link, a.at);
        }
    }
    let norms: HashMap<&Group, ((Width, Speed), u32, u32)> = groups
        .iter()
        .filter_map(|(g, links)| Some((g, majority(links)?)))
        .collect();
    for (s, a) in samples.iter_mut().zip(&actives) {
        let Some(a) = a else { continue };
        let chosen = [&a.group, &a.tier]
            .into_iter()
            .find_map(|g| norms.get(g).map(|n| (g, *n)))
            .filter(|(_, (at, _, _))| reaches(&a.link.0, *at) && reaches(&a.link.1, *at));
        s.fabric.norm = chosen.map(|(g, ((width, speed), links, at_norm))| LinkNorm {
            group: name(g, &descs),
            width,
            speed,
            links,
            at_norm,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::port::{LinkInfo, PeerPort, PortIdentity};

    const LEAF: u64 = 0x200;
    const LEAF2: u64 = 0x201;
    const SPINE: u64 = 0x300;

    fn end(guid: u64, port: u8, kind: NodeType, peer: (u64, u8), w: Width) -> Sample {
        Sample {
            stream_id: format!("{guid:x}/p{port}"),
            port: PortIdentity {
                node_guid: Some(guid),
                port_num: Some(port),
                node_type: Some(kind),
                node_desc: Some(format!("n{guid:x}")),
                lid: None,
            },
            peer: Some(PeerPort {
                node_guid: Some(peer.0),
                port_num: Some(peer.1),
                node_desc: None,
            }),
            link: Some(LinkInfo {
                state: Some(LinkState::Active),
                width: Some(w),
                speed: Some(Speed::Hdr),
                ..LinkInfo::default()
            }),
            ..Sample::default()
        }
    }

    /// `hosts` HCAs on LEAF, both ends of each cable, the first at `first`'s width.
    fn leaf(hosts: u64, first: Width) -> Vec<Sample> {
        let mut out = Vec::new();
        for h in 0..hosts {
            let w = if h == 0 { first } else { Width::X4 };
            let hca = 0x100 + h;
            out.push(end(LEAF, h as u8 + 1, NodeType::Switch, (hca, 1), w));
            out.push(end(hca, 1, NodeType::Ca, (LEAF, h as u8 + 1), w));
        }
        out
    }

    fn norm_of(s: &[Sample], id: &str) -> Option<LinkNorm> {
        s.iter()
            .find(|s| s.stream_id == id)
            .and_then(|s| s.fabric.norm.clone())
    }

    #[test]
    fn given_a_1x_cable_among_4x_on_a_leaf_then_both_its_ends_get_the_4x_norm() {
        let mut s = leaf(4, Width::X1);
        annotate(&mut s);
        for id in ["200/p1", "100/p1"] {
            let n = norm_of(&s, id).expect(id);
            assert_eq!(
                (n.width, n.speed, n.links, n.at_norm),
                (Width::X4, Speed::Hdr, 4, 3)
            );
            assert_eq!(n.group, "CA links of n200");
        }
    }

    #[test]
    fn given_two_cables_on_a_leaf_then_the_fabric_tier_decides() {
        // Given leaf (2 HCAs, one at 1X) and leaf2 (3 HCAs at 4X),
        let mut s = leaf(2, Width::X1);
        for h in 0..3u64 {
            let hca = 0x180 + h;
            s.push(end(
                LEAF2,
                h as u8 + 1,
                NodeType::Switch,
                (hca, 1),
                Width::X4,
            ));
            s.push(end(hca, 1, NodeType::Ca, (LEAF2, h as u8 + 1), Width::X4));
        }
        annotate(&mut s);
        // the small leaf has no norm of its own, and its ports get the tier's: 4 of 5 at 4X.
        let n = norm_of(&s, "200/p1").expect("tier norm");
        assert_eq!((n.width, n.links, n.at_norm), (Width::X4, 5, 4));
        assert_eq!(n.group, "CA links of the fabric");
    }

    #[test]
    fn given_a_port_that_cannot_reach_the_norm_then_it_gets_none() {
        // Given an EDR-only HCA (by its supported speeds) among HDR links,
        let mut s = leaf(4, Width::X4);
        for p in s.iter_mut().take(2) {
            p.link.as_mut().unwrap().speed = Some(Speed::Edr);
        }
        s[1].link.as_mut().unwrap().speed_supported = vec![Speed::Sdr, Speed::Edr];
        annotate(&mut s);
        // neither end of its cable is judged against HDR; the others are.
        assert!(norm_of(&s, "200/p1").is_none() && norm_of(&s, "100/p1").is_none());
        assert_eq!(norm_of(&s, "200/p2").map(|n| n.speed), Some(Speed::Hdr));
    }

    #[test]
    fn given_two_generations_on_a_leaf_then_there_is_no_norm_without_three_quarters() {
        // 5 HDR and 3 EDR cables (62 %): a mixed leaf, nothing to judge against.
        let mut s = leaf(8, Width::X4);
        for p in s.iter_mut().take(6) {
            p.link.as_mut().unwrap().speed = Some(Speed::Edr);
        }
        annotate(&mut s);
        assert!(s.iter().all(|p| p.fabric.norm.is_none()));
    }

    #[test]
    fn given_a_split_group_and_tier_then_there_is_no_norm() {
        // Half the links at 1X and half at 4X: no majority, nothing to judge against.
        let mut s = leaf(4, Width::X4);
        for p in s.iter_mut().take(4) {
            p.link.as_mut().unwrap().width = Some(Width::X1);
        }
        annotate(&mut s);
        assert!(s.iter().all(|p| p.fabric.norm.is_none()));
    }

    #[test]
    fn given_uplinks_then_they_are_judged_among_the_switch_links_of_their_switch() {
        let mut s = leaf(3, Width::X4);
        for p in 0..4u8 {
            let w = if p == 0 { Width::X2 } else { Width::X4 };
            s.push(end(LEAF, 10 + p, NodeType::Switch, (SPINE, p + 1), w));
            s.push(end(SPINE, p + 1, NodeType::Switch, (LEAF, 10 + p), w));
        }
        annotate(&mut s);
        let n = norm_of(&s, "200/p10").expect("leaf uplink norm");
        assert_eq!((n.width, n.links, n.at_norm), (Width::X4, 4, 3));
        assert_eq!(n.group, "switch links of n200");
        assert_eq!(norm_of(&s, "300/p1").unwrap().group, "switch links of n300");
        // A down port gets no norm.
        s[0].link.as_mut().unwrap().state = Some(LinkState::Down);
        s[0].fabric.norm = None;
        annotate(&mut s);
        assert!(s[0].fabric.norm.is_none());
    }
}
