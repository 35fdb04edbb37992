//! Validation of posted telemetry: untrusted JSON in, `Sample`s or a list of field errors out.
//!
//! The whole request is checked before anything is written, and every bad field of every
//! sample is reported (up to `MAX_REPORTED`), each naming the field and the value.

mod body;
mod port;

use super::{Counter, Sample};
pub use body::{Json, Object};
use serde::Serialize;
use std::collections::BTreeMap;

/// At most this many field errors are listed in one answer.
pub const MAX_REPORTED: usize = 100;
const MAX_STREAM_ID_LEN: usize = 128;
const MAX_LABELS: usize = 16;
const MAX_LABEL_LEN: usize = 64;
/// Upper bounds of readings: far above anything a fabric produces, so a garbage reading (one
/// 1e300 during warm-up would set a baseline that keeps the port anomalous for a very long
/// time) is refused instead. p99 latency: 100 s, in µs.
const MAX_LATENCY_US: f64 = 1e8;
/// Bandwidth: 10 Tb/s, about four times a 12x XDR link.
const MAX_BANDWIDTH_GBPS: f64 = 10_000.0;
/// QP errors in one interval.
const MAX_QP_ERRORS: u64 = 1_000_000_000_000;

/// One bad field of one sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    pub index: usize,
    pub field: String,
    pub message: String,
}

/// Why a request body could not be turned into samples.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchError {
    /// The body is JSON but not a sample or `{"samples":[…]}`.
    Shape(String),
    /// More samples than allowed in one request.
    TooMany { count: usize, max: usize },
    /// Some samples are invalid; nothing of the request may be written.
    Invalid(Vec<FieldError>),
}

/// Limits that depend on configuration and on the wall clock.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_samples: usize,
    /// Samples more than this far ahead of `now_ms` are rejected.
    pub max_future_ms: i64,
    pub now_ms: i64,
}

/// Turn a request body into validated samples, or report every problem.
pub fn parse_batch(body: &Json, limits: &Limits) -> Result<Vec<Sample>, BatchError> {
    let items: Vec<&Json> = match body {
        Json::Object(obj) if obj.contains_key("samples") => {
            if let Some(extra) = obj.keys().find(|k| *k != "samples") {
                return Err(BatchError::Shape(format!(
                    "unknown top-level field `{extra}`: expected only `samples`"
                )));
            }
            match obj.get("samples").unwrap_or(&Json::Null) {
                Json::Array(items) => items.iter().collect(),
                other => {
                    return Err(BatchError::Shape(format!(
                        "`samples` must be an array, got {}",
                        describe(other)
                    )))
                }
            }
        }
        Json::Object(_) => vec![body],
        other => {
            return Err(BatchError::Shape(format!(
                "body must be a sample object or {{\"samples\":[…]}}, got {}",
                describe(other)
            )))
        }
    };
    if items.is_empty() {
        return Err(BatchError::Shape("`samples` is empty".into()));
    }
    if items.len() > limits.max_samples {
        return Err(BatchError::TooMany {
            count: items.len(),
            max: limits.max_samples,
        });
    }
    let mut samples = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let mut report = Report {
            index,
            errors: &mut errors,
        };
        if let Some(sample) = parse_sample(item, limits, &mut report) {
            samples.push(sample);
        }
    }
    if errors.is_empty() {
        Ok(samples)
    } else {
        errors.truncate(MAX_REPORTED);
        Err(BatchError::Invalid(errors))
    }
}

pub(crate) struct Report<'a> {
    index: usize,
    errors: &'a mut Vec<FieldError>,
}

impl Report<'_> {
    pub(crate) fn add(&mut self, field: &str, message: String) {
        self.errors.push(FieldError {
            index: self.index,
            field: field.to_string(),
            message,
        });
    }
}

