//! A local server that speaks Bedrock's InvokeModel wire format
//! (`POST /model/{modelId}/invoke`, the `:` of the id percent-encoded), for tests, the analyst
//! benchmark and offline demos. Scripted replies are served in order, then a default reply
//! that answers every anomaly of the prompt with a valid insight. It records every request.

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
    /// 200 with this text as the model's content.
    Text(String),
    /// 200 with the default insight(s) for the prompt.
    Insight,
    /// An error status with `x-amzn-ErrorType` (e.g. 429 ThrottlingException).
    Error { status: u16, error_type: String },
    /// Wait, then reply.
    Slow(Duration, Box<FakeReply>),
}

/// A request the server received.
#[derive(Debug, Clone)]
pub struct Received {
    pub model_id: String,
    pub body: Value,
    pub authorization: Option<String>,
}

#[derive(Default)]
struct Inner {
    script: VecDeque<FakeReply>,
    received: Vec<Received>,
    /// Added to every reply (a model's own latency).
    latency: Duration,
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
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (reply, latency) = {
        let mut inner = inner.lock().expect("fake bedrock lock");
        inner.received.push(Received {
            model_id,
            body: body.clone(),
            authorization: headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        });
        (
            inner.script.pop_front().unwrap_or(FakeReply::Insight),
            inner.latency,
        )
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    respond(reply, &body).await
}

async fn respond(reply: FakeReply, request: &Value) -> Response {
    let mut reply = reply;
    while let FakeReply::Slow(delay, then) = reply {
        tokio::time::sleep(delay).await;
        reply = *then;
    }
    match reply {
        FakeReply::Text(text) => ok(text, request),
        FakeReply::Insight => ok(default_answer(request), request),
        FakeReply::Error { status, error_type } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut headers = HeaderMap::new();
            if let Ok(v) = error_type.parse() {
                headers.insert("x-amzn-ErrorType", v);
            }
            (
                status,
                headers,
                json!({"message": format!("fake {error_type}")}).to_string(),
            )
                .into_response()
        }
        FakeReply::Slow(..) => unreachable!("unwrapped above"),
    }
}

fn ok(text: String, request: &Value) -> Response {
    let input_tokens = (request.to_string().len() / 4) as u64;
    let output_tokens = (text.len() / 4) as u64;
    let body = json!({
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": "claude-3-5-haiku-20241022",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    });
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A valid insight per anomaly in the prompt (an array when several were asked).
fn default_answer(request: &Value) -> String {
    let user = request["messages"][0]["content"][0]["text"]
        .as_str()
        .unwrap_or("");
    let n = user.matches("\nANOMALY ").count().max(1);
    let one = |i: usize| {
        json!({
            "prediction_type": "performance_degradation",
            "risk_score": 72,
            "explanation": format!("fake model analysis of anomaly {}", i + 1),
            "recommendations": ["Check the port's peer and cable", "Review recent job placement"],
            "confidence": 0.81,
        })
    };
    if n == 1 {
        one(0).to_string()
    } else {
        Value::Array((0..n).map(one).collect()).to_string()
    }
}
