//! The tailing loop every projection shares: read the log after the projection's checkpoint,
//! hand the page to the projection, then store the new checkpoint durably. A crash between
//! handling and checkpointing replays the page, so projections must be idempotent
//! (deterministic ids, conditional writes); an outage of a sink delays, never loses.

use crate::events::writer::Writer;
use crate::events::{StoreError, StoredEvent, WriteOp};

pub trait Projection: Send {
    /// Names the checkpoint; never change it for a live projection.
    fn name(&self) -> &str;
    /// Apply a page of events in offset order. An error leaves the checkpoint where it was.
    fn handle(&mut self, events: &[StoredEvent]) -> Result<(), ProjectionError>;
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("projection {name}: {reason}")]
    Sink { name: String, reason: String },
}

/// Run `projection` until it has seen the whole log. Returns its checkpoint (last offset).
pub async fn catch_up(
    writer: &Writer,
    projection: &mut dyn Projection,
    page_size: usize,
) -> Result<u64, ProjectionError> {
    let store = writer.store().clone();
    let name = projection.name().to_string();
    let mut checkpoint = store.checkpoint(&name)?.unwrap_or(0);
    loop {
        let page = store.read_from(checkpoint + 1, page_size)?;
        let Some(last) = page.last().map(|e| e.offset) else {
            return Ok(checkpoint);
        };
        projection.handle(&page)?;
        writer
            .write(vec![WriteOp::Checkpoint {
                name: name.clone(),
                offset: last,
            }])
            .await?;
        checkpoint = last;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::codec::EventRecord;
    use crate::events::{open_store, Engine, NewEvent};

    /// Counts events per stream, as a read model would.
    struct Counting {
        seen: Vec<u64>,
        fail_once_at: Option<u64>,
    }

    impl Projection for Counting {
        fn name(&self) -> &str {
            "counting"
        }

        fn handle(&mut self, events: &[StoredEvent]) -> Result<(), ProjectionError> {
            if let Some(at) = self.fail_once_at {
                if events.iter().any(|e| e.offset == at) {
                    self.fail_once_at = None;
                    return Err(ProjectionError::Sink {
                        name: "counting".into(),
                        reason: "sink down".into(),
                    });
                }
            }
            self.seen.extend(events.iter().map(|e| e.offset));
            Ok(())
        }
    }

    fn append(seq: u64) -> WriteOp {
        WriteOp::Append(NewEvent::new(&EventRecord {
            stream_id: "s".into(),
            seq,
            recorded_at_ms: 0,
            event_type: "MetricObserved".into(),
            schema_version: 1,
            correlation_id: None,
            payload: vec![],
        }))
    }

    #[tokio::test]
    async fn catches_up_resumes_from_its_checkpoint_and_survives_a_sink_outage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open_store(Engine::Fjall, dir.path()).expect("open");
        let writer = Writer::spawn(store.clone(), 1000);
        writer
            .write((1..=5).map(append).collect())
            .await
            .expect("append");

        let mut p = Counting {
            seen: vec![],
            fail_once_at: Some(4),
        };
        // Pages of 2: offsets 1-2 and 3-4; the page holding 4 fails, so the checkpoint stays at 2.
        assert!(catch_up(&writer, &mut p, 2).await.is_err());
        assert_eq!(store.checkpoint("counting").expect("checkpoint"), Some(2));
        // The outage is over: it resumes after 2 and loses nothing.
        assert_eq!(catch_up(&writer, &mut p, 2).await.expect("catch up"), 5);
        assert_eq!(p.seen, vec![1, 2, 3, 4, 5]);

        writer
            .write((6..=7).map(append).collect())
            .await
            .expect("append");
        let mut fresh = Counting {
            seen: vec![],
            fail_once_at: None,
        };
        assert_eq!(
            catch_up(&writer, &mut fresh, 10).await.expect("catch up"),
            7
        );
        assert_eq!(
            fresh.seen,
            vec![6, 7],
            "a restarted projection starts at its checkpoint"
        );
    }
}
