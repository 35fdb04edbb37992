//! The PostgreSQL engine (cluster mode): the same `EventStore` on tables in one schema.
//!
//! - A group commit is one transaction, acknowledged after COMMIT. Its raw samples go in as
//!   one row per partition (`batch`: the embedded engine's segment encoding, about 40 bytes a
//!   sample), its other events (anomalies, incidents, insights) as rows of `events`, one
//!   multi-row insert (`UNNEST` of arrays) each. Reads merge the two.
//! - Offsets come from a sequence, taken inside the transaction after its transaction id, with
//!   no lock held to COMMIT: commits from many nodes run side by side and may finish out of
//!   offset order. A tailer reads only up to the watermark (`watermark`), below which no
//!   transaction in flight can still commit, so it never skips a row that commits late.
//!   Offsets of a transaction that rolled back stay gaps.
//! - Each event keeps the epoch of the lease it was written under (a row's `epoch`, a batch's
//!   `epochs` runs; 0 without fencing): along a stream's seqs the epochs never go down, which
//!   an audit can check (`lease_epochs`). Rows' per-stream seqs are a key
//!   (`events_stream_seq`); for samples the writer's seq check and fencing keep them unique.
//! - Fencing (`Fence`, `schema`): a transaction that appends to, or snapshots, a stream holds
//!   its node's fencing lock (shared) and checks, in the same transaction as its writes, that
//!   this node holds each lease it writes under at the epoch it believes, without locking any
//!   lease row. A node taking leases waits for the old holder's transactions in flight; a node
//!   whose lease was taken cannot commit.
//! - A group commit is two round trips once its statements are prepared (`write`): BEGIN, the
//!   check and the offsets; then the batches, rows, other writes and COMMIT, pipelined.
//!
//! - TLS (`tls`): the connection string's `sslmode` and `sslrootcert`, with libpq's meaning,
//!   over rustls.
//!
//! The trait is synchronous (the writer thread calls it); the store runs tokio-postgres on its
//! own small runtime and waits on it, so it can be called from any thread. A wait inside a task
//! of a multi-threaded runtime is a `block_in_place`: the worker's other tasks move on.

use super::store::{decode_stored, EventStore, Snapshot, StoreError, StoredEvent};
use super::store::{StreamLoad, ViewEntry, WriteOp};
mod batch;
mod preload;
mod read;
mod schema;
pub mod tls;
mod watermark;
mod write;
use schema::SCHEMA_SQL;
pub use schema::{test_url, valid_schema, FENCE_LOCK, LOCK_HOLDERS_SQL, LOCK_SELF_SQL};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use write::fence_check;

/// What the fencing check needs: the lease each write needs, and the epoch this node holds.
pub trait Fence: Send + Sync + 'static {
    /// The lease a write to `stream_id` needs (a shard's, or the projections' for `#…`).
    fn lease_for_stream(&self, stream_id: &str) -> String;
    /// The lease a projection write (checkpoint, view) needs; `None`: not fenced.
    fn lease_for_view(&self, view: &str) -> Option<String>;
    /// The epoch this node holds `lease` at, `None` when it does not hold it.
    fn held_epoch(&self, lease: &str) -> Option<i64>;
    /// This node's id (the lease rows' holder).
    fn node_id(&self) -> &str;
}

pub struct PgStore {
    rt: Option<tokio::runtime::Runtime>,
    pool: Pool,
    config: tokio_postgres::Config,
    /// TLS as the connection string's `sslmode` asks (`None`: plain only).
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    schema: String,
    /// The highest offset this store's own writes took.
    written: AtomicU64,
    /// Streams loaded in bulk with their leases (`preload`).
    preloaded: Mutex<preload::Preloaded>,
    /// Up to where the log is final (no commit in flight can land below it).
    watermark: Mutex<watermark::Watermark>,
    /// Batches decoded lately.
    decoded: batch::Decoded,
    fence: RwLock<Option<Arc<dyn Fence>>>,
}

fn pg_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Engine(format!("postgres: {e}"))
}

/// tokio-postgres errors name the server's message only in their source: show it.
fn db_err(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) if db.code().code() == schema::FENCED_SQLSTATE => StoreError::Fenced {
            lease: db.detail().unwrap_or_default().to_string(),
            reason: db.message().to_string(),
        },
        Some(db) => pg_err(format!("{} ({})", db.message(), db.code().code())),
        // A connection or TLS failure: its cause is in the source chain.
        None => pg_err(crate::errors::chain(&e)),
    }
}

