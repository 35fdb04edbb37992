//! A local model server for tests, the analyst benchmark and offline demos. It speaks two wire
//! formats on one port: Bedrock's InvokeModel (`POST /model/{modelId}/invoke`, the `:` of the
//! id percent-encoded, Anthropic messages) and OpenAI's chat completions
//! (`POST /v1/chat/completions`, the on-premises backend). Scripted replies are served in
//! order, then the default reply, which answers every anomaly of the prompt with a valid
//! insight as the forced tool call. It records every request.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One scripted reply.
#[derive(Debug, Clone)]
pub enum FakeReply {
    /// 200 with this text as the model's content (no tool call).
    Text(String),
    /// 200 with the default insight(s) for the prompt, as the insight tool's call.
    Insight,
    /// 200 with the default insight(s) for the prompt, as text (the form before tools).
    TextInsight,
    /// 200 with this input to the insight tool.
    Tool(Value),
    /// An error status with `x-amzn-ErrorType` (e.g. 429 ThrottlingException); for chat
    /// completions, the type in the error body.
    Error { status: u16, error_type: String },
    /// Wait, then reply.
    Slow(Duration, Box<FakeReply>),
}

/// A request the server received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Bedrock's model id, or the chat-completions body's `model`.
    pub model_id: String,
    /// `bedrock` or `openai`: which protocol the request came in.
    pub protocol: &'static str,
    pub body: Value,
    pub authorization: Option<String>,
}

#[derive(Default)]
struct Inner {
    script: VecDeque<FakeReply>,
    received: Vec<Received>,
    /// Added to every reply (a model's own latency).
    latency: Duration,
    /// The risk and confidence of the default insight.
    answer: Option<(u8, f64)>,
}

#[derive(Clone)]
pub struct FakeBedrock {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    stop: Arc<Mutex<Option<tokio::sync::oneshot::Sender<()>>>>,
}

