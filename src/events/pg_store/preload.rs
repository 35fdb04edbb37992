//! Streams loaded in bulk when this node takes their leases, so that neither the actors' start
//! nor the writer's seq check asks the database one stream at a time.
//!
//! `Preloaded` (pure) answers for the streams of the leases it covers: their load (taken once,
//! by the actor that starts), their head (kept up to date by this node's own writes, the only
//! ones while it holds the lease), and "new" for a stream the directory does not have. A
//! stream whose tail was longer than `PRELOAD_TAIL` is asked for as before. A lease lost or
//! released is no longer covered (its streams are asked for again); a write whose outcome is
//! unknown uncovers every lease. What it knows of where each stream's events are (whether the
//! directory has where its packed events start, its last write's offset) stays: those are
//! facts of the log.

use super::batch;
use crate::events::store::{
    decode_stored, head_of, merge_sorted, Snapshot, StoreError, StreamLoad,
};
use rustc_hash::FxHashMap;
use std::collections::BTreeSet;
use tokio_postgres::types::ToSql;

/// Events kept per stream at a preload; a longer tail is read when its actor starts.
pub const PRELOAD_TAIL: usize = 256;

#[derive(Debug, Default)]
pub struct Preloaded {
    /// Leases whose streams were all loaded.
    leases: BTreeSet<String>,
    /// Loads not yet taken; `complete`: the whole tail after the snapshot is there.
    loads: FxHashMap<String, (StreamLoad, bool)>,
    /// Heads of the covered streams.
    heads: FxHashMap<String, u64>,
    /// Streams known to be in the directory (loaded, or written by this store).
    known: FxHashMap<String, Known>,
}

/// What this store knows of a stream in the directory.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Known {
    /// The directory has where its packed events start.
    pub packed: bool,
    /// The last event this store wrote to it: (seq, offset).
    pub last: Option<(u64, u64)>,
}

/// What a load of one stream gets.
#[derive(Debug, PartialEq)]
pub enum Answer {
    Load(StreamLoad),
    /// Covered, and in no directory: a stream that never had an event.
    New,
    /// Not covered (or its tail was too long): ask the database.
    Ask,
}

impl Preloaded {
    /// Given the loads of every stream of `leases` (stream, its lease, its load, complete).
    pub fn covered(&mut self, leases: &[String], loads: Vec<(String, StreamLoad, bool, bool)>) {
        self.leases.extend(leases.iter().cloned());
        for (stream, load, complete, packed) in loads {
            self.known.entry(stream.clone()).or_default().packed |= packed;
            self.heads.insert(stream.clone(), load.head);
            self.loads.insert(stream, (load, complete));
        }
    }

    /// The load of `stream` (whose lease is `lease`), for up to `limit` events.
    pub fn take(&mut self, stream: &str, lease: &str, limit: usize) -> Answer {
        if !self.leases.contains(lease) {
            return Answer::Ask;
        }
        match self.loads.remove(stream) {
            Some((load, true)) if load.events.len() <= limit => Answer::Load(load),
            Some(_) => Answer::Ask,
            None if self.known.contains_key(stream) => Answer::Ask,
            None => Answer::New,
        }
    }

    /// The head of `stream`, when this store knows it.
    pub fn head(&self, stream: &str, lease: &str) -> Option<u64> {
        if !self.leases.contains(lease) {
            return None;
        }
        match self.heads.get(stream) {
            Some(h) => Some(*h),
            None if self.known.contains_key(stream) => None,
            None => Some(0),
        }
    }

    /// Whether the directory has `stream` (`None`: not known to), and where its packed events
    /// start (`Some(true)`).
    pub fn is_known(&self, stream: &str) -> Option<bool> {
        self.known.get(stream).map(|k| k.packed)
    }

    /// The last event this store wrote to `stream`: (seq, offset).
    pub fn last_written(&self, stream: &str) -> Option<(u64, u64)> {
        self.known.get(stream).and_then(|k| k.last)
    }

    /// After a commit: `stream` is in the directory (with where its packed events start when
    /// `packed`), its head is at least `seq`, and its event `seq` is at offset `off`.
    pub fn wrote(&mut self, stream: &str, seq: u64, lease: &str, packed: bool, off: Option<u64>) {
        let known = match self.known.get_mut(stream) {
            Some(k) => k,
            None => self.known.entry(stream.to_string()).or_default(),
        };
        known.packed |= packed;
        if let Some(off) = off {
            known.last = Some((seq, off));
        }
        if self.leases.contains(lease) {
            let head = self.heads.entry(stream.to_string()).or_default();
            *head = (*head).max(seq);
        }
    }

