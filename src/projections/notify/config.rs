//! `[notify]`: where alerts go besides EventBridge, the tools operators already run.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// The dashboard's address as people reach it (`https://ibsight.example.org`), for the
    /// link in every alert; empty: no link.
    pub dashboard_url: String,
    pub alertmanager: AlertmanagerConfig,
    /// One sink per entry (`[[notify.webhooks]]`).
    pub webhooks: Vec<WebhookConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertmanagerConfig {
    pub enabled: bool,
    /// Alertmanager's base address (`http://alertmanager:9093`); alerts go to `/api/v2/alerts`.
    pub url: String,
    /// Open alerts are sent again this often. It must stay below Alertmanager's
    /// `resolve_timeout` (5 minutes by default), or Alertmanager resolves them on its own.
    pub resend_every_s: u64,
    pub timeout_s: u64,
}

impl Default for AlertmanagerConfig {
    fn default() -> Self {
        AlertmanagerConfig {
            enabled: false,
            url: "http://127.0.0.1:9093".into(),
            resend_every_s: 60,
            timeout_s: 10,
        }
    }
}

/// The body a webhook gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// ibsight's own JSON (one object per alert or resolution).
    #[default]
    Json,
    /// `{"text": …}`, which Slack, Mattermost and Rocket.Chat incoming webhooks take.
    Slack,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// Names its checkpoint (`webhook:<name>`) and its dead letters; never rename a live one.
    pub name: String,
    pub url: String,
    /// The environment variable that holds the HMAC-SHA256 signing secret; empty: unsigned.
    pub secret_env: String,
    pub format: WebhookFormat,
    pub timeout_s: u64,
    /// Tries per item before the sink counts the receiver as down (and retries later).
    pub attempts: u32,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            name: String::new(),
            url: String::new(),
            secret_env: String::new(),
            format: WebhookFormat::Json,
            timeout_s: 10,
            attempts: 3,
        }
    }
}

/// A bad key: (key, reason naming the value).
pub type Invalid = (String, String);

fn http_url(key: &str, url: &str) -> Result<(), Invalid> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err((
            key.into(),
            format!("{url:?} must start with http:// or https://"),
        ))
    }
}

impl NotifyConfig {
    /// Every problem names its key and value; secrets must be in the environment now.
    pub fn validate(&self) -> Result<(), Invalid> {
        if !self.dashboard_url.is_empty() {
            http_url("notify.dashboard_url", &self.dashboard_url)?;
        }
        let am = &self.alertmanager;
        if am.enabled {
            http_url("notify.alertmanager.url", &am.url)?;
            if !(1..=240).contains(&am.resend_every_s) {
                return Err((
                    "notify.alertmanager.resend_every_s".into(),
                    format!(
                        "{} must be 1 to 240 (below Alertmanager's 5-minute resolve_timeout)",
                        am.resend_every_s
                    ),
                ));
            }
            if am.timeout_s == 0 {
                return Err((
                    "notify.alertmanager.timeout_s".into(),
                    "0 must be at least 1".into(),
                ));
            }
        }
        let mut names = std::collections::HashSet::new();
        for (i, w) in self.webhooks.iter().enumerate() {
            let key = |k: &str| format!("notify.webhooks[{i}].{k}");
            let ok_name = !w.name.is_empty()
                && w.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !ok_name {
                return Err((
                    key("name"),
                    format!("{:?} must be non-empty [A-Za-z0-9_-]", w.name),
                ));
            }
            if !names.insert(w.name.as_str()) {
                return Err((key("name"), format!("{:?} is used twice", w.name)));
            }
            http_url(&key("url"), &w.url)?;
            if !w.secret_env.is_empty() && std::env::var(&w.secret_env).is_err() {
                return Err((
                    key("secret_env"),
                    format!("{:?} is not set in the environment", w.secret_env),
                ));
            }
            if w.timeout_s == 0 {
                return Err((key("timeout_s"), "0 must be at least 1".into()));
            }
            if w.attempts == 0 {
                return Err((key("attempts"), "0 must be at least 1".into()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_resend_past_the_resolve_timeout_then_the_key_and_value_are_named() {
        let mut c = NotifyConfig::default();
        c.alertmanager.enabled = true;
        c.alertmanager.resend_every_s = 600;
        let (key, reason) = c.validate().unwrap_err();
        assert_eq!(key, "notify.alertmanager.resend_every_s");
        assert!(reason.contains("600"), "{reason}");
    }

    #[test]
    fn given_two_webhooks_with_one_name_then_the_second_is_refused() {
        let hook = WebhookConfig {
            name: "ops".into(),
            url: "http://127.0.0.1:1/hook".into(),
            ..WebhookConfig::default()
        };
        let c = NotifyConfig {
            webhooks: vec![hook.clone(), hook],
            ..NotifyConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().0, "notify.webhooks[1].name");
    }

    #[test]
    fn given_a_webhook_url_without_a_scheme_then_it_is_refused() {
        let c = NotifyConfig {
            webhooks: vec![WebhookConfig {
                name: "ops".into(),
                url: "hooks.example.org/x".into(),
                ..WebhookConfig::default()
            }],
            ..NotifyConfig::default()
        };
        let (key, reason) = c.validate().unwrap_err();
        assert_eq!(key, "notify.webhooks[0].url");
        assert!(reason.contains("hooks.example.org/x"));
    }
}
