//! One group commit as one PostgreSQL transaction in one round trip: BEGIN, the fencing check,
//! the transaction id, the appends (one statement), the other operations in runs of one
//! statement each, and COMMIT, pipelined. Every statement is prepared once per connection.
//! A statement that fails aborts the transaction: the ones after it fail too and COMMIT rolls
//! back; the first error is the one returned.

use super::{db_err, pool_err, Fence, Params};
use crate::events::store::{StoreError, WriteOp};
use deadpool_postgres::Pool;
use std::collections::BTreeMap;
use tokio_postgres::types::ToSql;

/// What a write must check, in one pass over its ops: the leases it needs with the epoch this
/// node holds each at, and the epoch each append is written under. Refused at once when this
/// node does not hold one of them.
pub(super) fn fence_check(fence: &dyn Fence, ops: &[WriteOp]) -> Result<FenceCheck, StoreError> {
    let mut check = FenceCheck {
        node: fence.node_id().to_string(),
        need: BTreeMap::new(),
        append_epochs: Vec::new(),
    };
    // An actor's request holds one stream's events together: look its lease up once.
    let mut last: Option<(&str, i64)> = None;
    for op in ops {
        let lease = match op {
            WriteOp::Append(e) => {
                if let Some((_, epoch)) = last.filter(|(s, _)| *s == e.stream_id) {
                    check.append_epochs.push(epoch);
                    continue;
                }
                Some(fence.lease_for_stream(&e.stream_id))
            }
            WriteOp::Snapshot(s) => Some(fence.lease_for_stream(&s.stream_id)),
            WriteOp::Checkpoint { name, .. } => fence.lease_for_view(name),
            WriteOp::PutView { view, .. } | WriteOp::RemoveView { view, .. } => {
                fence.lease_for_view(view)
            }
            WriteOp::Remove { .. } => None,
        };
        let Some(lease) = lease else { continue };
        let epoch = match check.need.get(&lease) {
            Some(epoch) => *epoch,
            None => {
                let Some(epoch) = fence.held_epoch(&lease) else {
                    return Err(StoreError::Fenced {
                        lease,
                        reason: "this node does not hold it".into(),
                    });
                };
                check.need.insert(lease, epoch);
                epoch
            }
        };
        if let WriteOp::Append(e) = op {
            check.append_epochs.push(epoch);
            last = Some((&e.stream_id, epoch));
        }
    }
    Ok(check)
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

    /// The statements that apply the run, in order; the run is left empty.
    fn flush(&mut self, out: &mut Vec<Stmt>) {
        if !self.snapshots.is_empty() {
            let (ids, rest): (Vec<String>, Vec<(i64, Vec<u8>)>) =
                std::mem::take(&mut self.snapshots).into_iter().unzip();
            let (seqs, states): (Vec<i64>, Vec<Vec<u8>>) = rest.into_iter().unzip();
            out.push(Stmt::new(
                "INSERT INTO snapshots (stream_id, seq, state) \
                 SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bytea[]) \
                 ON CONFLICT (stream_id) DO UPDATE SET seq = EXCLUDED.seq, state = EXCLUDED.state",
                vec![Box::new(ids), Box::new(seqs), Box::new(states)],
            ));
        }
        if !self.checkpoints.is_empty() {
            let (names, offs): (Vec<String>, Vec<i64>) =
                std::mem::take(&mut self.checkpoints).into_iter().unzip();
            out.push(Stmt::new(
                "INSERT INTO checkpoints (name, off) SELECT * FROM UNNEST($1::text[], $2::bigint[]) \
                 ON CONFLICT (name) DO UPDATE SET off = EXCLUDED.off",
                vec![Box::new(names), Box::new(offs)],
            ));
        }
        if !self.removes.is_empty() {
            let offs = std::mem::take(&mut self.removes);
            out.push(Stmt::new(
                "DELETE FROM events WHERE off = ANY($1)",
                vec![Box::new(offs)],
            ));
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
            out.push(Stmt::new(
                "INSERT INTO views (view, key, value) \
                 SELECT * FROM UNNEST($1::text[], $2::bytea[], $3::bytea[]) \
                 ON CONFLICT (view, key) DO UPDATE SET value = EXCLUDED.value",
                vec![Box::new(views), Box::new(keys), Box::new(values)],
            ));
        }
        if !self.unputs.is_empty() {
            let (views, keys): (Vec<String>, Vec<Vec<u8>>) =
                std::mem::take(&mut self.unputs).into_iter().unzip();
            out.push(Stmt::new(
                "DELETE FROM views WHERE (view, key) IN \
                 (SELECT * FROM UNNEST($1::text[], $2::bytea[]))",
                vec![Box::new(views), Box::new(keys)],
            ));
        }
    }
}

