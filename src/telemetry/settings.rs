//! Telemetry settings: the `[telemetry]` config section, with the standard OpenTelemetry
//! environment variables layered on top (they win, as operators expect of any OTel service).
//! Pure: the environment is passed in, so every rule here is unit-tested.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (coloured on a terminal).
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum OtlpProtocol {
    #[default]
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    #[serde(rename = "grpc")]
    Grpc,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    pub log_format: LogFormat,
    /// A tracing filter (`info`, `ibsight=debug,info`); `RUST_LOG` overrides it.
    pub log_level: String,
    /// OTLP collector base URL (`http://127.0.0.1:4318`); empty: no trace export.
    pub otlp_endpoint: String,
    pub otlp_protocol: OtlpProtocol,
    pub service_name: String,
    /// Fraction of new traces kept (parent-based: a sampled caller is always followed).
    pub sampling_ratio: f64,
    /// Extra resource attributes (`deployment.environment = "prod"`).
    pub resource_attributes: BTreeMap<String, String>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            log_format: LogFormat::Text,
            // ractor wraps every actor in an INFO span; entering it on every poll costs ingest
            // time and adds nothing ibsight's own fields don't say.
            log_level: "info,ractor=warn".into(),
            otlp_endpoint: String::new(),
            otlp_protocol: OtlpProtocol::HttpProtobuf,
            service_name: "ibsight".into(),
            sampling_ratio: 1.0,
            resource_attributes: BTreeMap::new(),
        }
    }
}

/// How root spans are sampled (the OTEL_TRACES_SAMPLER values).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SamplerChoice {
    AlwaysOn,
    AlwaysOff,
    Ratio(f64),
    ParentBasedAlwaysOn,
    ParentBasedAlwaysOff,
    ParentBasedRatio(f64),
}

/// The settings in force after the environment is applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub log_format: LogFormat,
    pub log_filter: String,
    /// The full URL spans are sent to (`…/v1/traces` for HTTP); `None`: export off.
    pub endpoint: Option<String>,
    pub protocol: OtlpProtocol,
    pub service_name: String,
    pub sampler: SamplerChoice,
    pub resource_attributes: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{field}: {value:?} {reason}")]
pub struct SettingError {
    pub field: String,
    pub value: String,
    pub reason: String,
}

fn bad(field: &str, value: &str, reason: &str) -> SettingError {
    SettingError {
        field: field.into(),
        value: value.into(),
        reason: reason.into(),
    }
}

impl TelemetryConfig {
    /// Check the file's values (before the environment is applied).
    pub fn validate(&self) -> Result<(), SettingError> {
        if !(0.0..=1.0).contains(&self.sampling_ratio) {
            return Err(bad(
                "telemetry.sampling_ratio",
                &self.sampling_ratio.to_string(),
                "must be within [0, 1]",
            ));
        }
        if self.service_name.trim().is_empty() {
            return Err(bad(
                "telemetry.service_name",
                &self.service_name,
                "is empty",
            ));
        }
        Ok(())
    }

    /// Apply the OTEL_* variables (and RUST_LOG) read through `env`.
    pub fn resolve(&self, env: impl Fn(&str) -> Option<String>) -> Result<Resolved, SettingError> {
        self.validate()?;
        let env = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let protocol = match env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .map(|v| ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", v))
            .or_else(|| {
                env("OTEL_EXPORTER_OTLP_PROTOCOL").map(|v| ("OTEL_EXPORTER_OTLP_PROTOCOL", v))
            }) {
            None => self.otlp_protocol,
            Some((_, v)) if v == "http/protobuf" => OtlpProtocol::HttpProtobuf,
            Some((_, v)) if v == "grpc" => OtlpProtocol::Grpc,
            Some((k, v)) => return Err(bad(k, &v, "is not supported (use http/protobuf or grpc)")),
        };
        // A signal-specific endpoint is used as is; a base endpoint gets the signal's path.
        let endpoint = if let Some(url) = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            Some(check_url("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", url)?)
        } else {
            let (field, base) = match env("OTEL_EXPORTER_OTLP_ENDPOINT") {
                Some(v) => ("OTEL_EXPORTER_OTLP_ENDPOINT", v),
                None => ("telemetry.otlp_endpoint", self.otlp_endpoint.clone()),
            };
            if base.trim().is_empty() {
                None
            } else {
                let base = check_url(field, base)?;
                Some(match protocol {
                    OtlpProtocol::HttpProtobuf => {
                        format!("{}/v1/traces", base.trim_end_matches('/'))
                    }
                    OtlpProtocol::Grpc => base,
                })
            }
        };
        let service_name = env("OTEL_SERVICE_NAME").unwrap_or_else(|| self.service_name.clone());
        let sampler = match env("OTEL_TRACES_SAMPLER") {
            None => SamplerChoice::ParentBasedRatio(self.sampling_ratio),
            Some(name) => {
                let ratio = || -> Result<f64, SettingError> {
                    match env("OTEL_TRACES_SAMPLER_ARG") {
                        None => Ok(1.0),
                        Some(arg) => arg
                            .trim()
                            .parse::<f64>()
                            .ok()
                            .filter(|r| (0.0..=1.0).contains(r))
                            .ok_or_else(|| {
                                bad(
                                    "OTEL_TRACES_SAMPLER_ARG",
                                    &arg,
                                    "must be a number within [0, 1]",
                                )
                            }),
                    }
                };
                match name.trim() {
                    "always_on" => SamplerChoice::AlwaysOn,
                    "always_off" => SamplerChoice::AlwaysOff,
                    "traceidratio" => SamplerChoice::Ratio(ratio()?),
                    "parentbased_always_on" => SamplerChoice::ParentBasedAlwaysOn,
                    "parentbased_always_off" => SamplerChoice::ParentBasedAlwaysOff,
                    "parentbased_traceidratio" => SamplerChoice::ParentBasedRatio(ratio()?),
                    _ => {
                        return Err(bad(
                            "OTEL_TRACES_SAMPLER",
                            &name,
                            "is not one of always_on, always_off, traceidratio, \
                             parentbased_always_on, parentbased_always_off, parentbased_traceidratio",
                        ))
                    }
                }
            }
        };
        let mut resource_attributes = self.resource_attributes.clone();
        if let Some(list) = env("OTEL_RESOURCE_ATTRIBUTES") {
            for pair in list.split(',').filter(|p| !p.trim().is_empty()) {
                let (k, v) = pair
                    .split_once('=')
                    .ok_or_else(|| bad("OTEL_RESOURCE_ATTRIBUTES", pair, "is not key=value"))?;
                resource_attributes.insert(k.trim().to_string(), v.trim().to_string());
            }
        }
        Ok(Resolved {
            log_format: self.log_format,
            log_filter: env("RUST_LOG").unwrap_or_else(|| self.log_level.clone()),
            endpoint,
            protocol,
            service_name,
            sampler,
            resource_attributes,
        })
    }
}

