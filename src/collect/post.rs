//! Delivery of sweeps to the server: in order, in batches, retried on 503, 429 and connection
//! errors (with backoff) until acknowledged, so nothing is lost while the server restarts.
//! Sweeps wait in a bounded buffer; when it is full the oldest sweep is dropped, with a
//! counted warning: a collector cut off for hours must not grow without bound. A batch the
//! server refuses as invalid (400) is logged with its reasons and dropped, counted (retrying
//! cannot fix it).

use crate::sample::Sample;
use std::collections::VecDeque;
use std::path::Path;
use std::time::Duration;

pub use crate::errors::chain as error_chain;

/// The HTTP client a collector (and the command line) talks to the server with: `http` or
/// `https` (rustls). With `ca_file`, the server's certificate must chain to a CA in that PEM
/// file (and only to those, as `curl --cacert`); without it, to the system's roots.
pub fn http_client(ca_file: Option<&Path>, timeout: Duration) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder().timeout(timeout);
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| format!("--ca-file {}: {e}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("--ca-file {}: not a PEM bundle: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "--ca-file {}: holds no PEM certificate",
                path.display()
            ));
        }
        builder = builder.tls_certs_only(certs);
    }
    builder
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// Samples per request (the server accepts up to 10,000).
pub const BATCH: usize = 5_000;

#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Delivery {
    pub posted: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub late: u64,
    /// Sweeps dropped because the buffer was full.
    pub sweeps_dropped: u64,
    /// Samples in batches the server refused as invalid.
    pub rejected: u64,
    pub retries: u64,
}

pub struct Poster {
    client: reqwest::Client,
    url: String,
    token: Option<String>,
    queue: VecDeque<Vec<Sample>>,
    max_sweeps: usize,
    pub delivery: Delivery,
}

/// Why a batch was not acknowledged.
enum Failure {
    /// Worth retrying: the server is down, restarting or busy.
    Retry(String),
    /// The server refused the batch itself.
    Refused(String),
}

impl Poster {
    /// Post to `target` with `client` (see `http_client`).
    pub fn new(
        client: reqwest::Client,
        target: &str,
        token: Option<String>,
        max_sweeps: usize,
    ) -> Poster {
        Poster {
            client,
            url: format!("{}/v1/metrics", target.trim_end_matches('/')),
            token,
            queue: VecDeque::new(),
            max_sweeps: max_sweeps.max(1),
            delivery: Delivery::default(),
        }
    }

    /// Queue a sweep, dropping the oldest when the buffer is full.
    pub fn push(&mut self, sweep: Vec<Sample>) {
        if self.queue.len() >= self.max_sweeps {
            if let Some(old) = self.queue.pop_front() {
                self.delivery.sweeps_dropped += 1;
                tracing::warn!(
                    samples = old.len(),
                    dropped_total = self.delivery.sweeps_dropped,
                    "collector buffer full; the oldest sweep was dropped"
                );
            }
        }
        self.queue.push_back(sweep);
    }

    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// Deliver queued sweeps in order until the queue is empty or `deadline` passes. A batch
    /// leaves the queue only once the server acknowledged it.
    pub async fn drain(&mut self, deadline: tokio::time::Instant) -> bool {
        let mut backoff = Duration::from_millis(200);
        while let Some(sweep) = self.queue.front() {
            if sweep.is_empty() {
                self.queue.pop_front();
                continue;
            }
            let n = sweep.len().min(BATCH);
            let body = serde_json::json!({
                "samples": sweep[..n].iter().map(Sample::to_json).collect::<Vec<_>>()
            });
            let result = self.post(&body).await;
            let sweep = self
                .queue
                .front_mut()
                .expect("the front sweep is still queued");
            match result {
                Ok(answer) => {
                    backoff = Duration::from_millis(200);
                    let count = |k: &str| answer[k].as_u64().unwrap_or(0);
                    let d = &mut self.delivery;
                    d.posted += n as u64;
                    d.accepted += count("accepted");
                    d.duplicates += count("duplicates");
                    d.late += count("late");
                    sweep.drain(..n);
                }
                Err(Failure::Refused(why)) => {
                    tracing::error!(samples = n, reason = %why, "server refused a batch; dropped");
                    self.delivery.rejected += n as u64;
                    sweep.drain(..n);
                }
                Err(Failure::Retry(why)) => {
                    self.delivery.retries += 1;
                    tracing::warn!(reason = %why, ?backoff, "post failed; retrying");
                    if tokio::time::Instant::now() + backoff > deadline {
                        return false;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            }
            if sweep.is_empty() {
                self.queue.pop_front();
            }
        }
        true
    }

    async fn post(&self, body: &serde_json::Value) -> Result<serde_json::Value, Failure> {
        let mut req = self.client.post(&self.url).json(body);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| Failure::Retry(error_chain(&e)))?;
        let status = resp.status().as_u16();
        let answer: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
        match status {
            202 => Ok(answer),
            429 | 500..=599 => Err(Failure::Retry(format!("{status}: {answer}"))),
            401 | 403 => Err(Failure::Retry(format!(
                "{status} (check --token): {answer}"
            ))),
            _ => Err(Failure::Refused(format!("{status}: {answer}"))),
        }
    }
}
