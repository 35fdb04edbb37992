//! The second round trip of a group commit: the appends (raw samples packed into batches, the
//! rest as rows), the other operations in runs of one statement each, the batches removals
//! rewrite, and the directory.

use super::super::{batch, Params};
use super::FenceCheck;
use crate::events::store::{NewEvent, StoreError, WriteOp};
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::BTreeMap;

/// Consecutive ops of one kind, applied as one statement each.
#[derive(Default)]
struct Run {
    snapshots: BTreeMap<String, (i64, Vec<u8>, Option<i64>)>,
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
            let (mut ids, mut seqs, mut states, mut tails) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (id, (seq, state, tail)) in std::mem::take(&mut self.snapshots) {
                ids.push(id);
                seqs.push(seq);
                states.push(state);
                tails.push(tail);
            }
            out.push(Stmt::new(
                "INSERT INTO snapshots (stream_id, seq, state, tail_off) \
                 SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bytea[], $4::bigint[]) \
                 ON CONFLICT (stream_id) DO UPDATE SET seq = EXCLUDED.seq, state = EXCLUDED.state, \
                 tail_off = coalesce(EXCLUDED.tail_off, snapshots.tail_off)",
                vec![
                    Box::new(ids),
                    Box::new(seqs),
                    Box::new(states),
                    Box::new(tails),
                ],
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
pub(super) struct Stmt {
    pub(super) sql: &'static str,
    pub(super) params: Params,
}

impl Stmt {
    pub(super) fn new(sql: &'static str, params: Params) -> Stmt {
        Stmt { sql, params }
    }
}

/// The appends that stay rows, at the offsets they took.
const ROWS_SQL: &str = "INSERT INTO events (off, stream_id, seq, frame, epoch) \
     SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::bytea[], $5::bigint[])";

const BATCHES_SQL: &str = "INSERT INTO batches (first_off, last_off, part, epochs, data) \
     SELECT u.f, u.l, u.p, u.e::bigint[], u.d \
     FROM UNNEST($1::bigint[], $2::bigint[], $3::smallint[], $4::text[], $5::bytea[]) \
          AS u(f, l, p, e, d)";

pub(in crate::events::pg_store) const MAX_SPAN_SQL: &str =
    "UPDATE meta SET max_span = $1 WHERE id = 1 AND max_span < $1";

const REWRITE_SQL: &str = "UPDATE batches b SET first_off = u.nf, last_off = u.l, \
     epochs = u.e::bigint[], data = u.d \
     FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::bytea[]) \
          AS u(f, nf, l, e, d) WHERE b.first_off = u.f";

/// The second round trip's statements, and the streams packed.
pub(super) struct Rest {
    pub(super) stmts: Vec<Stmt>,
    pub(super) rows_at: Option<usize>,
    pub(super) packed: Vec<(String, u64)>,
}

pub(super) fn plan_rest(
    ops: &[WriteOp],
    appends: &[&NewEvent],
    offsets: &[u64],
    fence: Option<&FenceCheck>,
    streams: &FxHashMap<String, (String, Option<bool>)>,
    last_written: &FxHashMap<String, (u64, u64)>,
    removed_from: Option<&[tokio_postgres::Row]>,
) -> Result<Rest, StoreError> {
    if offsets.len() != appends.len() {
        return Err(StoreError::Engine(format!(
            "postgres: {} offsets taken for {} appends",
            offsets.len(),
            appends.len()
        )));
    }
    let placed: Vec<batch::Placed<'_>> = appends
        .iter()
        .zip(offsets)
        .enumerate()
        .map(|(i, (e, off))| batch::Placed {
            event: e,
            offset: *off,
            epoch: fence.map_or(0, |f| f.append_epochs[i]),
        })
        .collect();
    let split = batch::split(&placed)?;
    let mut stmts = Vec::new();
    if !split.batches.is_empty() {
        let span = split
            .batches
            .iter()
            .map(|b| b.last_off - b.first_off)
            .max()
            .unwrap_or(0);
        stmts.push(batches_stmt(&split.batches, BATCHES_SQL, false));
        stmts.push(Stmt::new(MAX_SPAN_SQL, vec![Box::new(span)]));
    }
    let mut rows_at = None;
    if !split.rows.is_empty() {
        let (mut offs, mut ids, mut seqs, mut frames, mut epochs) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for i in &split.rows {
            let p = &placed[*i];
            offs.push(p.offset as i64);
            ids.push(p.event.stream_id.clone());
            seqs.push(p.event.seq as i64);
            frames.push(p.event.frame.clone());
            epochs.push(p.epoch);
        }
        rows_at = Some(stmts.len());
        stmts.push(Stmt::new(
            ROWS_SQL,
            vec![
                Box::new(offs),
                Box::new(ids),
                Box::new(seqs),
                Box::new(frames),
                Box::new(epochs),
            ],
        ));
    }
    // A snapshot's tail starts after the offset of the last event it covers that this store
    // knows of (in this write, or written before); unknown, the earlier snapshot's stays.
    let snapshotted: FxHashSet<&str> = ops
        .iter()
        .filter_map(|op| match op {
            WriteOp::Snapshot(s) => Some(s.stream_id.as_str()),
            _ => None,
        })
        .collect();
    let mut last_here: FxHashMap<&str, Vec<(u64, u64)>> = FxHashMap::default();
    for p in placed
        .iter()
        .filter(|p| snapshotted.contains(p.event.stream_id.as_str()))
    {
        last_here
            .entry(p.event.stream_id.as_str())
            .or_default()
            .push((p.event.seq, p.offset));
    }
    let tail_off = |stream: &str, seq: u64| -> Option<i64> {
        let here = last_here
            .get(stream)
            .and_then(|v| v.iter().filter(|(s, _)| *s <= seq).max());
        here.or(last_written.get(stream).filter(|(s, _)| *s <= seq))
            .map(|(_, off)| *off as i64)
    };
    let mut run = Run::default();
    let mut kind = None;
    let mut removed = FxHashSet::default();
    for op in ops {
        let k = Run::kind(op);
        if kind != Some(k) {
            run.flush(&mut stmts);
            kind = Some(k);
        }
        match op {
            WriteOp::Append(_) => {}
            WriteOp::Snapshot(s) => {
                let tail = tail_off(&s.stream_id, s.seq);
                run.snapshots
                    .insert(s.stream_id.clone(), (s.seq as i64, s.state.clone(), tail));
            }
            WriteOp::Checkpoint { name, offset } => {
                run.checkpoints
                    .insert(super::super::pg_text(name), *offset as i64);
            }
            WriteOp::Remove { offset, .. } => {
                run.removes.push(*offset as i64);
                removed.insert(*offset);
            }
            WriteOp::PutView { view, key, value } => {
                run.puts.insert((view.clone(), key.clone()), value.clone());
            }
            WriteOp::RemoveView { view, key } => run.unputs.push((view.clone(), key.clone())),
        }
    }
    run.flush(&mut stmts);
    if let Some(rows) = removed_from {
        let (mut gone, mut rewritten) = (Vec::new(), Vec::new());
        for r in rows {
            let first: i64 = r.get(0);
            match batch::without(r.get(2), &r.get::<_, Vec<i64>>(1), &removed)? {
                None => gone.push(first),
                Some(row) => rewritten.push((first, row)),
            }
        }
        if !gone.is_empty() {
            stmts.push(Stmt::new(
                "DELETE FROM batches WHERE first_off = ANY($1)",
                vec![Box::new(gone)],
            ));
        }
        if !rewritten.is_empty() {
            let (olds, rows): (Vec<i64>, Vec<batch::BatchRow>) = rewritten.into_iter().unzip();
            let mut stmt = batches_stmt(&rows, REWRITE_SQL, true);
            stmt.params.insert(0, Box::new(olds));
            stmts.push(stmt);
        }
    }
    // The directory: streams it lacks, and streams whose first packed events these are.
    let packed_here: FxHashMap<&str, u64> = split
        .packed
        .iter()
        .map(|(s, off)| (s.as_str(), *off))
        .collect();
    let (mut ids, mut leases, mut froms) = (Vec::new(), Vec::new(), Vec::new());
    for (stream, (lease, known)) in streams {
        let from = packed_here.get(stream.as_str()).map(|o| *o as i64);
        let needed = match known {
            None => true,
            Some(packed) => !packed && from.is_some(),
        };
        if needed {
            ids.push(stream.clone());
            leases.push(lease.clone());
            froms.push(from);
        }
    }
    if !ids.is_empty() {
        stmts.push(Stmt::new(
            "INSERT INTO streams (stream_id, lease, packed_from) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[]) \
             ON CONFLICT (stream_id) DO UPDATE SET lease = EXCLUDED.lease, \
               packed_from = coalesce(streams.packed_from, EXCLUDED.packed_from) \
             WHERE streams.lease IS DISTINCT FROM EXCLUDED.lease \
                OR (streams.packed_from IS NULL AND EXCLUDED.packed_from IS NOT NULL)",
            vec![Box::new(ids), Box::new(leases), Box::new(froms)],
        ));
    }
    Ok(Rest {
        stmts,
        rows_at,
        packed: split.packed,
    })
}

/// Batch rows as the arrays of `sql` (the rewrite's columns leave out the partition).
fn batches_stmt(rows: &[batch::BatchRow], sql: &'static str, rewrite: bool) -> Stmt {
    let (mut firsts, mut lasts, mut parts, mut epochs, mut data) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for b in rows {
        firsts.push(b.first_off);
        lasts.push(b.last_off);
        parts.push(b.part);
        let runs: Vec<String> = b.epochs.iter().map(|e| e.to_string()).collect();
        epochs.push(format!("{{{}}}", runs.join(",")));
        data.push(b.data.clone());
    }
    let mut params: Params = vec![Box::new(firsts), Box::new(lasts)];
    if !rewrite {
        params.push(Box::new(parts));
    }
    params.push(Box::new(epochs));
    params.push(Box::new(data));
    Stmt::new(sql, params)
}