fn check_url(field: &str, url: String) -> Result<String, SettingError> {
    let url = url.trim().to_string();
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(url)
    } else {
        Err(bad(field, &url, "is not an http:// or https:// URL"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(cfg: &TelemetryConfig, vars: &[(&str, &str)]) -> Result<Resolved, SettingError> {
        cfg.resolve(|k| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn export_is_off_until_an_endpoint_is_set() {
        let r = resolve(&TelemetryConfig::default(), &[]).expect("defaults");
        assert_eq!(r.endpoint, None);
        assert_eq!(r.sampler, SamplerChoice::ParentBasedRatio(1.0));
        assert_eq!(r.service_name, "ibsight");
        assert_eq!(r.log_filter, "info,ractor=warn");
    }

    #[test]
    fn the_standard_variables_win_over_the_file() {
        let cfg = TelemetryConfig {
            otlp_endpoint: "http://file:4318".into(),
            sampling_ratio: 0.5,
            ..TelemetryConfig::default()
        };
        let r = resolve(
            &cfg,
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
                ("OTEL_SERVICE_NAME", "ibsight-eu"),
                ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "0.01"),
                (
                    "OTEL_RESOURCE_ATTRIBUTES",
                    "deployment.environment=prod, host.name=n1",
                ),
                ("RUST_LOG", "debug"),
            ],
        )
        .expect("valid");
        assert_eq!(
            r.endpoint.as_deref(),
            Some("http://collector:4318/v1/traces")
        );
        assert_eq!(r.service_name, "ibsight-eu");
        assert_eq!(r.sampler, SamplerChoice::ParentBasedRatio(0.01));
        assert_eq!(r.resource_attributes["deployment.environment"], "prod");
        assert_eq!(r.resource_attributes["host.name"], "n1");
        assert_eq!(r.log_filter, "debug");
    }

    #[test]
    fn the_file_endpoint_gets_the_traces_path_and_grpc_keeps_it_as_is() {
        let cfg = TelemetryConfig {
            otlp_endpoint: "http://127.0.0.1:4318".into(),
            ..TelemetryConfig::default()
        };
        let http = resolve(&cfg, &[]).expect("valid");
        assert_eq!(
            http.endpoint.as_deref(),
            Some("http://127.0.0.1:4318/v1/traces")
        );
        let grpc = resolve(
            &cfg,
            &[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
            ],
        )
        .expect("valid");
        assert_eq!(grpc.protocol, OtlpProtocol::Grpc);
        assert_eq!(grpc.endpoint.as_deref(), Some("http://127.0.0.1:4317"));
        let signal = resolve(
            &cfg,
            &[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://x:1/custom")],
        )
        .expect("valid");
        assert_eq!(signal.endpoint.as_deref(), Some("http://x:1/custom"));
    }

    #[test]
    fn bad_values_name_the_variable_and_the_value() {
        let cfg = TelemetryConfig::default();
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("OTEL_TRACES_SAMPLER", "sometimes")],
                "OTEL_TRACES_SAMPLER",
            ),
            (
                &[
                    ("OTEL_TRACES_SAMPLER", "traceidratio"),
                    ("OTEL_TRACES_SAMPLER_ARG", "2"),
                ],
                "OTEL_TRACES_SAMPLER_ARG",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")],
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")],
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ),
            (
                &[("OTEL_RESOURCE_ATTRIBUTES", "novalue")],
                "OTEL_RESOURCE_ATTRIBUTES",
            ),
        ];
        for (vars, field) in cases {
            let e = resolve(&cfg, vars).expect_err("invalid");
            assert_eq!(e.field, *field);
            assert!(!e.value.is_empty());
        }
        let e = TelemetryConfig {
            sampling_ratio: 1.5,
            ..TelemetryConfig::default()
        }
        .validate()
        .expect_err("out of range");
        assert_eq!(
            e.to_string(),
            "telemetry.sampling_ratio: \"1.5\" must be within [0, 1]"
        );
    }
}
