//! One event's anomalies arrive in batches split anywhere, in any order: the grouping it ends
//! with is the same.

use super::*;

/// A port, its cable's other end, and what it reports.
type Report = ((u64, u8, NodeType), (u64, u8), Rule);

const LEAF: u64 = 0x300;
const SPINE2: u64 = SPINE + 1;

/// Every link of `LEAF` going bad: six uplinks, alternately to `SPINE` and `SPINE2` (what the
/// spine's end and the leaf's end report), and four hosts (the leaf's end and the host's).
fn leaf_links(spine_sees: Rule, leaf_sees: Rule, host_sees: Rule) -> Vec<Report> {
    let mut out = Vec::new();
    for u in 0..6u8 {
        let spine = if u % 2 == 0 { SPINE } else { SPINE2 };
        out.push(((spine, u + 1, SWITCH), (LEAF, 19 + u), spine_sees));
        out.push(((LEAF, 19 + u, SWITCH), (spine, u + 1), leaf_sees));
    }
    for h in 0..4u8 {
        out.push(((LEAF, h + 1, SWITCH), (0xa0 + h as u64, 1), leaf_sees));
        out.push(((0xa0 + h as u64, 1, CA), (LEAF, h + 1), host_sees));
    }
    out
}

/// The open incidents as (node, scope, members), sorted.
fn open_incidents(book: &IncidentBook) -> Vec<(Option<u64>, IncidentScope, usize)> {
    let mut open: Vec<_> = book
        .open
        .values()
        .map(|i| {
            (
                i.node.as_ref().map(|n| n.node_guid),
                i.scope,
                i.members.len(),
            )
        })
        .collect();
    open.sort();
    open
}

/// The correlator groups after each page it reads, so one event's anomalies can arrive in two
/// batches split anywhere, in either order.
#[test]
fn given_a_dead_leafs_anomalies_split_into_two_batches_anywhere_then_one_leaf_incident() {
    // The spines see the links go; the leaf and its hosts fall silent.
    let all = leaf_links(Rule::LinkDown, Rule::Stale, Rule::Stale);
    let mut bad = Vec::new();
    for order in 0..2 {
        let mut seq = all.clone();
        if order == 1 {
            seq.reverse();
        }
        for cut in 1..seq.len() {
            let mut w = given();
            for (i, (at, to, rule)) in seq.iter().enumerate() {
                w.offset += 1;
                let d = detected(w.offset, *at, *to, *rule, Severity::Major);
                on_detected(&mut w.book, &d);
                if i + 1 == cut {
                    form_node_incidents(&mut w.book, 3, 0, w.offset);
                }
            }
            form_node_incidents(&mut w.book, 3, 0, w.offset);
            let open = open_incidents(&w.book);
            if open != [(Some(LEAF), IncidentScope::Switch, 20)] {
                bad.push((order, cut, open));
            }
        }
    }
    assert!(bad.is_empty(), "{bad:?}");
}

/// A small deterministic shuffle (xorshift), so the test needs no crate.
fn shuffled<T: Clone>(items: &[T], seed: u64) -> Vec<T> {
    let mut out = items.to_vec();
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for i in (1..out.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.swap(i, (x % (i as u64 + 1)) as usize);
    }
    out
}

