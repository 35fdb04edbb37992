//! The Alertmanager sink: every alert and resolution as a postable alert on Alertmanager's v2
//! API (`POST /api/v2/alerts`). Open alerts are posted again every `resend_every_s`, inside
//! Alertmanager's resolve timeout, and at once after a restart, so an Alertmanager that lost
//! its state learns them again. Alertmanager groups, silences, inhibits and routes them.

use super::config::AlertmanagerConfig;
use super::{dashboard_link, post, sink_err, Delivery, Feed};
use crate::alerts::notify::{Notice, Status};
use crate::events::projection::{Projection, ProjectionError};
use crate::events::{EventStore, StoredEvent, WriteOp};
use crate::projections::runner::dead_letter;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub const NAME: &str = "alertmanager";

/// Alerts per POST.
const CHUNK: usize = 64;

/// One notice as Alertmanager's `postableAlert`.
pub fn postable(n: &Notice, dashboard: &str) -> Value {
    let link = dashboard_link(dashboard, n);
    let node = n.labels.get("node").map_or("", String::as_str);
    let mut annotations = json!({
        "summary": format!(
            "{} on {node}: risk {} ({} port{})",
            n.labels.get("alertname").map_or("", String::as_str),
            n.risk_score,
            n.ports.len(),
            if n.ports.len() == 1 { "" } else { "s" },
        ),
        "description": n.explanation,
        "recommendations": n.recommendations.iter().enumerate()
            .map(|(i, r)| format!("{}. {r}", i + 1)).collect::<Vec<_>>().join("\n"),
        "risk_score": n.risk_score.to_string(),
        "ports": n.ports.join(", "),
        "alert_id": n.alert_id,
    });
    let mut alert = json!({
        "labels": n.labels,
        "startsAt": crate::clock::rfc3339(n.starts_at_ms),
    });
    if let Some(link) = link {
        annotations["dashboard"] = json!(link);
        alert["generatorURL"] = json!(link);
    }
    alert["annotations"] = annotations;
    if let (Status::Resolved, Some(end)) = (n.status, n.ends_at_ms) {
        alert["endsAt"] = json!(crate::clock::rfc3339(end));
    }
    alert
}

pub struct AlertmanagerProjection {
    client: reqwest::Client,
    url: String,
    dashboard: String,
    feed: Feed,
    resend_every: Duration,
    /// When open alerts were last posted; `None` after a restore (post them at once).
    last_resend: Option<Instant>,
}

impl AlertmanagerProjection {
    pub fn new(cfg: &AlertmanagerConfig, dashboard: &str) -> AlertmanagerProjection {
        AlertmanagerProjection {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(cfg.timeout_s))
                .build()
                .unwrap_or_default(),
            url: format!("{}/api/v2/alerts", cfg.url.trim_end_matches('/')),
            dashboard: dashboard.to_string(),
            feed: Feed::new(NAME),
            resend_every: Duration::from_secs(cfg.resend_every_s),
            last_resend: None,
        }
    }

    async fn post(&self, notices: &[&Notice]) -> Delivery {
        let body: Vec<Value> = notices
            .iter()
            .map(|n| postable(n, &self.dashboard))
            .collect();
        post(
            &self.client,
            &self.url,
            serde_json::to_vec(&body).unwrap_or_default(),
            &[],
        )
        .await
    }

    /// Send `sent` in chunks. A refused chunk is sent again one alert at a time, so only the
    /// bad alert becomes a dead letter. `Err` carries the offset of the first notice not sent.
    async fn deliver(
        &self,
        sent: &[(u64, Notice)],
        ops: &mut Vec<WriteOp>,
    ) -> Result<(), (u64, String)> {
        for chunk in sent.chunks(CHUNK) {
            let all: Vec<&Notice> = chunk.iter().map(|(_, n)| n).collect();
            match self.post(&all).await {
                Delivery::Sent => continue,
                Delivery::Down(reason) => return Err((chunk[0].0, reason)),
                Delivery::Refused(_) => {}
            }
            for (offset, n) in chunk {
                match self.post(&[n]).await {
                    Delivery::Sent => {}
                    Delivery::Refused(reason) => ops.push(dead_letter(
                        NAME,
                        *offset,
                        &reason,
                        postable(n, &self.dashboard),
                    )),
                    Delivery::Down(reason) => return Err((*offset, reason)),
                }
            }
        }
        Ok(())
    }
}

