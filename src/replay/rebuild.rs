//! Rebuilding projections from the log. The embedded views are rebuilt into scratch views
//! (`rebuild/insights`, `rebuild/alerts`) and compared entry by entry with the live ones, or
//! re-applied in place (`apply`): every write is deterministic, so a rebuild leaves the same data.

use crate::events::store::ViewEntry;
use crate::events::writer::Writer;
use crate::events::{EventStore, WriteOp};
use crate::projections::fabric::FABRIC_VIEW;
use crate::projections::incidents::INCIDENTS_VIEW;
use crate::projections::runner::{self, Projection, ProjectionError, ProjectionLag};
use crate::projections::views::{ViewsProjection, ALERTS_VIEW, INSIGHTS_VIEW};
use serde::Serialize;

const SCRATCH: &str = "rebuild/";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ViewComparison {
    pub view: &'static str,
    pub live: usize,
    pub rebuilt: usize,
    pub differing: usize,
}

/// Re-run `projection` over the log from `from_offset` (its checkpoint is reset first).
pub async fn rerun<P: Projection>(
    writer: &Writer,
    mut projection: P,
    from_offset: u64,
) -> Result<u64, ProjectionError> {
    writer
        .write(vec![WriteOp::Checkpoint {
            name: projection.name().to_string(),
            offset: from_offset.saturating_sub(1),
        }])
        .await?;
    projection.restore(writer.store().as_ref())?;
    runner::catch_up(writer, &mut projection, 500, &ProjectionLag::default()).await
}

fn all(store: &dyn EventStore, view: &str) -> Result<Vec<ViewEntry>, ProjectionError> {
    let mut out = Vec::new();
    let mut from = Vec::new();
    loop {
        let page = store.scan_view(view, &from, 1000)?;
        let Some((last, _)) = page.last() else { break };
        from = last.clone();
        from.push(0);
        out.extend(page);
    }
    Ok(out)
}

/// Rebuild the embedded views from the whole log into scratch views and compare.
pub async fn verify_views(writer: &Writer) -> Result<Vec<ViewComparison>, ProjectionError> {
    rerun(writer, ViewsProjection::with_prefix(SCRATCH), 1).await?;
    let store = writer.store();
    let mut out = Vec::new();
    for view in [INSIGHTS_VIEW, ALERTS_VIEW, FABRIC_VIEW, INCIDENTS_VIEW] {
        let live = all(store.as_ref(), view)?;
        let rebuilt = all(store.as_ref(), &format!("{SCRATCH}{view}"))?;
        let differing = live.iter().zip(&rebuilt).filter(|(a, b)| a != b).count()
            + live.len().abs_diff(rebuilt.len());
        out.push(ViewComparison {
            view,
            live: live.len(),
            rebuilt: rebuilt.len(),
            differing,
        });
    }
    Ok(out)
}