    /// `leases` were lost or given up: what was loaded for them is no longer trusted (another
    /// node may write their streams); the other leases' stays.
    pub fn forget_leases(&mut self, leases: &[String]) {
        for lease in leases {
            self.leases.remove(lease);
        }
    }

    /// A write's outcome is unknown: nothing preloaded is trusted any more.
    pub fn forget(&mut self) {
        self.leases.clear();
        self.loads.clear();
        self.heads.clear();
    }
}

/// Snapshots and heads (of the rows) of the directory's streams of leases `$1`, with where
/// their packed events start.
const HEADS_SQL: &str = "SELECT d.stream_id, s.seq, s.state, \
       (SELECT max(e.seq) FROM events e WHERE e.stream_id = d.stream_id), \
       d.packed_from, s.tail_off \
     FROM streams d LEFT JOIN snapshots s ON s.stream_id = d.stream_id \
     WHERE d.lease = ANY($1)";

/// Up to `$2` events (rows) after the snapshot of each of those streams.
const TAILS_SQL: &str = "SELECT d.stream_id, t.off, t.frame \
     FROM streams d LEFT JOIN snapshots s ON s.stream_id = d.stream_id \
     JOIN LATERAL (SELECT e.off, e.frame FROM events e WHERE e.stream_id = d.stream_id \
                   AND e.seq > coalesce(s.seq, 0) ORDER BY e.seq LIMIT $2) t ON true \
     WHERE d.lease = ANY($1)";

/// A page of a partition's batches, from offset `$2` on.
pub(super) const PART_PAGE_SQL: &str = "SELECT last_off, data FROM batches \
     WHERE part = $1 AND last_off >= $2 ORDER BY last_off LIMIT $3";

/// Leases loaded per round trip.
const LEASES_PER_QUERY: usize = 64;
/// Batches per page of a partition's scan.
const BATCHES_PER_PAGE: i64 = 64;

/// One stream being loaded: its snapshot, its row events and head, then its packed events.
#[derive(Debug)]
struct Loading {
    load: StreamLoad,
    /// Where its packed events after the snapshot start (`None`: it has none).
    start: Option<u64>,
    packed: Vec<crate::events::store::StoredEvent>,
}

impl Loading {
    /// A packed event of the stream (in seq order).
    fn add(&mut self, event: &crate::events::store::StoredEvent) {
        let seq = event.record.seq;
        if self.load.snapshot.as_ref().is_some_and(|s| seq <= s.seq) {
            return;
        }
        self.load.head = self.load.head.max(seq);
        if self.packed.len() < PRELOAD_TAIL {
            self.packed.push(event.clone());
        }
    }

    /// The load, and whether its tail is all there.
    fn finish(self) -> (StreamLoad, bool) {
        let mut load = self.load;
        let rows = std::mem::take(&mut load.events);
        load.events = merge_sorted(rows, self.packed, |e| e.record.seq, PRELOAD_TAIL);
        let complete = load.events.len() < PRELOAD_TAIL
            || load.events.last().map(|e| e.record.seq) == Some(load.head);
        (load, complete)
    }
}

