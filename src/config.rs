//! Typed configuration: `config/default.toml` documents every key. Sources, later wins:
//! built-in defaults, the TOML file, `IBSIGHT_<SECTION>__<KEY>` environment variables, then
//! command-line flags. Unknown keys are errors; `validate` names the key and the reason.

use crate::alerts::AlertsConfig;
use crate::analyst::bedrock::AwsConfig;
use crate::analyst::AnalystConfig;
use crate::detect::DetectConfig;
use crate::projections::dynamodb::DynamoConfig;
use crate::projections::eventbridge::EventBridgeConfig;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub auth: AuthConfig,
    pub ingest: IngestConfig,
    pub store: StoreConfig,
    pub actors: ActorsConfig,
    pub detect: DetectConfig,
    pub analyst: AnalystConfig,
    pub alerts: AlertsConfig,
    pub incidents: crate::incidents::IncidentsConfig,
    pub dynamodb: DynamoConfig,
    pub eventbridge: EventBridgeConfig,
    pub notify: crate::projections::notify::NotifyConfig,
    pub aws: AwsConfig,
    pub telemetry: crate::telemetry::TelemetryConfig,
    pub cluster: crate::cluster::ClusterConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub tls: ServerTlsConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            tls: ServerTlsConfig::default(),
        }
    }
}

/// TLS termination in `serve` (rustls): both files set, or neither (plain HTTP, for loopback).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ServerTlsConfig {
    /// PEM certificate chain, the server's own certificate first.
    pub cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
}

impl ServerTlsConfig {
    /// The two files, when TLS is on.
    pub fn files(&self) -> Option<(&Path, &Path)> {
        Some((self.cert_file.as_deref()?, self.key_file.as_deref()?))
    }

