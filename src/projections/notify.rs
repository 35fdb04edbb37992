//! Sinks into the tools operators already run: Alertmanager (`alertmanager`) and webhooks
//! (`webhook`). Both read the log through a `Feed`: the pure `alerts::notify::Notices` turns
//! alerts and resolutions into notices; its state (what is open now) is one view entry written
//! with the sink's checkpoint, so a restart or a takeover resumes exactly where it stopped.
//! Delivery is at-least-once with deterministic ids; an outage delays (the runner retries the
//! page), a receiver that refuses an item for good gets it as a dead letter.

pub mod alertmanager;
pub mod config;
pub mod webhook;

use super::runner::{self, Gate, ProjectionError, ProjectionLag};
use crate::alerts::notify::{Notice, Notices};
use crate::alerts::ALERT_STREAM;
use crate::events::types::AlertRaisedV2;
use crate::events::writer::Writer;
use crate::events::{EventStore, StoredEvent, StreamEvent, WriteOp};
use crate::incidents::INCIDENT_STREAM;
use std::sync::Arc;
use std::time::Duration;

pub use config::NotifyConfig;

/// The view that keeps each sink's open notices.
pub const NOTIFY_VIEW: &str = "notify_state";

/// Events that can change what is open.
fn relevant(event_type: &str) -> bool {
    matches!(
        event_type,
        "AlertRaised"
            | "IncidentOpened"
            | "IncidentGrown"
            | "IncidentEscalated"
            | "IncidentResolved"
            | "AnomalyResolved"
    )
}

/// The recommendations of the insight an alert came from.
fn recommendations(
    store: &dyn EventStore,
    a: &AlertRaisedV2,
) -> Result<Vec<String>, ProjectionError> {
    let stream = if a.incident_id.is_some() {
        INCIDENT_STREAM
    } else {
        a.stream_id.as_str()
    };
    Ok(match store.read_event(stream, a.insight_seq)? {
        Some(e) => match e.record.decode_event() {
            Ok(StreamEvent::InsightGenerated(i)) => i.recommendations,
            _ => Vec::new(),
        },
        None => Vec::new(),
    })
}

/// One sink's view of the log: the open notices, kept with its checkpoint.
pub struct Feed {
    sink: &'static str,
    pub notices: Notices,
}

impl Feed {
    pub fn new(sink: &'static str) -> Feed {
        Feed {
            sink,
            notices: Notices::default(),
        }
    }

    /// Load the state written with the checkpoint (none yet: nothing is open).
    pub fn restore(&mut self, store: &dyn EventStore) -> Result<(), ProjectionError> {
        let key = self.sink.as_bytes();
        let entry = store.scan_view(NOTIFY_VIEW, key, 1)?.pop();
        self.notices = match entry {
            Some((k, v)) if k == key => {
                serde_json::from_slice(&v).map_err(|e| ProjectionError::Sink {
                    name: self.sink.into(),
                    reason: format!("stored state does not decode: {e}"),
                })?
            }
            _ => Notices::default(),
        };
        Ok(())
    }

    /// Take `events` (offset order) and return what to send, each with its event's offset.
    pub fn advance<'a>(
        &mut self,
        store: &dyn EventStore,
        events: impl IntoIterator<Item = &'a StoredEvent>,
    ) -> Result<Vec<(u64, Notice)>, ProjectionError> {
        let mut out = Vec::new();
        for e in events {
            let r = &e.record;
            if !relevant(&r.event_type) {
                continue;
            }
            let about_alerts = r.stream_id == ALERT_STREAM || r.stream_id == INCIDENT_STREAM;
            if !about_alerts && r.event_type != "AnomalyResolved" {
                continue;
            }
            let Ok(event) = r.decode_event() else {
                continue;
            };
            let recs = match &event {
                StreamEvent::AlertRaised(a) => recommendations(store, a)?,
                _ => Vec::new(),
            };
            out.extend(
                self.notices
                    .observe(&r.stream_id, &event, |_| recs)
                    .into_iter()
                    .map(|n| (e.offset, n)),
            );
        }
        Ok(out)
    }

    /// The state as a write, to commit with the checkpoint.
    pub fn state(&self) -> WriteOp {
        WriteOp::PutView {
            view: NOTIFY_VIEW.into(),
            key: self.sink.as_bytes().to_vec(),
            value: serde_json::to_vec(&self.notices).unwrap_or_default(),
        }
    }

    /// After a delivery failed at `first_unsent`: the state as of the events before it,
    /// starting over from `start` (the state before the page).
    pub fn rewind(
        &mut self,
        start: Notices,
        store: &dyn EventStore,
        events: &[StoredEvent],
        first_unsent: u64,
    ) -> Result<WriteOp, ProjectionError> {
        self.notices = start;
        self.advance(store, events.iter().filter(|e| e.offset < first_unsent))?;
        Ok(self.state())
    }
}

/// What a POST came to.
#[derive(Debug)]
pub enum Delivery {
    Sent,
    /// The receiver refused this item and always will (a 4xx other than 408 and 429).
    Refused(String),
    /// The receiver is down, slow or overloaded: try again later.
    Down(String),
}

/// POST `body` to `url` once, and classify the answer.
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    headers: &[(&str, String)],
) -> Delivery {
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    match req.send().await {
        Ok(r) if r.status().is_success() => Delivery::Sent,
        Ok(r) => {
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            let reason = format!(
                "{url}: HTTP {status}: {}",
                text.chars().take(300).collect::<String>()
            );
            if status.is_client_error() && status.as_u16() != 408 && status.as_u16() != 429 {
                Delivery::Refused(reason)
            } else {
                Delivery::Down(reason)
            }
        }
        Err(e) => Delivery::Down(format!("{url}: {e}")),
    }
}

pub fn sink_err(sink: &str, reason: impl std::fmt::Display) -> ProjectionError {
    ProjectionError::Sink {
        name: sink.into(),
        reason: reason.to_string(),
    }
}

/// A running sink: its name, lag and task.
pub type Running = (
    &'static str,
    Arc<ProjectionLag>,
    tokio::task::JoinHandle<()>,
);

/// Start every sink `cfg` enables.
pub fn spawn_all(writer: &Writer, cfg: &NotifyConfig, poll: Duration, gate: &Gate) -> Vec<Running> {
    let mut out = Vec::new();
    if cfg.alertmanager.enabled {
        let sink = alertmanager::AlertmanagerProjection::new(&cfg.alertmanager, &cfg.dashboard_url);
        let (task, lag) = runner::spawn_gated(writer.clone(), sink, poll, gate.clone());
        out.push((alertmanager::NAME, lag, task));
    }
    for hook in &cfg.webhooks {
        let sink = webhook::WebhookProjection::new(hook, &cfg.dashboard_url);
        let name = sink.name_static();
        let (task, lag) = runner::spawn_gated(writer.clone(), sink, poll, gate.clone());
        out.push((name, lag, task));
    }
    out
}

/// The dashboard link of an incident (or of a single-port alert's port).
pub fn dashboard_link(base: &str, n: &Notice) -> Option<String> {
    if base.is_empty() {
        return None;
    }
    let base = base.trim_end_matches('/');
    Some(match &n.incident_id {
        Some(id) => format!("{base}/#incident={id}"),
        None => format!("{base}/#stream={}", n.alert_port()),
    })
}