/// The `mixed` scenario's overlap, in any order and any paging: a leaf flaps on all its links
/// (both ends report them down) while one spine already has an unrelated link incident (a
/// speed-degraded cable to another leaf). The spine must not be blamed: one leaf incident with
/// every flapping port, and the speed-degraded cable stays a link incident of its own.
#[test]
fn given_a_flapping_leaf_and_an_unrelated_bad_spine_link_in_any_order_and_paging_then_one_leaf_incident(
) {
    const OTHER_LEAF: u64 = 0x301;
    // Every end of every link reports it down.
    let burst = leaf_links(Rule::LinkDown, Rule::LinkDown, Rule::LinkDown);
    let mut bad = Vec::new();
    for seed in 0..200u64 {
        let seq = shuffled(&burst, seed);
        // Pages of every size from 1 to the whole burst, shifted by the seed.
        let page = 1 + (seed as usize % burst.len());
        let mut w = given();
        let mut events = Vec::new();
        let speed = [
            ((OTHER_LEAF, 30, SWITCH), (SPINE2, 40), Rule::SpeedDegraded),
            ((SPINE2, 40, SWITCH), (OTHER_LEAF, 30), Rule::SpeedDegraded),
        ];
        for (i, (at, to, rule)) in speed.iter().chain(&seq).enumerate() {
            w.offset += 1;
            let d = detected(w.offset, *at, *to, *rule, Severity::Major);
            events.extend(on_detected(&mut w.book, &d));
            if i < 2 || (i + seed as usize).is_multiple_of(page) {
                events.extend(form_node_incidents(
                    &mut w.book,
                    3,
                    w.offset as i64 * 1000,
                    w.offset,
                ));
            }
        }
        events.extend(form_node_incidents(
            &mut w.book,
            3,
            w.offset as i64 * 1000,
            w.offset,
        ));
        // The events say all that happened: a restart rebuilds the same book from them.
        let mut rebuilt = IncidentBook::default();
        for e in &events {
            apply(&mut rebuilt, e);
        }
        assert_eq!(rebuilt, w.book, "seed {seed}");
        let open = open_incidents(&w.book);
        let want = vec![
            (None, IncidentScope::Link, 2),
            (Some(LEAF), IncidentScope::Switch, 20),
        ];
        if open != want {
            bad.push((seed, page, open));
        }
    }
    assert!(
        bad.is_empty(),
        "{} of 200 wrong: {:?}",
        bad.len(),
        &bad[..bad.len().min(5)]
    );
}

#[test]
fn given_a_spine_blamed_on_part_of_a_burst_when_the_leafs_hosts_report_then_the_leaf_takes_over() {
    const OTHER_LEAF: u64 = 0x301;
    let mut w = given();
    let mut log = Vec::new();
    let mut batch = |w: &mut World, reports: &[Report]| {
        let mut events = Vec::new();
        for (at, to, rule) in reports {
            w.offset += 1;
            let d = detected(w.offset, *at, *to, *rule, Severity::Major);
            events.extend(on_detected(&mut w.book, &d));
        }
        let at_ms = w.offset as i64 * 1000;
        events.extend(form_node_incidents(&mut w.book, 3, at_ms, w.offset));
        log.extend(events.iter().cloned());
        names(&events)
    };
    // An unrelated speed-degraded cable on the spine.
    batch(
        &mut w,
        &[
            ((OTHER_LEAF, 30, SWITCH), (SPINE, 40), Rule::SpeedDegraded),
            ((SPINE, 40, SWITCH), (OTHER_LEAF, 30), Rule::SpeedDegraded),
        ],
    );
    // The leaf's uplinks report first: the spine has four bad links, the leaf three.
    let uplinks: Vec<_> = (1..=3u8)
        .map(|u| ((LEAF, 18 + u, SWITCH), (SPINE, u), Rule::LinkDown))
        .collect();
    batch(&mut w, &uplinks);
    assert_eq!(
        w.only_open().node.as_ref().map(|n| n.node_guid),
        Some(SPINE)
    );
    // Then its hosts: the leaf has seven, and takes its uplinks from the spine's incident,
    // which dissolves; the speed-degraded cable is a link incident again.
    let hosts: Vec<_> = (1..=4u8)
        .map(|h| ((0xa0 + h as u64, 1, CA), (LEAF, h), Rule::LinkDown))
        .collect();
    let e = batch(&mut w, &hosts);
    assert_eq!(
        e[e.len() - 4..],
        [
            "IncidentGrown switch",
            "IncidentResolved switch",
            "IncidentOpened port analyse",
            "IncidentGrown link analyse",
        ]
    );
    let open = open_incidents(&w.book);
    assert_eq!(
        open,
        [
            (None, IncidentScope::Link, 2),
            (Some(LEAF), IncidentScope::Switch, 7)
        ]
    );
    // The leaf's incident dates from the first of its links to go bad, and the events say so.
    let leaf = w
        .book
        .open
        .values()
        .find(|i| i.node.is_some())
        .expect("leaf");
    assert_eq!(leaf.opened_at_ms, 3000);
    let mut rebuilt = IncidentBook::default();
    for e in &log {
        apply(&mut rebuilt, e);
    }
    assert_eq!(rebuilt, w.book);
}
