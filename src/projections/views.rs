//! The embedded read views (the default, no AWS needed): `insights`, `alerts` and
//! `incidents`, newest first, and `fabric` (every stream's open anomalies and risk, by stream id), written to the
//! local store together with this projection's checkpoint.

use super::fabric::{Fabric, PortEntry, FABRIC_VIEW};
use super::incidents::{self, IncidentChange, INCIDENTS_VIEW};
use super::items::{self, ItemChange};
use super::runner::{Projection, ProjectionError};
use crate::events::{EventStore, StoredEvent, WriteOp};
use serde_json::Value;

pub const INSIGHTS_VIEW: &str = "insights";
pub const ALERTS_VIEW: &str = "alerts";

/// Writes the `insights` and `alerts` views. A non-empty `prefix` writes them under other names
/// (and its own checkpoint), so a rebuild can be compared with the live views.
#[derive(Default)]
pub struct ViewsProjection {
    pub prefix: String,
    fabric: Fabric,
}

impl ViewsProjection {
    pub fn with_prefix(prefix: &str) -> ViewsProjection {
        ViewsProjection {
            prefix: prefix.into(),
            fabric: Fabric::default(),
        }
    }
}

/// Every value of a view, in key order.
pub fn scan_all(store: &dyn EventStore, view: &str) -> Result<Vec<Vec<u8>>, ProjectionError> {
    let mut out = Vec::new();
    let mut from: Vec<u8> = Vec::new();
    loop {
        let page = store.scan_view(view, &from, 1000)?;
        let Some((last, _)) = page.last() else {
            return Ok(out);
        };
        from = last.clone();
        from.push(0);
        out.extend(page.into_iter().map(|(_, v)| v));
    }
}

/// The fabric view's entries.
pub fn fabric_entries(
    store: &dyn EventStore,
    view: &str,
) -> Result<Vec<PortEntry>, ProjectionError> {
    Ok(scan_all(store, view)?
        .iter()
        .filter_map(|v| serde_json::from_slice(v).ok())
        .collect())
}

impl ViewsProjection {
    fn view(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
}

fn put(view: &str, key: Vec<u8>, item: &Value) -> WriteOp {
    WriteOp::PutView {
        view: view.into(),
        key,
        value: serde_json::to_vec(item).expect("a JSON value always serialises"),
    }
}

impl Projection for ViewsProjection {
    fn name(&self) -> &'static str {
        if self.prefix.is_empty() {
            "views"
        } else {
            "views-rebuild"
        }
    }

    fn restore(&mut self, store: &dyn EventStore) -> Result<(), ProjectionError> {
        self.fabric = Fabric::from_entries(fabric_entries(store, &self.view(FABRIC_VIEW))?);
        Ok(())
    }

    async fn handle(
        &mut self,
        store: &dyn EventStore,
        events: &[StoredEvent],
    ) -> Result<Vec<WriteOp>, ProjectionError> {
        let mut ops = Vec::new();
        // Alert items written earlier in this page, for suppressions that follow them.
        let mut alerts: Vec<(String, Value)> = Vec::new();
        // Incident items changed earlier in this page (None: removed).
        let mut incidents: Vec<(Vec<u8>, Option<Value>)> = Vec::new();
        for e in events {
            self.fabric.apply(e);
            if let Some(change) = incident_change(store, e)? {
                // The fabric view takes an incident insight's risk for its member ports.
                if let IncidentChange::Insight {
                    incident, insight, ..
                } = &change
                {
                    self.fabric
                        .apply_incident_insight(incident, insight, e.record.recorded_at_ms);
                }
                let view = self.view(INCIDENTS_VIEW);
                let key = change.key().to_vec();
                let current = match incidents.iter().rev().find(|(k, _)| *k == key) {
                    Some((_, item)) => item.clone(),
                    None => store
                        .scan_view(&view, &key, 1)?
                        .into_iter()
                        .find(|(k, _)| *k == key)
                        .and_then(|(_, v)| serde_json::from_slice::<Value>(&v).ok()),
                };
                let had = current.is_some();
                match incidents::merge(current, &change) {
                    Some(item) => {
                        ops.push(put(&view, key.clone(), &item));
                        incidents.push((key, Some(item)));
                    }
                    None if had => {
                        ops.push(WriteOp::RemoveView {
                            view,
                            key: key.clone(),
                        });
                        incidents.push((key, None));
                    }
                    None => {}
                }
            }
            match items::change_for(store, e)? {
                Some(ItemChange::Insight { key, item }) => {
                    ops.push(put(&self.view(INSIGHTS_VIEW), key, &item))
                }
                Some(ItemChange::Alert {
                    alert_id,
                    key,
                    item,
                }) => {
                    ops.push(put(&self.view(ALERTS_VIEW), key, &item));
                    alerts.push((alert_id, item));
                }
                Some(ItemChange::Suppressed {
                    alert_id,
                    key,
                    count,
                    ..
                }) => {
                    let current = match alerts.iter().rev().find(|(id, _)| *id == alert_id) {
                        Some((_, item)) => Some(item.clone()),
                        None => store
                            .scan_view(&self.view(ALERTS_VIEW), &key, 1)?
                            .into_iter()
                            .find(|(k, _)| *k == key)
                            .and_then(|(_, v)| serde_json::from_slice::<Value>(&v).ok()),
                    };
                    if let Some(mut item) = current {
                        item["suppressed"] = count.into();
                        ops.push(put(&self.view(ALERTS_VIEW), key, &item));
                        alerts.push((alert_id, item));
                    }
                }
                None => {}
            }
        }
        let fabric_view = self.view(FABRIC_VIEW);
        for entry in self.fabric.take_changed() {
            ops.push(WriteOp::PutView {
                view: fabric_view.clone(),
                key: entry.stream_id.as_bytes().to_vec(),
                value: serde_json::to_vec(entry).expect("a fabric entry always serialises"),
            });
        }
        Ok(ops)
    }
}

