//! `POST /v1/metrics`: validate the whole request, then record it; 202 only once durable.

use super::{auth, ApiError, AppState};
use crate::events::{Origin, TraceContext};
use crate::sample::validate::{self, BatchError, Limits};
use crate::telemetry::context;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};

/// The request's span: a server span, continuing the caller's trace when it sent a valid
/// `traceparent`. The sampler decides here; unsampled requests make no spans downstream.
pub async fn post_metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let span = tracing::info_span!(
        "POST /v1/metrics",
        otel.kind = "server",
        http.request.method = "POST",
        http.route = "/v1/metrics",
        samples = tracing::field::Empty,
        correlation_id = tracing::field::Empty,
    );
    continue_trace(&span, &headers);
    let started = std::time::Instant::now();
    let m = crate::metrics::global();
    let answer = context::in_span(span, ingest(state, headers, body, From::Client))
        .await
        .inspect_err(|e| m.ingest_rejections.inc(e.code(), 1));
    m.ingest_request_seconds
        .observe(started.elapsed().as_secs_f64());
    answer
}

/// `POST /internal/v1/samples`: samples another member forwarded to this node, their owner.
/// Authenticated with the node token; stored here, never forwarded again.
pub async fn post_internal_samples(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let span = tracing::info_span!(
        "POST /internal/v1/samples",
        otel.kind = "server",
        http.request.method = "POST",
        http.route = "/internal/v1/samples",
        samples = tracing::field::Empty,
        correlation_id = tracing::field::Empty,
    );
    continue_trace(&span, &headers);
    context::in_span(span, ingest(state, headers, body, From::Member)).await
}

/// Continue the caller's trace when it sent a valid `traceparent`.
fn continue_trace(span: &tracing::Span, headers: &HeaderMap) {
    if let Some(parent) = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(TraceContext::parse_traceparent)
    {
        context::set_parent(span, &parent);
    }
}

enum From {
    Client,
    Member,
}

async fn ingest(
    state: AppState,
    headers: HeaderMap,
    body: Body,
    from: From,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let cfg = &state.config;
    match from {
        From::Client => auth::check_ingest(&cfg.auth, &headers)?,
        From::Member => {
            let presented = headers
                .get(crate::cluster::peers::NODE_TOKEN_HEADER)
                .and_then(|v| v.to_str().ok());
            let router = state.ingestor.router();
            if !router.cluster().is_some_and(|p| p.token_matches(presented)) {
                return Err(ApiError::Unauthorized);
            }
        }
    }
    check_json_content_type(&headers)?;
    let limit = cfg.ingest.max_body_bytes;
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::PayloadTooLarge(format!("body is over {limit} bytes")))?;
    let value = validate::Json::from_slice(&bytes)
        .map_err(|e| ApiError::InvalidJson(format!("body is not valid JSON: {e}")))?;
    let limits = Limits {
        max_samples: cfg.ingest.max_samples,
        max_future_ms: cfg.ingest.max_future_skew_s as i64 * 1000,
        now_ms: crate::clock::now_ms(),
    };
    let samples = validate::parse_batch(&value, &limits).map_err(|e| match e {
        BatchError::Shape(message) => ApiError::BadRequest {
            field: "body".into(),
            message,
        },
        BatchError::TooMany { count, max } => {
            ApiError::PayloadTooLarge(format!("{count} samples in one request, at most {max}"))
        }
        BatchError::Invalid(details) => ApiError::InvalidBatch(details),
    })?;
    let correlation_id = match from {
        // The client's id, as the forwarding member received it.
        From::Member => headers
            .get(crate::cluster::peers::CORRELATION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| correlation_id(&headers)),
        From::Client => correlation_id(&headers),
    };
    let span = tracing::Span::current();
    span.record("samples", samples.len() as i64);
    if let Some(id) = &correlation_id {
        span.record("correlation_id", id.as_str());
    }
    let origin = Origin {
        correlation_id,
        trace: context::context_of(&span),
    };
    let outcome = match from {
        From::Client => state.ingestor.ingest(samples, origin).await?,
        From::Member => state.ingestor.ingest_owned(samples, origin).await?,
    };
    Ok((StatusCode::ACCEPTED, Json(json!(outcome))))
}

fn check_json_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if mime.eq_ignore_ascii_case("application/json") || mime.ends_with("+json") {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(format!(
            "content-type {content_type:?} is not application/json"
        )))
    }
}

/// The caller's trace or request id, kept on every event the request writes.
fn correlation_id(headers: &HeaderMap) -> Option<String> {
    ["traceparent", "x-request-id"]
        .iter()
        .filter_map(|h| headers.get(*h)?.to_str().ok())
        .map(str::trim)
        .find(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
}
