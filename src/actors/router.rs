//! The stream router: the only place that knows where a stream's actor lives: here, or (in a
//! cluster) on the node that holds its shard's lease.
//!
//! A message to an actor that stopped (passivated, failed, stale) is simply retried against
//! a fresh actor: the message was never handled, and samples are idempotent by timestamp.

use super::stream::{ObserveOutcome, StreamError, StreamMsg, StreamView};
use super::supervisor::{Registry, SpawnError, SupervisorMsg};
use crate::cluster::peers::{Peers, Route};
use crate::events::{EventStore, Origin, StoreError};
use crate::sample::Sample;
use ractor::rpc::CallResult;
use ractor::ActorRef;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

const ATTEMPTS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stream {0} is not reachable right now")]
    Unavailable(String),
}

#[derive(Clone)]
pub struct StreamRouter {
    registry: Registry,
    restarts: Arc<AtomicU64>,
    supervisor: ActorRef<SupervisorMsg>,
    store: Arc<dyn EventStore>,
    /// The other nodes, when this node is one of a cluster.
    cluster: Option<Peers>,
}

impl StreamRouter {
    pub fn new(
        registry: Registry,
        restarts: Arc<AtomicU64>,
        supervisor: ActorRef<SupervisorMsg>,
        store: Arc<dyn EventStore>,
    ) -> StreamRouter {
        StreamRouter {
            registry,
            restarts,
            supervisor,
            store,
            cluster: None,
        }
    }

    /// Make this router one node of a cluster: streams other members own are theirs.
    pub fn with_cluster(mut self, peers: Peers) -> StreamRouter {
        self.cluster = Some(peers);
        self
    }

    pub fn cluster(&self) -> Option<&Peers> {
        self.cluster.as_ref()
    }

    /// Where the stream is served: the only place that knows where a stream lives.
    pub fn route(&self, stream_id: &str) -> Route {
        match &self.cluster {
            None => Route::Local,
            Some(peers) => peers.route(stream_id),
        }
    }

