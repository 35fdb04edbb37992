//! `ibsight bench ingest`: drives the real ingest path with synthetic steady telemetry.
//! In-process it calls the same `Ingestor` the HTTP handler uses; with `--http` it starts the
//! real server on a loopback port and posts JSON batches to it. Latency is per batch.

use super::{current_rss_mb, peak_rss_mb, quantile};
use crate::api;
use crate::cli::events::EngineArg;
use crate::config::Config;
use crate::events::Origin;
use crate::node::Node;
use crate::sim;
use crate::telemetry::context;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct IngestBenchArgs {
    /// Distinct streams (ports).
    #[arg(long, default_value_t = 10_000)]
    pub streams: usize,
    /// Total samples to send.
    #[arg(long, default_value_t = 1_000_000)]
    pub samples: usize,
    /// Samples per batch (per request with --http).
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Batches in flight at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Go through the HTTP server on loopback.
    #[arg(long)]
    pub http: bool,
    /// Post to running servers instead (repeat for a cluster: worker k posts to target
    /// k mod n, so every node receives samples it must forward). No local node is started.
    #[arg(long)]
    pub target: Vec<String>,
    /// Store directory [default: a fresh temporary directory].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The storage engine [default: the config's, fjall unless IBSIGHT_STORE__ENGINE says
    /// otherwise; postgres takes store.url and the [cluster] keys from the environment].
    #[arg(long, value_enum)]
    pub engine: Option<EngineArg>,
}

pub fn run(args: IngestBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.streams > 0, "--streams must be at least 1");
    anyhow::ensure!(
        args.batch > 0 && args.batch <= 10_000,
        "--batch must be 1 to 10000"
    );
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    let tmp;
    let dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::Builder::new().prefix("ibsight-bench").tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    // The environment's IBSIGHT_* overrides apply, so store settings can be compared.
    let mut config = Config::load(None)?;
    config.server.data_dir = dir;
    if let Some(engine) = args.engine {
        config.store.engine = engine.into();
    }
    config.validate()?;
    config.ingest.max_inflight_samples = config
        .ingest
        .max_inflight_samples
        .max(args.batch * args.concurrency);
    let _telemetry = crate::telemetry::init(&config.telemetry)?;
    crate::cli::runtime()?.block_on(drive(args, config))
}

struct Totals {
    accepted: AtomicU64,
    duplicates: AtomicU64,
}

async fn drive(args: IngestBenchArgs, config: Config) -> anyhow::Result<()> {
    // With --target the load goes to running servers and no node is started here.
    let node = if args.target.is_empty() {
        Some(Node::start(config.clone()).await?)
    } else {
        None
    };
    let base_ms = crate::clock::now_ms() - (args.samples / args.streams + 1) as i64 * 1000;
    let totals = Arc::new(Totals {
        accepted: AtomicU64::new(0),
        duplicates: AtomicU64::new(0),
    });
    let (server, mut targets) = match &node {
        Some(node) if args.http => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let url = format!("http://{}/v1/metrics", listener.local_addr()?);
            let state = node.app_state();
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let handle = tokio::spawn(api::serve(listener, state, async {
                let _ = stop_rx.await;
            }));
            (Some((stop_tx, handle)), vec![url])
        }
        _ => (None, Vec::new()),
    };
    targets.extend(
        args.target
            .iter()
            .map(|t| format!("{}/v1/metrics", t.trim_end_matches('/'))),
    );
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut workers = Vec::new();
    // Each worker owns the streams `i % concurrency == worker`, like a collector owning its
    // switches, so every stream's samples arrive in timestamp order.
    let workers_n = args.concurrency.min(args.streams);
    for worker in 0..workers_n {
        let totals = totals.clone();
        let ingestor = node.as_ref().map(|n| n.ingestor.clone());
        let client = client.clone();
        // Worker k posts to target k mod n (every node of a cluster gets samples to forward).
        let url = (!targets.is_empty()).then(|| targets[worker % targets.len()].clone());
        let owned_streams = (worker..args.streams).step_by(workers_n).count();
        let share = args.samples / workers_n + usize::from(worker < args.samples % workers_n);
        let batch = args.batch;
        workers.push(tokio::spawn(async move {
            let mut rng = sim::Rng::new(worker as u64 + 1);
            let mut latencies_ms = Vec::new();
            let mut j = 0;
            while j < share {
                let end = (j + batch).min(share);
                let batch_samples: Vec<_> = (j..end)
                    .map(|n| {
                        let stream = worker + workers_n * (n % owned_streams);
                        let k = (n / owned_streams) as u64;
                        sim::steady_sample(&mut rng, stream, k, base_ms)
                    })
                    .collect();
                j = end;
                let t0 = Instant::now();
                let (accepted, duplicates) = match &url {
                    None => {
                        // A root span per batch, as the HTTP handler makes per request,
                        // so the tracing overhead shows in-process too.
                        let span = tracing::info_span!("ingest.batch");
                        let origin = Origin {
                            correlation_id: None,
                            trace: context::context_of(&span),
                        };
                        let ingestor = ingestor.as_ref().expect("in-process runs have a node");
                        let o =
                            context::in_span(span, ingestor.ingest(batch_samples, origin)).await?;
                        (o.accepted, o.duplicates)
                    }
                    Some(url) => post(&client, url, &batch_samples).await?,
                };
                latencies_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
                totals.accepted.fetch_add(accepted, Ordering::Relaxed);
                totals.duplicates.fetch_add(duplicates, Ordering::Relaxed);
            }
            anyhow::Ok(latencies_ms)
        }));
    }
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(w.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    if let Some((stop, handle)) = server {
        let _ = stop.send(());
        let _ = handle.await;
    }
    let rss_end_mb = current_rss_mb();
    let (disk_mb, engine) = match node {
        Some(node) => {
            let store = node.writer.store().clone();
            node.shutdown().await;
            (
                Some(round2(store.disk_bytes() as f64 / 1_048_576.0)),
                Some(store.engine()),
            )
        }
        None => (None, None),
    };
    let figures = serde_json::json!({
        "samples_per_s": (args.samples as f64 / elapsed).round(),
        "p50_ms": round2(quantile(&mut latencies, 0.50)),
        "p99_ms": round2(quantile(&mut latencies, 0.99)),
        "rss_mb": round2(peak_rss_mb()),
        "rss_end_mb": round2(rss_end_mb),
        "streams": args.streams,
        "samples": args.samples,
        "batch": args.batch,
        "concurrency": args.concurrency,
        "http": args.http,
        "engine": engine,
        "accepted": totals.accepted.load(Ordering::Relaxed),
        "duplicates": totals.duplicates.load(Ordering::Relaxed),
        "elapsed_s": round2(elapsed),
        "disk_mb": disk_mb,
        "targets": args.target,
    });
    println!("{figures}");
    Ok(())
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    samples: &[crate::sample::Sample],
) -> anyhow::Result<(u64, u64)> {
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
        return Ok((
            v["accepted"].as_u64().unwrap_or(0),
            v["duplicates"].as_u64().unwrap_or(0),
        ));
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
