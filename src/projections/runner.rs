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
