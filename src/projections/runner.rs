//! The tailing loop every projection shares: read the log after the projection's checkpoint,
//! let the projection handle the page, then write what it returns together with the new
//! checkpoint in one atomic, durable write. Local read models are thus exactly-once; external
//! sinks (which write before returning) are at-least-once and must be idempotent
//! (deterministic ids, conditional writes). An outage delays a projection, never skips an event:
//! on error it restores its state from the store and retries the same page with backoff.
//!
//! Two rules keep one bad item from blocking a sink for ever:
//! - a sink that delivered part of a page says so (`ProjectionError::Partial`): the runner
//!   checkpoints what was delivered, so a retry never re-sends it;
//! - an item the sink rejects for good (a validation error, not an outage) becomes a dead
//!   letter (`dead_letter`: kept in the `dead_letters` view with the reason, counted in
//!   `ibsight_projection_dead_letters_total`) and the projection moves on.

use crate::events::writer::Writer;
use crate::events::WriteOp;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use crate::events::projection::{Projection, ProjectionError};

/// The view that keeps items a sink rejected for good.
pub const DEAD_LETTERS_VIEW: &str = "dead_letters";

/// Keep an item a sink rejected for good: a `dead_letters` view entry (key: projection name,
/// 0x00, the event's offset) with the reason and the item, written with the checkpoint.
pub fn dead_letter(
    projection: &str,
    offset: u64,
    reason: &str,
    item: serde_json::Value,
) -> WriteOp {
    tracing::error!(
        projection,
        offset,
        reason,
        "sink rejected an item for good; kept as a dead letter"
    );
    crate::metrics::global().dead_letters.inc(projection, 1);
    let mut key = projection.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(&offset.to_be_bytes());
    let value = serde_json::json!({
        "projection": projection,
        "offset": offset,
        "reason": reason,
        "item": item,
        "at": crate::clock::rfc3339(crate::clock::now_ms()),
    });
    WriteOp::PutView {
        view: DEAD_LETTERS_VIEW.into(),
        key,
        value: value.to_string().into_bytes(),
    }
}

/// How far behind the log a projection is.
#[derive(Debug, Default)]
pub struct ProjectionLag {
    pub checkpoint: AtomicU64,
    pub events_behind: AtomicU64,
    /// Age of the oldest unprocessed event, in ms (0 when caught up).
    pub ms_behind: AtomicI64,
}

/// Run `projection` until it has seen the whole log. Returns its checkpoint (last offset).
pub async fn catch_up<P: Projection>(
    writer: &Writer,
    projection: &mut P,
    page_size: usize,
    lag: &ProjectionLag,
) -> Result<u64, ProjectionError> {
    let store = writer.store().clone();
    let name = projection.name();
    let mut checkpoint = store.checkpoint(name)?.unwrap_or(0);
    loop {
        let page = store.read_from(checkpoint + 1, page_size)?;
        let head = store.last_offset();
        lag.checkpoint.store(checkpoint, Ordering::Relaxed);
        lag.events_behind
            .store(head.saturating_sub(checkpoint), Ordering::Relaxed);
        let Some(last) = page.last().map(|e| e.offset) else {
            lag.ms_behind.store(0, Ordering::Relaxed);
            return Ok(checkpoint);
        };
        lag.ms_behind.store(
            (crate::clock::now_ms() - page[0].record.recorded_at_ms).max(0),
            Ordering::Relaxed,
        );
        let (mut ops, through, failed) = match projection.handle(store.as_ref(), &page).await {
            Ok(ops) => (ops, last, None),
            Err(ProjectionError::Partial {
                through,
                ops,
                error,
            }) => (ops, through, Some(*error)),
            Err(e) => return Err(e),
        };
        if through > checkpoint {
            ops.push(WriteOp::Checkpoint {
                name: name.to_string(),
                offset: through,
            });
        }
        if !ops.is_empty() {
            writer.write(ops).await?;
        }
        checkpoint = through.max(checkpoint);
        if let Some(error) = failed {
            return Err(error);
        }
    }
}

