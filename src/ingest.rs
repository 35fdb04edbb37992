//! Ingest: validated samples in, durable events out. Groups a request's samples by stream
//! (keeping their order), sends each group to its stream actor, and answers when all are
//! durable. In-flight work is bounded: past the bound the caller is told to come back later
//! instead of queueing without limit.

use crate::actors::stream::ObserveOutcome;
use crate::actors::{RouteError, StreamRouter};
use crate::cluster::peers::Route;
use crate::cluster::Member;
use crate::events::Origin;
use crate::sample::Sample;
use futures_util::stream::{FuturesUnordered, StreamExt};
use rustc_hash::FxHashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::Semaphore;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("overloaded: {inflight} samples in flight")]
    Overloaded { inflight: usize },
    #[error("ingest.max_streams ({cap}) reached: {stream_id:?} would be a new stream; known streams are still accepted")]
    TooManyStreams { cap: u64, stream_id: String },
    #[error(transparent)]
    Route(#[from] RouteError),
    /// Some owners did not acknowledge; the rest is durable (a retry of the whole request is
    /// safe: what was stored comes back as duplicates).
    #[error("{} of {} samples are on unavailable nodes ({}); the other {} are stored", .missing, .missing + .stored.accepted + .stored.duplicates, .nodes.join(", "), .stored.accepted + .stored.duplicates)]
    PartlyUnavailable {
        nodes: Vec<String>,
        missing: u64,
        stored: ObserveOutcome,
    },
}

#[derive(Clone)]
pub struct Ingestor {
    router: StreamRouter,
    inflight: Arc<Semaphore>,
    max_inflight: usize,
    /// Streams stored on this node (the `streams` view's size) and the cap on them.
    streams: Arc<AtomicU64>,
    max_streams: u64,
    /// Streams that stop reporting, and after how many of their intervals they are stale.
    stale: Arc<crate::actors::stale::StaleWatch>,
    stale_intervals: u32,
}

impl Ingestor {
    pub fn new(router: StreamRouter, max_inflight: usize) -> Ingestor {
        Ingestor {
            router,
            inflight: Arc::new(Semaphore::new(max_inflight)),
            max_inflight,
            streams: Arc::default(),
            max_streams: u64::MAX,
            stale: Arc::default(),
            stale_intervals: crate::detect::DetectConfig::default().stale_intervals,
        }
    }

    /// Mark streams stale after this many of their own intervals of silence.
    pub fn with_stale_intervals(mut self, intervals: u32) -> Ingestor {
        self.stale_intervals = intervals;
        self
    }

    /// Note the local streams this request reported, then tell the ones that went silent.
    fn watch(&self, groups: &[(String, Vec<Sample>)]) {
        self.stale
            .observe_all(groups.iter().filter_map(|(stream_id, samples)| {
                let n = samples.len();
                let last = samples.last()?;
                let gap = (n >= 2).then(|| last.timestamp_ms - samples[n - 2].timestamp_ms);
                Some((stream_id.as_str(), last.timestamp_ms, gap))
            }));
        for (stream_id, interval_ms, now_ms) in self.stale.due(self.stale_intervals) {
            let router = self.router.clone();
            tokio::spawn(async move {
                if let Err(e) = router.mark_stale(&stream_id, interval_ms, now_ms).await {
                    tracing::warn!(%stream_id, error = %e, "stale stream not recorded");
                }
            });
        }
    }

    /// Refuse new streams past `max_streams`, given the `known` streams already stored.
    pub fn with_stream_cap(mut self, known: u64, max_streams: u64) -> Ingestor {
        self.streams = Arc::new(AtomicU64::new(known));
        self.max_streams = max_streams;
        self
    }

    /// Streams stored on this node.
    pub fn streams(&self) -> u64 {
        self.streams.load(Ordering::Relaxed)
    }

