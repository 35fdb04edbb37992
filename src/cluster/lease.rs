//! Shard leases, decided (pure): which leases a node claims and releases on each tick, and the
//! leases it holds now, shared with the store's fencing check and the router.
//!
//! A lease is a row (name, holder, epoch, expiry by the database clock). Names: `shard/<n>` for
//! each shard, and `projections` for the one node that runs the projections (views, incidents,
//! alerts, the analyst, retention). A node wants the leases whose rendezvous winner among the
//! live members it is (`cluster/placement.rs`); the projections lease is rendezvous "shard"
//! `shards` (one past the last).

use super::placement;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::RwLock;

pub const PROJECTIONS: &str = "projections";

pub fn shard_lease(shard: u32) -> String {
    format!("shard/{shard}")
}

/// The shard a lease name stands for (`None` for the projections lease or another name).
pub fn shard_of_lease(name: &str) -> Option<u32> {
    name.strip_prefix("shard/")?.parse().ok()
}

/// Every lease name, in order: the shards', then the projections'.
pub fn all_leases(shards: u32) -> Vec<String> {
    (0..shards)
        .map(shard_lease)
        .chain(std::iter::once(PROJECTIONS.to_string()))
        .collect()
}

/// The member that should hold `lease` among `live` members.
pub fn preferred<'a>(lease: &str, live: &'a [String], shards: u32) -> Option<&'a str> {
    let slot = match shard_of_lease(lease) {
        Some(shard) => shard,
        None => shards,
    };
    placement::owner_of(slot, live)
}

/// What a node does on one tick.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TickPlan {
    /// Leases it should hold and does not: try to take them (succeeds only once lapsed or
    /// released by their holder).
    pub claim: Vec<String>,
    /// Leases it holds that a live member now prefers: flush their streams, then let go.
    pub release: Vec<String>,
}

/// Given the live members (this node among them) and the leases this node holds, what to
/// claim and release.
pub fn plan(me: &str, live: &[String], held: &BTreeSet<String>, shards: u32) -> TickPlan {
    let mut out = TickPlan::default();
    if !live.iter().any(|m| m == me) {
        // Not (yet) seen as live by the database: claim nothing, keep what is held (renewal
        // decides whether it still is).
        return out;
    }
    for lease in all_leases(shards) {
        let mine = preferred(&lease, live, shards) == Some(me);
        match (mine, held.contains(&lease)) {
            (true, false) => out.claim.push(lease),
            (false, true) => out.release.push(lease),
            _ => {}
        }
    }
    out
}

/// The leases this node holds now (name → epoch), and those it is letting go (still held in
/// the database, no longer used for new work).
#[derive(Debug, Default)]
pub struct Held {
    inner: RwLock<HeldInner>,
}

#[derive(Debug, Default)]
struct HeldInner {
    epochs: BTreeMap<String, i64>,
    releasing: BTreeSet<String>,
}

impl Held {
    /// The epoch `lease` is held at, for a write (a releasing lease still fences its flush).
    pub fn epoch(&self, lease: &str) -> Option<i64> {
        self.read().epochs.get(lease).copied()
    }

    /// Whether new work for `lease` is taken here (held and not being released).
    pub fn serves(&self, lease: &str) -> bool {
        let inner = self.read();
        inner.epochs.contains_key(lease) && !inner.releasing.contains(lease)
    }

    pub fn names(&self) -> BTreeSet<String> {
        self.read().epochs.keys().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.read().epochs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn gain(&self, lease: String, epoch: i64) {
        let mut inner = self.write();
        inner.releasing.remove(&lease);
        inner.epochs.insert(lease, epoch);
    }

    /// Stop taking new work for `lease` (it is being released).
    pub fn start_release(&self, lease: &str) {
        self.write().releasing.insert(lease.to_string());
    }

    pub fn lose(&self, lease: &str) {
        let mut inner = self.write();
        inner.epochs.remove(lease);
        inner.releasing.remove(lease);
    }

    /// Given what the database renewed (name → epoch), the leases held here that it did not:
    /// they lapsed and were taken, and are forgotten here.
    pub fn reconcile(&self, renewed: &BTreeMap<String, i64>) -> Vec<String> {
        let mut inner = self.write();
        let lost: Vec<String> = inner
            .epochs
            .iter()
            .filter(|(name, epoch)| renewed.get(*name) != Some(epoch))
            .map(|(name, _)| name.clone())
            .collect();
        for name in &lost {
            inner.epochs.remove(name);
            inner.releasing.remove(name);
        }
        lost
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HeldInner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HeldInner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn given_three_live_members_when_each_plans_then_every_lease_is_claimed_exactly_once() {
        let live = ids(&["n1", "n2", "n3"]);
        let mut claimed: Vec<String> = Vec::new();
        for me in &live {
            let p = plan(me, &live, &BTreeSet::new(), 64);
            assert!(p.release.is_empty());
            claimed.extend(p.claim);
        }
        claimed.sort();
        let mut all = all_leases(64);
        all.sort();
        assert_eq!(claimed, all);
    }

    #[test]
    fn given_a_member_died_when_the_survivors_plan_then_they_claim_only_its_leases() {
        let before = ids(&["n1", "n2", "n3"]);
        let after = ids(&["n1", "n2"]);
        for me in ["n1", "n2"] {
            let held: BTreeSet<String> = plan(me, &before, &BTreeSet::new(), 64)
                .claim
                .into_iter()
                .collect();
            let p = plan(me, &after, &held, 64);
            assert!(p.release.is_empty(), "a survivor keeps what it held");
            for lease in &p.claim {
                assert_eq!(preferred(lease, &before, 64), Some("n3"), "{lease}");
            }
        }
    }

    #[test]
    fn given_a_member_joins_when_the_holders_plan_then_they_release_only_what_it_wins() {
        let before = ids(&["n1", "n2"]);
        let after = ids(&["n1", "n2", "n3"]);
        let held: BTreeSet<String> = plan("n1", &before, &BTreeSet::new(), 64)
            .claim
            .into_iter()
            .collect();
        let p = plan("n1", &after, &held, 64);
        assert!(p.claim.is_empty());
        assert!(!p.release.is_empty());
        for lease in &p.release {
            assert_eq!(preferred(lease, &after, 64), Some("n3"));
        }
    }

    #[test]
    fn given_a_node_the_database_does_not_see_as_live_then_it_claims_nothing() {
        let p = plan("n9", &ids(&["n1"]), &BTreeSet::new(), 8);
        assert_eq!(p, TickPlan::default());
    }

    #[test]
    fn given_held_leases_when_renewal_misses_one_or_sees_a_new_epoch_then_both_are_lost() {
        let held = Held::default();
        held.gain("shard/1".into(), 3);
        held.gain("shard/2".into(), 1);
        held.gain("projections".into(), 5);
        held.start_release("shard/2");
        assert!(!held.serves("shard/2"));
        assert_eq!(
            held.epoch("shard/2"),
            Some(1),
            "a releasing lease still fences"
        );
        let renewed = BTreeMap::from([("shard/1".to_string(), 4), ("projections".to_string(), 5)]);
        let mut lost = held.reconcile(&renewed);
        lost.sort();
        assert_eq!(lost, vec!["shard/1".to_string(), "shard/2".to_string()]);
        assert!(held.serves("projections"));
        assert_eq!(held.epoch("shard/1"), None);
    }

    #[test]
    fn lease_names_round_trip() {
        assert_eq!(shard_of_lease(&shard_lease(17)), Some(17));
        assert_eq!(shard_of_lease(PROJECTIONS), None);
        assert_eq!(all_leases(3).len(), 4);
    }
}