/// A connection from the pool, or why there is none (the server's or the TLS layer's reason,
/// not only "db error").
fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => db_err(e),
        other => pg_err(other),
    }
}

/// How long a read waits for this store's own writes to become final.
pub(crate) const READ_OWN_WRITES: std::time::Duration = std::time::Duration::from_secs(2);

/// A session idle inside a transaction this long is ended by the server, releasing its locks.
/// Kept below the shortest lease (`cluster.lease_ttl_s` ≥ 2 s).
pub const IDLE_IN_TX_MS: u64 = 1500;

impl PgStore {
    /// Connect to `url` (libpq syntax, multi-host with `target_session_attrs=read-write`
    /// allowed) and use (creating if needed) the tables in `schema`.
    pub fn open(url: &str, schema: &str, pool_size: usize) -> Result<PgStore, StoreError> {
        PgStore::open_with(url, schema, pool_size, None)
    }

    /// `open`, with the password apart from the URL (a secret from Secrets Manager or a
    /// Kubernetes Secret, given as `IBSIGHT_STORE__PASSWORD`).
    pub fn open_with(
        url: &str,
        schema: &str,
        pool_size: usize,
        password: Option<&str>,
    ) -> Result<PgStore, StoreError> {
        let open_err = |reason: String| StoreError::Open {
            path: format!("postgres schema {schema}"),
            reason,
        };
        if !valid_schema(schema) {
            return Err(open_err(format!(
                "store.schema {schema:?} must be a lowercase identifier ([a-z_][a-z0-9_]*)"
            )));
        }
        let (url, tls_settings) =
            tls::split(url).map_err(|e| open_err(format!("store.url: {e}")))?;
        let mut cfg: tokio_postgres::Config = url
            .parse()
            .map_err(|e| open_err(format!("store.url is not a libpq connection string: {e}")))?;
        let (ssl_mode, tls) =
            tls::connector(&tls_settings).map_err(|e| open_err(format!("store.url: {e}")))?;
        cfg.ssl_mode(ssl_mode);
        let options = cfg.get_options().unwrap_or("").to_string();
        // A node paused or cut off inside a transaction must not hold its row locks (the offset
        // counter, lease rows) for longer than a lease: the server ends such a session.
        cfg.options(
            format!(
                "{options} -c search_path={schema} -c idle_in_transaction_session_timeout={IDLE_IN_TX_MS}"
            )
            .trim(),
        );
        cfg.application_name("ibsight");
        if let Some(password) = password.filter(|p| !p.is_empty()) {
            cfg.password(password);
        }
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(std::time::Duration::from_secs(5));
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ibsight-pg")
            .enable_all()
            .build()
            .map_err(|e| open_err(e.to_string()))?;
        let pool = {
            let _guard = rt.enter();
            new_pool(&cfg, &tls, pool_size).map_err(|e| open_err(e.to_string()))?
        };
        let store = PgStore {
            rt: Some(rt),
            pool,
            config: cfg,
            tls,
            schema: schema.to_string(),
            written: AtomicU64::new(0),
            preloaded: Mutex::default(),
            watermark: Mutex::new(watermark::Watermark::default()),
            decoded: batch::Decoded::default(),
            fence: RwLock::new(None),
        };
        let schema = store.schema.clone();
        store
            .run(move |pool| async move {
                let mut client = pool.get().await.map_err(pool_err)?;
                let tx = client.transaction().await.map_err(db_err)?;
                tx.execute("SELECT pg_advisory_xact_lock(4242424242)", &[])
                    .await
                    .map_err(db_err)?;
                tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                    .await
                    .map_err(db_err)?;
                tx.batch_execute(SCHEMA_SQL).await.map_err(db_err)?;
                tx.commit().await.map_err(db_err)
            })
            .map_err(|e| open_err(e.to_string()))?;
        // What was written before it opened counts as its own: its first reads wait for it.
        let taken = store
            .query(
                "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM event_offsets",
                Vec::new(),
            )
            .map_err(|e| open_err(e.to_string()))?;
        if let Some(row) = taken.first() {
            store
                .written
                .store(row.get::<_, i64>(0).max(0) as u64, Ordering::Relaxed);
        }
        Ok(store)
    }

