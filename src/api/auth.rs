//! Bearer-token checks. Ingest needs an ingest token when any is configured; reads need a
//! read, triage or ingest token when read tokens are configured. Triage and maintenance
//! windows write to the log (an on-call's verdict feeds the false-positive rollback trigger; a
//! window mutes alerts), so they need a triage token, the on-call's write right;
//! without triage tokens it is open only while the whole API is (no tokens at all: a
//! loopback-only node).

use super::ApiError;
use crate::config::AuthConfig;
use axum::http::{header, HeaderMap};

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

use crate::secret::same;

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
    let tokens: Vec<&String> = auth
        .read_tokens
        .iter()
        .chain(&auth.triage_tokens)
        .chain(&auth.ingest_tokens)
        .collect();
    allowed(headers, &tokens)
        .then_some(())
        .ok_or(ApiError::Unauthorized)
}

pub fn check_triage(auth: &AuthConfig, headers: &HeaderMap) -> Result<(), ApiError> {
    check_write(auth, headers, "triage")
}

/// Operators' writes to the log (`what`: triage verdicts, maintenance windows) need a triage
/// token: the on-call's write right.
pub fn check_write(auth: &AuthConfig, headers: &HeaderMap, what: &str) -> Result<(), ApiError> {
    if auth.triage_tokens.is_empty() {
        return if auth.ingest_tokens.is_empty() && auth.read_tokens.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "{what} needs a write (triage) token: set auth.triage_tokens"
            )))
        };
    }
    let tokens: Vec<&String> = auth.triage_tokens.iter().collect();
    allowed(headers, &tokens)
        .then_some(())
        .ok_or(ApiError::Unauthorized)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(token: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(t) = token {
            h.insert(
                header::AUTHORIZATION,
                format!("Bearer {t}").parse().unwrap(),
            );
        }
        h
    }

    fn auth(ingest: &[&str], read: &[&str], triage: &[&str]) -> AuthConfig {
        let v = |t: &[&str]| t.iter().map(|s| s.to_string()).collect();
        AuthConfig {
            ingest_tokens: v(ingest),
            read_tokens: v(read),
            triage_tokens: v(triage),
        }
    }

    #[test]
    fn triage_is_open_only_while_the_whole_api_is() {
        assert!(check_triage(&auth(&[], &[], &[]), &headers(None)).is_ok());
        // A read token (or no token) on a node that has read tokens cannot write verdicts.
        let a = auth(&[], &["r"], &[]);
        assert!(matches!(
            check_triage(&a, &headers(Some("r"))),
            Err(ApiError::Forbidden(_))
        ));
        let a = auth(&["i"], &[], &[]);
        assert!(check_triage(&a, &headers(None)).is_err());
        assert!(check_triage(&a, &headers(Some("i"))).is_err());
    }

    #[test]
    fn triage_tokens_triage_and_read_but_do_not_ingest() {
        let a = auth(&["i"], &["r"], &["t"]);
        assert!(check_triage(&a, &headers(Some("t"))).is_ok());
        assert!(check_triage(&a, &headers(Some("r"))).is_err());
        assert!(check_read(&a, &headers(Some("t"))).is_ok());
        assert!(check_ingest(&a, &headers(Some("t"))).is_err());
    }
}
