//! A posted window, validated field by field. Pure: the API turns the error into a 400 that
//! names the field and the value.

use super::target::{NodeTarget, PortTarget};
use serde_json::Value;

/// The longest window (30 days): longer planned work is several windows, so a forgotten one
/// cannot mute a part of the fabric for good.
pub const MAX_WINDOW_MS: i64 = 30 * 24 * 3600 * 1000;
/// Targets one window may name.
pub const MAX_TARGETS: usize = 1000;
const MAX_TEXT: usize = 500;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

fn bad(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

/// A valid window, as it will be recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowRequest {
    pub nodes: Vec<String>,
    pub ports: Vec<String>,
    pub from_ms: i64,
    pub until_ms: i64,
    pub reason: String,
}

/// A time: epoch milliseconds, or an RFC 3339 string (`2026-12-06T14:00:00Z`).
pub fn parse_time(field: &str, value: &Value) -> Result<i64, FieldError> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .filter(|ms| *ms > 0)
            .ok_or_else(|| bad(field, format!("{n} is not a positive epoch time in ms"))),
        Value::String(s) => {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
                .map_err(|e| bad(field, format!("{s:?} is not an RFC 3339 time ({e})")))
        }
        other => Err(bad(
            field,
            format!("{other} must be epoch ms or an RFC 3339 string"),
        )),
    }
}

fn strings(body: &Value, field: &str) -> Result<Vec<String>, FieldError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) if s.len() <= MAX_TEXT => Ok(s.trim().to_string()),
                Value::String(s) => Err(bad(
                    format!("{field}[{i}]"),
                    format!("is {} bytes long, at most {MAX_TEXT}", s.len()),
                )),
                other => Err(bad(
                    format!("{field}[{i}]"),
                    format!("{other} is not a string"),
                )),
            })
            .collect(),
        Some(other) => Err(bad(field, format!("{other} is not a list of strings"))),
    }
}

/// Validate a posted window at `now_ms`. `from` defaults to now.
pub fn parse(body: &Value, now_ms: i64) -> Result<WindowRequest, FieldError> {
    let Some(map) = body.as_object() else {
        return Err(bad("body", format!("{body} is not an object")));
    };
    const KNOWN: [&str; 5] = ["nodes", "ports", "from", "until", "reason"];
    if let Some(k) = map.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(bad(
            k.clone(),
            format!("unknown field {k:?} (known: nodes, ports, from, until, reason)"),
        ));
    }
    let nodes = strings(body, "nodes")?;
    for (i, n) in nodes.iter().enumerate() {
        NodeTarget::parse(n).map_err(|m| bad(format!("nodes[{i}]"), m))?;
    }
    let ports = strings(body, "ports")?;
    for (i, p) in ports.iter().enumerate() {
        PortTarget::parse(p).map_err(|m| bad(format!("ports[{i}]"), m))?;
    }
    if nodes.is_empty() && ports.is_empty() {
        return Err(bad("nodes", "a window names at least one node or port"));
    }
    if nodes.len() + ports.len() > MAX_TARGETS {
        return Err(bad(
            "nodes",
            format!(
                "{} nodes and ports, at most {MAX_TARGETS} in one window",
                nodes.len() + ports.len()
            ),
        ));
    }
    let from_ms = match body.get("from") {
        None | Some(Value::Null) => now_ms,
        Some(v) => parse_time("from", v)?,
    };
    let until_ms = match body.get("until") {
        None | Some(Value::Null) => return Err(bad("until", "is required")),
        Some(v) => parse_time("until", v)?,
    };
    if until_ms <= from_ms {
        return Err(bad(
            "until",
            format!("{until_ms} is not after from ({from_ms})"),
        ));
    }
    if until_ms <= now_ms {
        return Err(bad("until", format!("{until_ms} is already past")));
    }
    if until_ms - from_ms > MAX_WINDOW_MS {
        return Err(bad(
            "until",
            format!(
                "the window lasts {} h, at most {} h",
                (until_ms - from_ms) / 3_600_000,
                MAX_WINDOW_MS / 3_600_000
            ),
        ));
    }
    let reason = match body.get("reason") {
        Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= MAX_TEXT => {
            s.trim().to_string()
        }
        Some(Value::String(s)) if s.len() > MAX_TEXT => {
            return Err(bad(
                "reason",
                format!("is {} bytes long, at most {MAX_TEXT}", s.len()),
            ))
        }
        None | Some(Value::Null) => return Err(bad("reason", "is required")),
        Some(other) => return Err(bad("reason", format!("{other} is not a non-empty string"))),
    };
    Ok(WindowRequest {
        nodes,
        ports,
        from_ms,
        until_ms,
        reason,
    })
}