    /// Reserve room for the request's new streams, all or none: a request is never half
    /// written because of the cap. Returns the reserved ids, to release if their write fails.
    fn reserve_new_streams(
        &self,
        groups: &[(String, Vec<Sample>)],
    ) -> Result<Vec<String>, IngestError> {
        let new: Vec<String> = self
            .router
            .unknown(groups.iter().map(|(id, _)| id.as_str()))
            .map_err(RouteError::from)?
            .into_iter()
            .map(str::to_string)
            .collect();
        let n = new.len() as u64;
        if n == 0 {
            return Ok(new);
        }
        let before = self.streams.fetch_add(n, Ordering::Relaxed);
        if before + n > self.max_streams {
            self.streams.fetch_sub(n, Ordering::Relaxed);
            let m = crate::metrics::global();
            m.ingest_samples.inc(
                "too_many_streams",
                groups.iter().map(|(_, g)| g.len() as u64).sum(),
            );
            return Err(IngestError::TooManyStreams {
                cap: self.max_streams,
                stream_id: new
                    [(self.max_streams.saturating_sub(before) as usize).min(new.len() - 1)]
                .clone(),
            });
        }
        Ok(new)
    }

    pub fn router(&self) -> &StreamRouter {
        &self.router
    }

    /// Record validated samples. Returns once every sample is durable (or known duplicate).
    pub async fn ingest(
        &self,
        samples: Vec<Sample>,
        origin: Origin,
    ) -> Result<ObserveOutcome, IngestError> {
        let n = u32::try_from(samples.len()).unwrap_or(u32::MAX);
        let _permit = self
            .inflight
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| IngestError::Overloaded {
                inflight: self.max_inflight - self.inflight.available_permits(),
            })?;
        let groups = group_by_stream(samples);
        let (groups, remote, unheld) = self.split_by_owner(groups);
        let reserved = self.reserve_new_streams(&groups)?;
        let forwards = remote.into_iter().map(|(member, samples)| {
            let router = &self.router;
            let origin = &origin;
            async move {
                let peers = router.cluster().expect("remote owners imply a cluster");
                let n = samples.len() as u64;
                (
                    member.id.clone(),
                    n,
                    peers.forward(&member, &samples, origin).await,
                )
            }
        });
        let forwarded = futures_util::future::join_all(forwards);
        self.watch(&groups);
        let calls = groups.into_iter().map(|(stream_id, samples)| {
            let router = &self.router;
            let origin = origin.clone();
            async move { router.observe(&stream_id, samples.into(), origin).await }
        });
        let mut total = ObserveOutcome::default();
        let mut pending: FuturesUnordered<_> = calls.collect();
        let local = async {
            let mut total = ObserveOutcome::default();
            while let Some(result) = pending.next().await {
                total += result?;
            }
            Ok::<_, IngestError>(total)
        };
        let (local, forwarded) = futures_util::join!(local, forwarded);
        let local = match local {
            Ok(local) => local,
            Err(e) => {
                // Some new streams may not exist after all: count again what is stored.
                let stored = reserved
                    .iter()
                    .filter(|s| self.router.is_known(s).unwrap_or(true))
                    .count() as u64;
                self.streams
                    .fetch_sub(reserved.len() as u64 - stored, Ordering::Relaxed);
                return Err(e);
            }
        };
        total += local;
        // Only what this node stored is counted here; each owner counts its own part.
        let m = crate::metrics::global();
        m.ingest_samples.inc("accepted", local.accepted);
        m.ingest_samples.inc("duplicate", local.duplicates);
        m.ingest_samples.inc("late", local.late);
        let mut unavailable = Vec::new();
        let mut missing = 0;
        if !unheld.shards.is_empty() {
            unavailable.push(unheld.describe());
            missing += unheld.samples;
        }
        for (node, n, result) in forwarded {
            match result {
                Ok(outcome) => total += outcome,
                Err(e) => {
                    tracing::warn!(error = %e, samples = n, "owner unavailable");
                    unavailable.push(node);
                    missing += n;
                }
            }
        }
        if !unavailable.is_empty() {
            return Err(IngestError::PartlyUnavailable {
                nodes: unavailable,
                missing,
                stored: total,
            });
        }
        m.ingest_batches.inc();
        Ok(total)
    }
}

