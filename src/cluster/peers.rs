//! Where a stream is served (this node, another node, or nobody until a lease lapses), and the
//! internal API between nodes: forwarding samples to their shard's holder, proxying a query
//! for live state. Keep-alive connections (one client per node), bounded timeouts.

use super::lease::{self, Held};
use super::membership::{Routes, SharedRoutes};
use super::{ClusterConfig, Member};
use crate::events::pg_store::Fence;
use crate::events::Origin;
use crate::sample::Sample;
use crate::vocab::ObserveOutcome;
use std::sync::Arc;
use std::time::Duration;

/// The header a node proves itself with.
pub const NODE_TOKEN_HEADER: &str = "x-ibsight-node-token";
/// The client's correlation id, carried to the holder of forwarded samples.
pub const CORRELATION_HEADER: &str = "x-ibsight-correlation-id";
/// Where a node takes samples of shards it holds (never forwarded again).
pub const INTERNAL_SAMPLES: &str = "/internal/v1/samples";

#[derive(Debug, thiserror::Error)]
#[error("node {node} ({url}) is unavailable: {reason}")]
pub struct PeerError {
    pub node: String,
    pub url: String,
    pub reason: String,
}

/// Where a stream's samples go.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    Local,
    Remote(Member),
    /// No live node holds the shard (its holder died and the lease has not lapsed yet, or it
    /// is being handed over).
    Unheld(u32),
}

#[derive(Clone)]
pub struct Peers {
    client: reqwest::Client,
    pub cfg: ClusterConfig,
    held: Arc<Held>,
    routes: SharedRoutes,
}

impl Peers {
    pub fn new(cfg: ClusterConfig, held: Arc<Held>, routes: SharedRoutes) -> Peers {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(30))
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .expect("a plain HTTP client builds");
        Peers {
            client,
            cfg,
            held,
            routes,
        }
    }

    pub fn held(&self) -> &Arc<Held> {
        &self.held
    }

    pub fn routes(&self) -> Routes {
        self.routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn shard_of(&self, stream_id: &str) -> u32 {
        super::placement::shard_of(stream_id, self.cfg.shards)
    }

    /// Where `stream_id` is served now.
    pub fn route(&self, stream_id: &str) -> Route {
        let shard = self.shard_of(stream_id);
        if self.held.serves(&lease::shard_lease(shard)) {
            return Route::Local;
        }
        let routes = self.routes.read().unwrap_or_else(|p| p.into_inner());
        match routes.holder(shard) {
            Some(m) if m.id != self.cfg.node_id => Route::Remote(m.clone()),
            _ => Route::Unheld(shard),
        }
    }

    /// The node running the projections (the analyst, alerts, incidents), if any.
    pub fn projections_holder(&self) -> Option<Member> {
        let routes = self.routes.read().unwrap_or_else(|p| p.into_inner());
        routes
            .projections
            .and_then(|i| routes.members.get(i).cloned())
    }

    fn err(m: &Member, reason: impl ToString) -> PeerError {
        PeerError {
            node: m.id.clone(),
            url: m.url.clone(),
            reason: reason.to_string(),
        }
    }

    /// Send samples to their holder; returns its durable outcome.
    /// The trace (when sampled) and the client's correlation id go along.
    pub async fn forward(
        &self,
        m: &Member,
        samples: &[Sample],
        origin: &Origin,
    ) -> Result<ObserveOutcome, PeerError> {
        let body = serde_json::json!({
            "samples": samples.iter().map(Sample::to_json).collect::<Vec<_>>(),
        });
        let mut request = self
            .client
            .post(format!("{}{INTERNAL_SAMPLES}", m.url))
            .header(NODE_TOKEN_HEADER, &self.cfg.node_token);
        if let Some(trace) = &origin.trace {
            request = request.header("traceparent", trace.traceparent());
        }
        if let Some(id) = &origin.correlation_id {
            request = request.header(CORRELATION_HEADER, id);
        }
        let resp = request
            .json(&body)
            .send()
            .await
            .map_err(|e| Self::err(m, e))?;
        let status = resp.status();
        let value: serde_json::Value = resp.json().await.map_err(|e| Self::err(m, e))?;
        if status.as_u16() != 202 {
            return Err(Self::err(m, format!("answered {status}: {value}")));
        }
        let n = |k: &str| value[k].as_u64().unwrap_or(0);
        Ok(ObserveOutcome {
            accepted: n("accepted"),
            duplicates: n("duplicates"),
            late: n("late"),
            anomalies: n("anomalies"),
        })
    }

    /// GET a path on a member with the node token; the status and JSON body.
    pub async fn get(
        &self,
        m: &Member,
        path_and_query: &str,
    ) -> Result<(u16, serde_json::Value), PeerError> {
        self.proxy_get(m, path_and_query, None).await
    }

    /// GET on a member on a client's behalf (its `Authorization` passed through).
    pub async fn proxy_get(
        &self,
        m: &Member,
        path_and_query: &str,
        authorization: Option<&str>,
    ) -> Result<(u16, serde_json::Value), PeerError> {
        let mut request = self
            .client
            .get(format!("{}{path_and_query}", m.url))
            .header(NODE_TOKEN_HEADER, &self.cfg.node_token);
        if let Some(a) = authorization {
            request = request.header("authorization", a);
        }
        let resp = request
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| Self::err(m, e))?;
        let status = resp.status().as_u16();
        let value = resp.json().await.map_err(|e| Self::err(m, e))?;
        Ok((status, value))
    }

    pub fn token_matches(&self, presented: Option<&str>) -> bool {
        presented.is_some_and(|t| crate::secret::same(t, &self.cfg.node_token))
    }
}

/// The fencing check's view of this node's leases: a stream's writes need its shard's lease;
/// the internal streams (`#…`), the projections' checkpoints and views need the projections
/// lease. The `streams` view (written with a stream's first event) and the write-path probe
/// need none.
pub struct ClusterFence {
    pub node_id: String,
    pub shards: u32,
    pub held: Arc<Held>,
}

impl Fence for ClusterFence {
    fn lease_for_stream(&self, stream_id: &str) -> String {
        if stream_id.starts_with('#') {
            lease::PROJECTIONS.to_string()
        } else {
            lease::shard_lease(super::placement::shard_of(stream_id, self.shards))
        }
    }

    fn lease_for_view(&self, view: &str) -> Option<String> {
        (view != crate::events::streams::STREAMS_VIEW
            && view != crate::events::writer::PROBE_CHECKPOINT)
            .then(|| lease::PROJECTIONS.to_string())
    }

    fn held_epoch(&self, lease: &str) -> Option<i64> {
        self.held.epoch(lease)
    }

    fn node_id(&self) -> &str {
        &self.node_id
    }
}
