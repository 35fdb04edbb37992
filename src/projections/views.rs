//! The embedded read views (the default, no AWS needed): `insights` and `alerts`, newest
//! first, written to the local store together with this projection's checkpoint.

use super::items;
use super::runner::{Projection, ProjectionError};
use crate::events::{EventStore, StoredEvent, StreamEvent, WriteOp};
use serde_json::Value;

pub const INSIGHTS_VIEW: &str = "insights";
pub const ALERTS_VIEW: &str = "alerts";

#[derive(Default)]
pub struct ViewsProjection;

fn put(view: &str, key: Vec<u8>, item: &Value) -> WriteOp {
    WriteOp::PutView {
        view: view.into(),
        key,
        value: serde_json::to_vec(item).expect("a JSON value always serialises"),
    }
}

impl Projection for ViewsProjection {
    fn name(&self) -> &'static str {
        "views"
    }

    fn restore(&mut self, _store: &dyn EventStore) -> Result<(), ProjectionError> {
        Ok(())
    }

    async fn handle(
        &mut self,
        store: &dyn EventStore,
        events: &[StoredEvent],
    ) -> Result<Vec<WriteOp>, ProjectionError> {
        let mut ops = Vec::new();
        // Alerts raised earlier in this same page, for suppressions that follow them.
        let mut raised: Vec<(String, Value)> = Vec::new();
        for e in events {
            let r = &e.record;
            if !matches!(
                &*r.event_type,
                "InsightGenerated" | "AlertRaised" | "AlertSuppressed"
            ) {
                continue;
            }
            let Ok(event) = r.decode_event() else {
                continue;
            };
            match event {
                StreamEvent::InsightGenerated(i) => {
                    let anomaly = store
                        .read_stream(&r.stream_id, i.anomaly_seq, 1)?
                        .pop()
                        .and_then(|a| match a.record.decode_event() {
                            Ok(StreamEvent::AnomalyDetected(a)) => Some(a),
                            _ => None,
                        });
                    let item = items::insight_item(
                        &r.stream_id,
                        r.seq,
                        r.recorded_at_ms,
                        &i,
                        anomaly.as_ref(),
                    );
                    let key = items::newest_first_key(
                        r.recorded_at_ms,
                        &items::insight_entity_id(&r.stream_id, r.seq),
                    );
                    ops.push(put(INSIGHTS_VIEW, key, &item));
                }
                StreamEvent::AlertRaised(a) => {
                    let item = items::alert_item(&a, 0);
                    let key = items::newest_first_key(
                        a.raised_at_ms,
                        &items::alert_entity_id(&a.alert_id),
                    );
                    raised.push((a.alert_id.clone(), item.clone()));
                    ops.push(put(ALERTS_VIEW, key, &item));
                }
                StreamEvent::AlertSuppressed(s) => {
                    let key = items::newest_first_key(
                        s.alert_raised_at_ms,
                        &items::alert_entity_id(&s.alert_id),
                    );
                    let current = match raised.iter().rev().find(|(id, _)| *id == s.alert_id) {
                        Some((_, item)) => Some(item.clone()),
                        None => store
                            .scan_view(ALERTS_VIEW, &key, 1)?
                            .into_iter()
                            .find(|(k, _)| *k == key)
                            .and_then(|(_, v)| serde_json::from_slice::<Value>(&v).ok()),
                    };
                    if let Some(mut item) = current {
                        item["suppressed"] = s.suppressed_count.into();
                        raised.push((s.alert_id.clone(), item.clone()));
                        ops.push(put(ALERTS_VIEW, key, &item));
                    }
                }
                _ => {}
            }
        }
        Ok(ops)
    }
}

/// Items of a view, newest first, that pass `keep`, at most `limit` (scanning at most
/// `scan_max` entries).
pub fn recent(
    store: &dyn EventStore,
    view: &str,
    limit: usize,
    scan_max: usize,
    keep: impl Fn(&Value) -> bool,
) -> Result<Vec<Value>, ProjectionError> {
    let mut out = Vec::new();
    let mut from: Vec<u8> = Vec::new();
    let mut scanned = 0;
    while out.len() < limit && scanned < scan_max {
        let page = store.scan_view(view, &from, 500)?;
        let Some((last, _)) = page.last() else { break };
        let mut next = last.clone();
        next.push(0);
        scanned += page.len();
        for (_, v) in &page {
            if let Ok(item) = serde_json::from_slice::<Value>(v) {
                if keep(&item) {
                    out.push(item);
                    if out.len() >= limit {
                        break;
                    }
                }
            }
        }
        from = next;
    }
    Ok(out)
}
