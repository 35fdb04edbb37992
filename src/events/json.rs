//! The JSON view of a stored event, shared by the API and `ibsight events`.

use super::StoredEvent;
use serde_json::{json, Value};

/// An event as JSON: envelope fields plus the decoded payload.
pub fn event_json(e: &StoredEvent) -> Value {
    let r = &e.record;
    let payload = match r.decode_event() {
        Ok(ev) => ev.payload_json(),
        Err(err) => json!({"decode_error": err.to_string()}),
    };
    json!({
        "offset": e.offset,
        "stream_id": r.stream_id,
        "seq": r.seq,
        "event_id": r.event_id(),
        "event_type": r.event_type,
        "schema_version": r.schema_version,
        "recorded_at": crate::clock::rfc3339(r.recorded_at_ms),
        "correlation_id": r.correlation_id,
        // The W3C traceparent of the span that wrote the event (open it in Jaeger by its trace id).
        "traceparent": r.trace.map(|t| t.traceparent()),
        "payload": payload,
    })
}
