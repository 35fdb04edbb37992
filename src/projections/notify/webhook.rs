//! The webhook sink: one JSON POST per alert and per resolution to one URL, signed with
//! HMAC-SHA256 over the body (`X-Ibsight-Signature: sha256=<hex>`) when a secret is set, with
//! the notice's deterministic id in `X-Ibsight-Delivery` so a receiver drops a re-delivery.
//! `format = "slack"` posts `{"text": …}` instead, for Slack-compatible incoming webhooks.

use super::config::{WebhookConfig, WebhookFormat};
use super::{dashboard_link, post, sink_err, Delivery, Feed};
use crate::alerts::notify::{Notice, Status};
use crate::events::projection::{Projection, ProjectionError};
use crate::events::{EventStore, StoredEvent, WriteOp};
use crate::projections::runner::dead_letter;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use std::time::Duration;

pub const SIGNATURE_HEADER: &str = "x-ibsight-signature";
pub const DELIVERY_HEADER: &str = "x-ibsight-delivery";

/// `sha256=<hex of HMAC-SHA256(secret, body)>`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret)
        .expect("HMAC takes a key of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// ibsight's own body: everything the notice says.
pub fn json_body(n: &Notice, dashboard: &str) -> Value {
    json!({
        "id": n.id,
        "status": n.status.name(),
        "alert_id": n.alert_id,
        "incident_id": n.incident_id,
        "labels": n.labels,
        "risk_score": n.risk_score,
        "explanation": n.explanation,
        "recommendations": n.recommendations,
        "ports": n.ports,
        "starts_at": crate::clock::rfc3339(n.starts_at_ms),
        "ends_at": n.ends_at_ms.map(crate::clock::rfc3339),
        "dashboard": dashboard_link(dashboard, n),
    })
}

/// A Slack-compatible body: one message a person reads.
pub fn slack_body(n: &Notice, dashboard: &str) -> Value {
    let l = |k: &str| n.labels.get(k).map_or("", String::as_str);
    let mut text = match n.status {
        Status::Firing => format!(
            ":rotating_light: *FIRING* {} on {} (risk {}, {})",
            l("alertname"),
            l("node"),
            n.risk_score,
            l("severity")
        ),
        Status::Resolved => format!(
            ":white_check_mark: *RESOLVED* {} on {}",
            l("alertname"),
            l("node")
        ),
    };
    text.push_str(&format!("\n{}", n.explanation));
    if n.status == Status::Firing && !n.recommendations.is_empty() {
        text.push_str("\nWhat to do:");
        for r in &n.recommendations {
            text.push_str(&format!("\n• {r}"));
        }
    }
    text.push_str(&format!("\nPorts: {}", n.ports.join(", ")));
    if let Some(link) = dashboard_link(dashboard, n) {
        text.push_str(&format!("\n<{link}|Open in ibsight>"));
    }
    json!({ "text": text })
}

pub struct WebhookProjection {
    name: &'static str,
    client: reqwest::Client,
    cfg: WebhookConfig,
    secret: Option<Vec<u8>>,
    dashboard: String,
    feed: Feed,
}

impl WebhookProjection {
    pub fn new(cfg: &WebhookConfig, dashboard: &str) -> WebhookProjection {
        // One per configured URL, made once at start: leaking the name is bounded.
        let name: &'static str = Box::leak(format!("webhook:{}", cfg.name).into_boxed_str());
        WebhookProjection {
            name,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(cfg.timeout_s))
                .build()
                .unwrap_or_default(),
            secret: (!cfg.secret_env.is_empty())
                .then(|| std::env::var(&cfg.secret_env).ok())
                .flatten()
                .map(String::into_bytes),
            cfg: cfg.clone(),
            dashboard: dashboard.to_string(),
            feed: Feed::new(name),
        }
    }

    pub fn name_static(&self) -> &'static str {
        self.name
    }

    fn body(&self, n: &Notice) -> Value {
        match self.cfg.format {
            WebhookFormat::Json => json_body(n, &self.dashboard),
            WebhookFormat::Slack => slack_body(n, &self.dashboard),
        }
    }

    /// One notice, tried `attempts` times while the receiver is down.
    async fn send(&self, n: &Notice) -> Delivery {
        let body = serde_json::to_vec(&self.body(n)).unwrap_or_default();
        let mut headers = vec![(DELIVERY_HEADER, n.id.clone())];
        if let Some(secret) = &self.secret {
            headers.push((SIGNATURE_HEADER, sign(secret, &body)));
        }
        let mut delay = Duration::from_millis(200);
        let mut last = Delivery::Down("never tried".into());
        for attempt in 0..self.cfg.attempts {
            if attempt > 0 {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            last = post(&self.client, &self.cfg.url, body.clone(), &headers).await;
            if !matches!(last, Delivery::Down(_)) {
                break;
            }
        }
        last
    }
}

impl Projection for WebhookProjection {
    fn name(&self) -> &'static str {
        self.name
    }

    fn restore(&mut self, store: &dyn EventStore) -> Result<(), ProjectionError> {
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
        for (offset, n) in &sent {
            match self.send(n).await {
                Delivery::Sent => {}
                Delivery::Refused(reason) => {
                    ops.push(dead_letter(self.name, *offset, &reason, self.body(n)))
                }
                Delivery::Down(reason) => {
                    ops.push(self.feed.rewind(start, store, events, *offset)?);
                    return Err(ProjectionError::partial(
                        *offset,
                        ops,
                        sink_err(self.name, reason),
                    ));
                }
            }
        }
        ops.push(self.feed.state());
        Ok(ops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn given_rfc_4231_case_2_then_the_signature_matches_it() {
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn given_another_body_or_secret_then_the_signature_differs() {
        let s = sign(b"secret", b"{\"a\":1}");
        assert_ne!(s, sign(b"secret", b"{\"a\":2}"));
        assert_ne!(s, sign(b"other", b"{\"a\":1}"));
    }

    fn notice(status: Status) -> Notice {
        let labels: BTreeMap<String, String> = [
            ("alertname", "IbConnectionInstability"),
            ("node", "leaf07"),
            ("severity", "critical"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Notice {
            id: format!("al-1:{}", status.name()),
            alert_id: "al-1".into(),
            incident_id: Some("inc-1".into()),
            status,
            labels,
            risk_score: 92,
            explanation: "LinkDownedCounter went up".into(),
            recommendations: vec!["Reseat the cable".into()],
            ports: vec!["leaf07/p3".into()],
            starts_at_ms: 1_000,
            ends_at_ms: (status == Status::Resolved).then_some(2_000),
        }
    }

    #[test]
    fn given_a_firing_notice_then_the_slack_text_says_what_where_and_what_to_do() {
        let text = slack_body(&notice(Status::Firing), "https://ib.example.org")["text"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            text.contains("*FIRING* IbConnectionInstability on leaf07 (risk 92, critical)"),
            "{text}"
        );
        assert!(text.contains("• Reseat the cable"), "{text}");
        assert!(
            text.contains("<https://ib.example.org/#incident=inc-1|Open in ibsight>"),
            "{text}"
        );
    }

    #[test]
    fn given_a_resolution_then_the_json_body_carries_its_end_and_id() {
        let b = json_body(&notice(Status::Resolved), "");
        assert_eq!(b["id"], "al-1:resolved");
        assert_eq!(b["status"], "resolved");
        assert_eq!(b["ends_at"], crate::clock::rfc3339(2_000));
        assert!(b["dashboard"].is_null());
    }
}