    pub fn validate(&self) -> Result<(), (String, String)> {
        match (&self.cert_file, &self.key_file) {
            (Some(_), None) => Err((
                "server.tls.key_file".into(),
                "is required when server.tls.cert_file is set".into(),
            )),
            (None, Some(_)) => Err((
                "server.tls.cert_file".into(),
                "is required when server.tls.key_file is set".into(),
            )),
            _ => Ok(()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Bearer tokens allowed to post telemetry; empty = no auth on ingest.
    pub ingest_tokens: Vec<String>,
    /// Bearer tokens allowed to read; empty = no auth on reads.
    pub read_tokens: Vec<String>,
    /// Bearer tokens allowed to record alert verdicts (and to read). Empty: triage is open
    /// only when no token of any kind is configured.
    pub triage_tokens: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    pub max_body_bytes: usize,
    pub max_samples: usize,
    pub max_future_skew_s: u64,
    /// Samples being processed at once; past this the API answers 503 with Retry-After.
    pub max_inflight_samples: usize,
    /// Most distinct streams this node stores; a sample of a new stream past it is refused
    /// (429 naming the cap), since every stream costs memory and disk for as long as it lives.
    pub max_streams: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_body_bytes: 8 * 1024 * 1024,
            max_samples: 10_000,
            max_future_skew_s: 300,
            max_inflight_samples: 100_000,
            max_streams: 1_000_000,
        }
    }
}

pub use crate::events::store_config::StoreConfig;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActorsConfig {
    /// Stop a stream actor idle this long; it is re-activated from its snapshot on demand.
    pub passivate_after_s: u64,
    /// A stream actor may be restarted this many times within the window…
    pub max_restarts: usize,
    /// …after which the stream is quarantined for one window.
    pub restart_window_s: u64,
    /// Most stream actors alive at once; past it the idlest are passivated (their state is
    /// in the log and a snapshot, and comes back on their next sample).
    pub max_live_streams: usize,
}

impl Default for ActorsConfig {
    fn default() -> Self {
        ActorsConfig {
            passivate_after_s: 600,
            max_restarts: 5,
            restart_window_s: 60,
            max_live_streams: 200_000,
        }
    }
}

/// A configuration problem: which key, and why.
#[derive(Debug, thiserror::Error)]
#[error("config: {key}: {reason}")]
pub struct ConfigError {
    pub key: String,
    pub reason: String,
}

impl Config {
    /// Load defaults, then `file` (if given), then the environment, then validate.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError {
                    key: "--config".into(),
                    reason: format!("file {} does not exist", path.display()),
                });
            }
            fig = fig.merge(Toml::file(path));
        }
        // Only `IBSIGHT_<SECTION>__<KEY>` is config: every setting sits in a section, and the
        // CLI's own variables (IBSIGHT_TARGET, IBSIGHT_CA_FILE, the OpenAI key, …) are not.
        fig = fig.merge(
            Env::prefixed("IBSIGHT_")
                .filter(|k| k.as_str().contains("__"))
                .split("__"),
        );
        let config: Config = fig.extract().map_err(|e| {
            let key = e
                .path
                .iter()
                .filter(|p| !p.is_empty())
                .cloned()
                .collect::<Vec<_>>()
                .join(".");
            ConfigError {
                key: if key.is_empty() { "<root>".into() } else { key },
                reason: e.kind.to_string(),
            }
        })?;
        let mut config = config;
        apply_ai_flags(&mut config, |k| std::env::var(k).ok())?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, reason: String| {
            Err(ConfigError {
                key: key.into(),
                reason,
            })
        };
        let clustered = self.store.engine == crate::events::Engine::Postgres;
        if clustered && self.store.url.is_empty() {
            return bad(
                "store.url",
                "\"\" is empty; store.engine = \"postgres\" needs a libpq connection string".into(),
            );
        }
        if clustered && !crate::events::pg_store::valid_schema(&self.store.schema) {
            return bad(
                "store.schema",
                format!(
                    "{:?} must be a lowercase identifier ([a-z_][a-z0-9_]*)",
                    self.store.schema
                ),
            );
        }
        if let Err((key, reason)) = self.cluster.validate(clustered) {
            return bad(&key, reason);
        }
        if let Err((key, reason)) = self.notify.validate() {
            return bad(&key, reason);
        }
        if let Err((key, reason)) = self.server.tls.validate() {
            return bad(&key, reason);
        }
        if let Err(e) = self.telemetry.validate() {
            return bad(&e.field, format!("{:?} {}", e.value, e.reason));
        }
        if self.ingest.max_samples == 0 {
            return bad("ingest.max_samples", "0 must be at least 1".into());
        }
        if self.ingest.max_body_bytes < 1024 {
            return bad(
                "ingest.max_body_bytes",
                format!(
                    "{} is too small (at least 1024)",
                    self.ingest.max_body_bytes
                ),
            );
        }
        if self.ingest.max_inflight_samples < self.ingest.max_samples {
            return bad(
                "ingest.max_inflight_samples",
                format!(
                    "{} must be at least ingest.max_samples ({})",
                    self.ingest.max_inflight_samples, self.ingest.max_samples
                ),
            );
        }
        if self.store.snapshot_every == 0 {
            return bad("store.snapshot_every", "0 must be at least 1".into());
        }
        if !(1..=1024).contains(&self.store.memtable_mib) {
            return bad(
                "store.memtable_mib",
                format!("{} must be 1 to 1024", self.store.memtable_mib),
            );
        }
        if self.store.max_batch_ops == 0 {
            return bad("store.max_batch_ops", "0 must be at least 1".into());
        }
        if self.store.raw_retention_hours == 0 {
            return bad("store.raw_retention_hours", "0 must be at least 1".into());
        }
        if self.store.retention_interval_s == 0 {
            return bad("store.retention_interval_s", "0 must be at least 1".into());
        }
        if self.store.pack_interval_s == 0 {
            return bad("store.pack_interval_s", "0 must be at least 1".into());
        }
        if !(1..=1_048_576).contains(&self.store.segment_events) {
            return bad(
                "store.segment_events",
                format!("{} must be 1 to 1048576", self.store.segment_events),
            );
        }
        if self.alerts.dedup_window_s == 0 {
            return bad("alerts.dedup_window_s", "0 must be at least 1".into());
        }
        if self.alerts.threshold > 100 {
            return bad(
                "alerts.threshold",
                format!("{} must be 0 to 100", self.alerts.threshold),
            );
        }
        if self.actors.max_live_streams == 0 {
            return bad("actors.max_live_streams", "0 must be at least 1".into());
        }
        if self.ingest.max_streams == 0 {
            return bad("ingest.max_streams", "0 must be at least 1".into());
        }
        if self.actors.passivate_after_s == 0 {
            return bad("actors.passivate_after_s", "0 must be at least 1".into());
        }
        if self.actors.restart_window_s == 0 {
            return bad("actors.restart_window_s", "0 must be at least 1".into());
        }
        for (key, tokens) in [
            ("auth.ingest_tokens", &self.auth.ingest_tokens),
            ("auth.read_tokens", &self.auth.read_tokens),
        ] {
            if let Some(t) = tokens.iter().find(|t| t.len() < 16) {
                return bad(
                    key,
                    format!(
                        "a token of {} characters is too short (at least 16)",
                        t.len()
                    ),
                );
            }
        }
        self.detect
            .validate()
            .or_else(|(key, reason)| bad(&key, reason))?;
        self.incidents
            .validate()
            .or_else(|(key, reason)| bad(&key, reason))?;
        self.analyst
            .validate()
            .or_else(|(key, reason)| bad(&key, reason))
    }

    /// Whether any bearer token is configured.
    pub fn has_auth(&self) -> bool {
        !self.auth.ingest_tokens.is_empty()
    }
}

