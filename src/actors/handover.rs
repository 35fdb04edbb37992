//! What a node does with its stream actors and caches when shard leases come and go.

use super::StreamRouter;
use crate::cluster::lease::shard_of_lease;
use crate::cluster::membership::Handover;
use crate::events::pg_store::PgStore;
use crate::events::writer::Writer;
use crate::metrics::ports::PortTable;
use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub struct NodeHandover {
    pub router: StreamRouter,
    pub writer: Writer,
    pub ports: Arc<PortTable>,
    /// Loads the streams of gained leases in bulk.
    pub store: Arc<PgStore>,
}

fn shards(leases: &[String]) -> BTreeSet<u32> {
    leases.iter().filter_map(|l| shard_of_lease(l)).collect()
}

/// The streams of `shards` are no longer this node's to show.
fn forget_ports(router: &StreamRouter, ports: &PortTable, shards: &BTreeSet<u32>) {
    if let Some(peers) = router.cluster() {
        ports.retain(|id| !shards.contains(&peers.shard_of(id)));
    }
}

impl Handover for NodeHandover {
    fn lost(&self, leases: &[String]) {
        // Their state is stale: stop them without a flush (it would be fenced anyway).
        let router = self.router.clone();
        let shards = shards(leases);
        let ports = self.ports.clone();
        tokio::spawn(async move {
            router.evict_shards(&shards, false).await;
            // After the actors were told to stop, so none puts its row back.
            forget_ports(&router, &ports, &shards);
        });
        self.store.forget_preloaded(leases);
        self.writer.forget_heads();
    }

    fn release<'a>(
        &'a self,
        leases: &'a [String],
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            let shards = shards(leases);
            self.store.forget_preloaded(leases);
            self.router.evict_shards(&shards, true).await;
            forget_ports(&self.router, &self.ports, &shards);
            // The actors' last snapshots went to the writer before they stopped; one durable
            // write behind them makes them durable before the lease goes.
            if let Err(e) = self.writer.write(Vec::new()).await {
                tracing::warn!(error = %e, "flushing before a lease handover");
            }
        })
    }

    /// Before the node answers for them: their streams' snapshots, tails and heads, in bulk.
    fn gained(&self, leases: &[String]) {
        self.writer.forget_heads();
        let started = std::time::Instant::now();
        match self.store.preload(leases) {
            Ok(streams) => tracing::info!(
                leases = leases.len(),
                streams,
                ms = started.elapsed().as_millis() as u64,
                "loaded the streams of gained leases"
            ),
            // Each stream then loads when its actor starts, as without the preload.
            Err(e) => tracing::warn!(error = %e, "loading the streams of gained leases"),
        }
    }
}
