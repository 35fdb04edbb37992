//! One group commit as one PostgreSQL transaction in two round trips, each pipelined:
//! 1. BEGIN, the fencing check, the transaction id, the appends' offsets (one statement), and
//!    the batches a removal rewrites;
//! 2. the appends (their raw samples packed into one batch per partition, `batch`; the other
//!    events as rows), the other operations in runs of one statement each, the directory, and
//!    COMMIT.
//!
//! Every statement is prepared once per connection. A statement that fails aborts the
//! transaction: the ones after it fail too and COMMIT rolls back; the first error is returned.

mod plan;

use super::{batch, db_err, pool_err, Fence};
use crate::events::store::{NewEvent, StoreError, WriteOp};
use deadpool_postgres::Pool;
#[cfg(test)]
pub(super) use plan::MAX_SPAN_SQL;
use plan::{plan_rest, Stmt};
use rustc_hash::{FxHashMap, FxHashSet};
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

/// What a fenced write checks: this node, the leases it needs at their epochs, and the epoch
/// each append is written under.
pub(super) struct FenceCheck {
    pub node: String,
    pub need: BTreeMap<String, i64>,
    pub append_epochs: Vec<i64>,
}

/// Before the appends take offsets, the transaction takes its id (the watermark's rule).
pub(super) const XID_SQL: &str = "SELECT pg_current_xact_id()::text";

/// `$1` offsets from the sequence (taken in one statement, so they are close together).
pub(super) const OFFSETS_SQL: &str =
    "SELECT array_agg(nextval('event_offsets')) FROM generate_series(1::bigint, $1::bigint)";

/// The batches that may hold the events removed (partition `$1[i]`, offset `$2[i]`), locked.
const REMOVED_FROM_SQL: &str = "SELECT b.first_off, b.epochs, b.data FROM batches b \
     WHERE b.first_off IN (SELECT c.first_off FROM UNNEST($1::smallint[], $2::bigint[]) AS r(p, o) \
       CROSS JOIN LATERAL (SELECT first_off FROM batches WHERE part = r.p AND last_off >= r.o \
         AND last_off <= r.o + (SELECT max_span FROM meta WHERE id = 1) AND first_off <= r.o) c) \
     FOR UPDATE";

fn append_err(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) if db.constraint() == Some("events_stream_seq") => StoreError::Engine(format!(
            "postgres: another writer appended to one of these streams ({})",
            db.detail().unwrap_or(db.message())
        )),
        _ => db_err(e),
    }
}

/// What `write_tx` needs besides the ops.
pub(super) struct WriteInput {
    pub ops: Vec<WriteOp>,
    pub fence: Option<FenceCheck>,
    /// The appended streams the directory may lack (or may lack where their packed events
    /// start): each one's lease, and whether the directory has it (`Some(false)`).
    pub streams: FxHashMap<String, (String, Option<bool>)>,
    /// For each snapshot's stream, the last event this store wrote to it (seq, offset).
    pub last_written: FxHashMap<String, (u64, u64)>,
}

/// What a committed write took: the appends' offsets, and the streams it packed events of.
pub(super) struct Written {
    pub offsets: Vec<u64>,
    pub packed: Vec<(String, u64)>,
}

