//! The PostgreSQL engine (cluster mode): the same `EventStore` on tables in one schema.
//!
//! - A group commit is one transaction, acknowledged after COMMIT; appends go in as one
//!   multi-row insert (`UNNEST` of arrays), not a statement per event.
//! - Offsets come from one counter row (`meta`), taken with `UPDATE … RETURNING` at the start of
//!   the transaction and held until COMMIT. Two transactions with appends therefore commit in
//!   offset order, so a reader tailing by offset can never skip a row that commits late (the
//!   classic trap of tailing a shared table by a sequence). The cost: commits with appends are
//!   serialised across the cluster (one at a time, each one fsync); group commit amortises it.
//! - Per-stream seq uniqueness is a key (`events_stream_seq`). Each event row keeps the epoch
//!   of the lease it was written under (`epoch`, 0 without fencing): along a stream's seqs the
//!   epochs never go down, which an audit can check.
//! - Fencing (`Fence`): a transaction that appends to, or snapshots, a stream first locks the
//!   lease rows of the shards it writes (`FOR SHARE`) and checks that this node holds each one
//!   at the epoch it believes; a node whose lease was taken cannot commit.
//!
//! The trait is synchronous (the writer thread calls it); the store runs tokio-postgres on its
//! own small runtime and waits on it, so it can be called from any thread.

use super::store::{decode_stored, head_of, EventStore, Snapshot, StoreError, StoredEvent};
use super::store::{StreamLoad, ViewEntry, WriteOp};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use tokio_postgres::types::ToSql;

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
    schema: String,
    last_offset: AtomicU64,
    fence: RwLock<Option<Arc<dyn Fence>>>,
}

fn pg_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Engine(format!("postgres: {e}"))
}

/// tokio-postgres errors name the server's message only in their source: show it.
fn db_err(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => pg_err(format!("{} ({})", db.message(), db.code().code())),
        None => pg_err(e),
    }
}

/// A session idle inside a transaction this long is ended by the server, releasing its locks.
/// Kept below the shortest lease (`cluster.lease_ttl_s` ≥ 2 s).
pub const IDLE_IN_TX_MS: u64 = 1500;

/// The tables, created once per schema (under an advisory lock: nodes start together).
const SCHEMA_SQL: &str = r#"
CREATE TABLE IF NOT EXISTS meta (id INT PRIMARY KEY, last_offset BIGINT NOT NULL);
INSERT INTO meta VALUES (1, 0) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS events (
    off BIGINT PRIMARY KEY,
    stream_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    frame BYTEA NOT NULL,
    epoch BIGINT NOT NULL DEFAULT 0,
    CONSTRAINT events_stream_seq UNIQUE (stream_id, seq));