fn parse_sample(item: &Json, limits: &Limits, report: &mut Report) -> Option<Sample> {
    let Json::Object(obj) = item else {
        report.add(
            "",
            format!("sample must be an object, got {}", describe(item)),
        );
        return None;
    };
    let before = report.errors.len();
    for key in obj.keys() {
        if !KNOWN_FIELDS.contains(&key) && !port::FIELDS.contains(&key) {
            report.add(key, format!("unknown field `{key}`"));
        }
    }
    let stream_id = stream_id(obj, report);
    let timestamp_ms = timestamp(obj, limits, report);
    let latency_p99_us = number(obj, "latency_p99", 0.0, MAX_LATENCY_US, report);
    let utilization_pct = number(obj, "utilization", 0.0, 100.0, report);
    let error_rate = number(obj, "error_rate", 0.0, 1.0, report);
    let bandwidth_gbps = number(obj, "bandwidth_gbps", 0.0, MAX_BANDWIDTH_GBPS, report);
    let qp_errors = unsigned(obj, "qp_errors", report);
    let qp_errors = match qp_errors {
        Some(n) if n > MAX_QP_ERRORS => {
            report.add(
                "qp_errors",
                format!("qp_errors {n} is out of range 0 to {MAX_QP_ERRORS}"),
            );
            None
        }
        other => other,
    };
    let counters = counters(obj, report);
    let labels = labels(obj, report);
    let identity = port::identity(obj, report);
    let peer = port::peer(obj, report);
    let link = port::link(obj, report);
    let phy = port::phy(obj, report);
    let fabric = port::fabric(obj, report);
    let carries_metric = link.is_some()
        || !phy.is_empty()
        || [
            "latency_p99",
            "utilization",
            "error_rate",
            "bandwidth_gbps",
            "qp_errors",
        ]
        .iter()
        .any(|f| obj.contains_key(f))
        || obj
            .get("counters")
            .is_some_and(|c| c.as_object().is_none_or(|m| !m.is_empty()));
    if !carries_metric {
        report.add(
            "",
            "sample carries no metric: give at least one of latency_p99, utilization, \
             error_rate, bandwidth_gbps, qp_errors, counters, link"
                .into(),
        );
    }
    if report.errors.len() > before {
        return None;
    }
    Some(Sample {
        stream_id: stream_id?,
        timestamp_ms: timestamp_ms?,
        latency_p99_us,
        utilization_pct,
        error_rate,
        bandwidth_gbps,
        qp_errors,
        counters,
        labels,
        port: identity,
        peer,
        link,
        phy,
        fabric,
    })
}

/// The top-level fields of a sample besides the port's identity, peer, link and health.
pub const KNOWN_FIELDS: [&str; 9] = [
    "stream_id",
    "timestamp",
    "latency_p99",
    "utilization",
    "error_rate",
    "bandwidth_gbps",
    "qp_errors",
    "counters",
    "labels",
];

/// True when `id` is a valid stream id: 1 to 128 characters from `[A-Za-z0-9._:/-]`.
pub fn is_valid_stream_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_STREAM_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'/' | b'-'))
}

fn stream_id(obj: &Object, report: &mut Report) -> Option<String> {
    match obj.get("stream_id") {
        None => report.add("stream_id", "missing required field `stream_id`".into()),
        Some(Json::String(s)) if is_valid_stream_id(s) => return Some(s.to_string()),
        Some(Json::String(s)) => report.add(
            "stream_id",
            format!(
                "invalid stream_id {}: must be 1 to 128 characters from [A-Za-z0-9._:/-]",
                quote(s)
            ),
        ),
        Some(other) => report.add(
            "stream_id",
            format!("stream_id must be a string, got {}", describe(other)),
        ),
    }
    None
}

fn timestamp(obj: &Object, limits: &Limits, report: &mut Report) -> Option<i64> {
    let ms = match obj.get("timestamp") {
        None => {
            report.add("timestamp", "missing required field `timestamp`".into());
            return None;
        }
        Some(Json::String(s)) => {
            match time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
                Ok(t) => (t.unix_timestamp_nanos() / 1_000_000) as i64,
                Err(e) => {
                    report.add(
                        "timestamp",
                        format!("timestamp {} is not RFC 3339: {e}", quote(s)),
                    );
                    return None;
                }
            }
        }
        Some(Json::Number(n)) => match n.as_i64() {
            Some(ms) if ms >= 0 => ms,
            _ => {
                report.add(
                    "timestamp",
                    format!("timestamp {n} must be a non-negative integer of epoch milliseconds"),
                );
                return None;
            }
        },
        Some(other) => {
            report.add(
                "timestamp",
                format!(
                    "timestamp must be an RFC 3339 string or epoch milliseconds, got {}",
                    describe(other)
                ),
            );
            return None;
        }
    };
    if ms > limits.now_ms.saturating_add(limits.max_future_ms) {
        report.add(
            "timestamp",
            format!(
                "timestamp {ms} is {} s in the future (at most {} s allowed)",
                (ms - limits.now_ms) / 1000,
                limits.max_future_ms / 1000
            ),
        );
        return None;
    }
    Some(ms)
}