impl Projection for AlertmanagerProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn restore(&mut self, store: &dyn EventStore) -> Result<(), ProjectionError> {
        self.last_resend = None;
        self.feed.restore(store)
    }

    async fn handle(
        &mut self,
        store: &dyn EventStore,
        events: &[StoredEvent],
    ) -> Result<Vec<WriteOp>, ProjectionError> {
        let start = self.feed.notices.clone();
        let sent = self.feed.advance(store, events)?;
        let mut ops = Vec::new();
        if let Err((first_unsent, reason)) = self.deliver(&sent, &mut ops).await {
            ops.push(self.feed.rewind(start, store, events, first_unsent)?);
            return Err(ProjectionError::partial(
                first_unsent,
                ops,
                sink_err(NAME, reason),
            ));
        }
        ops.push(self.feed.state());
        Ok(ops)
    }

    async fn tick(&mut self) -> Result<(), ProjectionError> {
        if self
            .last_resend
            .is_some_and(|t| t.elapsed() < self.resend_every)
        {
            return Ok(());
        }
        self.last_resend = Some(Instant::now());
        let open: Vec<&Notice> = self.feed.notices.open().collect();
        for chunk in open.chunks(CHUNK) {
            match self.post(chunk).await {
                Delivery::Sent => {}
                Delivery::Refused(reason) | Delivery::Down(reason) => {
                    return Err(sink_err(NAME, format!("re-sending open alerts: {reason}")))
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn notice(status: Status) -> Notice {
        let labels: BTreeMap<String, String> = [
            ("alertname", "IbConnectionInstability"),
            ("node", "leaf07"),
            ("port", "leaf07/p3"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Notice {
            id: "al-1:firing".into(),
            alert_id: "al-1".into(),
            incident_id: Some("inc-1".into()),
            status,
            labels,
            risk_score: 92,
            explanation: "LinkDownedCounter went up 3 times".into(),
            recommendations: vec!["Reseat the cable".into(), "Check the SM log".into()],
            ports: vec!["leaf07/p3".into(), "node001/mlx5_0/p1".into()],
            starts_at_ms: 1_764_900_000_000,
            ends_at_ms: (status == Status::Resolved).then_some(1_764_900_600_000),
        }
    }

    #[test]
    fn given_a_firing_notice_then_it_has_no_end_and_links_the_incident() {
        let a = postable(&notice(Status::Firing), "https://ibsight.example.org/");
        assert!(a.get("endsAt").is_none());
        assert_eq!(a["labels"]["alertname"], "IbConnectionInstability");
        assert_eq!(
            a["generatorURL"],
            "https://ibsight.example.org/#incident=inc-1"
        );
        assert_eq!(
            a["annotations"]["description"],
            "LinkDownedCounter went up 3 times"
        );
        assert_eq!(
            a["annotations"]["recommendations"],
            "1. Reseat the cable\n2. Check the SM log"
        );
        assert_eq!(
            a["annotations"]["summary"],
            "IbConnectionInstability on leaf07: risk 92 (2 ports)"
        );
    }

    #[test]
    fn given_a_resolved_notice_then_ends_at_is_set_and_without_a_dashboard_there_is_no_link() {
        let a = postable(&notice(Status::Resolved), "");
        assert_eq!(a["endsAt"], crate::clock::rfc3339(1_764_900_600_000));
        assert!(a.get("generatorURL").is_none());
    }
}
