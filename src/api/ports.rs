//! `GET /metrics/ports`: every port this node owns in the Prometheus text format, under
//! treydock/infiniband_exporter's names (`metrics::exposition`), with the open incidents'
//! verdicts per port. Written as it is rendered, on a blocking thread, so a scrape of a
//! million series never sits whole in memory nor holds an async worker. Gzipped as it goes
//! when the scraper accepts it (Prometheus does): the text compresses about tenfold.

use super::recent::SCAN_MAX;
use super::{auth, ApiError, AppState};
use crate::metrics::exposition::{self, Verdict};
use crate::projections::incidents::INCIDENTS_VIEW;
use crate::projections::views;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::collections::HashMap;

/// Chunks rendered ahead of the scraper.
const AHEAD: usize = 4;

pub async fn get_port_metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    auth::check_read(&state.config.auth, &headers)?;
    let store = state.ingestor.router().store().clone();
    let open = tokio::task::spawn_blocking(move || {
        views::recent(
            store.as_ref(),
            INCIDENTS_VIEW,
            usize::MAX,
            SCAN_MAX,
            |item| item.get("state").and_then(Value::as_str) == Some("open"),
        )
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let verdicts = verdicts(&open);
    let ports = state.ports.clone();
    let gzip = accepts_gzip(&headers);
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(AHEAD);
    tokio::task::spawn_blocking(move || {
        let rows = ports.rows();
        if gzip {
            let mut zip = Gzip::new(tx);
            exposition::render(&rows, &verdicts, |chunk| zip.write(chunk.as_bytes()));
            zip.finish();
        } else {
            exposition::render(&rows, &verdicts, |chunk| {
                tx.blocking_send(Bytes::from(chunk)).is_ok()
            });
        }
    });
    let chunks = futures_util::stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((Ok::<_, std::convert::Infallible>(chunk), rx))
    });
    let mut response = (
        [(header::CONTENT_TYPE, exposition::CONTENT_TYPE)],
        Body::from_stream(chunks),
    )
        .into_response();
    if gzip {
        response.headers_mut().insert(
            header::CONTENT_ENCODING,
            header::HeaderValue::from_static("gzip"),
        );
    }
    Ok(response)
}

/// The scraper takes gzip (`Accept-Encoding: gzip`, not refused with `q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

/// Chunks gzipped on the way to the body: what the encoder has written so far goes out with
/// each chunk, so the scrape still streams.
struct Gzip {
    encoder: flate2::write::GzEncoder<Vec<u8>>,
    tx: tokio::sync::mpsc::Sender<Bytes>,
}

impl Gzip {
    fn new(tx: tokio::sync::mpsc::Sender<Bytes>) -> Gzip {
        Gzip {
            encoder: flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()),
            tx,
        }
    }

    /// Compress a chunk and send what is ready; `false` once the scraper has gone.
    fn write(&mut self, chunk: &[u8]) -> bool {
        use std::io::Write;
        if self.encoder.write_all(chunk).is_err() {
            return false;
        }
        let ready = std::mem::take(self.encoder.get_mut());
        ready.is_empty() || self.tx.blocking_send(Bytes::from(ready)).is_ok()
    }

    fn finish(self) {
        if let Ok(rest) = self.encoder.finish() {
            if !rest.is_empty() {
                let _ = self.tx.blocking_send(Bytes::from(rest));
            }
        }
    }
}

/// Per port (stream id), the open incidents it is a member of and the worst risk among those
/// with an insight, from the incident view's open items.
pub fn verdicts(open: &[Value]) -> HashMap<String, Verdict> {
    let mut out: HashMap<String, Verdict> = HashMap::new();
    for item in open {
        let risk = item.get("risk_score").and_then(Value::as_f64);
        let ports = item.get("ports").and_then(Value::as_array);
        for stream in ports.into_iter().flatten() {
            let Some(id) = stream.get("stream_id").and_then(Value::as_str) else {
                continue;
            };
            let v = out.entry(id.to_string()).or_default();
            v.open_incidents += 1;
            v.worst_risk = match (v.worst_risk, risk) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn with(accept: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, accept.parse().unwrap());
        h
    }

    #[test]
    fn gzip_is_used_when_the_scraper_accepts_it_and_not_when_it_refuses_it() {
        assert!(accepts_gzip(&with("gzip")));
        assert!(accepts_gzip(&with("identity, gzip;q=0.5")));
        assert!(accepts_gzip(&with("GZIP")));
        assert!(!accepts_gzip(&with("gzip;q=0")));
        assert!(!accepts_gzip(&with("br, identity")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn a_gzipped_scrape_unzips_to_the_plain_text() {
        use std::io::Read;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(1024);
        let text: Vec<String> = (0..200)
            .map(|i| format!("infiniband_switch_port_symbol_error_total{{guid=\"0x{i:x}\",port=\"1\"}} {i}\n"))
            .collect();
        let mut zip = Gzip::new(tx);
        for chunk in &text {
            assert!(zip.write(chunk.as_bytes()));
        }
        zip.finish();
        let mut body = Vec::new();
        while let Ok(b) = rx.try_recv() {
            body.extend_from_slice(&b);
        }
        let mut plain = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut plain)
            .expect("valid gzip");
        assert_eq!(plain, text.concat());
        assert!(
            body.len() < plain.len() / 3,
            "{} of {}",
            body.len(),
            plain.len()
        );
    }

    #[test]
    fn a_port_in_two_open_incidents_counts_both_and_takes_the_worse_known_risk() {
        // Given a link incident of risk 85 and a switch incident not yet analysed, both
        // holding leaf01/p3,
        let open = [
            json!({"state": "open", "risk_score": 85.0,
                   "ports": [{"stream_id": "leaf01/p3"}, {"stream_id": "node001/p1"}]}),
            json!({"state": "open", "risk_score": null,
                   "ports": [{"stream_id": "leaf01/p3"}]}),
        ];
        // when the verdicts are drawn,
        let v = verdicts(&open);
        // then leaf01/p3 is in two with risk 85, node001/p1 in one with risk 85.
        assert_eq!(
            v["leaf01/p3"],
            Verdict {
                open_incidents: 2,
                worst_risk: Some(85.0)
            }
        );
        assert_eq!(v["node001/p1"].open_incidents, 1);
        // A port only in an incident without an insight has a count and no risk.
        let v = verdicts(&open[1..]);
        assert_eq!(v["leaf01/p3"].worst_risk, None);
    }
}
