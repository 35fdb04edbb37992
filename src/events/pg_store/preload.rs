//! Streams loaded in bulk when this node takes their leases, so that neither the actors' start
//! nor the writer's seq check asks the database one stream at a time.
//!
//! `Preloaded` (pure) answers for the streams of the leases it covers: their load (taken once,
//! by the actor that starts), their head (kept up to date by this node's own writes, the only
//! ones while it holds the lease), and "new" for a stream the directory does not have. A
//! stream whose tail was longer than `PRELOAD_TAIL` is asked for as before. Everything is
//! forgotten when a lease is lost or released.

use crate::events::store::{decode_stored, head_of, Snapshot, StoreError, StreamLoad};
use rustc_hash::{FxHashMap, FxHashSet};
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
    known: FxHashSet<String>,
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
    pub fn covered(&mut self, leases: &[String], loads: Vec<(String, StreamLoad, bool)>) {
        self.leases.extend(leases.iter().cloned());
        for (stream, load, complete) in loads {
            self.known.insert(stream.clone());
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
            None if self.known.contains(stream) => Answer::Ask,
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
            None if self.known.contains(stream) => None,
            None => Some(0),
        }
    }

    /// Whether `stream` must be added to the directory by a write.
    pub fn is_known(&self, stream: &str) -> bool {
        self.known.contains(stream)
    }

    /// After a commit: `stream` is in the directory and its head is at least `seq`.
    pub fn wrote(&mut self, stream: &str, seq: u64, lease: &str) {
        if !self.known.contains(stream) {
            self.known.insert(stream.to_string());
        }
        if self.leases.contains(lease) {
            let head = self.heads.entry(stream.to_string()).or_default();
            *head = (*head).max(seq);
        }
    }

    /// A lease was lost or given up: nothing preloaded is trusted any more.
    pub fn forget(&mut self) {
        self.leases.clear();
        self.loads.clear();
        self.heads.clear();
    }
}

/// Snapshots and heads of the directory's streams of leases `$1`.
const HEADS_SQL: &str = "SELECT d.stream_id, s.seq, s.state, \
       (SELECT max(e.seq) FROM events e WHERE e.stream_id = d.stream_id) \
     FROM streams d LEFT JOIN snapshots s ON s.stream_id = d.stream_id \
     WHERE d.lease = ANY($1)";

/// Up to `$2` events after the snapshot of each of those streams.
const TAILS_SQL: &str = "SELECT d.stream_id, t.off, t.frame \
     FROM streams d LEFT JOIN snapshots s ON s.stream_id = d.stream_id \
     JOIN LATERAL (SELECT e.off, e.frame FROM events e WHERE e.stream_id = d.stream_id \
                   AND e.seq > coalesce(s.seq, 0) ORDER BY e.seq LIMIT $2) t ON true \
     WHERE d.lease = ANY($1)";

/// Leases loaded per round trip.
const LEASES_PER_QUERY: usize = 64;

impl super::PgStore {
    /// Load every stream of `leases` in bulk (one round trip per 64 leases, side by side on
    /// the pool's connections); their actors and the writer's seq check then start without
    /// asking the database. Returns the streams.
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
        let waited = asked.elapsed();
        let mut streams = 0;
        for (chunk, heads, tails) in answers {
            let loads = loads_of(&heads, &tails)?;
            streams += loads.len();
            self.preloaded().covered(&chunk, loads);
        }
        tracing::debug!(
            streams,
            query_ms = waited.as_millis() as u64,
            "preloaded streams"
        );
        Ok(streams)
    }

    /// A lease was lost or given up: forget every preloaded answer.
    pub fn forget_preloaded(&self) {
        self.preloaded().forget();
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

/// Each stream's load from the rows of `HEADS_SQL` and `TAILS_SQL`, with whether its tail is
/// all there.
fn loads_of(
    heads: &[tokio_postgres::Row],
    tails: &[tokio_postgres::Row],
) -> Result<Vec<(String, StreamLoad, bool)>, StoreError> {
    let mut loads: FxHashMap<String, StreamLoad> = FxHashMap::default();
    for r in heads {
        let stream: String = r.get(0);
        let snapshot = r.get::<_, Option<i64>>(1).map(|seq| Snapshot {
            stream_id: stream.clone(),
            seq: seq as u64,
            state: r.get(2),
        });
        let index = r.get::<_, Option<i64>>(3).map(|s| s as u64);
        let head = head_of(index, snapshot.as_ref());
        loads.insert(
            stream,
            StreamLoad {
                snapshot,
                events: Vec::new(),
                head,
            },
        );
    }
    for r in tails {
        let stream: String = r.get(0);
        let event = decode_stored(r.get::<_, i64>(1) as u64, r.get(2))?;
        if let Some(load) = loads.get_mut(&stream) {
            load.events.push(event);
        }
    }
    Ok(loads
        .into_iter()
        .map(|(stream, mut load)| {
            load.events.sort_by_key(|e| e.record.seq);
            let complete = load.events.len() < PRELOAD_TAIL
                || load.events.last().map(|e| e.record.seq) == Some(load.head);
            (stream, load, complete)
        })
        .collect())
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
                ("a".into(), load(7), true),
                ("long".into(), load(900), false),
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
        p.wrote("fresh", 1, "shard/1");
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
    fn given_a_lease_lost_then_nothing_preloaded_is_used() {
        let mut p = preloaded();
        p.forget();
        assert_eq!(p.take("a", "shard/1", 1000), Answer::Ask);
        assert_eq!(p.head("fresh", "shard/1"), None);
        assert!(p.is_known("a"), "the directory still has it");
    }
}
