//! One group commit as one PostgreSQL transaction: the fencing check and the appends (one
//! statement that takes the offsets and inserts every row), pipelined, then the other
//! operations in runs of one statement each. Every statement is prepared once per connection.

use super::{db_err, pool_err, Fence};
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

    async fn flush(&mut self, tx: &deadpool_postgres::Transaction<'_>) -> Result<(), StoreError> {
        if !self.snapshots.is_empty() {
            let (ids, rest): (Vec<String>, Vec<(i64, Vec<u8>)>) =
                std::mem::take(&mut self.snapshots).into_iter().unzip();
            let (seqs, states): (Vec<i64>, Vec<Vec<u8>>) = rest.into_iter().unzip();
            execute(
                tx,
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
            execute(
                tx,
                "INSERT INTO checkpoints (name, off) SELECT * FROM UNNEST($1::text[], $2::bigint[]) \
                 ON CONFLICT (name) DO UPDATE SET off = EXCLUDED.off",
                &[&names, &offs],
            )
            .await
            .map_err(db_err)?;
        }
        if !self.removes.is_empty() {
            let offs = std::mem::take(&mut self.removes);
            execute(tx, "DELETE FROM events WHERE off = ANY($1)", &[&offs])
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
            execute(
                tx,
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
            execute(
                tx,
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

/// One statement, prepared once per connection (`prepare_cached`): a plain `execute` with SQL
/// text parses it again, an extra round trip every time.
async fn execute(
    tx: &deadpool_postgres::Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, tokio_postgres::Error> {
    let stmt = tx.prepare_cached(sql).await?;
    tx.execute(&stmt, params).await
}

/// What a fenced write checks: this node, the leases it needs at their epochs, and the epoch
/// each append is written under.
pub(super) struct FenceCheck {
    pub node: String,
    pub need: BTreeMap<String, i64>,
    pub append_epochs: Vec<i64>,
}

/// The appends of `ops` as one statement that also takes their offsets from the counter row
/// (held until COMMIT, so commits with appends stay in offset order); their offsets.
async fn append(
    tx: &deadpool_postgres::Transaction<'_>,
    ops: &[WriteOp],
    fence: Option<&FenceCheck>,
) -> Result<Vec<u64>, StoreError> {
    let (mut streams, mut seqs, mut frames) = (Vec::new(), Vec::new(), Vec::new());
    for e in ops.iter().filter_map(|op| match op {
        WriteOp::Append(e) => Some(e),
        _ => None,
    }) {
        streams.push(e.stream_id.as_str());
        seqs.push(e.seq as i64);
        frames.push(e.frame.as_slice());
    }
    if streams.is_empty() {
        return Ok(Vec::new());
    }
    let epochs = match fence {
        Some(f) => f.append_epochs.clone(),
        None => vec![0; streams.len()],
    };
    let stmt = tx
        .prepare_cached(
            "WITH o AS (UPDATE meta SET last_offset = last_offset + cardinality($1::text[]) \
                        WHERE id = 1 RETURNING last_offset) \
             INSERT INTO events (off, stream_id, seq, frame, epoch) \
             SELECT (SELECT last_offset FROM o) - cardinality($1::text[]) + u.n, u.s, u.q, u.f, u.e \
             FROM UNNEST($1::text[], $2::bigint[], $3::bytea[], $4::bigint[]) \
                  WITH ORDINALITY AS u(s, q, f, e, n) \
             RETURNING off",
        )
        .await
        .map_err(db_err)?;
    let params: [&(dyn ToSql + Sync); 4] = [&streams, &seqs, &frames, &epochs];
    let rows = tx
        .query(&stmt, &params)
        .await
        .map_err(|e| match e.as_db_error() {
            Some(db) if db.constraint() == Some("events_stream_seq") => {
                StoreError::Engine(format!(
                    "postgres: another writer appended to one of these streams ({})",
                    db.detail().unwrap_or(db.message())
                ))
            }
            _ => db_err(e),
        })?;
    let first = rows
        .iter()
        .map(|r| r.get::<_, i64>(0))
        .min()
        .ok_or_else(|| StoreError::Engine("postgres: the append returned no offset".into()))?;
    Ok((0..streams.len() as i64)
        .map(|i| (first + i) as u64)
        .collect())
}

pub(super) async fn write_tx(
    pool: Pool,
    ops: Vec<WriteOp>,
    fence: Option<FenceCheck>,
) -> Result<Vec<u64>, StoreError> {
    let mut client = pool.get().await.map_err(pool_err)?;
    let tx = client.transaction().await.map_err(db_err)?;
    // The lease check and the appends go out together (pipelined on the connection, one round
    // trip); a failed check rolls the appends back with the transaction.
    let check = async {
        let Some(FenceCheck { node, need, .. }) = &fence else {
            return Ok(());
        };
        let names: Vec<&str> = need.keys().map(String::as_str).collect();
        let stmt = tx
            .prepare_cached(
                "SELECT name, epoch FROM leases WHERE name = ANY($1) AND holder = $2 \
                 AND expires_at > clock_timestamp() FOR SHARE",
            )
            .await
            .map_err(db_err)?;
        let rows = tx.query(&stmt, &[&names, node]).await.map_err(db_err)?;
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
        Ok(())
    };
    let (_, offsets) = tokio::try_join!(check, append(&tx, &ops, fence.as_ref()))?;
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
            WriteOp::RemoveView { view, key } => run.unputs.push((view, key)),
        }
    }
    run.flush(&tx).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(offsets)
}