    /// Check leases in every write from now on. The directory's leases are brought in line
    /// with the fence's (streams written before fencing, or under another shard count).
    pub fn set_fence(&self, fence: Arc<dyn Fence>) -> Result<(), StoreError> {
        let rows = self.query("SELECT stream_id, lease FROM streams", Vec::new())?;
        let (mut ids, mut leases) = (Vec::new(), Vec::new());
        for r in &rows {
            let (id, lease): (String, Option<String>) = (r.get(0), r.get(1));
            let want = fence.lease_for_stream(&id);
            if lease.as_deref() != Some(want.as_str()) {
                ids.push(id);
                leases.push(want);
            }
        }
        if !ids.is_empty() {
            self.query(
                "UPDATE streams d SET lease = u.l FROM UNNEST($1::text[], $2::text[]) u(s, l) \
                 WHERE d.stream_id = u.s RETURNING 1",
                vec![Box::new(ids), Box::new(leases)],
            )?;
        }
        *self.fence.write().expect("fence lock poisoned") = Some(fence);
        Ok(())
    }

    /// The lease a write to `stream_id` is made under ("" without fencing).
    fn lease_of(&self, stream_id: &str) -> String {
        match self.fence.read().expect("fence lock poisoned").as_ref() {
            Some(f) => f.lease_for_stream(stream_id),
            None => String::new(),
        }
    }

    fn preloaded(&self) -> std::sync::MutexGuard<'_, preload::Preloaded> {
        self.preloaded.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A separate pool on the same server, for async callers on another runtime (the lease
    /// loop). The store's own pool is only used on its runtime: a connection's driver task
    /// lives on the runtime that made it, and a thread blocked in a store call must never wait
    /// for a connection whose driver needs that thread.
    pub fn new_pool(&self, size: usize) -> Result<Pool, StoreError> {
        new_pool(&self.config, &self.tls, size).map_err(pg_err)
    }

    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// One read query on the store's runtime, waited for.
    fn query(&self, sql: &'static str, params: Params) -> Result<Vec<Row>, StoreError> {
        self.run(move |pool| async move {
            let client = pool.get().await.map_err(pool_err)?;
            let refs: Vec<&(dyn ToSql + Sync)> = params
                .iter()
                .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                .collect();
            client.query(sql, &refs).await.map_err(db_err)
        })
    }

    /// Run `f` on the store's runtime and wait for it (from any thread, async or not).
    pub fn run<T, F, Fut>(&self, f: F) -> T
    where
        T: Send + 'static,
        F: FnOnce(Pool) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let fut = f(self.pool.clone());
        self.rt
            .as_ref()
            .expect("runtime lives as long as the store")
            .spawn(async move {
                let _ = tx.send(fut.await);
            });
        let wait = || rx.recv().expect("the store's runtime dropped a task");
        // Called from a task of a multi-threaded runtime (the projection runner, an actor's
        // start), the wait would hold that worker: hand its other tasks to another thread while
        // it waits, so ingest is not stalled behind a read.
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait)
            }
            _ => wait(),
        }
    }
}