/// One statement of the pipeline, with its parameters.
struct Stmt {
    sql: &'static str,
    params: Params,
}

impl Stmt {
    fn new(sql: &'static str, params: Params) -> Stmt {
        Stmt { sql, params }
    }
}

/// What a fenced write checks: this node, the leases it needs at their epochs, and the epoch
/// each append is written under.
pub(super) struct FenceCheck {
    pub node: String,
    pub need: BTreeMap<String, i64>,
    pub append_epochs: Vec<i64>,
}

/// The appends of `ops`, in order, as one statement: each row's offset from the sequence (in
/// the appends' order), returned.
pub(super) const APPEND_SQL: &str = "INSERT INTO events (off, stream_id, seq, frame, epoch) \
     SELECT nextval('event_offsets'), u.s, u.q, u.f, u.e \
     FROM UNNEST($1::text[], $2::bigint[], $3::bytea[], $4::bigint[]) \
          WITH ORDINALITY AS u(s, q, f, e, n) ORDER BY u.n \
     RETURNING off";

/// Before the appends take offsets, the transaction takes its id (the watermark's rule).
pub(super) const XID_SQL: &str = "SELECT pg_current_xact_id()::text";

fn append_stmt(ops: &[WriteOp], fence: Option<&FenceCheck>) -> Option<Stmt> {
    let (mut streams, mut seqs, mut frames) = (Vec::new(), Vec::new(), Vec::new());
    for e in ops.iter().filter_map(|op| match op {
        WriteOp::Append(e) => Some(e),
        _ => None,
    }) {
        streams.push(e.stream_id.clone());
        seqs.push(e.seq as i64);
        frames.push(e.frame.clone());
    }
    if streams.is_empty() {
        return None;
    }
    let epochs = match fence {
        Some(f) => f.append_epochs.clone(),
        None => vec![0i64; streams.len()],
    };
    Some(Stmt::new(
        APPEND_SQL,
        vec![
            Box::new(streams),
            Box::new(seqs),
            Box::new(frames),
            Box::new(epochs),
        ],
    ))
}

fn append_err(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) if db.constraint() == Some("events_stream_seq") => StoreError::Engine(format!(
            "postgres: another writer appended to one of these streams ({})",
            db.detail().unwrap_or(db.message())
        )),
        _ => db_err(e),
    }
}

/// New streams of a write, and the lease each is written under, for the directory.
pub(super) type NewStreams = (Vec<String>, Vec<String>);

