//! Turning a model's answer into validated insights. The answer is normally the insight
//! tool's input (`parse_tool`, typed and strict). An answer in text only (a model or server
//! that ignored the tool) is the fallback, read leniently: plain JSON, JSON in a ```json
//! fence, and JSON embedded in prose. Every field is validated: risk clamped to 0–100,
//! confidence to 0–1, 2 to 4 recommendations (topped up from the rules backend's), an unknown
//! prediction type mapped to `anomaly_detected` with a note. Anything unusable is an error,
//! and the caller falls back to the rules backend.

use super::insight::{Insight, PredictionType};
use super::schema::{RawInsight, ToolInput};
use serde_json::Value;

const MAX_EXPLANATION: usize = 2000;
const MAX_RECOMMENDATION: usize = 400;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    #[error("no JSON found in the model's answer")]
    NoJson,
    #[error("field {field}: {reason}")]
    Field { field: &'static str, reason: String },
    #[error("expected a JSON array of {expected} insights, got {got}")]
    BatchShape { expected: usize, got: String },
}

/// The first JSON value in `text`: whole text, a fenced block, or embedded in prose.
pub fn extract_json(text: &str) -> Option<Value> {
    let trimmed = text.trim();
    if let Ok(v) = serde_json::from_str::<Value>(trimmed) {
        return Some(v);
    }
    if let Some(v) = fenced(trimmed) {
        return Some(v);
    }
    // Embedded: try each '{' or '[' until one starts a complete JSON value.
    for (i, c) in trimmed.char_indices() {
        if c == '{' || c == '[' {
            let mut stream = serde_json::Deserializer::from_str(&trimmed[i..]).into_iter::<Value>();
            if let Some(Ok(v)) = stream.next() {
                if v.is_object() || v.is_array() {
                    return Some(v);
                }
            }
        }
    }
    None
}

fn fenced(text: &str) -> Option<Value> {
    let start = text.find("```")?;
    let after = &text[start + 3..];
    let body_start = after.find('\n').map_or(0, |i| i + 1);
    let body = &after[body_start..];
    let end = body.find("```")?;
    serde_json::from_str(body[..end].trim()).ok()
}

/// Parse one insight. `filler` tops recommendations up to 2 when the model gave fewer.
pub fn parse_insight(text: &str, filler: &[String]) -> Result<Insight, ParseError> {
    let value = extract_json(text).ok_or(ParseError::NoJson)?;
    let value = match value {
        // A one-element array for a single anomaly is still an answer, as is the tool's
        // `{"insights": [...]}` written as text.
        Value::Array(mut items) if items.len() == 1 => items.remove(0),
        Value::Object(mut obj) if obj.get("insights").is_some_and(Value::is_array) => {
            match obj.remove("insights") {
                Some(Value::Array(mut items)) if !items.is_empty() => items.remove(0),
                _ => return Err(ParseError::NoJson),
            }
        }
        v => v,
    };
    validate(&value, filler)
}

/// Parse a batch answer: a JSON array matched back by index. A malformed element fails alone.
pub fn parse_batch(
    text: &str,
    fillers: &[Vec<String>],
) -> Result<Vec<Result<Insight, ParseError>>, ParseError> {
    let expected = fillers.len();
    let value = extract_json(text).ok_or(ParseError::NoJson)?;
    let items = match value {
        Value::Array(items) => items,
        Value::Object(mut obj) if obj.get("insights").is_some_and(Value::is_array) => {
            match obj.remove("insights") {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            }
        }
        other if expected == 1 => vec![other],
        other => {
            return Err(ParseError::BatchShape {
                expected,
                got: kind(&other).into(),
            })
        }
    };
    Ok((0..expected)
        .map(|i| match items.get(i) {
            Some(v) => validate(v, &fillers[i]),
            None => Err(ParseError::BatchShape {
                expected,
                got: format!("{} elements", items.len()),
            }),
        })
        .collect())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        s.chars().take(max).collect::<String>() + "…"
    }
}

/// Parse the insight tool's input (schema-forced): each insight read into the typed
/// [`RawInsight`] strictly, then validated. A malformed element fails alone.
pub fn parse_tool(
    input: &Value,
    fillers: &[Vec<String>],
) -> Result<Vec<Result<Insight, ParseError>>, ParseError> {
    let expected = fillers.len();
    let input: ToolInput =
        serde_json::from_value(input.clone()).map_err(|e| ParseError::Field {
            field: "insights",
            reason: format!("the tool input does not match the schema: {e}"),
        })?;
    Ok((0..expected)
        .map(|i| match input.insights.get(i) {
            Some(v) => serde_json::from_value::<RawInsight>(v.clone())
                .map_err(|e| ParseError::Field {
                    field: "insight",
                    reason: format!("does not match the schema: {e}"),
                })
                .and_then(|raw| checked(raw, Vec::new(), &fillers[i])),
            None => Err(ParseError::BatchShape {
                expected,
                got: format!("{} elements", input.insights.len()),
            }),
        })
        .collect())
}