CREATE TABLE IF NOT EXISTS snapshots (stream_id TEXT PRIMARY KEY, seq BIGINT NOT NULL, state BYTEA NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (name TEXT PRIMARY KEY, off BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS views (view TEXT NOT NULL, key BYTEA NOT NULL, value BYTEA NOT NULL, PRIMARY KEY (view, key));
CREATE TABLE IF NOT EXISTS members (node_id TEXT PRIMARY KEY, url TEXT NOT NULL, heartbeat_at TIMESTAMPTZ NOT NULL);
CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, epoch BIGINT NOT NULL, expires_at TIMESTAMPTZ NOT NULL);
"#;

/// Whether `schema` is a plain identifier (it is put into SQL and the search path).
pub fn valid_schema(schema: &str) -> bool {
    !schema.is_empty()
        && schema.len() <= 63
        && schema.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

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
        let mut cfg: tokio_postgres::Config = url
            .parse()
            .map_err(|e| open_err(format!("store.url is not a libpq connection string: {e}")))?;
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
            new_pool(&cfg, pool_size).map_err(|e| open_err(e.to_string()))?
        };
        let store = PgStore {
            rt: Some(rt),
            pool,
            config: cfg,
            schema: schema.to_string(),
            last_offset: AtomicU64::new(0),
            fence: RwLock::new(None),
        };
        let schema = store.schema.clone();
        store
            .run(move |pool| async move {
                let mut client = pool.get().await.map_err(pg_err)?;
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
        store.last_offset();
        Ok(store)
    }

    /// Check leases in every write from now on.
    pub fn set_fence(&self, fence: Arc<dyn Fence>) {
        *self.fence.write().expect("fence lock poisoned") = Some(fence);
    }

    /// A separate pool on the same server, for async callers on another runtime (the lease
    /// loop). The store's own pool is only used on its runtime: a connection's driver task
    /// lives on the runtime that made it, and a thread blocked in a store call must never wait
    /// for a connection whose driver needs that thread.
    pub fn new_pool(&self, size: usize) -> Result<Pool, StoreError> {
        new_pool(&self.config, size).map_err(pg_err)
    }

    pub fn schema(&self) -> &str {
        &self.schema
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
        rx.recv().expect("the store's runtime dropped a task")
    }
}

fn new_pool(cfg: &tokio_postgres::Config, size: usize) -> Result<Pool, String> {
    let manager = Manager::from_config(
        cfg.clone(),
        tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
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

/// Which leases a write needs, by name, with the epoch this node holds each at.
fn required_leases(
    fence: &dyn Fence,
    ops: &[WriteOp],
) -> Result<BTreeMap<String, i64>, StoreError> {
    let mut need = BTreeMap::new();
    for op in ops {
        let lease = match op {
            WriteOp::Append(e) => Some(fence.lease_for_stream(&e.stream_id)),
            WriteOp::Snapshot(s) => Some(fence.lease_for_stream(&s.stream_id)),
            WriteOp::Checkpoint { name, .. } => fence.lease_for_view(name),
            WriteOp::PutView { view, .. } | WriteOp::RemoveView { view, .. } => {
                fence.lease_for_view(view)
            }
            WriteOp::Remove { .. } => None,
        };
        if let Some(lease) = lease {
            if need.contains_key(&lease) {
                continue;
            }
            let Some(epoch) = fence.held_epoch(&lease) else {
                return Err(StoreError::Fenced {
                    lease,
                    reason: "this node does not hold it".into(),
                });
            };
            need.insert(lease, epoch);
        }
    }
    Ok(need)
}

/// Consecutive ops of one kind, applied as one statement each.
#[derive(Default)]
struct Run {
    snapshots: BTreeMap<String, (i64, Vec<u8>)>,
    checkpoints: BTreeMap<String, i64>,
    removes: Vec<i64>,
    puts: BTreeMap<(String, Vec<u8>), Vec<u8>>,
    unputs: Vec<(String, Vec<u8>)>,
}

impl Run {
    fn kind(op: &WriteOp) -> u8 {
        match op {
            WriteOp::Append(_) => 0,
            WriteOp::Snapshot(_) => 1,
            WriteOp::Checkpoint { .. } => 2,
            WriteOp::Remove { .. } => 3,
            WriteOp::PutView { .. } => 4,
            WriteOp::RemoveView { .. } => 5,
        }
    }

    async fn flush(&mut self, tx: &tokio_postgres::Transaction<'_>) -> Result<(), StoreError> {
        if !self.snapshots.is_empty() {
            let (ids, rest): (Vec<String>, Vec<(i64, Vec<u8>)>) =
                std::mem::take(&mut self.snapshots).into_iter().unzip();
            let (seqs, states): (Vec<i64>, Vec<Vec<u8>>) = rest.into_iter().unzip();
            tx.execute(
                "INSERT INTO snapshots (stream_id, seq, state) \
                 SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bytea[]) \
                 ON CONFLICT (stream_id) DO UPDATE SET seq = EXCLUDED.seq, state = EXCLUDED.state",
                &[&ids, &seqs, &states],
            )
            .await
            .map_err(db_err)?;
        }
        if !self.checkpoints.is_empty() {
            let (names, offs): (Vec<String>, Vec<i64>) =
                std::mem::take(&mut self.checkpoints).into_iter().unzip();
            tx.execute(
                "INSERT INTO checkpoints (name, off) SELECT * FROM UNNEST($1::text[], $2::bigint[]) \
                 ON CONFLICT (name) DO UPDATE SET off = EXCLUDED.off",
                &[&names, &offs],
            )
            .await
            .map_err(db_err)?;
        }
        if !self.removes.is_empty() {
            let offs = std::mem::take(&mut self.removes);
            tx.execute("DELETE FROM events WHERE off = ANY($1)", &[&offs])
                .await
                .map_err(db_err)?;
        }
        if !self.puts.is_empty() {
            let puts = std::mem::take(&mut self.puts);
            let mut views = Vec::with_capacity(puts.len());
            let mut keys = Vec::with_capacity(puts.len());
            let mut values = Vec::with_capacity(puts.len());
            for ((view, key), value) in puts {
                views.push(view);
                keys.push(key);
                values.push(value);
            }
            tx.execute(
                "INSERT INTO views (view, key, value) \
                 SELECT * FROM UNNEST($1::text[], $2::bytea[], $3::bytea[]) \
                 ON CONFLICT (view, key) DO UPDATE SET value = EXCLUDED.value",
                &[&views, &keys, &values],
            )
            .await
            .map_err(db_err)?;
        }
        if !self.unputs.is_empty() {
            let (views, keys): (Vec<String>, Vec<Vec<u8>>) =
                std::mem::take(&mut self.unputs).into_iter().unzip();
            tx.execute(
                "DELETE FROM views WHERE (view, key) IN \
                 (SELECT * FROM UNNEST($1::text[], $2::bytea[]))",
                &[&views, &keys],
            )
            .await
            .map_err(db_err)?;
        }
        Ok(())
    }
}

/// What a fenced write checks: this node, the leases it needs at their epochs, and the epoch
/// each append is written under.
struct FenceCheck {
    node: String,
    need: BTreeMap<String, i64>,
    append_epochs: Vec<i64>,
}

async fn write_tx(
    pool: Pool,
    ops: Vec<WriteOp>,
    fence: Option<FenceCheck>,
) -> Result<Vec<u64>, StoreError> {
    let mut client = pool.get().await.map_err(pg_err)?;
    let tx = client.transaction().await.map_err(db_err)?;
    if let Some(FenceCheck { node, need, .. }) = &fence {
        let names: Vec<&str> = need.keys().map(String::as_str).collect();
        let rows = tx
            .query(
                "SELECT name, epoch FROM leases WHERE name = ANY($1) AND holder = $2 \
                 AND expires_at > clock_timestamp() FOR SHARE",
                &[&names, node],
            )
            .await
            .map_err(db_err)?;
        let held: BTreeMap<String, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        for (lease, epoch) in need {
            if held.get(lease) != Some(epoch) {
                return Err(StoreError::Fenced {
                    lease: lease.clone(),
                    reason: match held.get(lease) {
                        Some(e) => format!("held at epoch {e}, not {epoch}"),
                        None => "lapsed or taken by another node".into(),
                    },
                });
            }
        }
    }
    let appends = ops
        .iter()
        .filter(|op| matches!(op, WriteOp::Append(_)))
        .count() as i64;
    let mut offsets = Vec::with_capacity(appends as usize);
    if appends > 0 {
        let row = tx
            .query_one(
                "UPDATE meta SET last_offset = last_offset + $1 WHERE id = 1 RETURNING last_offset",
                &[&appends],
            )
            .await
            .map_err(db_err)?;
        let last: i64 = row.get(0);
        let first = last - appends + 1;
        let (mut offs, mut streams, mut seqs, mut frames) = (
            Vec::with_capacity(appends as usize),
            Vec::with_capacity(appends as usize),
            Vec::with_capacity(appends as usize),
            Vec::with_capacity(appends as usize),
        );
        for (i, e) in ops
            .iter()
            .filter_map(|op| match op {
                WriteOp::Append(e) => Some(e),
                _ => None,
            })
            .enumerate()
        {
            offs.push(first + i as i64);
            streams.push(e.stream_id.as_str());
            seqs.push(e.seq as i64);
            frames.push(e.frame.as_slice());
        }
        let epochs = match &fence {
            Some(f) => f.append_epochs.clone(),
            None => vec![0; offs.len()],
        };
        let params: [&(dyn ToSql + Sync); 5] = [&offs, &streams, &seqs, &frames, &epochs];
        tx.execute(
            "INSERT INTO events (off, stream_id, seq, frame, epoch) \
             SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::bytea[], $5::bigint[])",
            &params,
        )
        .await
        .map_err(|e| match e.as_db_error() {
            Some(db) if db.constraint() == Some("events_stream_seq") => StoreError::Engine(format!(
                "postgres: another writer appended to one of these streams ({})",
                db.detail().unwrap_or(db.message())
            )),
            _ => db_err(e),
        })?;
        offsets.extend(offs.into_iter().map(|o| o as u64));
    }
    let mut run = Run::default();
    let mut kind = None;
    for op in ops {
        let k = Run::kind(&op);
        if kind != Some(k) {
            run.flush(&tx).await?;
            kind = Some(k);
        }
        match op {
            WriteOp::Append(_) => {}
            WriteOp::Snapshot(s) => {
                run.snapshots.insert(s.stream_id, (s.seq as i64, s.state));
            }
            WriteOp::Checkpoint { name, offset } => {
                run.checkpoints.insert(name, offset as i64);
            }
            WriteOp::Remove { offset, .. } => run.removes.push(offset as i64),
            WriteOp::PutView { view, key, value } => {
                run.puts.insert((view, key), value);
            }
            WriteOp::RemoveView { view, key } => {
                run.puts.remove(&(view.clone(), key.clone()));
                run.unputs.push((view, key));
            }
        }
    }
    run.flush(&tx).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(offsets)
}

impl EventStore for PgStore {
    fn admit(&self, ops: &[WriteOp]) -> Result<(), StoreError> {
        match self.fence.read().expect("fence lock poisoned").as_ref() {
            Some(f) => required_leases(f.as_ref(), ops).map(|_| ()),
            None => Ok(()),
        }
    }

    fn write(&self, ops: &[WriteOp]) -> Result<Vec<u64>, StoreError> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let fence = self.fence.read().expect("fence lock poisoned").clone();
        let fence = match fence {
            Some(f) => {
                let need = required_leases(f.as_ref(), ops)?;
                let append_epochs = ops
                    .iter()
                    .filter_map(|op| match op {
                        WriteOp::Append(e) => Some(
                            need.get(&f.lease_for_stream(&e.stream_id))
                                .copied()
                                .unwrap_or(0),
                        ),
                        _ => None,
                    })
                    .collect();
                Some(FenceCheck {
                    node: f.node_id().to_string(),
                    need,
                    append_epochs,
                })
            }
            None => None,
        };
        let ops = ops.to_vec();
        let offsets = self.run(move |pool| write_tx(pool, ops, fence))?;
        if let Some(last) = offsets.last() {
            self.last_offset.fetch_max(*last, Ordering::Relaxed);
        }
        Ok(offsets)
    }

    fn read_stream(
        &self,
        stream_id: &str,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let stream_id = stream_id.to_string();
        let rows = self.run(move |pool| async move {
            let client = pool.get().await.map_err(pg_err)?;
            client
                .query(
                    "SELECT off, frame FROM events WHERE stream_id = $1 AND seq >= $2 \
                     ORDER BY seq LIMIT $3",
                    &[
                        &stream_id,
                        &(from_seq.min(i64::MAX as u64) as i64),
                        &(limit as i64),
                    ],
                )
                .await
                .map_err(db_err)
        })?;
        decode_rows(&rows)
    }

    fn read_from(&self, from_offset: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = self.run(move |pool| async move {
            let client = pool.get().await.map_err(pg_err)?;
            client
                .query(
                    "SELECT off, frame FROM events WHERE off >= $1 ORDER BY off LIMIT $2",
                    &[&(from_offset.min(i64::MAX as u64) as i64), &(limit as i64)],
                )
                .await
                .map_err(db_err)
        })?;
        decode_rows(&rows)
    }

    fn stream_head(&self, stream_id: &str) -> Result<u64, StoreError> {
        let id = stream_id.to_string();
        let row = self.run(move |pool| async move {
            let client = pool.get().await.map_err(pg_err)?;
            client
                .query_one(
                    "SELECT (SELECT max(seq) FROM events WHERE stream_id = $1), \
                            (SELECT seq FROM snapshots WHERE stream_id = $1)",
                    &[&id],
                )
                .await
                .map_err(db_err)
        })?;
        let index: Option<i64> = row.get(0);
        let snap: Option<i64> = row.get(1);
        let snapshot = snap.map(|seq| Snapshot {
            stream_id: stream_id.to_string(),
            seq: seq as u64,
            state: Vec::new(),
        });
        Ok(head_of(index.map(|s| s as u64), snapshot.as_ref()))
    }

    fn load_stream(&self, stream_id: &str, limit: usize) -> Result<StreamLoad, StoreError> {
        let id = stream_id.to_string();
        let rows = self.run(move |pool| async move {
            let client = pool.get().await.map_err(pg_err)?;
            client
                .query(
                    "SELECT 0, s.seq, s.state, 0::bigint FROM snapshots s WHERE s.stream_id = $1                      UNION ALL                      (SELECT 1, e.seq, e.frame, e.off FROM events e WHERE e.stream_id = $1                         AND e.seq > coalesce((SELECT seq FROM snapshots WHERE stream_id = $1), 0)                         ORDER BY e.seq LIMIT $2)                      UNION ALL                      SELECT 2, coalesce(max(seq), 0), NULL::bytea, 0::bigint FROM events WHERE stream_id = $1",
                    &[&id, &(limit as i64)],
                )
                .await
                .map_err(db_err)
        })?;
        let mut load = StreamLoad {
            snapshot: None,
            events: Vec::new(),
            head: 0,
        };
        for r in &rows {
            let seq = r.get::<_, i64>(1) as u64;
            match r.get::<_, i32>(0) {
                0 => {
                    load.snapshot = Some(Snapshot {
                        stream_id: stream_id.to_string(),
                        seq,
                        state: r.get(2),
                    })
                }
                1 => load
                    .events
                    .push(decode_stored(r.get::<_, i64>(3) as u64, r.get(2))?),
                _ => load.head = seq,
            }
        }
        load.events.sort_by_key(|e| e.record.seq);
        load.head = head_of(Some(load.head), load.snapshot.as_ref());
        Ok(load)
    }

    fn last_offset(&self) -> u64 {
        let read = self.run(|pool| async move {
            let client = pool.get().await.map_err(pg_err)?;
            let row = client
                .query_one("SELECT last_offset FROM meta WHERE id = 1", &[])
                .await
                .map_err(db_err)?;
            Ok::<i64, StoreError>(row.get(0))
        });
        match read {
            Ok(last) => {
                self.last_offset.fetch_max(last as u64, Ordering::Relaxed);
            }
            Err(e) => tracing::warn!(error = %e, "reading the last offset; using the last known"),
        }
        self.last_offset.load(Ordering::Relaxed)
    }

    fn snapshot(&self, stream_id: &str) -> Result<Option<Snapshot>, StoreError> {
        let id = stream_id.to_string();
        let row = self.run(move |pool| async move {
            let client = pool.get().await.map_err(pg_err)?;
            client
                .query_opt(
                    "SELECT seq, state FROM snapshots WHERE stream_id = $1",
                    &[&id],
                )
                .await
                .map_err(db_err)
        })?;
        Ok(row.map(|r| Snapshot {
            stream_id: stream_id.to_string(),
            seq: r.get::<_, i64>(0) as u64,
            state: r.get(1),
        }))
    }

    fn checkpoint(&self, name: &str) -> Result<Option<u64>, StoreError> {
        let name = name.to_string();
        let row = self.run(move |pool| async move {
            let client = pool.get().await.map_err(pg_err)?;
            client
                .query_opt("SELECT off FROM checkpoints WHERE name = $1", &[&name])
                .await
                .map_err(db_err)
        })?;
        Ok(row.map(|r| r.get::<_, i64>(0) as u64))
    }

    fn scan_view(
        &self,
        view: &str,
        from_key: &[u8],
        limit: usize,
    ) -> Result<Vec<ViewEntry>, StoreError> {
        let (view, from) = (view.to_string(), from_key.to_vec());
        let rows = self.run(move |pool| async move {
            let client = pool.get().await.map_err(pg_err)?;
            client
                .query(
                    "SELECT key, value FROM views WHERE view = $1 AND key >= $2 \
                     ORDER BY key LIMIT $3",
                    &[&view, &from, &(limit as i64)],
                )
                .await
                .map_err(db_err)
        })?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn disk_bytes(&self) -> u64 {
        let schema = self.schema.clone();
        let bytes = self.run(move |pool| async move {
            let client = pool.get().await.map_err(pg_err)?;
            let row = client
                .query_one(
                    "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint \
                     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = $1 AND c.relkind = 'r'",
                    &[&schema],
                )
                .await
                .map_err(db_err)?;
            Ok::<i64, StoreError>(row.get(0))
        });
        bytes.map_or(0, |b| b.max(0) as u64)
    }

    fn engine(&self) -> &'static str {
        "postgres"
    }
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
mod tests {
    use super::*;
    use crate::events::conformance::pg_test_url;
    use crate::events::store::test_append;

    fn open(schema: &str) -> Option<PgStore> {
        let url = pg_test_url()?;
        let schema = format!("{schema}_{}", std::process::id());
        Some(PgStore::open(&url, &schema, 4).expect("open postgres"))
    }

    /// Given two nodes appending to one log at once, when a third tails it by offset, then it
    /// sees every offset, in order, with no gap that fills in later.
    #[test]
    fn a_reader_tailing_by_offset_never_skips_a_late_commit() {
        let Some(a) = open("tail") else { return };
        let b = open("tail").expect("second node");
        let reader = open("tail").expect("reader");
        let writers: Vec<_> = [a, b]
            .into_iter()
            .enumerate()
            .map(|(n, store)| {
                std::thread::spawn(move || {
                    for seq in 1..=200u64 {
                        let ops: Vec<_> = (0..5)
                            .map(|k| test_append(&format!("w{n}-{k}"), seq))
                            .collect();
                        store.write(&ops).expect("append");
                    }
                })
            })
            .collect();
        let mut seen = 0u64;
        while seen < 2000 {
            for e in reader.read_from(seen + 1, 10_000).expect("tail") {
                assert_eq!(e.offset, seen + 1, "the tail skipped an offset");
                seen = e.offset;
            }
        }
        for w in writers {
            w.join().expect("writer");
        }
        assert_eq!(reader.last_offset(), 2000);
    }

    struct Holds(Vec<(String, i64)>);

    impl Fence for Holds {
        fn lease_for_stream(&self, stream_id: &str) -> String {
            format!("stream/{stream_id}")
        }
        fn lease_for_view(&self, _view: &str) -> Option<String> {
            None
        }
        fn held_epoch(&self, lease: &str) -> Option<i64> {
            self.0.iter().find(|(l, _)| l == lease).map(|(_, e)| *e)
        }
        fn node_id(&self) -> &str {
            "n1"
        }
    }

    fn set_lease(store: &PgStore, holder: &'static str, epoch: i64) {
        store
            .run(move |pool| async move {
                let client = pool.get().await.expect("connection");
                client
                    .execute(
                        "INSERT INTO leases VALUES ('stream/a', $1, $2, clock_timestamp() + interval '1 minute') \
                         ON CONFLICT (name) DO UPDATE SET holder = $1, epoch = $2, expires_at = EXCLUDED.expires_at",
                        &[&holder, &epoch],
                    )
                    .await
                    .expect("lease row");
            });
    }

    /// Given a node holding stream a's lease at epoch 1, when another node takes it (epoch 2),
    /// then the first node's next write fails as fenced and writes nothing.
    #[test]
    fn a_write_under_a_lease_taken_by_another_node_is_fenced() {
        let Some(store) = open("fence") else { return };
        store.set_fence(Arc::new(Holds(vec![("stream/a".into(), 1)])));
        set_lease(&store, "n1", 1);
        store.write(&[test_append("a", 1)]).expect("held lease");
        set_lease(&store, "n2", 2);
        let err = store.write(&[test_append("a", 2)]).expect_err("fenced");
        assert!(matches!(err, StoreError::Fenced { .. }), "{err}");
        assert_eq!(store.stream_head("a").expect("head"), 1);
        // A stream whose lease this node never held is refused before the database is asked.
        let err = store.write(&[test_append("b", 1)]).expect_err("not held");
        assert!(matches!(err, StoreError::Fenced { .. }), "{err}");
    }
}
