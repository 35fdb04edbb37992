//! Running several nodes on one PostgreSQL. The log, the snapshots, the views and the leases
//! are in the database; each shard of streams is held by one live node through a lease row
//! (holder, epoch, expiry by the database's clock) that the node renews, and every write checks
//! its leases in its own transaction (fencing). A node forwards samples of shards it does not
//! hold to their holder over the internal API, authenticated with the node token.
//!
//! - `placement`: streams → shards → preferred members (pure, rendezvous hashing).
//! - `lease`: which leases a node claims and releases (pure), and the leases it holds.
//! - `membership`: heartbeats and the lease loop in PostgreSQL; the routes it reads.
//! - `peers`: where a stream is served, and the HTTP client between nodes.

pub mod lease;
pub mod membership;
pub mod peers;
pub mod placement;

use serde::{Deserialize, Serialize};

/// Correlation id prefix of records imported by the static cluster's `cluster import` (removed);
/// logs may still hold them, and the projections skip them as before.
pub const MOVED_FROM: &str = "moved-from:";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub id: String,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// This node's id, unique in the cluster; required with `store.engine = "postgres"`.
    pub node_id: String,
    /// Shared secret the nodes authenticate each other with (at least 16 characters).
    pub node_token: String,
    /// The URL other nodes reach this one at (e.g. http://ibsight-0.ibsight-peers:8080).
    pub advertise_url: String,
    pub shards: u32,
    /// A lease not renewed for this long lapses and another node may take it.
    pub lease_ttl_s: u64,
    /// How often a node heartbeats, renews its leases and reads the routes.
    pub heartbeat_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            node_id: String::new(),
            node_token: String::new(),
            advertise_url: String::new(),
            shards: placement::DEFAULT_SHARDS,
            lease_ttl_s: 10,
            heartbeat_ms: 1000,
        }
    }
}

impl ClusterConfig {
    /// `(key, reason)` of the first problem; `clustered`: the store is PostgreSQL.
    pub fn validate(&self, clustered: bool) -> Result<(), (String, String)> {
        let bad = |k: &str, why: String| Err((format!("cluster.{k}"), why));
        if !clustered {
            if !self.node_id.is_empty() {
                return bad(
                    "node_id",
                    format!(
                        "{:?} is set, but a cluster needs store.engine = \"postgres\"",
                        self.node_id
                    ),
                );
            }
            return Ok(());
        }
        if self.node_id.is_empty()
            || !self
                .node_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return bad(
                "node_id",
                format!(
                    "{:?} must be [A-Za-z0-9._-]+ (required with store.engine = \"postgres\")",
                    self.node_id
                ),
            );
        }
        if self.shards == 0 || self.shards > 65_536 {
            return bad("shards", format!("{} must be 1 to 65536", self.shards));
        }
        if self.node_token.len() < 16 {
            return bad(
                "node_token",
                format!(
                    "{} characters; at least 16 are needed",
                    self.node_token.len()
                ),
            );
        }
        if !(self.advertise_url.starts_with("http://")
            || self.advertise_url.starts_with("https://"))
        {
            return bad(
                "advertise_url",
                format!("{:?} is not an http(s) URL", self.advertise_url),
            );
        }
        if !(2..=300).contains(&self.lease_ttl_s) {
            return bad(
                "lease_ttl_s",
                format!("{} must be 2 to 300", self.lease_ttl_s),
            );
        }
        if self.heartbeat_ms < 50 || self.heartbeat_ms * 2 > self.lease_ttl_s * 1000 {
            return bad(
                "heartbeat_ms",
                format!(
                    "{} must be at least 50 and at most half of lease_ttl_s",
                    self.heartbeat_ms
                ),
            );
        }
        Ok(())
    }
}
