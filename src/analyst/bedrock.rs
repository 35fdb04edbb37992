//! The Bedrock backend: InvokeModel through `aws-sdk-bedrockruntime` with the Anthropic
//! messages body. Region, endpoint and credentials follow the standard AWS provider chain
//! (`AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`, profiles, …) with
//! config overrides. The SDK's own retries are off: retries, timeouts and backoff are ours,
//! so attempts are counted and the limiter and breaker see every one.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_bedrockruntime as br;
use aws_sdk_bedrockruntime::config::http::HttpResponse;
use aws_sdk_bedrockruntime::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::primitives::Blob;
use serde_json::Value;
use std::time::{Duration, Instant};

/// What the model said, with its token usage.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelAnswer {
    pub text: String,
    pub input_tokens: u32,
    pub output_tokens: u32,
    /// Why the model stopped (`end_turn`, `max_tokens`, …), when it said.
    pub stop_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    #[error("throttled: {0}")]
    Throttled(String),
    #[error("server error: {0}")]
    Server(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("connection failed: {0}")]
    Transport(String),
    /// Validation, access denied, unknown model: retrying cannot help.
    #[error("rejected: {0}")]
    Rejected(String),
    #[error("unreadable response: {0}")]
    BadResponse(String),
}

impl CallError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            CallError::Throttled(_)
                | CallError::Server(_)
                | CallError::Timeout(_)
                | CallError::Transport(_)
        )
    }

    /// A short reason recorded on fallback insights.
    pub fn reason(&self) -> &'static str {
        match self {
            CallError::Throttled(_) => "throttled",
            CallError::Server(_) => "server_error",
            CallError::Timeout(_) => "timeout",
            CallError::Transport(_) => "unreachable",
            CallError::Rejected(_) => "rejected",
            CallError::BadResponse(_) => "bad_response",
        }
    }
}

/// A configured InvokeModel client for one model.
#[derive(Clone)]
pub struct BedrockModel {
    client: br::Client,
    pub model_id: String,
    timeout: Duration,
}

pub use crate::aws::AwsConfig;

impl BedrockModel {
    /// Build from the standard AWS environment plus `aws` overrides.
    pub async fn from_env(aws: &AwsConfig, model_id: &str, timeout: Duration) -> BedrockModel {
        let sdk = crate::aws::sdk_config(aws).await;
        BedrockModel::from_sdk_config(&sdk, model_id, timeout)
    }

    /// The model the analyst config asks for: `None` for the rules backend.
    pub async fn for_backend(cfg: &super::AnalystConfig, aws: &AwsConfig) -> Option<BedrockModel> {
        match cfg.backend {
            super::Backend::Bedrock => Some(
                BedrockModel::from_env(aws, &cfg.model_id, Duration::from_secs(cfg.timeout_s))
                    .await,
            ),
            super::Backend::Rules => None,
        }
    }

    pub fn from_sdk_config(sdk: &SdkConfig, model_id: &str, timeout: Duration) -> BedrockModel {
        let conf = br::config::Builder::from(sdk)
            .retry_config(br::config::retry::RetryConfig::disabled())
            .build();
        BedrockModel {
            client: br::Client::from_conf(conf),
            model_id: model_id.to_string(),
            timeout,
        }
    }

    /// One InvokeModel call, bounded by the per-call timeout.
    pub async fn invoke(&self, body: &Value) -> Result<ModelAnswer, CallError> {
        let bytes = serde_json::to_vec(body).map_err(|e| CallError::Rejected(e.to_string()))?;
        let call = self
            .client
            .invoke_model()
            .model_id(&self.model_id)
            .content_type("application/json")
            .accept("application/json")
            .body(Blob::new(bytes))
            .send();
        match tokio::time::timeout(self.timeout, call).await {
            Err(_) => Err(CallError::Timeout(self.timeout)),
            Ok(Err(e)) => Err(classify(e)),
            Ok(Ok(out)) => parse_answer(out.body().as_ref()),
        }
    }
}

fn classify(e: SdkError<br::operation::invoke_model::InvokeModelError, HttpResponse>) -> CallError {
    match &e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            let code = err.code().unwrap_or("");
            let msg = format!("{code}: {}", err.message().unwrap_or(""));
            let status = se.raw().status().as_u16();
            match code {
                "ThrottlingException" | "ServiceQuotaExceededException" => {
                    CallError::Throttled(msg)
                }
                "ValidationException" | "AccessDeniedException" | "ResourceNotFoundException" => {
                    CallError::Rejected(msg)
                }
                "InternalServerException"
                | "ServiceUnavailableException"
                | "ModelNotReadyException"
                | "ModelTimeoutException"
                | "ModelErrorException" => CallError::Server(msg),
                _ if status == 429 => CallError::Throttled(msg),
                _ if status >= 500 => CallError::Server(msg),
                _ => CallError::Rejected(format!("http {status} {msg}")),
            }
        }
        SdkError::TimeoutError(_) => CallError::Timeout(Duration::ZERO),
        SdkError::DispatchFailure(d) => CallError::Transport(format!("{d:?}")),
        SdkError::ResponseError(r) => {
            CallError::Server(format!("http {}", r.raw().status().as_u16()))
        }
        other => CallError::Transport(format!("{other:?}")),
    }
}

