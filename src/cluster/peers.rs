//! The internal API between nodes: forwarding samples to their owner, proxying a stream query,
//! checking reachability. Keep-alive connections (one client per node), bounded timeouts.

use super::{ClusterConfig, Member};
use crate::actors::stream::ObserveOutcome;
use crate::events::Origin;
use crate::sample::Sample;
use std::time::Duration;

/// The header a node proves itself with.
pub const NODE_TOKEN_HEADER: &str = "x-ibsight-node-token";
/// The client's correlation id, carried to the owner of forwarded samples.
pub const CORRELATION_HEADER: &str = "x-ibsight-correlation-id";
/// Where a node takes samples it owns (never forwarded again).
pub const INTERNAL_SAMPLES: &str = "/internal/v1/samples";

#[derive(Debug, thiserror::Error)]
#[error("node {node} ({url}) is unavailable: {reason}")]
pub struct PeerError {
    pub node: String,
    pub url: String,
    pub reason: String,
}

#[derive(Clone)]
pub struct Peers {
    client: reqwest::Client,
    token: String,
    pub cfg: ClusterConfig,
    /// The member ids, for placement.
    pub ids: Vec<String>,
    /// Each shard's owner (an index into the members), computed once.
    owners: Vec<usize>,
}

impl Peers {
    pub fn new(cfg: ClusterConfig) -> Peers {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(30))
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .expect("a plain HTTP client builds");
        let ids = cfg.member_ids();
        let owners = (0..cfg.shards)
            .map(|shard| {
                let owner = super::placement::owner_of(shard, &ids);
                ids.iter()
                    .position(|id| Some(id.as_str()) == owner)
                    .unwrap_or(0)
            })
            .collect();
        Peers {
            client,
            token: cfg.node_token.clone(),
            ids,
            owners,
            cfg,
        }
    }

    /// The member that owns `stream_id`.
    pub fn owner_of(&self, stream_id: &str) -> &Member {
        let shard = super::placement::shard_of(stream_id, self.cfg.shards);
        &self.cfg.members[self.owners[shard as usize]]
    }

    pub fn member(&self, id: &str) -> Option<&Member> {
        self.cfg.members.iter().find(|m| m.id == id)
    }

    fn err(m: &Member, reason: impl ToString) -> PeerError {
        PeerError {
            node: m.id.clone(),
            url: m.url.clone(),
            reason: reason.to_string(),
        }
    }

    /// Send samples to their owner; returns its durable outcome.
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
            .header(NODE_TOKEN_HEADER, &self.token);
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
            .header(NODE_TOKEN_HEADER, &self.token);
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
        presented.is_some_and(|t| crate::api::auth::same(t, &self.token))
    }
}
