//! Every API failure, and the one mapping from failure to status code and JSON body:
//! `{"error":"<code>","message":"…"}` plus `details` for invalid batches.

use crate::ingest::IngestError;
use crate::sample::validate::FieldError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or invalid bearer token")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    /// A configured cap was reached (`ingest.max_streams`); the message names it.
    #[error("{0}")]
    TooManyRequests(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    InvalidJson(String),
    #[error("{} invalid field(s) in the batch; nothing was written", .0.len())]
    InvalidBatch(Vec<FieldError>),
    #[error("{field}: {message}")]
    BadRequest { field: String, message: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    Unavailable { message: String, retry_after_s: u64 },
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// Every code `code` can answer (the rejection counter declares them up front).
    pub const CODES: &'static [&'static str] = &[
        "unauthorized",
        "forbidden",
        "too_many_streams",
        "unsupported_media_type",
        "payload_too_large",
        "invalid_json",
        "invalid_batch",
        "bad_request",
        "not_found",
        "unavailable",
        "internal",
    ];

    /// The machine-readable error code (also the metrics' rejection reason).
    pub fn code(&self) -> &'static str {
        self.status_and_code().1
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_streams"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::InvalidJson(_) => (StatusCode::BAD_REQUEST, "invalid_json"),
            ApiError::InvalidBatch(_) => (StatusCode::BAD_REQUEST, "invalid_batch"),
            ApiError::BadRequest { .. } => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let mut body = json!({"error": code, "message": self.to_string()});
        if let ApiError::InvalidBatch(details) = &self {
            body["details"] = json!(details);
        }
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), error = %self, "request failed");
        }
        let mut response = (status, Json(body)).into_response();
        if let ApiError::Unauthorized = self {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let ApiError::Unavailable { retry_after_s, .. } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
        }
        response
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> ApiError {
        use crate::actors::supervisor::SpawnError;
        use crate::actors::RouteError;
        match e {
            IngestError::TooManyStreams { .. } => ApiError::TooManyRequests(e.to_string()),
            IngestError::Overloaded { .. } => ApiError::Unavailable {
                message: e.to_string(),
                retry_after_s: 1,
            },
            IngestError::Route(RouteError::Spawn(SpawnError::Quarantined {
                retry_after_s,
                ..
            })) => ApiError::Unavailable {
                message: e.to_string(),
                retry_after_s,
            },
            // Storage or actor trouble: nothing unacknowledged is lost, the client retries
            // and already-stored samples come back as duplicates.
            IngestError::Route(_) => ApiError::Unavailable {
                message: e.to_string(),
                retry_after_s: 1,
            },
            // A member is down: its part waits for it (the message names it); the rest is
            // stored and comes back as duplicates on the retry.
            IngestError::PartlyUnavailable { .. } => ApiError::Unavailable {
                message: e.to_string(),
                retry_after_s: 2,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overload_is_503_with_retry_after() {
        let response = ApiError::from(IngestError::Overloaded { inflight: 10 }).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response
                .headers()
                .get(header::RETRY_AFTER)
                .map(|v| v.as_bytes()),
            Some(&b"1"[..])
        );
    }

    #[test]
    fn every_code_is_declared_for_the_rejection_counter() {
        let s = || String::new();
        for e in [
            ApiError::Unauthorized,
            ApiError::Forbidden(s()),
            ApiError::TooManyRequests(s()),
            ApiError::UnsupportedMediaType(s()),
            ApiError::PayloadTooLarge(s()),
            ApiError::InvalidJson(s()),
            ApiError::InvalidBatch(vec![]),
            ApiError::BadRequest {
                field: s(),
                message: s(),
            },
            ApiError::NotFound(s()),
            ApiError::Unavailable {
                message: s(),
                retry_after_s: 1,
            },
            ApiError::Internal(s()),
        ] {
            assert!(ApiError::CODES.contains(&e.code()), "{}", e.code());
        }
    }

    #[test]
    fn unauthorized_asks_for_a_bearer_token() {
        let response = ApiError::Unauthorized.into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .map(|v| v.as_bytes()),
            Some(&b"Bearer"[..])
        );
    }
}
