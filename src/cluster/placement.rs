//! Where a stream lives. A stream maps to one of `shards` logical shards by FNV-1a 64 of its
//! id, seeded with a fixed prefix (`ibsight-shard:`), modulo the shard count; a shard maps to
//! the member with the highest rendezvous score, FNV-1a 64 of `member id`, 0xff, the shard
//! number (little endian), passed through SplitMix64's finalizer, with ties broken by member
//! id. Adding or removing a member moves
//! only the shards it wins or held; nothing here depends on `DefaultHasher` or on the order of
//! the member list.

use crate::hash::fnv1a64;
use serde::Serialize;
use std::collections::BTreeMap;

pub const DEFAULT_SHARDS: u32 = 1024;
const SHARD_SEED: &[u8] = b"ibsight-shard:";

pub fn shard_of(stream_id: &str, shards: u32) -> u32 {
    let h = fnv1a64(SHARD_SEED.iter().copied().chain(stream_id.bytes()));
    (h % u64::from(shards.max(1))) as u32
}

fn score(member_id: &str, shard: u32) -> u64 {
    mix(fnv1a64(
        member_id
            .bytes()
            .chain(std::iter::once(0xff))
            .chain(shard.to_le_bytes()),
    ))
}

/// SplitMix64's finalizer: FNV-1a alone spreads short keys poorly across the high bits that
/// decide a rendezvous.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The owner of `shard` among `members` (ids); `None` only when there are no members.
pub fn owner_of(shard: u32, members: &[String]) -> Option<&str> {
    members
        .iter()
        .max_by(|a, b| score(a, shard).cmp(&score(b, shard)).then_with(|| b.cmp(a)))
        .map(String::as_str)
}

/// Every shard's owner, as shard lists per member.
pub fn assignment(members: &[String], shards: u32) -> BTreeMap<String, Vec<u32>> {
    let mut out: BTreeMap<String, Vec<u32>> =
        members.iter().map(|m| (m.clone(), Vec::new())).collect();
    for shard in 0..shards {
        if let Some(owner) = owner_of(shard, members) {
            out.entry(owner.to_string()).or_default().push(shard);
        }
    }
    out
}

/// A shard that changes owner between two member lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Move {
    pub shard: u32,
    pub from: String,
    pub to: String,
}

pub fn plan(before: &[String], after: &[String], shards: u32) -> Vec<Move> {
    (0..shards)
        .filter_map(|shard| {
            let (from, to) = (owner_of(shard, before)?, owner_of(shard, after)?);
            (from != to).then(|| Move {
                shard,
                from: from.to_string(),
                to: to.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn shards_are_stable_and_spread() {
        // Pinned (computed independently): a change here would move every stream of a
        // running cluster.
        let fixed: Vec<u32> = ["leaf01/p07", "spine02/p31", "node0001/mlx5_0/p1"]
            .iter()
            .map(|s| shard_of(s, 1024))
            .collect();
        assert_eq!(fixed, vec![753, 214, 481]);
        let mut counts = vec![0u32; 16];
        for i in 0..16_000 {
            counts[shard_of(&format!("sw{:04}/p{:02}", i / 36, i % 36), 16) as usize] += 1;
        }
        assert!(counts.iter().all(|c| (800..1200).contains(c)), "{counts:?}");
    }

    #[test]
    fn owners_do_not_depend_on_member_order_and_are_balanced() {
        let a = ids(&["n1", "n2", "n3"]);
        let b = ids(&["n3", "n1", "n2"]);
        for shard in 0..1024 {
            assert_eq!(owner_of(shard, &a), owner_of(shard, &b));
        }
        let load = assignment(&a, 1024);
        for (member, shards) in &load {
            assert!(
                (280..400).contains(&shards.len()),
                "{member}: {}",
                shards.len()
            );
        }
        assert_eq!(owner_of(0, &[]), None);
    }

    #[test]
    fn adding_a_member_moves_only_the_shards_it_wins() {
        let before = ids(&["n1", "n2", "n3"]);
        let after = ids(&["n1", "n2", "n3", "n4"]);
        let moves = plan(&before, &after, 1024);
        assert!(moves.iter().all(|m| m.to == "n4"), "only to the new member");
        assert!(
            (200..320).contains(&moves.len()),
            "about a quarter: {}",
            moves.len()
        );
        let removed = plan(&after, &before, 1024);
        assert!(removed.iter().all(|m| m.from == "n4"));
        assert_eq!(removed.len(), moves.len());
    }
}
