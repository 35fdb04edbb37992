//! The event log: the source of truth of ibsight.
//!
//! - `types`: the events of a stream (past tense), one struct per (type, version).
//! - `codec`: bincode payloads, decoded by (event_type, schema_version); the record frame
//!   with its CRC.
//! - `store`: the `EventStore` trait every engine implements, and its errors.
//! - `fjall_store`, `sled_store`: the embedded engines (fjall is the default); `pg_store`:
//!   PostgreSQL, for a cluster; `store_config`: `[store]`, which engine and its tuning;
//!   `tree`: the embedded engines' table layout, read once for both.
//! - `projection`: the `Projection` trait (a consumer of the log from a checkpoint).
//! - `segment`: packed segments, the raw samples of a range of offsets as compressed columns.
//! - `streams`: the index of known streams.
//! - `json`: events as JSON, for the API and `ibsight events`.
//! - `writer`: group commit: one writer thread batches appends from all actors and fsyncs
//!   once per batch; an append is acknowledged only after its batch is durable.
//! - `trace`: the W3C trace context kept in each record's envelope.
//! - `retention`: which old raw samples and events may be dropped.

pub mod codec;
pub mod fjall_store;
pub mod json;
pub mod pg_store;
pub mod projection;
pub mod retention;
pub mod segment;
pub mod sled_store;
pub mod store;
pub mod store_config;
pub mod streams;
pub mod trace;
pub mod tree;
pub mod types;
pub mod writer;

#[cfg(test)]
pub(crate) mod conformance;
#[cfg(test)]
mod golden;

pub use store::{EventStore, NewEvent, Snapshot, StoreError, StoredEvent, WriteOp};
pub use trace::{Origin, TraceContext};
pub use types::StreamEvent;

use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

/// Which storage engine backs the event log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    #[default]
    Fjall,
    Sled,
    /// PostgreSQL (`store.url`): the cluster's shared, replicated log.
    Postgres,
}

/// Open the event store of `engine` in `dir` with the default memtable budget.
pub fn open_store(engine: Engine, dir: &Path) -> Result<Arc<dyn EventStore>, StoreError> {
    open_store_with(engine, dir, 8)
}

/// Open the event store; `memtable_mib` sizes fjall's write buffers (memory vs. throughput).
pub fn open_store_with(
    engine: Engine,
    dir: &Path,
    memtable_mib: u64,
) -> Result<Arc<dyn EventStore>, StoreError> {
    Ok(match engine {
        Engine::Fjall => Arc::new(fjall_store::FjallStore::open(dir, memtable_mib)?),
        Engine::Sled => Arc::new(sled_store::SledStore::open(dir)?),
        Engine::Postgres => {
            return Err(StoreError::Open {
                path: dir.display().to_string(),
                reason: "the postgres engine is opened from store.url (open_configured)".into(),
            })
        }
    })
}

/// Open the store `[store]` names: an embedded engine in `dir`, or PostgreSQL at `store.url`.
pub fn open_configured(
    cfg: &store_config::StoreConfig,
    dir: &Path,
) -> Result<Arc<dyn EventStore>, StoreError> {
    match cfg.engine {
        Engine::Postgres => Ok(Arc::new(pg_store::PgStore::open_with(
            &cfg.url,
            &cfg.schema,
            cfg.pool_size,
            Some(&cfg.password),
        )?)),
        engine => open_embedded(engine, cfg, dir),
    }
}

/// Open an embedded engine as `[store]` tunes it (memtables, packed segments).
pub fn open_embedded(
    engine: Engine,
    cfg: &store_config::StoreConfig,
    dir: &Path,
) -> Result<Arc<dyn EventStore>, StoreError> {
    Ok(match engine {
        Engine::Fjall => Arc::new(
            fjall_store::FjallStore::open(dir, cfg.memtable_mib)?
                .with_segment_events(cfg.segment_events)
                .with_packing(cfg.pack),
        ),
        engine => open_store_with(engine, dir, cfg.memtable_mib)?,
    })
}