/// The incident read-model change of a log event, decoding only the events that can have one.
fn incident_change(
    store: &dyn EventStore,
    e: &StoredEvent,
) -> Result<Option<IncidentChange>, ProjectionError> {
    let r = &e.record;
    let relevant = r.stream_id == crate::incidents::INCIDENT_STREAM
        || (r.stream_id == crate::alerts::ALERT_STREAM && r.event_type == "AlertRaised");
    if !relevant {
        return Ok(None);
    }
    let Ok(event) = r.decode_event() else {
        return Ok(None);
    };
    Ok(incidents::change_for(store, &r.stream_id, &event)?)
}

/// Items of a view, newest first, that pass `keep`, at most `limit` (scanning at most
/// `scan_max` entries).
/// Entries of a newest-first view (insights, alerts) whose time to live (`items::TTL_DAYS`,
/// as DynamoDB's `ttl`) ended before `now_ms`, as removals, at most `max`. The view is in
/// inverted time order, so the expired entries are exactly those from the cutoff's key on.
pub fn expired(
    store: &dyn EventStore,
    view: &str,
    now_ms: i64,
    max: usize,
) -> Result<Vec<WriteOp>, crate::events::StoreError> {
    let cutoff = now_ms - super::items::TTL_DAYS * 86_400_000;
    let from = super::items::newest_first_key(cutoff, "");
    Ok(store
        .scan_view(view, &from, max)?
        .into_iter()
        .map(|(key, _)| WriteOp::RemoveView {
            view: view.to_string(),
            key,
        })
        .collect())
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{open_store, Engine};
    use crate::projections::items::newest_first_key;

    #[test]
    fn entries_past_their_time_to_live_expire_and_newer_ones_stay() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open_store(Engine::Fjall, dir.path()).expect("open");
        let day = 86_400_000;
        let now = 100 * day;
        let at = |days_ago: i64, id: &str| WriteOp::PutView {
            view: INSIGHTS_VIEW.into(),
            key: newest_first_key(now - days_ago * day, id),
            value: b"{}".to_vec(),
        };
        store
            .write(&[
                at(1, "new"),
                at(29, "recent"),
                at(31, "old"),
                at(90, "older"),
            ])
            .expect("write");
        let ops = expired(store.as_ref(), INSIGHTS_VIEW, now, 100).expect("plan");
        assert_eq!(ops.len(), 2);
        store.write(&ops).expect("remove");
        let left: Vec<String> = store
            .scan_view(INSIGHTS_VIEW, b"", 10)
            .expect("scan")
            .into_iter()
            .map(|(k, _)| String::from_utf8_lossy(&k[8..]).into_owned())
            .collect();
        assert_eq!(left, vec!["new".to_string(), "recent".to_string()]);
    }
}