fn new_pool(
    cfg: &tokio_postgres::Config,
    tls: &Option<tokio_postgres_rustls::MakeRustlsConnect>,
    size: usize,
) -> Result<Pool, String> {
    let manager_config = || ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match tls {
        Some(tls) => Manager::from_config(cfg.clone(), tls.clone(), manager_config()),
        None => Manager::from_config(cfg.clone(), tokio_postgres::NoTls, manager_config()),
    };
    Pool::builder(manager)
        .max_size(size.max(2))
        .wait_timeout(Some(std::time::Duration::from_secs(10)))
        .create_timeout(Some(std::time::Duration::from_secs(10)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| e.to_string())
}

impl Drop for PgStore {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl EventStore for PgStore {
    fn admit(&self, ops: &[WriteOp]) -> Result<(), StoreError> {
        match self.fence.read().expect("fence lock poisoned").as_ref() {
            Some(f) => fence_check(f.as_ref(), ops).map(|_| ()),
            None => Ok(()),
        }
    }

    fn write(&self, ops: &[WriteOp]) -> Result<Vec<u64>, StoreError> {
        self.write_ops(ops)
    }

    fn read_stream(
        &self,
        stream_id: &str,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.read_stream_seq(stream_id, from_seq, limit)
    }

    fn read_from(&self, from_offset: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        self.read_offsets(from_offset, limit)
    }

    fn stream_head(&self, stream_id: &str) -> Result<u64, StoreError> {
        if let Some(head) = self.preloaded().head(stream_id, &self.lease_of(stream_id)) {
            return Ok(head);
        }
        self.head_of_stream(stream_id)
    }

    /// A row (an anomaly, an incident) by its key; a packed sample from its partition.
    fn read_event(&self, stream_id: &str, seq: u64) -> Result<Option<StoredEvent>, StoreError> {
        let rows = self.query(
            "SELECT off, frame FROM events WHERE stream_id = $1 AND seq = $2",
            vec![Box::new(pg_text(stream_id)), Box::new(as_i64(seq))],
        )?;
        if let Some(e) = decode_rows(&rows)?.pop() {
            return Ok(Some(e));
        }
        Ok(self
            .read_stream_seq(stream_id, seq, 1)?
            .pop()
            .filter(|e| e.record.seq == seq))
    }

    fn load_stream(&self, stream_id: &str, limit: usize) -> Result<StreamLoad, StoreError> {
        let lease = self.lease_of(stream_id);
        match self.preloaded().take(stream_id, &lease, limit) {
            preload::Answer::Load(load) => return Ok(load),
            preload::Answer::New => {
                return Ok(StreamLoad {
                    snapshot: None,
                    events: Vec::new(),
                    head: 0,
                })
            }
            preload::Answer::Ask => {}
        }
        self.load_one(stream_id, limit)
    }

    fn last_offset(&self) -> u64 {
        match self.final_offset() {
            Ok(upto) => upto,
            Err(e) => {
                tracing::warn!(error = %e, "reading the last offset; using the last known");
                self.watermark
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .safe()
            }
        }
    }

    fn snapshot(&self, stream_id: &str) -> Result<Option<Snapshot>, StoreError> {
        let rows = self.query(
            "SELECT seq, state FROM snapshots WHERE stream_id = $1",
            vec![Box::new(pg_text(stream_id))],
        )?;
        Ok(rows.first().map(|r| Snapshot {
            stream_id: stream_id.to_string(),
            seq: r.get::<_, i64>(0) as u64,
            state: r.get(1),
        }))
    }

    fn checkpoint(&self, name: &str) -> Result<Option<u64>, StoreError> {
        let rows = self.query(
            "SELECT off FROM checkpoints WHERE name = $1",
            vec![Box::new(pg_text(name))],
        )?;
        Ok(rows.first().map(|r| r.get::<_, i64>(0) as u64))
    }

    fn scan_view(
        &self,
        view: &str,
        from_key: &[u8],
        limit: usize,
    ) -> Result<Vec<ViewEntry>, StoreError> {
        let rows = self.query(
            "SELECT key, value FROM views WHERE view = $1 AND key >= $2 ORDER BY key LIMIT $3",
            vec![
                Box::new(view.to_string()),
                Box::new(from_key.to_vec()),
                Box::new(limit as i64),
            ],
        )?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn disk_bytes(&self) -> u64 {
        let rows = self.query(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind = 'r'",
            vec![Box::new(self.schema.clone())],
        );
        rows.ok()
            .and_then(|rows| rows.first().map(|r| r.get::<_, i64>(0).max(0) as u64))
            .unwrap_or(0)
    }

    fn engine(&self) -> &'static str {
        "postgres"
    }
}

/// A name as PostgreSQL's text can hold it: the engine's internal names start with NUL (the
/// writer's probe checkpoint, the readiness read), which text refuses; NUL is stored as U+FFFD.
pub(crate) fn pg_text(s: &str) -> String {
    s.replace('\0', "\u{fffd}")
}

/// Owned query parameters (they cross to the store's runtime).
type Params = Vec<Box<dyn ToSql + Sync + Send>>;

fn as_i64(n: u64) -> i64 {
    n.min(i64::MAX as u64) as i64
}

fn decode_rows(rows: &[tokio_postgres::Row]) -> Result<Vec<StoredEvent>, StoreError> {
    rows.iter()
        .map(|r| {
            let off: i64 = r.get(0);
            let frame: &[u8] = r.get(1);
            decode_stored(off as u64, frame)
        })
        .collect()
}

#[cfg(test)]
mod tests;