impl FakeBedrock {
    /// Serve on `127.0.0.1:0` (or `listen`) until `stop` or drop of the last handle's task.
    pub async fn start(listen: Option<SocketAddr>) -> std::io::Result<FakeBedrock> {
        let listener =
            tokio::net::TcpListener::bind(listen.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0))))
                .await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route("/model/{model_id}/invoke", post(invoke))
            .route("/v1/chat/completions", post(chat))
            .with_state(inner.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(FakeBedrock {
            addr,
            inner,
            stop: Arc::new(Mutex::new(Some(tx))),
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The `base_url` of the OpenAI-compatible side.
    pub fn openai_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The risk and confidence of the default insight (72 and 0.81 unless set).
    pub fn set_answer(&self, risk: u8, confidence: f64) {
        self.lock().answer = Some((risk, confidence));
    }

    /// Queue replies served before the default one.
    pub fn script(&self, replies: impl IntoIterator<Item = FakeReply>) {
        self.lock().script.extend(replies);
    }

    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    pub fn stop(&self) {
        if let Some(tx) = self.stop.lock().expect("fake bedrock lock").take() {
            let _ = tx.send(());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("fake bedrock lock")
    }
}

async fn invoke(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(model_id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    serve(inner, Some(model_id), "bedrock", headers, body).await
}

async fn chat(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    serve(inner, None, "openai", headers, body).await
}

async fn serve(
    inner: Arc<Mutex<Inner>>,
    model_id: Option<String>,
    protocol: &'static str,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (reply, latency, answer) = {
        let mut inner = inner.lock().expect("fake bedrock lock");
        inner.received.push(Received {
            model_id: model_id.unwrap_or_else(|| body["model"].as_str().unwrap_or("").to_string()),
            protocol,
            body: body.clone(),
            authorization: headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        });
        let reply = inner.script.pop_front().unwrap_or(FakeReply::Insight);
        (reply, inner.latency, inner.answer.unwrap_or((72, 0.81)))
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut reply = reply;
    while let FakeReply::Slow(delay, then) = reply {
        tokio::time::sleep(delay).await;
        reply = *then;
    }
    let (text, tool) = match reply {
        FakeReply::Text(text) => (Some(text), None),
        FakeReply::TextInsight => (Some(default_insights(&body, answer).to_string()), None),
        FakeReply::Insight => (None, Some(default_insights(&body, answer))),
        FakeReply::Tool(input) => (None, Some(input)),
        FakeReply::Error { status, error_type } => return error(protocol, status, &error_type),
        FakeReply::Slow(..) => unreachable!("unwrapped above"),
    };
    match protocol {
        "openai" => chat_ok(text, tool, &body),
        _ => ok(text, tool, &body),
    }
}

fn error(protocol: &str, status: u16, error_type: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut headers = HeaderMap::new();
    if protocol == "bedrock" {
        if let Ok(v) = error_type.parse() {
            headers.insert("x-amzn-ErrorType", v);
        }
    }
    let body = match protocol {
        "openai" => json!({"error": {"type": error_type, "message": format!("fake {error_type}")}}),
        _ => json!({"message": format!("fake {error_type}")}),
    };
    (status, headers, body.to_string()).into_response()
}

/// The Anthropic messages response: a text block or the insight tool's call.
fn ok(text: Option<String>, tool: Option<Value>, request: &Value) -> Response {
    let input_tokens = (request.to_string().len() / 4) as u64;
    let (content, stop, out_len) = match (text, tool) {
        (_, Some(input)) => {
            let len = input.to_string().len();
            (
                json!([{"type": "tool_use", "id": "toolu_fake", "name": crate::analyst::schema::TOOL_NAME, "input": input}]),
                "tool_use",
                len,
            )
        }
        (text, None) => {
            let text = text.unwrap_or_default();
            let len = text.len();
            (json!([{"type": "text", "text": text}]), "end_turn", len)
        }
    };
    let body = json!({
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": "claude-3-5-haiku-20241022",
        "content": content,
        "stop_reason": stop,
        "usage": {"input_tokens": input_tokens, "output_tokens": (out_len / 4) as u64},
    });
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The chat-completions response: content, or the function call (its arguments a JSON
/// string), or, when the request asked for a JSON-schema response format, the JSON as content.
fn chat_ok(text: Option<String>, tool: Option<Value>, request: &Value) -> Response {
    let prompt_tokens = (request.to_string().len() / 4) as u64;
    let json_schema = request["response_format"]["type"] == "json_schema";
    let (message, finish, out_len) = match (text, tool) {
        (_, Some(input)) if json_schema => {
            let s = input.to_string();
            (json!({"role": "assistant", "content": s}), "stop", s.len())
        }
        (_, Some(input)) => {
            let args = input.to_string();
            let len = args.len();
            (
                json!({"role": "assistant", "content": null, "tool_calls": [{
                    "id": "call_fake", "type": "function",
                    "function": {"name": crate::analyst::schema::TOOL_NAME, "arguments": args},
                }]}),
                "tool_calls",
                len,
            )
        }
        (text, None) => {
            let text = text.unwrap_or_default();
            let len = text.len();
            (json!({"role": "assistant", "content": text}), "stop", len)
        }
    };
    let body = json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "model": request["model"],
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": (out_len / 4) as u64},
    });
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The user message of either protocol.
pub fn user_text(request: &Value) -> &str {
    request["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["role"] == "user")
        .find_map(|m| m["content"].as_str().or(m["content"][0]["text"].as_str()))
        .unwrap_or("")
}

/// A valid insight per anomaly in the prompt, as the tool's input `{"insights": [...]}`.
fn default_insights(request: &Value, (risk, confidence): (u8, f64)) -> Value {
    let n = user_text(request).matches("\nANOMALY ").count().max(1);
    let one = |i: usize| {
        json!({
            "prediction_type": "performance_degradation",
            "risk_score": risk,
            "explanation": format!("fake model analysis of anomaly {}", i + 1),
            "recommendations": ["Check the port's peer and cable", "Review recent job placement"],
            "confidence": confidence,
        })
    };
    json!({"insights": (0..n).map(one).collect::<Vec<_>>()})
}