/// The Anthropic messages response: the text blocks and `usage`.
pub fn parse_answer(bytes: &[u8]) -> Result<ModelAnswer, CallError> {
    let v: Value =
        serde_json::from_slice(bytes).map_err(|e| CallError::BadResponse(e.to_string()))?;
    let text: String = v["content"]
        .as_array()
        .map(|blocks| {
            blocks
                .iter()
                .filter(|b| b["type"] == "text")
                .filter_map(|b| b["text"].as_str())
                .collect::<Vec<_>>()
                .join("")
        })
        .unwrap_or_default();
    if text.is_empty() {
        return Err(CallError::BadResponse("no text content".into()));
    }
    let tokens = |k: &str| v["usage"][k].as_u64().unwrap_or(0).min(u64::from(u32::MAX)) as u32;
    Ok(ModelAnswer {
        text,
        input_tokens: tokens("input_tokens"),
        output_tokens: tokens("output_tokens"),
        stop_reason: v["stop_reason"].as_str().map(str::to_string),
    })
}

/// Exponential backoff with full jitter: a random delay in [0, base·2^attempt], capped.
pub fn backoff(attempt: u32, base: Duration, seed: u64) -> Duration {
    let cap = Duration::from_secs(5);
    let ceiling = base.saturating_mul(1u32 << attempt.min(16)).min(cap);
    let mut rng = crate::sim::Rng::new(seed ^ u64::from(attempt));
    ceiling.mul_f64(rng.unit())
}

/// The outcome of a call with retries.
#[derive(Debug)]
pub struct Attempted {
    pub result: Result<ModelAnswer, CallError>,
    pub attempts: u32,
    pub latency: Duration,
}

/// Call with retries on throttling, 5xx, timeouts and connection failures (none on
/// validation or access errors), up to `max_retries` retries.
pub async fn invoke_with_retries(
    model: &BedrockModel,
    body: &Value,
    max_retries: u32,
    base_delay: Duration,
) -> Attempted {
    let started = Instant::now();
    let seed = crate::clock::now_ms() as u64;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let result = model.invoke(body).await;
        match result {
            Err(e) if e.is_retryable() && attempts <= max_retries => {
                let delay = backoff(attempts - 1, base_delay, seed);
                tracing::debug!(error = %e, attempts, ?delay, "bedrock call failed; retrying");
                tokio::time::sleep(delay).await;
            }
            result => {
                return Attempted {
                    result,
                    attempts,
                    latency: started.elapsed(),
                }
            }
        }
    }
}

/// An SDK config with fixed dummy credentials, for a local Bedrock-protocol server (tests,
/// the analyst benchmark, offline demos). Nothing from the environment is read.
pub fn local_sdk_config(endpoint_url: &str) -> SdkConfig {
    use aws_sdk_bedrockruntime::config::{Credentials, SharedCredentialsProvider};
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint_url)
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "local",
            "local",
            None,
            None,
            "ibsight-local",
        )))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_text_and_usage() {
        let body = br#"{"content":[{"type":"text","text":"{\"a\":1}"}],"usage":{"input_tokens":120,"output_tokens":40}}"#;
        let a = parse_answer(body).expect("answer");
        assert_eq!(
            (a.text.as_str(), a.input_tokens, a.output_tokens),
            ("{\"a\":1}", 120, 40)
        );
        assert!(parse_answer(b"{}").is_err());
        assert!(parse_answer(b"nope").is_err());
    }

    #[test]
    fn backoff_grows_is_jittered_and_capped() {
        let base = Duration::from_millis(100);
        for attempt in 0..10 {
            let d = backoff(attempt, base, 42);
            let ceiling = (base * (1 << attempt)).min(Duration::from_secs(5));
            assert!(d <= ceiling, "attempt {attempt}: {d:?} > {ceiling:?}");
        }
        assert_ne!(backoff(3, base, 1), backoff(3, base, 2), "jitter");
    }

    #[test]
    fn only_transient_errors_are_retried() {
        assert!(CallError::Throttled("x".into()).is_retryable());
        assert!(CallError::Server("x".into()).is_retryable());
        assert!(CallError::Timeout(Duration::ZERO).is_retryable());
        assert!(!CallError::Rejected("ValidationException".into()).is_retryable());
        assert!(!CallError::BadResponse("x".into()).is_retryable());
    }
}
