//! AWS access shared by every AWS-facing part (Bedrock, DynamoDB, EventBridge): the standard
//! provider chain (credentials, `AWS_REGION`, `AWS_ENDPOINT_URL`, the per-service
//! `AWS_ENDPOINT_URL_<SERVICE>`, profiles) with `[aws]` overrides, and conversions between
//! JSON items and DynamoDB attribute values.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use serde::{Deserialize, Serialize};

/// Where to reach AWS; empty fields fall back to the provider chain.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AwsConfig {
    pub region: String,
    pub endpoint_url: String,
}

/// Load the SDK config from the environment, then apply the overrides.
pub async fn sdk_config(aws: &AwsConfig) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if !aws.region.is_empty() {
        loader = loader.region(Region::new(aws.region.clone()));
    }
    if !aws.endpoint_url.is_empty() {
        loader = loader.endpoint_url(aws.endpoint_url.clone());
    }
    loader.load().await
}

pub mod attr {
    //! JSON ⇄ DynamoDB `AttributeValue`.
    use aws_sdk_dynamodb::types::AttributeValue;
    use serde_json::{Map, Number, Value};
    use std::collections::HashMap;

    pub fn to_attr(v: &Value) -> AttributeValue {
        match v {
            Value::Null => AttributeValue::Null(true),
            Value::Bool(b) => AttributeValue::Bool(*b),
            Value::Number(n) => AttributeValue::N(n.to_string()),
            Value::String(s) => AttributeValue::S(s.clone()),
            Value::Array(items) => AttributeValue::L(items.iter().map(to_attr).collect()),
            Value::Object(m) => {
                AttributeValue::M(m.iter().map(|(k, v)| (k.clone(), to_attr(v))).collect())
            }
        }
    }

    /// A JSON object as a DynamoDB item (top-level nulls are left out).
    pub fn to_item(v: &Value) -> HashMap<String, AttributeValue> {
        v.as_object()
            .map(|m| {
                m.iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), to_attr(v)))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn from_attr(a: &AttributeValue) -> Value {
        match a {
            AttributeValue::S(s) => Value::String(s.clone()),
            AttributeValue::N(n) => n
                .parse::<i64>()
                .map(Value::from)
                .ok()
                .or_else(|| {
                    n.parse::<f64>()
                        .ok()
                        .and_then(Number::from_f64)
                        .map(Value::Number)
                })
                .unwrap_or(Value::Null),
            AttributeValue::Bool(b) => Value::Bool(*b),
            AttributeValue::L(items) => Value::Array(items.iter().map(from_attr).collect()),
            AttributeValue::M(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), from_attr(v)))
                    .collect::<Map<_, _>>(),
            ),
            AttributeValue::Ss(items) => {
                Value::Array(items.iter().cloned().map(Value::String).collect())
            }
            _ => Value::Null,
        }
    }

    pub fn from_item(item: &HashMap<String, AttributeValue>) -> Value {
        Value::Object(
            item.iter()
                .map(|(k, v)| (k.clone(), from_attr(v)))
                .collect(),
        )
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use serde_json::json;

        #[test]
        fn items_round_trip() {
            let v = json!({"entity_id": "insight#a#3", "risk_score": 85, "confidence": 0.9,
                "recommendations": ["a", "b"], "evidence": {"rule": "x", "baseline": 4.5},
                "ok": true});
            assert_eq!(from_item(&to_item(&v)), v);
            let with_null = json!({"a": 1, "b": null});
            assert_eq!(from_item(&to_item(&with_null)), json!({"a": 1}));
        }
    }
}