/// Send `stmts` in one round trip (with BEGIN first and COMMIT last when asked), and wait for
/// every answer. A statement's failure is returned with its index.
async fn pipeline(
    client: &deadpool_postgres::Client,
    stmts: &[Stmt],
    begin: bool,
    commit: bool,
) -> Result<Vec<Vec<tokio_postgres::Row>>, (Option<usize>, tokio_postgres::Error)> {
    let mut prepared = Vec::with_capacity(stmts.len());
    for s in stmts {
        prepared.push(client.prepare_cached(s.sql).await.map_err(|e| (None, e))?);
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
    let begin = async {
        if begin {
            client.batch_execute("BEGIN").await
        } else {
            Ok(())
        }
    };
    let queries = futures_util::future::join_all(
        prepared
            .iter()
            .zip(&params)
            .map(|(stmt, params)| client.query(stmt, params)),
    );
    let commit = async {
        if commit {
            client.batch_execute("COMMIT").await
        } else {
            Ok(())
        }
    };
    let (begun, answers, committed) = tokio::join!(begin, queries, commit);
    begun.map_err(|e| (None, e))?;
    let mut out = Vec::with_capacity(answers.len());
    for (i, answer) in answers.into_iter().enumerate() {
        out.push(answer.map_err(|e| (Some(i), e))?);
    }
    committed.map_err(|e| (None, e))?;
    Ok(out)
}

/// One group commit in two round trips: the check and the offsets, then everything else.
/// Between them the appends are packed into batches (`batch`).
pub(super) async fn write_tx(pool: Pool, input: WriteInput) -> Result<Written, StoreError> {
    let client = pool.get().await.map_err(pool_err)?;
    let WriteInput {
        ops,
        fence,
        streams,
        last_written,
    } = input;
    let appends: Vec<&NewEvent> = ops
        .iter()
        .filter_map(|op| match op {
            WriteOp::Append(e) => Some(e),
            _ => None,
        })
        .collect();
    let removed: Vec<(i16, i64)> = ops
        .iter()
        .filter_map(|op| match op {
            WriteOp::Remove {
                offset, stream_id, ..
            } => Some((batch::part_of(stream_id), *offset as i64)),
            _ => None,
        })
        .collect();
    // Round trip 1: BEGIN, the fencing check, the transaction id, the offsets, the batches
    // that removals rewrite.
    let mut first = Vec::new();
    if let Some(FenceCheck { node, need, .. }) = &fence {
        let (names, epochs): (Vec<String>, Vec<i64>) =
            need.iter().map(|(l, e)| (l.clone(), *e)).unzip();
        first.push(Stmt::new(
            "SELECT fence_check($1, $2, $3)",
            vec![Box::new(node.clone()), Box::new(names), Box::new(epochs)],
        ));
    }
    let offsets_at = (!appends.is_empty()).then(|| {
        first.push(Stmt::new(XID_SQL, Vec::new()));
        first.push(Stmt::new(OFFSETS_SQL, vec![Box::new(appends.len() as i64)]));
        first.len() - 1
    });
    let removed_at = (!removed.is_empty()).then(|| {
        let (parts, offs): (Vec<i16>, Vec<i64>) = removed.iter().copied().unzip();
        first.push(Stmt::new(
            REMOVED_FROM_SQL,
            vec![Box::new(parts), Box::new(offs)],
        ));
        first.len() - 1
    });
    let answers = match pipeline(&client, &first, true, false).await {
        Ok(answers) => answers,
        Err((_, e)) => {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(db_err(e));
        }
    };
    let mut offsets: Vec<u64> = match offsets_at {
        Some(i) => answers[i]
            .first()
            .and_then(|r| r.get::<_, Option<Vec<i64>>>(0))
            .unwrap_or_default()
            .into_iter()
            .map(|o| o as u64)
            .collect(),
        None => Vec::new(),
    };
    offsets.sort_unstable();
    let mut second = match plan_rest(
        &ops,
        &appends,
        &offsets,
        fence.as_ref(),
        &streams,
        &last_written,
        removed_at.map(|i| answers[i].as_slice()),
    ) {
        Ok(plan) => plan,
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(e);
        }
    };
    let packed = std::mem::take(&mut second.packed);
    let (at, e) = match pipeline(&client, &second.stmts, false, true).await {
        Ok(_) => return Ok(Written { offsets, packed }),
        Err(failed) => failed,
    };
    // COMMIT may not have been sent (a statement failed to prepare): the connection goes back
    // to the pool with no transaction open.
    let _ = client.batch_execute("ROLLBACK").await;
    Err(match at {
        Some(i) if Some(i) == second.rows_at => append_err(e),
        _ => db_err(e),
    })
}

impl super::PgStore {
    /// `EventStore::write`: the fencing check here, the transaction (`write_tx`), then what
    /// this store learnt (its own last offset, the streams' heads and where they are).
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
        // its highest seq and lease.
        let mut appended: Vec<(&str, u64, String)> = Vec::new();
        let mut index: FxHashMap<&str, usize> = FxHashMap::default();
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
        let (streams, last_written) = {
            let pre = self.preloaded();
            let streams: FxHashMap<String, (String, Option<bool>)> = appended
                .iter()
                .filter_map(|(s, _, l)| match pre.is_known(s) {
                    Some(true) => None,
                    known => Some((s.to_string(), (l.clone(), known))),
                })
                .collect();
            let last_written: FxHashMap<String, (u64, u64)> = ops
                .iter()
                .filter_map(|op| match op {
                    WriteOp::Snapshot(s) => pre
                        .last_written(&s.stream_id)
                        .map(|w| (s.stream_id.clone(), w)),
                    _ => None,
                })
                .collect();
            (streams, last_written)
        };
        let input = WriteInput {
            ops: ops.to_vec(),
            fence,
            streams,
            last_written,
        };
        let written = match self.run(move |pool| write_tx(pool, input)) {
            Ok(written) => written,
            Err(e) => {
                // It may have committed all the same (the answer to COMMIT lost): the heads
                // kept here are no longer sure; the database answers from now on.
                self.preloaded().forget();
                return Err(e);
            }
        };
        if let Some(last) = written.offsets.last() {
            self.written
                .fetch_max(*last, std::sync::atomic::Ordering::Relaxed);
        }
        // Each stream's last event here, with its offset.
        let mut last_off: FxHashMap<&str, (u64, u64)> = FxHashMap::default();
        for (e, off) in ops
            .iter()
            .filter_map(|op| match op {
                WriteOp::Append(e) => Some(e),
                _ => None,
            })
            .zip(&written.offsets)
        {
            let slot = last_off.entry(e.stream_id.as_str()).or_insert((0, 0));
            if e.seq >= slot.0 {
                *slot = (e.seq, *off);
            }
        }
        let packed: FxHashSet<&str> = written.packed.iter().map(|(s, _)| s.as_str()).collect();
        let mut pre = self.preloaded();
        for (stream, seq, lease) in &appended {
            pre.wrote(
                stream,
                *seq,
                lease,
                packed.contains(stream),
                last_off.get(stream).map(|w| w.1),
            );
        }
        Ok(written.offsets)
    }
}
