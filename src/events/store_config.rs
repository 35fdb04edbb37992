//! `[store]`: which engine holds the event log, and how it is tuned. Here, with the engines
//! it tunes; `config` gathers it with the rest.

use super::Engine;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub engine: Engine,
    /// Snapshot a stream's state after this many events.
    pub snapshot_every: u64,
    /// Upper bound of operations in one group commit.
    pub max_batch_ops: usize,
    /// fjall write buffer of the records keyspace in MiB (the index gets half): more is
    /// faster ingest, less is lower memory.
    pub memtable_mib: u64,
    /// Raw samples (MetricObserved) older than this are compacted once a snapshot covers them.
    pub raw_retention_hours: u64,
    /// Other events are kept this long; 0 keeps them forever.
    pub event_retention_days: u64,
    /// How often retention runs.
    pub retention_interval_s: u64,
    /// fjall: pack raw samples into compressed segments (a few bytes per value instead of a
    /// record each; reads return them unchanged). Packing costs CPU: see README.
    pub pack: bool,
    /// fjall: raw samples this old are packed.
    pub pack_after_s: u64,
    /// fjall: how often the packer looks for samples old enough.
    pub pack_interval_s: u64,
    /// fjall: raw samples per packed segment.
    pub segment_events: u64,
    /// `engine = "postgres"`: the libpq connection string (several hosts with
    /// `target_session_attrs=read-write` find a promoted standby after a failover).
    pub url: String,
    /// `engine = "postgres"`: the schema holding ibsight's tables (one per deployment).
    pub schema: String,
    /// `engine = "postgres"`: connections in the pool.
    pub pool_size: usize,
    /// `engine = "postgres"`: the password, when it is kept out of `url` (a secret given as
    /// IBSIGHT_STORE__PASSWORD). Never logged.
    pub password: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            engine: Engine::Fjall,
            snapshot_every: 1000,
            max_batch_ops: 50_000,
            memtable_mib: 8,
            raw_retention_hours: 168,
            event_retention_days: 0,
            retention_interval_s: 600,
            pack: true,
            pack_after_s: 900,
            pack_interval_s: 60,
            segment_events: super::fjall_store::SEGMENT_EVENTS,
            url: String::new(),
            schema: "ibsight".into(),
            pool_size: 16,
            password: String::new(),
        }
    }
}
