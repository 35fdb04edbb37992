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
    /// Forget the cached stream heads first (a shard's lease moved: others wrote its streams).
    forget_heads: bool,
}

/// A handle to the writer thread. Cheap to clone.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Request>,
    store: Arc<dyn EventStore>,
    /// The last write-path probe: when it ran and its error, if any.
    probed: Arc<std::sync::Mutex<Option<Probed>>>,
}

/// When a probe ran, and its error if it failed.
type Probed = (std::time::Instant, Option<String>);

/// A probe result is reused this long, so frequent readiness checks cost one small write a
/// second at most.
const PROBE_TTL: std::time::Duration = std::time::Duration::from_secs(1);
/// A write path that cannot make one small write durable in this long is not ready.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The checkpoint the probe writes (a name no projection uses).
pub const PROBE_CHECKPOINT: &str = "\0probe";

impl Writer {
    /// Start the writer thread. `max_batch_ops` caps one flush's size.
    pub fn spawn(store: Arc<dyn EventStore>, max_batch_ops: usize) -> Writer {
        let (tx, rx) = mpsc::channel::<Request>();
        let thread_store = store.clone();
        std::thread::Builder::new()
            .name("ibsight-writer".into())
            .spawn(move || run(thread_store, rx, max_batch_ops.max(1)))
            .expect("spawning the writer thread");
        Writer {
            tx,
            store,
            probed: Arc::default(),
        }
    }

    /// Check the write path end to end: one small durable write (a checkpoint) through the
    /// writer thread and the engine's fsync. Reuses a result younger than a second.
    pub async fn probe(&self) -> Result<(), StoreError> {
        let fresh = self
            .probed
            .lock()
            .expect("probe lock poisoned")
            .as_ref()
            .filter(|(at, _)| at.elapsed() < PROBE_TTL)
            .map(|(_, e)| e.clone());
        let error = match fresh {
            Some(error) => error,
            None => {
                let op = WriteOp::Checkpoint {
                    name: PROBE_CHECKPOINT.into(),
                    offset: crate::clock::now_ms().max(0) as u64,
                };
                let error = match tokio::time::timeout(PROBE_TIMEOUT, self.write(vec![op])).await {
                    Ok(Ok(_)) => None,
                    Ok(Err(e)) => Some(e.to_string()),
                    Err(_) => Some(format!("no durable write within {PROBE_TIMEOUT:?}")),
                };
                *self.probed.lock().expect("probe lock poisoned") =
                    Some((std::time::Instant::now(), error.clone()));
                error
            }
        };
        match error {
            None => Ok(()),
            Some(e) => Err(StoreError::Engine(e)),
        }
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
                forget_heads: false,
            })
            .map_err(|_| StoreError::WriterStopped)?;
        rx.await.map_err(|_| StoreError::WriterStopped)?
    }

    /// Queue `ops` without waiting (snapshots: losing one only lengthens a replay).
    pub fn write_detached(&self, ops: Vec<WriteOp>) {
        let _ = self.tx.send(Request {
            ops,
            reply: None,
            forget_heads: false,
        });
    }

    /// Forget the cached stream heads before the next write (another node may have written
    /// the streams of a shard this node just took).
    pub fn forget_heads(&self) {
        let _ = self.tx.send(Request {
            ops: Vec::new(),
            reply: None,
            forget_heads: true,
        });
    }
}

/// The last seq of each stream, as the log has it (filled lazily from the store).
type Heads = FxHashMap<String, u64>;

/// Most heads cached; past it the cache starts again (a head is one index read away).
const MAX_CACHED_HEADS: usize = 262_144;

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
        if heads.len() > MAX_CACHED_HEADS || requests.iter().any(|r| r.forget_heads) {
            heads.clear();
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
        match store
            .admit(&req.ops)
            .and_then(|()| check_seqs(store, heads, &req.ops))
        {
            Ok(()) => {
                let appends = req
                    .ops
                    .iter()
                    .filter(|op| matches!(op, WriteOp::Append(_)))
                    .count();
                // A stream's first event also records the stream (same atomic batch).
                let new_streams: Vec<WriteOp> = req
                    .ops
                    .iter()
                    .filter_map(|op| match op {
                        WriteOp::Append(e) if e.seq == 1 => super::streams::entry_for(&e.stream_id),
                        _ => None,
                    })
                    .collect();
                ops.extend(req.ops);
                ops.extend(new_streams);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::store::{Snapshot, StoredEvent, ViewEntry};
    use crate::events::{open_store, Engine};
    use std::sync::atomic::{AtomicU8, Ordering};

    /// A real store whose writes can be made to fail (0) or to panic the writer thread (2).
    struct Faulty {
        inner: Arc<dyn EventStore>,
        mode: AtomicU8,
    }

    impl EventStore for Faulty {
        fn write(&self, ops: &[WriteOp]) -> Result<Vec<u64>, StoreError> {
            match self.mode.load(Ordering::SeqCst) {
                1 => Err(StoreError::Engine("poisoned: fsync failed".into())),
                2 => panic!("engine bug"),
                _ => self.inner.write(ops),
            }
        }
        fn read_stream(
            &self,
            s: &str,
            from: u64,
            n: usize,
        ) -> Result<Vec<StoredEvent>, StoreError> {
            self.inner.read_stream(s, from, n)
        }
        fn read_from(&self, from: u64, n: usize) -> Result<Vec<StoredEvent>, StoreError> {
            self.inner.read_from(from, n)
        }
        fn stream_head(&self, s: &str) -> Result<u64, StoreError> {
            self.inner.stream_head(s)
        }
        fn last_offset(&self) -> u64 {
            self.inner.last_offset()
        }
        fn snapshot(&self, s: &str) -> Result<Option<Snapshot>, StoreError> {
            self.inner.snapshot(s)
        }
        fn checkpoint(&self, name: &str) -> Result<Option<u64>, StoreError> {
            self.inner.checkpoint(name)
        }
        fn scan_view(&self, v: &str, from: &[u8], n: usize) -> Result<Vec<ViewEntry>, StoreError> {
            self.inner.scan_view(v, from, n)
        }
        fn disk_bytes(&self) -> u64 {
            0
        }
        fn engine(&self) -> &'static str {
            "faulty"
        }
    }

    #[tokio::test]
    async fn the_probe_fails_when_writes_fail_or_the_writer_thread_died_though_reads_work() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(Faulty {
            inner: open_store(Engine::Fjall, dir.path()).expect("open"),
            mode: AtomicU8::new(0),
        });
        let writer = Writer::spawn(store.clone(), 100);
        writer.probe().await.expect("a healthy write path");
        assert!(store.checkpoint(PROBE_CHECKPOINT).expect("read").is_some());
        // The engine poisoned itself: reads still work, the probe does not.
        store.mode.store(1, Ordering::SeqCst);
        tokio::time::sleep(PROBE_TTL).await;
        assert!(writer.probe().await.is_err());
        assert!(store.stream_head("x").is_ok());
        // The writer thread died.
        store.mode.store(2, Ordering::SeqCst);
        tokio::time::sleep(PROBE_TTL).await;
        assert!(writer.probe().await.is_err());
        store.mode.store(0, Ordering::SeqCst);
        tokio::time::sleep(PROBE_TTL).await;
        assert!(matches!(
            writer.write(vec![]).await,
            Err(StoreError::WriterStopped)
        ));
        assert!(writer.probe().await.is_err(), "a dead writer stays unready");
    }
}