/// Whether this node runs the projections now (a cluster: it holds the projections lease).
pub type Gate = Arc<dyn Fn() -> bool + Send + Sync>;

/// Keep `projection` caught up in the background: poll every `poll`, back off on errors.
pub fn spawn<P: Projection + 'static>(
    writer: Writer,
    projection: P,
    poll: Duration,
) -> (tokio::task::JoinHandle<()>, Arc<ProjectionLag>) {
    spawn_gated(writer, projection, poll, Arc::new(|| true))
}

/// `spawn`, running only while `gate` is open; each time it opens again the projection
/// restores its state from the store (another node may have moved its checkpoint).
pub fn spawn_gated<P: Projection + 'static>(
    writer: Writer,
    mut projection: P,
    poll: Duration,
    gate: Gate,
) -> (tokio::task::JoinHandle<()>, Arc<ProjectionLag>) {
    let lag = Arc::new(ProjectionLag::default());
    let shared = lag.clone();
    let handle = tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        let mut restored = false;
        loop {
            if !gate() {
                restored = false;
                tokio::time::sleep(poll).await;
                continue;
            }
            if !restored {
                match projection.restore(writer.store().as_ref()) {
                    Ok(()) => restored = true,
                    Err(e) => {
                        tracing::warn!(projection = projection.name(), error = %e, "restore failed")
                    }
                }
            }
            if restored {
                let caught_up = catch_up(&writer, &mut projection, 500, &shared).await;
                let idle = match caught_up {
                    Ok(_) => {
                        let ops = projection.idle(writer.store().as_ref());
                        if ops.is_empty() {
                            Ok(())
                        } else {
                            writer
                                .write(ops)
                                .await
                                .map(|_| ())
                                .map_err(ProjectionError::from)
                        }
                    }
                    Err(e) => Err(e),
                };
                if idle.is_ok() {
                    if let Err(e) = projection.tick().await {
                        tracing::warn!(projection = projection.name(), error = %e, "projection tick failed; trying again at the next poll");
                    }
                }
                match idle {
                    Ok(()) => {
                        backoff = Duration::from_millis(100);
                        tokio::time::sleep(poll).await;
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(projection = projection.name(), error = %e, ?backoff, "projection failed; retrying");
                        restored = false;
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    });
    (handle, lag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::store::test_append;
    use crate::events::{open_store, Engine, EventStore, StoredEvent};

    /// Records the offsets it saw into a view, as a read model would.
    struct Counting {
        fail_once_at: Option<u64>,
    }

    impl Projection for Counting {
        fn name(&self) -> &'static str {
            "counting"
        }

        async fn handle(
            &mut self,
            _store: &dyn EventStore,
            events: &[StoredEvent],
        ) -> Result<Vec<WriteOp>, ProjectionError> {
            if let Some(at) = self.fail_once_at {
                if events.iter().any(|e| e.offset == at) {
                    self.fail_once_at = None;
                    return Err(ProjectionError::Sink {
                        name: "counting".into(),
                        reason: "sink down".into(),
                    });
                }
            }
            Ok(events
                .iter()
                .map(|e| WriteOp::PutView {
                    view: "seen".into(),
                    key: e.offset.to_be_bytes().to_vec(),
                    value: vec![],
                })
                .collect())
        }
    }

    /// A fresh fjall log holding `n` events of stream "s", and its writer.
    async fn log_of(n: u64) -> (tempfile::TempDir, std::sync::Arc<dyn EventStore>, Writer) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open_store(Engine::Fjall, dir.path()).expect("open");
        let writer = Writer::spawn(store.clone(), 1000);
        writer
            .write((1..=n).map(|seq| test_append("s", seq)).collect())
            .await
            .expect("append");
        (dir, store, writer)
    }

    fn seen(store: &dyn EventStore) -> Vec<u64> {
        store
            .scan_view("seen", b"", 100)
            .expect("scan")
            .iter()
            .map(|(k, _)| u64::from_be_bytes(k.as_slice().try_into().expect("8 bytes")))
            .collect()
    }

    #[tokio::test]
    async fn resumes_from_its_checkpoint_and_survives_a_sink_outage() {
        let (_dir, store, writer) = log_of(5).await;
        let lag = ProjectionLag::default();
        let mut p = Counting {
            fail_once_at: Some(4),
        };
        // Pages of 2: offsets 1-2 and 3-4; the page holding 4 fails, so the checkpoint stays at 2.
        assert!(catch_up(&writer, &mut p, 2, &lag).await.is_err());
        assert_eq!(store.checkpoint("counting").expect("checkpoint"), Some(2));
        assert_eq!(seen(store.as_ref()), vec![1, 2]);
        // The outage is over: it resumes after 2 and loses nothing.
        assert_eq!(
            catch_up(&writer, &mut p, 2, &lag).await.expect("catch up"),
            5
        );
        assert_eq!(seen(store.as_ref()), vec![1, 2, 3, 4, 5]);
        assert_eq!(lag.events_behind.load(Ordering::Relaxed), 0);

        writer
            .write((6..=7).map(|seq| test_append("s", seq)).collect())
            .await
            .expect("append");
        let mut fresh = Counting { fail_once_at: None };
        assert_eq!(
            catch_up(&writer, &mut fresh, 10, &lag)
                .await
                .expect("catch up"),
            7
        );
        assert_eq!(
            seen(store.as_ref()),
            vec![1, 2, 3, 4, 5, 6, 7],
            "no event twice"
        );
    }

    /// A sink that takes events one by one: one item it refuses for good, and one outage.
    struct Picky {
        delivered: Vec<u64>,
        refuse: u64,
        outage_at: Option<u64>,
    }

    impl Projection for Picky {
        fn name(&self) -> &'static str {
            "picky"
        }

        async fn handle(
            &mut self,
            _store: &dyn EventStore,
            events: &[StoredEvent],
        ) -> Result<Vec<WriteOp>, ProjectionError> {
            let mut ops = Vec::new();
            for e in events {
                if self.outage_at == Some(e.offset) {
                    self.outage_at = None;
                    return Err(ProjectionError::Partial {
                        through: e.offset - 1,
                        ops,
                        error: Box::new(ProjectionError::Sink {
                            name: "picky".into(),
                            reason: "down".into(),
                        }),
                    });
                }
                if e.offset == self.refuse {
                    ops.push(dead_letter(
                        "picky",
                        e.offset,
                        "too large",
                        serde_json::json!({}),
                    ));
                    continue;
                }
                self.delivered.push(e.offset);
            }
            Ok(ops)
        }
    }

    #[tokio::test]
    async fn a_refused_item_is_set_aside_and_a_partial_page_is_never_resent() {
        // Given a page of 6 events where the sink refuses #3 for good and is down at #5,
        let (_dir, store, writer) = log_of(6).await;
        let lag = ProjectionLag::default();
        let mut p = Picky {
            delivered: Vec::new(),
            refuse: 3,
            outage_at: Some(5),
        };
        // when the outage hits, what was delivered before it is checkpointed,
        assert!(catch_up(&writer, &mut p, 100, &lag).await.is_err());
        assert_eq!(store.checkpoint("picky").expect("checkpoint"), Some(4));
        // and when it is over, the projection goes on past the refused item, sending each
        // accepted item exactly once;
        assert_eq!(
            catch_up(&writer, &mut p, 100, &lag)
                .await
                .expect("catch up"),
            6
        );
        assert_eq!(p.delivered, vec![1, 2, 4, 5, 6]);
        // then the refused item is kept with its reason.
        let dead = store.scan_view(DEAD_LETTERS_VIEW, b"", 10).expect("scan");
        assert_eq!(dead.len(), 1);
        let v: serde_json::Value = serde_json::from_slice(&dead[0].1).expect("json");
        assert_eq!(
            (v["offset"].clone(), v["reason"].clone()),
            (serde_json::json!(3), serde_json::json!("too large"))
        );
    }
}
