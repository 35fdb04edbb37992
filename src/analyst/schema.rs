//! The insight schema the model must answer in. Both backends force it: Bedrock with a
//! `tools` entry and a `tool_choice` naming it, an OpenAI-compatible server with a function
//! tool or a JSON-schema response format. The answer is one object, `{"insights": [...]}`,
//! one insight per incident asked, in order; it is read into the typed structs below.

use super::insight::PredictionType;
use serde::Deserialize;
use serde_json::{json, Value};

/// The tool the model is made to call.
pub const TOOL_NAME: &str = "record_insights";
pub const TOOL_DESCRIPTION: &str =
    "Record the analysis of each incident: one insight per incident, in the order given.";

/// About how many characters the schema adds to a request (for token estimates).
pub const SCHEMA_CHARS: usize = 900;

/// One insight, as the schema describes it.
pub fn insight_schema() -> Value {
    let types: Vec<&str> = PredictionType::ALL.iter().map(|p| p.name()).collect();
    json!({
        "type": "object",
        "properties": {
            "prediction_type": {"type": "string", "enum": types},
            "risk_score": {
                "type": "integer", "minimum": 0, "maximum": 100,
                "description": "80-100 critical: act now; 60-79 high: within 1 hour; 40-59 medium: monitor; 0-39 low"
            },
            "explanation": {
                "type": "string",
                "description": "technical explanation citing the metrics, the ports and their deltas from baseline"
            },
            "recommendations": {
                "type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 4,
                "description": "2 to 4 specific, actionable steps"
            },
            "confidence": {"type": "number", "minimum": 0, "maximum": 1}
        },
        "required": ["prediction_type", "risk_score", "explanation", "recommendations", "confidence"],
        "additionalProperties": false
    })
}

/// The tool's input schema: the insights of every incident asked, in order.
pub fn input_schema() -> Value {
    json!({
        "type": "object",
        "properties": {"insights": {"type": "array", "items": insight_schema()}},
        "required": ["insights"],
        "additionalProperties": false
    })
}

/// The tool call's input, typed. Each insight is read on its own, so a malformed one fails
/// alone.
#[derive(Debug, Deserialize)]
pub struct ToolInput {
    pub insights: Vec<Value>,
}

/// One insight as the schema has it, before validation (clamping, the type's name, the
/// number of recommendations). A field the schema does not have is ignored: an answer is not
/// thrown away for saying more than asked.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RawInsight {
    pub prediction_type: String,
    pub risk_score: f64,
    pub explanation: String,
    pub recommendations: Vec<String>,
    pub confidence: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_lists_every_prediction_type_and_requires_every_field() {
        let s = input_schema();
        let item = &s["properties"]["insights"]["items"];
        let types = item["properties"]["prediction_type"]["enum"]
            .as_array()
            .expect("enum");
        assert_eq!(types.len(), PredictionType::ALL.len());
        assert_eq!(item["required"].as_array().map(Vec::len), Some(5));
        assert!(
            s.to_string().len() <= SCHEMA_CHARS + 400,
            "estimate too far off"
        );
    }

    #[test]
    fn a_schema_valid_insight_reads_into_the_typed_struct() {
        let v = json!({"prediction_type": "link_degradation", "risk_score": 85,
            "explanation": "x", "recommendations": ["a", "b"], "confidence": 0.9});
        let raw: RawInsight = serde_json::from_value(v).expect("typed");
        assert_eq!(raw.risk_score, 85.0);
        let more = json!({"prediction_type": "link_degradation", "risk_score": 85,
            "explanation": "x", "recommendations": ["a", "b"], "confidence": 0.9, "severity": "high"});
        assert_eq!(
            serde_json::from_value::<RawInsight>(more).expect("extra field"),
            raw
        );
        let bad = json!({"prediction_type": "x", "risk_score": "high", "explanation": "x",
            "recommendations": [], "confidence": 0.9});
        assert!(serde_json::from_value::<RawInsight>(bad).is_err());
    }
}
