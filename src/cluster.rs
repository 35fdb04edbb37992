//! Running several nodes that share the fabric's streams. Each stream has one owner (its
//! shard's rendezvous winner among the configured members); a node forwards what it does not
//! own to the owner over the internal API, authenticated with the node token. Membership is
//! static (config); changes are planned with `ibsight cluster plan`.
//!
//! - `placement`: streams → shards → members (pure).
//! - `peers`: the HTTP client between nodes.
//! - `moves`: exporting, importing and dropping streams when the member list changes.

pub mod moves;
pub mod peers;
pub mod placement;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub id: String,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// This node's id; empty (and no members): the node runs alone.
    pub node_id: String,
    /// Shared secret the nodes authenticate each other with (at least 16 characters).
    pub node_token: String,
    pub members: Vec<Member>,
    pub shards: u32,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            node_id: String::new(),
            node_token: String::new(),
            members: Vec::new(),
            shards: placement::DEFAULT_SHARDS,
        }
    }
}

impl ClusterConfig {
    pub fn enabled(&self) -> bool {
        !self.members.is_empty()
    }

    pub fn member_ids(&self) -> Vec<String> {
        self.members.iter().map(|m| m.id.clone()).collect()
    }

    /// `(key, reason)` of the first problem.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |k: &str, why: String| Err((format!("cluster.{k}"), why));
        if !self.enabled() {
            if !self.node_id.is_empty() {
                return bad("members", "node_id is set but members is empty".into());
            }
            return Ok(());
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
        let mut seen = std::collections::HashSet::new();
        for m in &self.members {
            if m.id.is_empty()
                || !m
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            {
                return bad(
                    "members",
                    format!("member id {:?} must be [A-Za-z0-9._-]+", m.id),
                );
            }
            if !seen.insert(m.id.as_str()) {
                return bad("members", format!("member id {:?} appears twice", m.id));
            }
            if !(m.url.starts_with("http://") || m.url.starts_with("https://")) {
                return bad(
                    "members",
                    format!("member {:?} url {:?} is not http(s)", m.id, m.url),
                );
            }
        }
        if !self.members.iter().any(|m| m.id == self.node_id) {
            return bad(
                "node_id",
                format!("{:?} is not one of the members", self.node_id),
            );
        }
        Ok(())
    }
}
