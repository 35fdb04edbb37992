//! Bearer-token checks. Ingest needs an ingest token when any is configured; reads need a
//! read or ingest token when read tokens are configured.

use super::ApiError;
use crate::config::AuthConfig;
use axum::http::{header, HeaderMap};

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Compare without an early exit, so timing does not reveal a token prefix.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn allowed(headers: &HeaderMap, tokens: &[&String]) -> bool {
    bearer(headers).is_some_and(|t| tokens.iter().any(|k| same(t, k)))
}

pub fn check_ingest(auth: &AuthConfig, headers: &HeaderMap) -> Result<(), ApiError> {
    if auth.ingest_tokens.is_empty() {
        return Ok(());
    }
    let tokens: Vec<&String> = auth.ingest_tokens.iter().collect();
    allowed(headers, &tokens)
        .then_some(())
        .ok_or(ApiError::Unauthorized)
}

pub fn check_read(auth: &AuthConfig, headers: &HeaderMap) -> Result<(), ApiError> {
    if auth.read_tokens.is_empty() {
        return Ok(());
    }
    let tokens: Vec<&String> = auth.read_tokens.iter().chain(&auth.ingest_tokens).collect();
    allowed(headers, &tokens)
        .then_some(())
        .ok_or(ApiError::Unauthorized)
}
