//! What a projection is: a consumer of the log from a checkpoint. The runner that drives
//! projections lives in `projections`; the trait lives here, with the log, so that any layer
//! above the log (incidents, alerts, the projections themselves) can be one.

use super::{EventStore, StoreError, StoredEvent, WriteOp};
use std::future::Future;

pub trait Projection: Send {
    /// Names the checkpoint; never change it for a live projection.
    fn name(&self) -> &'static str;

    /// Rebuild in-memory state from the store (at start and after a failed page); nothing for
    /// a projection that keeps no state of its own.
    fn restore(&mut self, _store: &dyn EventStore) -> Result<(), ProjectionError> {
        Ok(())
    }

    /// Handle a page of events in offset order; returns local writes to commit with the
    /// checkpoint. An error leaves the checkpoint where it was.
    fn handle(
        &mut self,
        store: &dyn EventStore,
        events: &[StoredEvent],
    ) -> impl Future<Output = Result<Vec<WriteOp>, ProjectionError>> + Send;

    /// Called when the projection has caught up with the log; returns local writes (without a
    /// checkpoint move). A projection that also reacts to time or to answers from outside the
    /// log (the correlator) does it here.
    fn idle(&mut self, _store: &dyn EventStore) -> Vec<WriteOp> {
        Vec::new()
    }

    /// Called after `idle`, while caught up: outside work driven by time rather than by the
    /// log (a sink re-sending what is still open). An error is logged and tried again at the
    /// next poll; it moves no checkpoint.
    fn tick(&mut self) -> impl Future<Output = Result<(), ProjectionError>> + Send {
        async { Ok(()) }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("projection {name}: {reason}")]
    Sink { name: String, reason: String },
    /// Events up to offset `through` were delivered (commit `ops` with that checkpoint); the
    /// rest of the page failed with `error` and is retried later.
    #[error("{error} (delivered through offset {through})")]
    Partial {
        through: u64,
        ops: Vec<WriteOp>,
        error: Box<ProjectionError>,
    },
}

impl ProjectionError {
    /// Delivered up to (not including) offset `first_unsent`; the rest failed with `error`.
    pub fn partial(
        first_unsent: u64,
        ops: Vec<WriteOp>,
        error: ProjectionError,
    ) -> ProjectionError {
        ProjectionError::Partial {
            through: first_unsent.saturating_sub(1),
            ops,
            error: Box::new(error),
        }
    }
}