fn number(obj: &Object, field: &str, min: f64, max: f64, report: &mut Report) -> Option<f64> {
    let value = obj.get(field)?;
    match value {
        Json::Number(n) => match n.as_f64() {
            Some(v) if v.is_finite() && v >= min && v <= max => Some(v),
            Some(v) if v.is_finite() && max == f64::MAX => {
                report.add(field, format!("{field} {n} must be ≥ {min}"));
                None
            }
            _ => {
                report.add(field, format!("{field} {n} is out of range {min} to {max}"));
                None
            }
        },
        // JSON has no NaN or infinity; collectors that send them as strings are told so.
        other => {
            report.add(
                field,
                format!("{field} must be a finite number, got {}", describe(other)),
            );
            None
        }
    }
}

fn unsigned(obj: &Object, field: &str, report: &mut Report) -> Option<u64> {
    let value = obj.get(field)?;
    match value.as_u64() {
        Some(v) => Some(v),
        None => {
            report.add(
                field,
                format!("{field} must be an integer ≥ 0, got {}", describe(value)),
            );
            None
        }
    }
}

fn counters(obj: &Object, report: &mut Report) -> BTreeMap<Counter, u64> {
    let mut out = BTreeMap::new();
    let Some(value) = obj.get("counters") else {
        return out;
    };
    let Json::Object(map) = value else {
        report.add(
            "counters",
            format!("counters must be an object, got {}", describe(value)),
        );
        return out;
    };
    for (name, v) in map.iter() {
        let field = format!("counters.{name}");
        let Some(counter) = Counter::from_name(name) else {
            report.add(&field, format!("unknown counter {}", quote(name)));
            continue;
        };
        match v.as_u64() {
            Some(n) if n <= counter.max_value() => {
                out.insert(counter, n);
            }
            Some(n) => report.add(
                &field,
                format!(
                    "{name} {n} exceeds the counter's {}-bit maximum {}",
                    counter.basic_width_bits(),
                    counter.max_value()
                ),
            ),
            None => report.add(
                &field,
                format!(
                    "{name} must be a cumulative integer ≥ 0, got {}",
                    describe(v)
                ),
            ),
        }
    }
    out
}

fn labels(obj: &Object, report: &mut Report) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(value) = obj.get("labels") else {
        return out;
    };
    let Json::Object(map) = value else {
        report.add(
            "labels",
            format!(
                "labels must be an object of strings, got {}",
                describe(value)
            ),
        );
        return out;
    };
    if map.len() > MAX_LABELS {
        report.add(
            "labels",
            format!("{} labels given, at most {MAX_LABELS} allowed", map.len()),
        );
        return out;
    }
    for (key, v) in map.iter() {
        let field = format!("labels.{key}");
        if key.is_empty() || key.chars().count() > MAX_LABEL_LEN {
            report.add(
                &field,
                format!(
                    "label key {} must be 1 to {MAX_LABEL_LEN} characters",
                    quote(key)
                ),
            );
            continue;
        }
        match v {
            Json::String(s) if s.chars().count() <= MAX_LABEL_LEN => {
                out.insert(key.to_string(), s.to_string());
            }
            Json::String(s) => report.add(
                &field,
                format!(
                    "label value {} is longer than {MAX_LABEL_LEN} characters",
                    quote(s)
                ),
            ),
            other => report.add(
                &field,
                format!("label value must be a string, got {}", describe(other)),
            ),
        }
    }
    out
}

/// A short, safe rendering of a JSON value for error messages.
pub(crate) fn describe(v: &Json) -> String {
    match v {
        Json::Null => "null".into(),
        Json::Bool(b) => format!("boolean {b}"),
        Json::Number(n) => format!("number {n}"),
        Json::String(s) => format!("string {}", quote(s)),
        Json::Array(a) => format!("an array of {} items", a.len()),
        Json::Object(_) => "an object".into(),
    }
}

pub(crate) fn quote(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() > MAX {
        let cut: String = s.chars().take(MAX).collect();
        format!("{cut:?}…")
    } else {
        format!("{s:?}")
    }
}

#[cfg(test)]
mod tests;
