//! The HTTP side of `bench ingest`: batches posted as collector-shaped JSON.

use super::Answer;
use std::fmt::Write as _;

pub(super) async fn post(
    client: &reqwest::Client,
    url: &str,
    samples: &[crate::sample::Sample],
) -> anyhow::Result<Answer> {
    let body = encode_batch(samples);
    loop {
        let resp = client
            .post(url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await?;
        let status = resp.status();
        if status.as_u16() == 503 {
            // Backpressure is part of the contract: wait as told and resend.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        }
        let v: serde_json::Value = resp.json().await?;
        anyhow::ensure!(status.as_u16() == 202, "server answered {status}: {v}");
        let n = |k: &str| v[k].as_u64().unwrap_or(0);
        return Ok(Answer {
            accepted: n("accepted"),
            duplicates: n("duplicates"),
            late: n("late"),
            anomalies: n("anomalies"),
        });
    }
}

/// A collector-shaped JSON body, written directly (a JSON tree per sample would make the
/// client, not the server, the bottleneck on a 2-core machine).
fn encode_batch(samples: &[crate::sample::Sample]) -> String {
    let mut out = String::with_capacity(samples.len() * 260);
    out.push_str("{\"samples\":[");
    for (i, s) in samples.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            "{{\"stream_id\":\"{}\",\"timestamp\":{},\"latency_p99\":{},\"utilization\":{},\"error_rate\":{},\"bandwidth_gbps\":{},\"qp_errors\":{},\"counters\":{{",
            s.stream_id,
            s.timestamp_ms,
            s.latency_p99_us.unwrap_or(0.0),
            s.utilization_pct.unwrap_or(0.0),
            s.error_rate.unwrap_or(0.0),
            s.bandwidth_gbps.unwrap_or(0.0),
            s.qp_errors.unwrap_or(0),
        );
        for (j, (c, v)) in s.counters.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            let _ = write!(out, "\"{}\":{v}", c.name());
        }
        out.push_str("}}");
    }
    out.push_str("]}");
    out
}