impl super::PgStore {
    /// Load every stream of `leases` in bulk (one round trip per 64 leases, side by side on
    /// the pool's connections, then each partition's batches once); their actors and the
    /// writer's seq check then start without asking the database. Returns the streams.
    pub fn preload(&self, leases: &[String]) -> Result<usize, StoreError> {
        let asked = std::time::Instant::now();
        let chunks: Vec<Vec<String>> = leases
            .chunks(LEASES_PER_QUERY)
            .map(|c| c.to_vec())
            .collect();
        let answers = self.run(move |pool| async move {
            let queries = chunks.into_iter().map(|names| {
                let pool = pool.clone();
                async move {
                    let (heads, tails) = query_chunk(&pool, &names).await?;
                    Ok::<_, StoreError>((names, heads, tails))
                }
            });
            futures_util::future::try_join_all(queries).await
        })?;
        let mut parts: Vec<FxHashMap<String, Loading>> =
            (0..batch::PARTS).map(|_| FxHashMap::default()).collect();
        for (_, heads, tails) in &answers {
            for (stream, loading) in loads_of(heads, tails)? {
                parts[batch::part_of(&stream) as usize].insert(stream, loading);
            }
        }
        let parts = self.run(move |pool| async move {
            let scans = parts.into_iter().enumerate().map(|(part, streams)| {
                let pool = pool.clone();
                async move { scan_part(&pool, part as i16, streams).await }
            });
            futures_util::future::try_join_all(scans).await
        })?;
        let waited = asked.elapsed();
        let mut loads = FxHashMap::default();
        for part in parts {
            for (stream, loading) in part {
                let packed = loading.start.is_some();
                let (load, complete) = loading.finish();
                loads.insert(stream, (load, complete, packed));
            }
        }
        let mut streams = 0;
        let mut pre = self.preloaded();
        for (chunk, heads, _) in answers {
            let mine: Vec<(String, StreamLoad, bool, bool)> = heads
                .iter()
                .filter_map(|r| {
                    let stream: String = r.get(0);
                    loads
                        .remove(&stream)
                        .map(|(load, complete, packed)| (stream, load, complete, packed))
                })
                .collect();
            streams += mine.len();
            pre.covered(&chunk, mine);
        }
        tracing::debug!(
            streams,
            query_ms = waited.as_millis() as u64,
            "preloaded streams"
        );
        Ok(streams)
    }

    /// `leases` were lost or given up: forget what was loaded for them.
    pub fn forget_preloaded(&self, leases: &[String]) {
        self.preloaded().forget_leases(leases);
    }
}

/// The heads and tails of one chunk of leases, on one connection, in one round trip.
async fn query_chunk(
    pool: &deadpool_postgres::Pool,
    names: &[String],
) -> Result<(Vec<tokio_postgres::Row>, Vec<tokio_postgres::Row>), StoreError> {
    let client = pool.get().await.map_err(super::pool_err)?;
    let heads = client
        .prepare_cached(HEADS_SQL)
        .await
        .map_err(super::db_err)?;
    let tails = client
        .prepare_cached(TAILS_SQL)
        .await
        .map_err(super::db_err)?;
    let tail = PRELOAD_TAIL as i64;
    let (heads_params, tails_params): ([&(dyn ToSql + Sync); 1], [&(dyn ToSql + Sync); 2]) =
        ([&names], [&names, &tail]);
    // Index lookups per stream, whatever the statistics say: a takeover can come before the
    // tables were ever analysed, and a plan that scans the log once per stream would take
    // seconds.
    let (_, heads, tails, _) = tokio::try_join!(
        client.batch_execute("BEGIN; SET LOCAL enable_seqscan = off; SET LOCAL jit = off"),
        client.query(&heads, &heads_params),
        client.query(&tails, &tails_params),
        client.batch_execute("COMMIT")
    )
    .map_err(super::db_err)?;
    Ok((heads, tails))
}

/// The packed events of `streams` (all of partition `part`): its batches from the earliest
/// start among them, each decoded once.
async fn scan_part(
    pool: &deadpool_postgres::Pool,
    part: i16,
    mut streams: FxHashMap<String, Loading>,
) -> Result<FxHashMap<String, Loading>, StoreError> {
    let Some(mut from) = streams.values().filter_map(|l| l.start).min() else {
        return Ok(streams);
    };
    let client = pool.get().await.map_err(super::pool_err)?;
    let page = client
        .prepare_cached(PART_PAGE_SQL)
        .await
        .map_err(super::db_err)?;
    loop {
        let rows = client
            .query(&page, &[&part, &(from as i64), &BATCHES_PER_PAGE])
            .await
            .map_err(super::db_err)?;
        for r in &rows {
            let seg = batch::unpack(r.get(1))?;
            for e in &seg.events {
                if let Some(l) = streams.get_mut(e.record.stream_id.as_str()) {
                    if l.start.is_some_and(|s| e.offset >= s) {
                        l.add(e);
                    }
                }
            }
        }
        match rows.last() {
            Some(r) if rows.len() as i64 == BATCHES_PER_PAGE => {
                from = r.get::<_, i64>(0) as u64 + 1
            }
            _ => return Ok(streams),
        }
    }
}