impl Ingestor {
    /// Keep the groups of shards this node holds; gather the others by holder (request order
    /// kept), and count those of shards no live node holds.
    #[allow(clippy::type_complexity)]
    fn split_by_owner(
        &self,
        groups: Vec<(String, Vec<Sample>)>,
    ) -> (
        Vec<(String, Vec<Sample>)>,
        Vec<(Member, Vec<Sample>)>,
        Unheld,
    ) {
        let mut unheld = Unheld::default();
        if self.router.cluster().is_none() {
            return (groups, Vec::new(), unheld);
        }
        let mut local = Vec::new();
        let mut remote: Vec<(Member, Vec<Sample>)> = Vec::new();
        for (stream_id, samples) in groups {
            match self.router.route(&stream_id) {
                Route::Local => local.push((stream_id, samples)),
                Route::Remote(m) => match remote.iter_mut().find(|(r, _)| r.id == m.id) {
                    Some((_, batch)) => batch.extend(samples),
                    None => remote.push((m, samples)),
                },
                Route::Unheld(shard) => {
                    unheld.shards.insert(shard);
                    unheld.samples += samples.len() as u64;
                }
            }
        }
        (local, remote, unheld)
    }

    /// Record samples of shards this node holds, never forwarding (the internal API). Samples
    /// of other shards are refused: the sender's routes are older than this node's.
    pub async fn ingest_owned(
        &self,
        samples: Vec<Sample>,
        origin: Origin,
    ) -> Result<ObserveOutcome, IngestError> {
        if let Some(s) = samples
            .iter()
            .find(|s| self.router.route(&s.stream_id) != Route::Local)
        {
            return Err(IngestError::Route(RouteError::Unavailable(format!(
                "{} is in a shard this node does not hold (a lease moved)",
                s.stream_id
            ))));
        }
        self.ingest(samples, origin).await
    }
}

/// Samples of shards no live node holds (a holder died and its leases have not lapsed yet).
#[derive(Debug, Default)]
struct Unheld {
    shards: std::collections::BTreeSet<u32>,
    samples: u64,
}

impl Unheld {
    fn describe(&self) -> String {
        let shards: Vec<String> = self.shards.iter().take(8).map(u32::to_string).collect();
        let more = self.shards.len().saturating_sub(8);
        format!(
            "shards with no live holder until their leases lapse: {}{}",
            shards.join(" "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        )
    }
}

/// Samples grouped by stream, each group in timestamp order (a stable sort: samples with the
/// same timestamp keep their request order), so samples out of order inside one request are
/// not late data.
fn group_by_stream(samples: Vec<Sample>) -> Vec<(String, Vec<Sample>)> {
    // Assign group numbers while borrowing the ids, then move the samples: no id is copied
    // per sample, only once per group.
    let mut slots: Vec<usize> = Vec::with_capacity(samples.len());
    let mut firsts: Vec<usize> = Vec::new();
    {
        let mut index: FxHashMap<&str, usize> = FxHashMap::default();
        index.reserve(samples.len());
        for (i, s) in samples.iter().enumerate() {
            let next = index.len();
            let slot = *index.entry(s.stream_id.as_str()).or_insert(next);
            if slot == next {
                firsts.push(i);
            }
            slots.push(slot);
        }
    }
    let mut groups: Vec<(String, Vec<Sample>)> = firsts
        .iter()
        .map(|&i| (samples[i].stream_id.clone(), Vec::new()))
        .collect();
    for (sample, slot) in samples.into_iter().zip(slots) {
        groups[slot].1.push(sample);
    }
    for (_, group) in &mut groups {
        if !group.is_sorted_by_key(|s| s.timestamp_ms) {
            group.sort_by_key(|s| s.timestamp_ms);
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(stream: &str, ts: i64) -> Sample {
        Sample {
            stream_id: stream.into(),
            timestamp_ms: ts,
            latency_p99_us: Some(1.0),
            utilization_pct: None,
            error_rate: None,
            bandwidth_gbps: None,
            qp_errors: None,
            counters: Default::default(),
            labels: Default::default(),
            ..Default::default()
        }
    }

    #[test]
    fn groups_are_in_timestamp_order_within_each_stream() {
        let groups = group_by_stream(vec![
            sample("b", 3),
            sample("a", 2),
            sample("b", 1),
            sample("a", 4),
            sample("c", 5),
        ]);
        let shape: Vec<(String, Vec<i64>)> = groups
            .into_iter()
            .map(|(id, g)| (id, g.iter().map(|s| s.timestamp_ms).collect()))
            .collect();
        assert_eq!(
            shape,
            vec![
                ("b".to_string(), vec![1, 3]),
                ("a".to_string(), vec![2, 4]),
                ("c".to_string(), vec![5]),
            ]
        );
    }
}