pub(super) async fn write_tx(
    pool: Pool,
    ops: Vec<WriteOp>,
    fence: Option<FenceCheck>,
    new_streams: NewStreams,
) -> Result<Vec<u64>, StoreError> {
    let client = pool.get().await.map_err(pool_err)?;
    let mut stmts = Vec::new();
    if let Some(FenceCheck { node, need, .. }) = &fence {
        let (names, epochs): (Vec<String>, Vec<i64>) =
            need.iter().map(|(l, e)| (l.clone(), *e)).unzip();
        stmts.push(Stmt::new(
            "SELECT fence_check($1, $2, $3)",
            vec![Box::new(node.clone()), Box::new(names), Box::new(epochs)],
        ));
    }
    let append_at = append_stmt(&ops, fence.as_ref()).map(|append| {
        stmts.push(Stmt::new(XID_SQL, Vec::new()));
        stmts.push(append);
        stmts.len() - 1
    });
    let mut run = Run::default();
    let mut kind = None;
    for op in ops {
        let k = Run::kind(&op);
        if kind != Some(k) {
            run.flush(&mut stmts);
            kind = Some(k);
        }
        match op {
            WriteOp::Append(_) => {}
            WriteOp::Snapshot(s) => {
                run.snapshots.insert(s.stream_id, (s.seq as i64, s.state));
            }
            WriteOp::Checkpoint { name, offset } => {
                run.checkpoints.insert(super::pg_text(&name), offset as i64);
            }
            WriteOp::Remove { offset, .. } => run.removes.push(offset as i64),
            WriteOp::PutView { view, key, value } => {
                run.puts.insert((view, key), value);
            }
            WriteOp::RemoveView { view, key } => run.unputs.push((view, key)),
        }
    }
    run.flush(&mut stmts);
    if !new_streams.0.is_empty() {
        stmts.push(Stmt::new(
            "INSERT INTO streams (stream_id, lease) SELECT * FROM UNNEST($1::text[], $2::text[]) \
             ON CONFLICT (stream_id) DO UPDATE SET lease = EXCLUDED.lease \
             WHERE streams.lease IS DISTINCT FROM EXCLUDED.lease",
            vec![Box::new(new_streams.0), Box::new(new_streams.1)],
        ));
    }
    let mut prepared = Vec::with_capacity(stmts.len());
    for s in &stmts {
        prepared.push(client.prepare_cached(s.sql).await.map_err(db_err)?);
    }
    let params: Vec<Vec<&(dyn ToSql + Sync)>> = stmts
        .iter()
        .map(|s| {
            s.params
                .iter()
                .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                .collect()
        })
        .collect();
    // Every request is sent on the first poll, in order (one round trip); the answers come
    // back in the same order.
    let begin = client.batch_execute("BEGIN");
    let queries = futures_util::future::join_all(
        prepared
            .iter()
            .zip(&params)
            .map(|(stmt, params)| client.query(stmt, params)),
    );
    let commit = client.batch_execute("COMMIT");
    let (begun, answers, committed) = tokio::join!(begin, queries, commit);
    begun.map_err(db_err)?;
    let mut offsets = Vec::new();
    for (i, answer) in answers.into_iter().enumerate() {
        let rows = match answer {
            Ok(rows) => rows,
            Err(e) if Some(i) == append_at => return Err(append_err(e)),
            Err(e) => return Err(db_err(e)),
        };
        if Some(i) == append_at {
            offsets = rows.iter().map(|r| r.get::<_, i64>(0) as u64).collect();
        }
    }
    committed.map_err(db_err)?;
    Ok(offsets)
}

impl super::PgStore {
    /// `EventStore::write`: the fencing check here, the transaction (`write_tx`), then what
    /// this store learnt (its own last offset, the streams' heads).
    pub(super) fn write_ops(&self, ops: &[WriteOp]) -> Result<Vec<u64>, StoreError> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let fence = self.fence.read().expect("fence lock poisoned").clone();
        let fence = match fence {
            Some(f) => Some(fence_check(f.as_ref(), ops)?),
            None => None,
        };
        // The streams this write appends to (a group commit holds thousands), each once, with
        // its lease; the ones the directory may lack go in with the write.
        let mut appended: Vec<(&str, u64, String)> = Vec::new();
        let mut index: rustc_hash::FxHashMap<&str, usize> = rustc_hash::FxHashMap::default();
        for op in ops {
            let WriteOp::Append(e) = op else { continue };
            match index.get(e.stream_id.as_str()) {
                Some(i) => appended[*i].1 = appended[*i].1.max(e.seq),
                None => {
                    index.insert(&e.stream_id, appended.len());
                    appended.push((&e.stream_id, e.seq, self.lease_of(&e.stream_id)));
                }
            }
        }
        let new_streams: NewStreams = {
            let pre = self.preloaded();
            appended
                .iter()
                .filter(|(s, _, _)| !pre.is_known(s))
                .map(|(s, _, l)| (s.to_string(), l.clone()))
                .unzip()
        };
        let ops = ops.to_vec();
        let offsets = match self.run(move |pool| write_tx(pool, ops, fence, new_streams)) {
            Ok(offsets) => offsets,
            Err(e) => {
                // It may have committed all the same (the answer to COMMIT lost): the heads
                // kept here are no longer sure; the database answers from now on.
                self.preloaded().forget();
                return Err(e);
            }
        };
        if let Some(last) = offsets.iter().max() {
            self.written
                .fetch_max(*last, std::sync::atomic::Ordering::Relaxed);
        }
        let mut pre = self.preloaded();
        for (stream, seq, lease) in &appended {
            pre.wrote(stream, *seq, lease);
        }
        Ok(offsets)
    }
}