    /// Stop the actors of streams in `shards` (their leases are going or gone). With `flush`,
    /// each handles what it has queued and writes its snapshot first, and this waits for them.
    pub async fn evict_shards(&self, shards: &std::collections::BTreeSet<u32>, flush: bool) {
        let Some(peers) = &self.cluster else { return };
        let evicted: Vec<ActorRef<StreamMsg>> = {
            let mut registry = self.registry.lock().expect("registry lock poisoned");
            let ids: Vec<String> = registry
                .keys()
                .filter(|id| shards.contains(&peers.shard_of(id)))
                .cloned()
                .collect();
            ids.iter()
                .filter_map(|id| registry.remove(id).map(|(a, _)| a))
                .collect()
        };
        if evicted.is_empty() {
            return;
        }
        tracing::info!(
            actors = evicted.len(),
            flush,
            "stopping the stream actors of shards this node no longer holds"
        );
        if flush {
            let waits = evicted
                .iter()
                .map(|a| a.drain_and_wait(Some(std::time::Duration::from_secs(10))));
            futures_util::future::join_all(waits).await;
        } else {
            for actor in evicted {
                actor.stop(Some("lease lost".into()));
            }
        }
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// Number of live stream actors on this node.
    pub fn active_streams(&self) -> usize {
        self.registry.lock().expect("registry lock poisoned").len()
    }

    /// Stream actors restarted by the supervisor since start.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// Record samples of one stream; answers once they are durable.
    pub async fn observe(
        &self,
        stream_id: &str,
        samples: Arc<[Sample]>,
        origin: Origin,
    ) -> Result<ObserveOutcome, RouteError> {
        for _ in 0..ATTEMPTS {
            let actor = self.actor_for(stream_id).await?;
            let call = actor
                .call(
                    |reply| StreamMsg::ObserveBatch {
                        samples: samples.clone(),
                        origin: origin.clone(),
                        reply,
                    },
                    None,
                )
                .await;
            match call {
                Ok(CallResult::Success(Err(StreamError::Store(StoreError::SeqConflict {
                    ..
                })))) => self.forget(stream_id, &actor),
                Ok(CallResult::Success(result)) => return Ok(result?),
                _ => self.forget(stream_id, &actor),
            }
        }
        Err(RouteError::Unavailable(stream_id.to_string()))
    }

    /// Tell a silent stream that the fabric moved on to `now_ms` (see `StreamMsg::MarkStale`).
    pub async fn mark_stale(
        &self,
        stream_id: &str,
        interval_ms: i64,
        now_ms: i64,
    ) -> Result<bool, RouteError> {
        for _ in 0..ATTEMPTS {
            let actor = self.actor_for(stream_id).await?;
            let call = actor
                .call(
                    |reply| StreamMsg::MarkStale {
                        interval_ms,
                        now_ms,
                        reply,
                    },
                    None,
                )
                .await;
            match call {
                Ok(CallResult::Success(result)) => return Ok(result?),
                _ => self.forget(stream_id, &actor),
            }
        }
        Err(RouteError::Unavailable(stream_id.to_string()))
    }

    /// The stream's state, or `None` when the stream has never been seen.
    pub async fn view(&self, stream_id: &str) -> Result<Option<StreamView>, RouteError> {
        if !self.is_known(stream_id)? {
            return Ok(None);
        }
        for _ in 0..ATTEMPTS {
            let actor = self.actor_for(stream_id).await?;
            match actor.call(StreamMsg::GetView, None).await {
                Ok(CallResult::Success(view)) => return Ok(Some(view)),
                _ => self.forget(stream_id, &actor),
            }
        }
        Err(RouteError::Unavailable(stream_id.to_string()))
    }

    /// Make the stream's actor panic (tests of supervision use this).
    #[cfg(any(test, feature = "test-hooks"))]
    pub async fn inject_panic(&self, stream_id: &str) -> Result<(), RouteError> {
        let actor = self.actor_for(stream_id).await?;
        actor
            .cast(StreamMsg::Panic)
            .map_err(|_| RouteError::Unavailable(stream_id.to_string()))
    }

    /// Whether the stream exists: live here, or in the log.
    pub fn is_known(&self, stream_id: &str) -> Result<bool, StoreError> {
        Ok(self.unknown([stream_id])?.is_empty())
    }

    /// The streams among `ids` that have neither a live actor nor events in the store: one
    /// registry lock for the whole request, then a store lookup only for the ones not live.
    pub fn unknown<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<&'a str>, StoreError> {
        let not_live: Vec<&str> = {
            let registry = self.registry.lock().expect("registry lock poisoned");
            ids.into_iter()
                .filter(|id| !registry.contains_key(*id))
                .collect()
        };
        let mut unknown = Vec::new();
        for id in not_live {
            if self.store.stream_head(id)? == 0 {
                unknown.push(id);
            }
        }
        Ok(unknown)
    }

    async fn actor_for(&self, stream_id: &str) -> Result<ActorRef<StreamMsg>, RouteError> {
        if let Some((actor, used)) = self
            .registry
            .lock()
            .expect("registry lock poisoned")
            .get_mut(stream_id)
        {
            *used = Instant::now();
            return Ok(actor.clone());
        }
        let spawned = self
            .supervisor
            .call(
                |reply| SupervisorMsg::Spawn {
                    stream_id: stream_id.to_string(),
                    reply,
                },
                None,
            )
            .await;
        match spawned {
            Ok(CallResult::Success(result)) => Ok(result?),
            _ => Err(RouteError::Unavailable(stream_id.to_string())),
        }
    }

    fn forget(&self, stream_id: &str, actor: &ActorRef<StreamMsg>) {
        let mut registry = self.registry.lock().expect("registry lock poisoned");
        if registry
            .get(stream_id)
            .is_some_and(|(a, _)| a.get_id() == actor.get_id())
        {
            registry.remove(stream_id);
        }
    }
}
