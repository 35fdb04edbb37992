use super::*;

const GOOD: &str = r#"{"prediction_type":"latency_spike","risk_score":65,
  "explanation":"P99 latency is 3x its baseline","recommendations":["Check congestion","Review QoS"],
  "confidence":0.88}"#;

fn filler() -> Vec<String> {
    vec!["rules step one".into(), "rules step two".into()]
}

#[test]
fn plain_json() {
    let i = parse_insight(GOOD, &filler()).expect("parse");
    assert_eq!(i.prediction_type, PredictionType::LatencySpike);
    assert_eq!(i.risk_score, 65);
    assert_eq!(i.recommendations.len(), 2);
    assert_eq!(i.confidence, 0.88);
    assert!(i.notes.is_empty(), "{:?}", i.notes);
}

#[test]
fn fenced_json() {
    let text = format!("```json\n{GOOD}\n```");
    assert_eq!(
        parse_insight(&text, &filler()).expect("parse").risk_score,
        65
    );
}

#[test]
fn json_in_prose() {
    let text = format!("Here is my analysis of the port:\n{GOOD}\nLet me know if you need more.");
    assert_eq!(
        parse_insight(&text, &filler())
            .expect("parse")
            .prediction_type,
        PredictionType::LatencySpike
    );
    // Braces in the prose before the JSON do not confuse it.
    let text = format!("The {{port}} looks bad. {GOOD}");
    assert!(parse_insight(&text, &filler()).is_ok());
}

#[test]
fn broken_json_is_an_error() {
    assert_eq!(
        parse_insight("not json at all", &filler()),
        Err(ParseError::NoJson)
    );
    assert_eq!(
        parse_insight(r#"{"prediction_type": "latency_spike", "risk_"#, &filler()),
        Err(ParseError::NoJson)
    );
    assert!(matches!(
        parse_insight(r#"{"risk_score": 50}"#, &filler()),
        Err(ParseError::Field {
            field: "prediction_type",
            ..
        })
    ));
}

#[test]
fn values_are_clamped_with_notes() {
    let text = r#"{"prediction_type":"resource_saturation","risk_score":140,"explanation":"x",
        "recommendations":["a","b"],"confidence":1.7}"#;
    let i = parse_insight(text, &filler()).expect("parse");
    assert_eq!(i.risk_score, 100);
    assert_eq!(i.confidence, 1.0);
    assert_eq!(i.notes.len(), 2, "{:?}", i.notes);
    let text = r#"{"prediction_type":"resource_saturation","risk_score":-5,"explanation":"x",
        "recommendations":["a","b"],"confidence":-1}"#;
    let i = parse_insight(text, &filler()).expect("parse");
    assert_eq!((i.risk_score, i.confidence), (0, 0.0));
}

#[test]
fn unknown_prediction_type_maps_to_anomaly_detected() {
    let text = r#"{"prediction_type":"cosmic_rays","risk_score":50,"explanation":"x",
        "recommendations":["a","b"],"confidence":0.5}"#;
    let i = parse_insight(text, &filler()).expect("parse");
    assert_eq!(i.prediction_type, PredictionType::AnomalyDetected);
    assert!(i.notes[0].contains("cosmic_rays"), "{:?}", i.notes);
}

#[test]
fn recommendations_are_kept_between_two_and_four() {
    let text = r#"{"prediction_type":"latency_spike","risk_score":50,"explanation":"x",
        "recommendations":["a","b","c","d","e","f"],"confidence":0.5}"#;
    assert_eq!(
        parse_insight(text, &filler())
            .expect("parse")
            .recommendations
            .len(),
        4
    );
    let text = r#"{"prediction_type":"latency_spike","risk_score":50,"explanation":"x",
        "recommendations":["only one"],"confidence":0.5}"#;
    let i = parse_insight(text, &filler()).expect("parse");
    assert_eq!(i.recommendations, vec!["only one", "rules step one"]);
}

#[test]
fn a_batch_is_matched_by_index_and_a_bad_element_fails_alone() {
    let text = format!(
        r#"[{GOOD}, {{"prediction_type": 7}}, {}]"#,
        GOOD.replace("latency_spike", "rdma_timeout")
    );
    let fillers = vec![filler(), filler(), filler()];
    let out = parse_batch(&text, &fillers).expect("batch");
    assert_eq!(out.len(), 3);
    assert_eq!(
        out[0].as_ref().map(|i| i.prediction_type),
        Ok(PredictionType::LatencySpike)
    );
    assert!(out[1].is_err());
    assert_eq!(
        out[2].as_ref().map(|i| i.prediction_type),
        Ok(PredictionType::RdmaTimeout)
    );
    // A short array leaves the missing elements failed.
    let out = parse_batch(&format!("[{GOOD}]"), &fillers).expect("batch");
    assert!(out[0].is_ok() && out[1].is_err() && out[2].is_err());
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_model_text_never_panics(text in ".{0,400}") {
            let _ = parse_insight(&text, &filler());
            let _ = parse_batch(&text, &[filler(), filler()]);
        }

        #[test]
        fn any_numbers_are_clamped_into_range(risk in any::<f64>(), confidence in any::<f64>()) {
            let text = serde_json::json!({
                "prediction_type": "latency_spike",
                "risk_score": if risk.is_finite() { risk } else { 0.0 },
                "explanation": "x",
                "recommendations": ["a", "b"],
                "confidence": if confidence.is_finite() { confidence } else { 0.0 },
            })
            .to_string();
            let i = parse_insight(&text, &filler()).expect("valid shape");
            prop_assert!(i.risk_score <= 100);
            prop_assert!((0.0..=1.0).contains(&i.confidence));
        }
    }
}
