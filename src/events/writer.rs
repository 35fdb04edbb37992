//! Group commit. One writer thread owns all appends: it takes every request that queued up
//! while the previous batch was being flushed, writes them as one atomic batch with one fsync,
//! and only then answers each request. Throughput grows with load; latency stays one flush.
//!
//! The writer also enforces that each stream's seqs continue without gaps (expected-version
//! check), so a stale actor (say, one still draining after passivation) can never write a
//! second event with the same seq.

use super::store::{EventStore, StoreError, WriteOp};
use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::Arc;
use tokio::sync::oneshot;

type Reply = oneshot::Sender<Result<Vec<u64>, StoreError>>;

struct Request {
    ops: Vec<WriteOp>,
    reply: Option<Reply>,
}

/// A handle to the writer thread. Cheap to clone.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Request>,
    store: Arc<dyn EventStore>,
}

impl Writer {
    /// Start the writer thread. `max_batch_ops` caps one flush's size.
    pub fn spawn(store: Arc<dyn EventStore>, max_batch_ops: usize) -> Writer {
        let (tx, rx) = mpsc::channel::<Request>();
        let thread_store = store.clone();
        std::thread::Builder::new()
            .name("ibsight-writer".into())
            .spawn(move || run(thread_store, rx, max_batch_ops.max(1)))
            .expect("spawning the writer thread");
        Writer { tx, store }
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// Write `ops` durably; returns the offsets of the appends.
    pub async fn write(&self, ops: Vec<WriteOp>) -> Result<Vec<u64>, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request {
                ops,
                reply: Some(reply),
            })
            .map_err(|_| StoreError::WriterStopped)?;
        rx.await.map_err(|_| StoreError::WriterStopped)?
    }

    /// Queue `ops` without waiting (snapshots: losing one only lengthens a replay).
    pub fn write_detached(&self, ops: Vec<WriteOp>) {
        let _ = self.tx.send(Request { ops, reply: None });
    }
}

fn run(store: Arc<dyn EventStore>, rx: mpsc::Receiver<Request>, max_batch_ops: usize) {
    let mut heads: HashMap<String, u64> = HashMap::new();
    while let Ok(first) = rx.recv() {
        let mut requests = vec![first];
        let mut n = requests[0].ops.len();
        while n < max_batch_ops {
            match rx.try_recv() {
                Ok(r) => {
                    n += r.ops.len();
                    requests.push(r);
                }
                Err(_) => break,
            }
        }
        flush(store.as_ref(), &mut heads, requests);
    }
    tracing::debug!("event writer stopped");
}

/// Check seqs, write the accepted requests as one batch, answer everyone.
fn flush(store: &dyn EventStore, heads: &mut HashMap<String, u64>, requests: Vec<Request>) {
    let mut pending: HashMap<String, u64> = HashMap::new();
    let mut accepted = Vec::with_capacity(requests.len());
    let mut ops = Vec::new();
    for req in requests {
        match check_seqs(store, heads, &mut pending, &req.ops) {
            Ok(staged) => {
                pending.extend(staged);
                let appends = req
                    .ops
                    .iter()
                    .filter(|op| matches!(op, WriteOp::Append(_)))
                    .count();
                ops.extend(req.ops);
                accepted.push((appends, req.reply));
            }
            Err(e) => {
                if let Some(reply) = req.reply {
                    let _ = reply.send(Err(e));
                }
            }
        }
    }
    match store.write(&ops) {
        Ok(offsets) => {
            heads.extend(pending);
            let mut rest = offsets.as_slice();
            for (appends, reply) in accepted {
                let (mine, tail) = rest.split_at(appends.min(rest.len()));
                rest = tail;
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(mine.to_vec()));
                }
            }
        }
        Err(e) => {
            tracing::error!(error = %e, ops = ops.len(), "event batch write failed");
            let msg = e.to_string();
            for (_, reply) in accepted {
                if let Some(reply) = reply {
                    let _ = reply.send(Err(StoreError::Engine(msg.clone())));
                }
            }
        }
    }
}

/// Every append of a request must continue its stream's seq. Returns the new heads.
fn check_seqs(
    store: &dyn EventStore,
    heads: &mut HashMap<String, u64>,
    pending: &mut HashMap<String, u64>,
    ops: &[WriteOp],
) -> Result<HashMap<String, u64>, StoreError> {
    let mut staged: HashMap<String, u64> = HashMap::new();
    for op in ops {
        let WriteOp::Append(e) = op else { continue };
        let head = match staged
            .get(&e.stream_id)
            .or_else(|| pending.get(&e.stream_id))
        {
            Some(h) => *h,
            None => match heads.get(&e.stream_id) {
                Some(h) => *h,
                None => {
                    let h = store.stream_head(&e.stream_id)?;
                    heads.insert(e.stream_id.clone(), h);
                    h
                }
            },
        };
        if e.seq != head + 1 {
            return Err(StoreError::SeqConflict {
                stream_id: e.stream_id.clone(),
                expected: head + 1,
                got: e.seq,
            });
        }
        staged.insert(e.stream_id.clone(), e.seq);
    }
    Ok(staged)
}