/// Validate and clamp one insight object from free text, leniently: numbers quoted as
/// strings and a single recommendation as a string are accepted.
pub fn validate(value: &Value, filler: &[String]) -> Result<Insight, ParseError> {
    let obj = value.as_object().ok_or_else(|| ParseError::Field {
        field: "insight",
        reason: format!("expected an object, got {}", kind(value)),
    })?;
    let mut notes = Vec::new();
    let prediction_type = match obj.get("prediction_type") {
        Some(Value::String(s)) => s.clone(),
        other => {
            return Err(ParseError::Field {
                field: "prediction_type",
                reason: format!("expected a string, got {}", other.map_or("nothing", kind)),
            })
        }
    };
    let risk_score = obj
        .get("risk_score")
        .and_then(number)
        .ok_or_else(|| ParseError::Field {
            field: "risk_score",
            reason: format!(
                "expected a number, got {}",
                obj.get("risk_score").map_or("nothing", kind)
            ),
        })?;
    let explanation = match obj.get("explanation") {
        Some(Value::String(s)) => s.clone(),
        other => {
            return Err(ParseError::Field {
                field: "explanation",
                reason: format!(
                    "expected a non-empty string, got {}",
                    other.map_or("nothing", kind)
                ),
            })
        }
    };
    let recommendations: Vec<String> = match obj.get("recommendations") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        other => {
            return Err(ParseError::Field {
                field: "recommendations",
                reason: format!(
                    "expected an array of strings, got {}",
                    other.map_or("nothing", kind)
                ),
            })
        }
    };
    let confidence = obj.get("confidence").and_then(number);
    if confidence.is_none() {
        notes.push("confidence missing; 0.5 assumed".into());
    }
    let raw = RawInsight {
        prediction_type,
        risk_score,
        explanation,
        recommendations,
        confidence,
    };
    checked(raw, notes, filler)
}

/// The checks every insight passes, however it was read: a known prediction type (an
/// unknown one maps to `anomaly_detected`), risk clamped to 0–100, confidence to 0–1, a
/// non-empty explanation, 2 to 4 recommendations (topped up from `filler`).
pub fn checked(
    raw: RawInsight,
    mut notes: Vec<String>,
    filler: &[String],
) -> Result<Insight, ParseError> {
    let prediction_type = match PredictionType::from_name(raw.prediction_type.trim()) {
        Some(p) => p,
        None => {
            notes.push(format!(
                "unknown prediction_type {:?} mapped to anomaly_detected",
                truncate(&raw.prediction_type, 60)
            ));
            PredictionType::AnomalyDetected
        }
    };
    let risk = raw.risk_score;
    if !risk.is_finite() {
        return Err(ParseError::Field {
            field: "risk_score",
            reason: format!("{risk} is not a number"),
        });
    }
    let clamped = risk.clamp(0.0, 100.0).round();
    if clamped != risk {
        notes.push(format!("risk_score {risk} clamped to {clamped}"));
    }
    let risk_score = clamped as u8;

    let explanation = raw.explanation.trim();
    if explanation.is_empty() {
        return Err(ParseError::Field {
            field: "explanation",
            reason: "expected a non-empty string, got an empty one".into(),
        });
    }
    let explanation = truncate(explanation, MAX_EXPLANATION);

    let mut recommendations: Vec<String> = raw
        .recommendations
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| truncate(s, MAX_RECOMMENDATION))
        .collect();
    if recommendations.len() > 4 {
        notes.push(format!(
            "{} recommendations cut to 4",
            recommendations.len()
        ));
        recommendations.truncate(4);
    }
    if recommendations.len() < 2 {
        notes.push(format!(
            "{} recommendation(s) topped up from the rules backend",
            recommendations.len()
        ));
        for extra in filler {
            if recommendations.len() >= 2 {
                break;
            }
            if !recommendations.contains(extra) {
                recommendations.push(extra.clone());
            }
        }
        if recommendations.is_empty() {
            return Err(ParseError::Field {
                field: "recommendations",
                reason: "no usable recommendation".into(),
            });
        }
    }

    let confidence = match raw.confidence.filter(|c| c.is_finite()) {
        Some(c) => {
            let clamped = c.clamp(0.0, 1.0);
            if clamped != c {
                notes.push(format!("confidence {c} clamped to {clamped}"));
            }
            clamped
        }
        None => {
            if !notes.iter().any(|n| n.starts_with("confidence missing")) {
                notes.push("confidence missing; 0.5 assumed".into());
            }
            0.5
        }
    };

    Ok(Insight {
        prediction_type,
        risk_score,
        explanation,
        recommendations,
        confidence,
        notes,
    })
}

/// A finite number, also when the model quoted it as a string.
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64().filter(|x| x.is_finite()),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|x| x.is_finite()),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
