//! The port table: every stream this node owns, with its last fresh sample and the rates the
//! detector derived from it, for the per-port exposition (`exposition`).
//!
//! A stream actor puts its row after each durable append, sharing the sample it keeps (an
//! `Arc`, no copy, no allocation); a scrape copies the rows out (an `Arc` and the rates
//! each) and holds no lock while it writes. The
//! table is sharded so that actors on different cores seldom meet on one lock.

use crate::detect::gauges::Rates;
use crate::sample::Sample;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

const SHARDS: usize = 64;

/// One port as last seen.
#[derive(Debug, Clone)]
pub struct PortRow {
    pub sample: Arc<Sample>,
    pub rates: Rates,
}

#[derive(Debug)]
pub struct PortTable {
    shards: Vec<RwLock<HashMap<String, PortRow>>>,
}

impl Default for PortTable {
    fn default() -> Self {
        PortTable {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
        }
    }
}

impl PortTable {
    fn shard(&self, stream_id: &str) -> &RwLock<HashMap<String, PortRow>> {
        &self.shards[(crate::hash::fnv1a64(stream_id.bytes()) as usize) % SHARDS]
    }

    /// The stream's row as of its last fresh sample.
    pub fn put(&self, row: PortRow) {
        let mut shard = self
            .shard(&row.sample.stream_id)
            .write()
            .expect("port lock");
        match shard.get_mut(row.sample.stream_id.as_str()) {
            Some(slot) => *slot = row,
            None => {
                shard.insert(row.sample.stream_id.clone(), row);
            }
        }
    }

    /// The stream left this node (its shard was handed over).
    pub fn remove(&self, stream_id: &str) {
        self.shard(stream_id)
            .write()
            .expect("port lock")
            .remove(stream_id);
    }

    /// Keep only the streams `keep` says this node still owns (shards were handed over).
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        for shard in &self.shards {
            shard.write().expect("port lock").retain(|id, _| keep(id));
        }
    }

    /// Every row, by stream id (each a shared sample and its rates: no deep copy).
    pub fn rows(&self) -> Vec<PortRow> {
        let mut rows: Vec<PortRow> = Vec::new();
        for shard in &self.shards {
            rows.extend(shard.read().expect("port lock").values().cloned());
        }
        rows.sort_unstable_by(|a, b| a.sample.stream_id.cmp(&b.sample.stream_id));
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(stream: &str, ts: i64) -> PortRow {
        PortRow {
            sample: Arc::new(Sample {
                stream_id: stream.into(),
                timestamp_ms: ts,
                ..Sample::default()
            }),
            rates: Rates::default(),
        }
    }

    #[test]
    fn a_port_keeps_its_latest_row_and_leaves_when_removed() {
        // Given two ports, one seen twice,
        let t = PortTable::default();
        t.put(row("b", 1));
        t.put(row("a", 1));
        t.put(row("b", 2));
        // when the table is read, each port is there once, by stream id, as last seen;
        let rows = t.rows();
        let seen: Vec<(&str, i64)> = rows
            .iter()
            .map(|r| (r.sample.stream_id.as_str(), r.sample.timestamp_ms))
            .collect();
        assert_eq!(seen, vec![("a", 1), ("b", 2)]);
        // then a removed port is gone, and so are those a handover takes.
        t.remove("a");
        assert_eq!(t.rows().len(), 1);
        t.put(row("c", 1));
        t.retain(|id| id != "b");
        assert_eq!(t.rows().len(), 1);
    }
}
