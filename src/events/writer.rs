//! Group commit. One writer thread owns all appends: it takes every request that queued up
//! while the previous batch was being flushed, writes them as one atomic batch with one fsync,
//! and only then answers each request. Throughput grows with load; latency stays one flush.
//!
//! The writer also enforces that each stream's seqs continue without gaps (expected-version
//! check), so a stale actor (say, one still draining after passivation) can never write a
//! second event with the same seq.

use super::store::{EventStore, StoreError, WriteOp};
use rustc_hash::FxHashMap;
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

/// The last seq of each stream, as the log has it (filled lazily from the store).
type Heads = FxHashMap<String, u64>;

fn run(store: Arc<dyn EventStore>, rx: mpsc::Receiver<Request>, max_batch_ops: usize) {
    let mut heads = Heads::default();
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
fn flush(store: &dyn EventStore, heads: &mut Heads, requests: Vec<Request>) {
    let mut accepted = Vec::with_capacity(requests.len());
    let mut ops = Vec::new();
    for req in requests {
        match check_seqs(store, heads, &req.ops) {
            Ok(()) => {
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
    let started = std::time::Instant::now();
    let written = store.write(&ops);
    let m = crate::metrics::global();
    m.commit_seconds.observe(started.elapsed().as_secs_f64());
    m.commit_ops.observe(ops.len() as f64);
    match written {
        Ok(offsets) => {
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
            // The cached heads already count this batch; forget them and re-read the truth.
            heads.clear();
            let msg = e.to_string();
            for (_, reply) in accepted {
                if let Some(reply) = reply {
                    let _ = reply.send(Err(StoreError::Engine(msg.clone())));
                }
            }
        }
    }
}

/// Every append of a request must continue its stream's seq. On success the cached heads
/// advance (a request is all-or-nothing: a rejected one changes nothing).
fn check_seqs(
    store: &dyn EventStore,
    heads: &mut Heads,
    ops: &[WriteOp],
) -> Result<(), StoreError> {
    // Requests come from one actor, so this holds one or two streams: a Vec beats a map.
    let mut staged: Vec<(&str, u64)> = Vec::new();
    for op in ops {
        let WriteOp::Append(e) = op else { continue };
        let stream = e.stream_id.as_str();
        let head = match staged.iter().rev().find(|(s, _)| *s == stream) {
            Some((_, h)) => *h,
            None => match heads.get(stream) {
                Some(h) => *h,
                None => {
                    let h = store.stream_head(stream)?;
                    heads.insert(stream.to_string(), h);
                    h
                }
            },
        };
        if e.seq != head + 1 {
            return Err(StoreError::SeqConflict {
                stream_id: stream.to_string(),
                expected: head + 1,
                got: e.seq,
            });
        }
        match staged.iter_mut().find(|(s, _)| *s == stream) {
            Some(entry) => entry.1 = e.seq,
            None => staged.push((stream, e.seq)),
        }
    }
    for (stream, seq) in staged {
        if let Some(h) = heads.get_mut(stream) {
            *h = seq;
        }
    }
    Ok(())
}
