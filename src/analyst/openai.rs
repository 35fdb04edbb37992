//! The on-premises backend: any OpenAI-compatible chat-completions endpoint (vLLM,
//! llama.cpp's server, Ollama, TGI, …) at `analyst.openai.base_url`. The answer is forced into
//! the insight schema with a function tool (`output = "tools"`, the default) or a JSON-schema
//! response format (`output = "json_schema"`), for servers that support only one of them.
//! Only the request and the response differ from Bedrock: the limiter, retries, breaker,
//! budget and fallback are the analyst's, the same for every backend.

use super::model::{CallError, ModelAnswer, ModelRequest};
use super::schema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::Duration;

/// How the answer is forced into the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OutputMode {
    /// A function tool and a `tool_choice` naming it.
    #[default]
    Tools,
    /// `response_format: {"type": "json_schema", …}`: the content is the schema's JSON.
    JsonSchema,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenAiConfig {
    /// The API root, up to and including `/v1` (`/chat/completions` is added).
    pub base_url: String,
    /// The served model's name.
    pub model: String,
    /// The environment variable holding the API key; empty or unset: no Authorization header.
    pub api_key_env: String,
    pub output: OutputMode,
    /// Price per million tokens (a local model costs nothing by default).
    pub input_usd_per_mtok: f64,
    pub output_usd_per_mtok: f64,
}

impl Default for OpenAiConfig {
    fn default() -> Self {
        OpenAiConfig {
            base_url: "http://127.0.0.1:8000/v1".into(),
            model: "llama-3.1-8b-instruct".into(),
            api_key_env: "IBSIGHT_OPENAI_API_KEY".into(),
            output: OutputMode::Tools,
            input_usd_per_mtok: 0.0,
            output_usd_per_mtok: 0.0,
        }
    }
}

impl OpenAiConfig {
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |key: &str, why: String| Err((format!("analyst.openai.{key}"), why));
        let url = self.base_url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://"))
            || reqwest::Url::parse(url).is_err()
        {
            return bad(
                "base_url",
                format!("{:?} is not an http(s) URL", self.base_url),
            );
        }
        if self.model.trim().is_empty() || self.model.len() > 256 {
            return bad(
                "model",
                format!("{:?} must be 1 to 256 characters", self.model),
            );
        }
        for (key, v) in [
            ("input_usd_per_mtok", self.input_usd_per_mtok),
            ("output_usd_per_mtok", self.output_usd_per_mtok),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(key, format!("{v} must be a non-negative number"));
            }
        }
        Ok(())
    }
}

/// A configured chat-completions client for one model.
#[derive(Clone)]
pub struct OpenAiModel {
    client: reqwest::Client,
    url: String,
    pub model: String,
    api_key: Option<String>,
    output: OutputMode,
    timeout: Duration,
}

impl OpenAiModel {
    pub fn from_config(cfg: &OpenAiConfig, timeout: Duration) -> anyhow::Result<OpenAiModel> {
        let api_key = match cfg.api_key_env.trim() {
            "" => None,
            name => std::env::var(name).ok().filter(|k| !k.trim().is_empty()),
        };
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()?;
        Ok(OpenAiModel {
            client,
            url: format!(
                "{}/chat/completions",
                cfg.base_url.trim().trim_end_matches('/')
            ),
            model: cfg.model.clone(),
            api_key,
            output: cfg.output,
            timeout,
        })
    }

    /// One chat-completions call, bounded by the per-call timeout.
    pub async fn invoke(&self, request: &ModelRequest) -> Result<ModelAnswer, CallError> {
        let mut call =
            self.client
                .post(&self.url)
                .json(&request_body(&self.model, self.output, request));
        if let Some(key) = &self.api_key {
            call = call.bearer_auth(key);
        }
        let response = match tokio::time::timeout(self.timeout, call.send()).await {
            Err(_) => return Err(CallError::Timeout(self.timeout)),
            Ok(Err(e)) if e.is_timeout() => return Err(CallError::Timeout(self.timeout)),
            Ok(Err(e)) => return Err(CallError::Transport(crate::errors::chain(&e))),
            Ok(Ok(r)) => r,
        };
        let status = response.status().as_u16();
        let bytes = match tokio::time::timeout(self.timeout, response.bytes()).await {
            Err(_) => return Err(CallError::Timeout(self.timeout)),
            Ok(Err(e)) => return Err(CallError::Transport(e.to_string())),
            Ok(Ok(b)) => b,
        };
        if status != 200 {
            return Err(classify(status, &bytes));
        }
        parse_answer(&bytes, self.output)
    }
}