/// The feature flags `AI_ENABLED` and `AI_SAMPLING_RATE`, honoured as plain environment
/// variables on top of `analyst.ai_enabled` and `analyst.ai_sampling_rate`.
pub fn apply_ai_flags(
    config: &mut Config,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    if let Some(v) = env("AI_ENABLED") {
        config.analyst.ai_enabled = match v.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => true,
            "0" | "false" | "no" | "off" => false,
            _ => {
                return Err(ConfigError {
                    key: "AI_ENABLED".into(),
                    reason: format!("{v:?} is not a boolean (true/false/1/0)"),
                })
            }
        };
    }
    if let Some(v) = env("AI_SAMPLING_RATE") {
        config.analyst.ai_sampling_rate = v.trim().parse().map_err(|_| ConfigError {
            key: "AI_SAMPLING_RATE".into(),
            reason: format!("{v:?} is not a number between 0 and 1"),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default()
            .validate()
            .expect("defaults must validate");
    }

    #[test]
    fn shipped_default_toml_equals_the_built_in_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml");
        let from_file: Config = Figment::from(Toml::file(&path))
            .extract()
            .expect("config/default.toml parses");
        assert_eq!(from_file, Config::default());
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string("[store]\nengin = \"sled\"\n"))
            .extract::<Config>()
            .expect_err("unknown key");
        assert!(err.to_string().contains("engin"), "{err}");
    }

    #[test]
    fn ai_flags_override_the_config() {
        let mut c = Config::default();
        let env = |k: &str| match k {
            "AI_ENABLED" => Some("false".to_string()),
            "AI_SAMPLING_RATE" => Some("0.25".to_string()),
            _ => None,
        };
        apply_ai_flags(&mut c, env).expect("flags");
        assert!(!c.analyst.ai_enabled);
        assert_eq!(c.analyst.ai_sampling_rate, 0.25);
        let err = apply_ai_flags(&mut c, |k| (k == "AI_ENABLED").then(|| "maybe".into()))
            .expect_err("bad flag");
        assert_eq!(err.key, "AI_ENABLED");
        assert!(err.reason.contains("maybe"));
        c.analyst.ai_sampling_rate = 1.5;
        assert_eq!(
            c.validate().expect_err("rate").key,
            "analyst.ai_sampling_rate"
        );
    }

    #[test]
    fn bad_value_is_named() {
        let mut c = Config::default();
        c.detect.ewma_alpha = 1.5;
        let err = c.validate().expect_err("alpha out of range");
        assert_eq!(err.key, "detect.ewma_alpha");
        assert!(err.reason.contains("1.5"), "{err}");
    }
}