/// Each stream's snapshot, row tail and head from the rows of `HEADS_SQL` and `TAILS_SQL`.
fn loads_of(
    heads: &[tokio_postgres::Row],
    tails: &[tokio_postgres::Row],
) -> Result<FxHashMap<String, Loading>, StoreError> {
    let mut loads: FxHashMap<String, Loading> = FxHashMap::default();
    for r in heads {
        let stream: String = r.get(0);
        let snapshot = r.get::<_, Option<i64>>(1).map(|seq| Snapshot {
            stream_id: stream.clone(),
            seq: seq as u64,
            state: r.get(2),
        });
        let index = r.get::<_, Option<i64>>(3).map(|s| s as u64);
        let head = head_of(index, snapshot.as_ref());
        let packed_from = r.get::<_, Option<i64>>(4).map(|o| o as u64);
        let tail_off = r.get::<_, Option<i64>>(5).map(|o| o as u64);
        loads.insert(
            stream,
            Loading {
                load: StreamLoad {
                    snapshot,
                    events: Vec::new(),
                    head,
                },
                start: packed_from.map(|p| p.max(tail_off.unwrap_or(0))),
                packed: Vec::new(),
            },
        );
    }
    for r in tails {
        let stream: String = r.get(0);
        let event = decode_stored(r.get::<_, i64>(1) as u64, r.get(2))?;
        if let Some(l) = loads.get_mut(&stream) {
            l.load.events.push(event);
        }
    }
    for l in loads.values_mut() {
        l.load.events.sort_by_key(|e| e.record.seq);
    }
    Ok(loads)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(head: u64) -> StreamLoad {
        StreamLoad {
            snapshot: None,
            events: Vec::new(),
            head,
        }
    }

    fn preloaded() -> Preloaded {
        let mut p = Preloaded::default();
        p.covered(
            &["shard/1".to_string()],
            vec![
                ("a".into(), load(7), true, true),
                ("long".into(), load(900), false, false),
            ],
        );
        p
    }

    #[test]
    fn given_a_covered_stream_when_its_actor_starts_then_the_load_is_taken_once() {
        let mut p = preloaded();
        assert_eq!(p.take("a", "shard/1", 1000), Answer::Load(load(7)));
        assert_eq!(
            p.take("a", "shard/1", 1000),
            Answer::Ask,
            "a restart reads again"
        );
        assert_eq!(p.head("a", "shard/1"), Some(7), "the head stays");
    }

    #[test]
    fn given_a_stream_of_a_covered_lease_not_in_the_directory_then_it_is_new() {
        let mut p = preloaded();
        assert_eq!(p.take("fresh", "shard/1", 1000), Answer::New);
        assert_eq!(p.head("fresh", "shard/1"), Some(0));
        p.wrote("fresh", 1, "shard/1", true, Some(40));
        assert_eq!(p.is_known("fresh"), Some(true));
        assert_eq!(p.last_written("fresh"), Some((1, 40)));
        assert_eq!(p.take("fresh", "shard/1", 1000), Answer::Ask);
        assert_eq!(p.head("fresh", "shard/1"), Some(1));
    }

    #[test]
    fn given_a_tail_too_long_or_a_lease_not_covered_then_the_database_is_asked() {
        let mut p = preloaded();
        assert_eq!(p.take("long", "shard/1", 1000), Answer::Ask);
        assert_eq!(p.head("long", "shard/1"), Some(900));
        assert_eq!(p.take("x", "shard/2", 1000), Answer::Ask);
        assert_eq!(p.head("x", "shard/2"), None);
    }

    #[test]
    fn given_one_lease_lost_then_only_its_streams_are_asked_for() {
        let mut p = preloaded();
        p.covered(
            &["shard/2".to_string()],
            vec![("x".into(), load(3), true, true)],
        );
        p.forget_leases(&["shard/1".to_string()]);
        assert_eq!(p.head("a", "shard/1"), None);
        assert_eq!(p.take("a", "shard/1", 1000), Answer::Ask);
        assert_eq!(p.head("x", "shard/2"), Some(3), "the lease still held");
        assert_eq!(p.head("fresh", "shard/2"), Some(0));
        p.covered(
            &["shard/1".to_string()],
            vec![("a".into(), load(9), true, true)],
        );
        assert_eq!(p.head("a", "shard/1"), Some(9), "taken again: loaded again");
    }

    #[test]
    fn given_a_write_with_an_unknown_outcome_then_nothing_preloaded_is_used() {
        let mut p = preloaded();
        p.forget();
        assert_eq!(p.take("a", "shard/1", 1000), Answer::Ask);
        assert_eq!(p.head("fresh", "shard/1"), None);
        assert_eq!(p.is_known("a"), Some(true), "the directory still has it");
        assert_eq!(p.is_known("long"), Some(false));
    }
}