/// An error status by what retrying can do: 429 and 5xx are transient, the rest is not.
pub fn classify(status: u16, body: &[u8]) -> CallError {
    let msg = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v["error"]["message"]
                .as_str()
                .or(v["message"].as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
    let msg = format!("http {status}: {msg}");
    match status {
        429 => CallError::Throttled(msg),
        408 => CallError::Timeout(Duration::ZERO),
        500..=599 => CallError::Server(msg),
        _ => CallError::Rejected(msg),
    }
}

/// The chat-completions body, with the schema forced as `output` says.
pub fn request_body(model: &str, output: OutputMode, r: &ModelRequest) -> Value {
    let mut body = json!({
        "model": model,
        "messages": [
            {"role": "system", "content": r.system},
            {"role": "user", "content": r.user},
        ],
        "max_tokens": r.max_tokens,
        "temperature": r.temperature,
        "top_p": r.top_p,
    });
    match output {
        OutputMode::Tools => {
            body["tools"] = json!([{
                "type": "function",
                "function": {
                    "name": schema::TOOL_NAME,
                    "description": schema::TOOL_DESCRIPTION,
                    "parameters": schema::input_schema(),
                },
            }]);
            body["tool_choice"] =
                json!({"type": "function", "function": {"name": schema::TOOL_NAME}});
        }
        OutputMode::JsonSchema => {
            body["response_format"] = json!({
                "type": "json_schema",
                "json_schema": {"name": schema::TOOL_NAME, "schema": schema::input_schema(), "strict": true},
            });
        }
    }
    body
}

/// The first choice's tool call (its `arguments` are a JSON string), or, in JSON-schema mode,
/// its content when that is JSON; the content as text otherwise.
pub fn parse_answer(bytes: &[u8], output: OutputMode) -> Result<ModelAnswer, CallError> {
    let v: Value =
        serde_json::from_slice(bytes).map_err(|e| CallError::BadResponse(e.to_string()))?;
    let choice = &v["choices"][0];
    if choice.is_null() {
        return Err(CallError::BadResponse("no choices".into()));
    }
    let message = &choice["message"];
    let text = message["content"].as_str().unwrap_or("").to_string();
    let tool_input = message["tool_calls"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["function"]["name"] == schema::TOOL_NAME)
        .and_then(|c| match &c["function"]["arguments"] {
            Value::String(s) => serde_json::from_str::<Value>(s).ok(),
            Value::Object(_) => Some(c["function"]["arguments"].clone()),
            _ => None,
        })
        .or_else(|| match output {
            OutputMode::JsonSchema => serde_json::from_str::<Value>(text.trim())
                .ok()
                .filter(|v| v.get("insights").is_some()),
            OutputMode::Tools => None,
        });
    if text.trim().is_empty() && tool_input.is_none() {
        return Err(CallError::BadResponse("no tool call and no text".into()));
    }
    let tokens = |k: &str| v["usage"][k].as_u64().unwrap_or(0).min(u64::from(u32::MAX)) as u32;
    Ok(ModelAnswer {
        tool_input,
        text,
        input_tokens: tokens("prompt_tokens"),
        output_tokens: tokens("completion_tokens"),
        stop_reason: choice["finish_reason"].as_str().map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> ModelRequest {
        ModelRequest {
            system: "sys".into(),
            user: "user".into(),
            max_tokens: 1000,
            temperature: 0.3,
            top_p: 0.9,
        }
    }

    #[test]
    fn the_body_forces_the_schema_by_tool_or_by_response_format() {
        let b = request_body("m", OutputMode::Tools, &req());
        assert_eq!(b["messages"][0]["role"], "system");
        assert_eq!(
            b["tools"][0]["function"]["parameters"],
            schema::input_schema()
        );
        assert_eq!(b["tool_choice"]["function"]["name"], schema::TOOL_NAME);
        assert!(b.get("response_format").is_none());
        let b = request_body("m", OutputMode::JsonSchema, &req());
        assert_eq!(
            b["response_format"]["json_schema"]["schema"],
            schema::input_schema()
        );
        assert!(b.get("tools").is_none());
    }

    #[test]
    fn a_tool_call_s_arguments_are_the_tool_input() {
        let body = json!({"choices": [{"message": {"role": "assistant", "content": null,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "record_insights",
            "arguments": "{\"insights\": []}"}}]}, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20}});
        let a = parse_answer(body.to_string().as_bytes(), OutputMode::Tools).expect("answer");
        assert_eq!(a.tool_input, Some(json!({"insights": []})));
        assert_eq!((a.input_tokens, a.output_tokens), (100, 20));
    }

    #[test]
    fn json_schema_content_is_the_tool_input_and_plain_text_is_text() {
        let body = json!({"choices": [{"message": {"content": "{\"insights\": []}"}}]});
        let a = parse_answer(body.to_string().as_bytes(), OutputMode::JsonSchema).expect("a");
        assert_eq!(a.tool_input, Some(json!({"insights": []})));
        let a = parse_answer(body.to_string().as_bytes(), OutputMode::Tools).expect("a");
        assert_eq!(
            (a.tool_input, a.text.as_str()),
            (None, "{\"insights\": []}")
        );
        assert!(parse_answer(b"{\"choices\": []}", OutputMode::Tools).is_err());
        assert!(parse_answer(b"<html>", OutputMode::Tools).is_err());
    }

    #[test]
    fn statuses_are_classified_by_what_a_retry_can_do() {
        assert!(matches!(classify(429, b"{}"), CallError::Throttled(_)));
        assert!(matches!(classify(503, b"busy"), CallError::Server(_)));
        let e = classify(400, br#"{"error": {"message": "bad model"}}"#);
        assert_eq!(e, CallError::Rejected("http 400: bad model".into()));
    }

    #[test]
    fn config_errors_name_the_field_and_value() {
        let cfg = OpenAiConfig {
            base_url: "localhost:8000".into(),
            ..OpenAiConfig::default()
        };
        let (field, why) = cfg.validate().expect_err("bad url");
        assert_eq!(field, "analyst.openai.base_url");
        assert!(why.contains("localhost:8000"), "{why}");
        assert!(OpenAiConfig::default().validate().is_ok());
    }
}
