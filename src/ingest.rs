//! Ingest: validated samples in, durable events out. Groups a request's samples by stream
//! (keeping their order), sends each group to its stream actor, and answers when all are
//! durable. In-flight work is bounded: past the bound the caller is told to come back later
//! instead of queueing without limit.

use crate::actors::stream::ObserveOutcome;
use crate::actors::{RouteError, StreamRouter};
use crate::sample::Sample;
use futures_util::stream::{FuturesUnordered, StreamExt};
use rustc_hash::FxHashMap;
use std::sync::Arc;
use tokio::sync::Semaphore;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("overloaded: {inflight} samples in flight")]
    Overloaded { inflight: usize },
    #[error(transparent)]
    Route(#[from] RouteError),
}

#[derive(Clone)]
pub struct Ingestor {
    router: StreamRouter,
    inflight: Arc<Semaphore>,
    max_inflight: usize,
}

impl Ingestor {
    pub fn new(router: StreamRouter, max_inflight: usize) -> Ingestor {
        Ingestor {
            router,
            inflight: Arc::new(Semaphore::new(max_inflight)),
            max_inflight,
        }
    }

    pub fn router(&self) -> &StreamRouter {
        &self.router
    }

    /// Record validated samples. Returns once every sample is durable (or known duplicate).
    pub async fn ingest(
        &self,
        samples: Vec<Sample>,
        correlation_id: Option<String>,
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
        let calls = groups.into_iter().map(|(stream_id, samples)| {
            let router = &self.router;
            let correlation_id = correlation_id.clone();
            async move {
                router
                    .observe(&stream_id, samples.into(), correlation_id)
                    .await
            }
        });
        let mut total = ObserveOutcome::default();
        let mut pending: FuturesUnordered<_> = calls.collect();
        while let Some(result) = pending.next().await {
            total += result?;
        }
        Ok(total)
    }
}

/// Samples grouped by stream, each group in request order.
fn group_by_stream(samples: Vec<Sample>) -> Vec<(String, Vec<Sample>)> {
    let mut index: FxHashMap<String, usize> = FxHashMap::default();
    let mut groups: Vec<(String, Vec<Sample>)> = Vec::new();
    for s in samples {
        match index.get(&s.stream_id) {
            Some(&i) => groups[i].1.push(s),
            None => {
                index.insert(s.stream_id.clone(), groups.len());
                groups.push((s.stream_id.clone(), vec![s]));
            }
        }
    }
    groups
}
