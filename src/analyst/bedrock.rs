//! The Bedrock backend: InvokeModel through `aws-sdk-bedrockruntime` with the Anthropic
//! messages body. Region, endpoint and credentials follow the standard AWS provider chain
//! (`AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`, profiles, …) with
//! config overrides. The SDK's own retries are off: retries, timeouts and backoff are ours,
//! so attempts are counted and the limiter and breaker see every one.

use super::model::{CallError, ModelAnswer, ModelRequest};
use super::schema;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_bedrockruntime as br;
use aws_sdk_bedrockruntime::config::http::HttpResponse;
use aws_sdk_bedrockruntime::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::primitives::Blob;
use serde_json::{json, Value};
use std::time::Duration;

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
    pub async fn invoke(&self, request: &ModelRequest) -> Result<ModelAnswer, CallError> {
        let bytes = serde_json::to_vec(&request_body(request))
            .map_err(|e| CallError::Rejected(e.to_string()))?;
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

/// The InvokeModel body: the Anthropic messages API on Bedrock, with the insight tool and a
/// `tool_choice` that forces it.
pub fn request_body(r: &ModelRequest) -> Value {
    json!({
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": r.max_tokens,
        "temperature": r.temperature,
        "top_p": r.top_p,
        "system": r.system,
        "messages": [{"role": "user", "content": [{"type": "text", "text": r.user}]}],
        "tools": [{
            "name": schema::TOOL_NAME,
            "description": schema::TOOL_DESCRIPTION,
            "input_schema": schema::input_schema(),
        }],
        "tool_choice": {"type": "tool", "name": schema::TOOL_NAME},
    })
}

/// The Anthropic messages response: the insight tool's input, the text blocks, and `usage`.
pub fn parse_answer(bytes: &[u8]) -> Result<ModelAnswer, CallError> {
    let v: Value =
        serde_json::from_slice(bytes).map_err(|e| CallError::BadResponse(e.to_string()))?;
    let blocks = v["content"].as_array().cloned().unwrap_or_default();
    let text: String = blocks
        .iter()
        .filter(|b| b["type"] == "text")
        .filter_map(|b| b["text"].as_str())
        .collect::<Vec<_>>()
        .join("");
    let tool_input = blocks
        .iter()
        .find(|b| b["type"] == "tool_use" && b["name"] == schema::TOOL_NAME)
        .map(|b| b["input"].clone());
    if text.is_empty() && tool_input.is_none() {
        return Err(CallError::BadResponse("no tool call and no text".into()));
    }
    let tokens = |k: &str| v["usage"][k].as_u64().unwrap_or(0).min(u64::from(u32::MAX)) as u32;
    Ok(ModelAnswer {
        tool_input,
        text,
        input_tokens: tokens("input_tokens"),
        output_tokens: tokens("output_tokens"),
        stop_reason: v["stop_reason"].as_str().map(str::to_string),
    })
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
        assert_eq!(a.tool_input, None);
        assert!(parse_answer(b"{}").is_err());
        assert!(parse_answer(b"nope").is_err());
    }

    #[test]
    fn a_tool_call_is_read_as_the_tool_input() {
        let body = br#"{"content":[{"type":"tool_use","id":"t1","name":"record_insights","input":{"insights":[]}}],
            "stop_reason":"tool_use","usage":{"input_tokens":10,"output_tokens":5}}"#;
        let a = parse_answer(body).expect("answer");
        assert_eq!(a.tool_input, Some(json!({"insights": []})));
        assert_eq!(a.stop_reason.as_deref(), Some("tool_use"));
        // Another tool's call is not the insight.
        let other = br#"{"content":[{"type":"tool_use","name":"other","input":{}}]}"#;
        assert!(parse_answer(other).is_err());
    }

    #[test]
    fn the_body_forces_the_insight_tool_with_the_seed_parameters() {
        let r = ModelRequest {
            system: "sys".into(),
            user: "user".into(),
            max_tokens: 1000,
            temperature: 0.3,
            top_p: 0.9,
        };
        let b = request_body(&r);
        assert_eq!(b["anthropic_version"], "bedrock-2023-05-31");
        assert_eq!(
            (b["max_tokens"].as_u64(), b["temperature"].as_f64()),
            (Some(1000), Some(0.3))
        );
        assert_eq!(b["tools"][0]["name"], schema::TOOL_NAME);
        assert_eq!(
            b["tool_choice"],
            json!({"type": "tool", "name": schema::TOOL_NAME})
        );
        assert_eq!(b["tools"][0]["input_schema"], schema::input_schema());
    }
}
