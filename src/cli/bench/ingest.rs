//! `ibsight bench ingest`: drives the real ingest path with synthetic steady telemetry.
//! In-process it calls the same `Ingestor` the HTTP handler uses; with `--http` it starts the
//! real server on a loopback port and posts JSON batches to it. Latency is per batch.
//!
//! Closed loop by default (`--concurrency` batches in flight); `--rate N` is open loop: a batch
//! leaves every `batch / N` seconds whatever the answers, and its latency counts from when it
//! was due, so a slow server shows as latency instead of slowing the load down.
//! `--anomaly-every R` makes one stream in ten raise a critical anomaly every R of its samples
//! (an ExcessiveBufferOverrunErrors increase): the requests that opened one time a sample's
//! arrival to its `AnomalyDetected` being durable (the answer comes once it is).

use super::{current_rss_mb, peak_rss_mb, quantile, round2};
use crate::api;
use crate::cli::events::EngineArg;
use crate::config::Config;
use crate::events::store::DiskKind;
use crate::events::Origin;
use crate::node::Node;
use crate::sim;
use crate::telemetry::context;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

mod http;
mod open_loop;
use http::post;
use open_loop::open_loop;

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
    /// Open loop: this many samples per second, whatever the answers.
    #[arg(long)]
    pub rate: Option<u64>,
    /// One stream in ten raises a critical anomaly every this many of its samples (0: none).
    #[arg(long, default_value_t = 0)]
    pub anomaly_every: u64,
    /// With --target: the servers' PIDs, to report their CPU per value.
    #[arg(long)]
    pub server_pid: Vec<u32>,
    /// Write each batch's latency here, a CSV line per batch: seconds into the run when it
    /// finished, milliseconds it took, and whether it opened an anomaly (to see when the slow
    /// ones happen).
    #[arg(long)]
    pub latency_log: Option<PathBuf>,
}

/// A sample of the run: steady telemetry, with the overrun counter of one stream in ten
/// stepping up every `anomaly_every` samples of that stream.
fn sample_of(
    rng: &mut sim::Rng,
    stream: usize,
    k: u64,
    base_ms: i64,
    anomaly_every: u64,
) -> crate::sample::Sample {
    let mut s = sim::steady_sample(rng, stream, k, base_ms);
    if anomaly_every > 0 && stream.is_multiple_of(10) {
        s.counters.insert(
            crate::sample::Counter::ExcessiveBufferOverrunErrors,
            (k + 1) / anomaly_every,
        );
    }
    s
}

/// What one batch came back with.
struct Answer {
    accepted: u64,
    duplicates: u64,
    /// Older than the stream's newest sample when they arrived (out of order: in open loop, a
    /// stream's next batch can overtake a slow one).
    late: u64,
    anomalies: u64,
}

pub fn run(args: IngestBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.streams > 0, "--streams must be at least 1");
    anyhow::ensure!(
        args.batch > 0 && args.batch <= 10_000,
        "--batch must be 1 to 10000"
    );
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    anyhow::ensure!(
        args.rate.is_none_or(|r| r > 0),
        "--rate must be at least 1 sample/s"
    );
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

/// Where batches go: the in-process ingestor, or a URL.
#[derive(Clone)]
enum Sink {
    InProcess(crate::ingest::Ingestor),
    Http(reqwest::Client, String),
}

impl Sink {
    async fn send(&self, samples: Vec<crate::sample::Sample>) -> anyhow::Result<Answer> {
        match self {
            Sink::InProcess(ingestor) => {
                // A root span per batch, as the HTTP handler makes per request, so the tracing
                // overhead shows in-process too.
                let span = tracing::info_span!("ingest.batch");
                let origin = Origin {
                    correlation_id: None,
                    trace: context::context_of(&span),
                };
                let o = context::in_span(span, ingestor.ingest(samples, origin)).await?;
                Ok(Answer {
                    accepted: o.accepted,
                    duplicates: o.duplicates,
                    late: o.late,
                    anomalies: o.anomalies,
                })
            }
            Sink::Http(client, url) => post(client, url, &samples).await,
        }
    }
}

/// Latencies of every batch, and of those that opened an anomaly; totals.
#[derive(Default)]
struct Outcome {
    latencies_ms: Vec<f64>,
    /// (when it finished, latency ms, opened an anomaly) of every batch, in finishing order per
    /// worker.
    timeline: Vec<(f64, f64, bool)>,
    anomaly_latencies_ms: Vec<f64>,
    accepted: u64,
    duplicates: u64,
    late: u64,
    values: u64,
}

impl Outcome {
    /// `finished_s`: seconds into the run when the answer came.
    fn add(&mut self, answer: &Answer, values: usize, ms: f64, finished_s: f64) {
        self.latencies_ms.push(ms);
        self.timeline.push((finished_s, ms, answer.anomalies > 0));
        if answer.anomalies > 0 {
            self.anomaly_latencies_ms.push(ms);
        }
        self.accepted += answer.accepted;
        self.duplicates += answer.duplicates;
        self.late += answer.late;
        self.values += values as u64;
    }

    fn merge(&mut self, other: Outcome) {
        self.latencies_ms.extend(other.latencies_ms);
        self.timeline.extend(other.timeline);
        self.anomaly_latencies_ms.extend(other.anomaly_latencies_ms);
        self.accepted += other.accepted;
        self.duplicates += other.duplicates;
        self.late += other.late;
        self.values += other.values;
    }
}

async fn drive(args: IngestBenchArgs, config: Config) -> anyhow::Result<()> {
    let rss_before_mb = current_rss_mb();
    // With --target the load goes to running servers and no node is started here.
    let node = if args.target.is_empty() {
        Some(Node::start(config.clone()).await?)
    } else {
        None
    };
    let base_ms = crate::clock::now_ms() - (args.samples / args.streams + 1) as i64 * 1000;
    let (server, mut targets) = match &node {
        Some(node) if args.http => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let url = format!("http://{}/v1/metrics", listener.local_addr()?);
            let state = node.app_state();
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let handle = tokio::spawn(api::serve(listener, state, None, async {
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
    let sinks: Vec<Sink> = if targets.is_empty() {
        let node = node.as_ref().expect("in-process runs have a node");
        vec![Sink::InProcess(node.ingestor.clone())]
    } else {
        targets
            .iter()
            .map(|t| Sink::Http(client.clone(), t.clone()))
            .collect()
    };
    let cpu_self = super::cpu_seconds(None);
    let cpu_servers: Vec<Option<f64>> = args
        .server_pid
        .iter()
        .map(|p| super::cpu_seconds(Some(*p)))
        .collect();
    let started = Instant::now();
    let mut outcome = match args.rate {
        Some(rate) => open_loop(&args, &sinks, rate, base_ms).await?,
        None => closed_loop(&args, &sinks, base_ms, started).await?,
    };
    let elapsed = started.elapsed().as_secs_f64();
    if let Some(path) = &args.latency_log {
        // Seconds into the run: the timeline's instants count from `started`.
        let mut log = String::from("at_s,latency_ms,anomaly\n");
        outcome.timeline.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (at, ms, anomaly) in &outcome.timeline {
            let _ = writeln!(log, "{at:.3},{ms:.3},{}", u8::from(*anomaly));
        }
        std::fs::write(path, log)
            .map_err(|e| anyhow::anyhow!("--latency-log {}: {e}", path.display()))?;
    }
    let cpu_s = match (cpu_self, super::cpu_seconds(None)) {
        (Some(a), Some(b)) if node.is_some() => Some(b - a),
        _ => None,
    };
    let servers_cpu_s: Option<f64> = (!args.server_pid.is_empty())
        .then(|| {
            args.server_pid
                .iter()
                .zip(&cpu_servers)
                .map(|(p, before)| Some(super::cpu_seconds(Some(*p))? - (*before)?))
                .sum::<Option<f64>>()
        })
        .flatten();
    if let Some((stop, handle)) = server {
        let _ = stop.send(());
        let _ = handle.await;
    }
    let rss_end_mb = current_rss_mb();
    // Memory of the run itself, before compacting for the settled disk size.
    let rss_peak_mb = peak_rss_mb();
    let mut disk_parts = Vec::new();
    let (disk, engine) = match node {
        Some(node) => {
            let store = node.writer.store().clone();
            node.shutdown().await;
            let before = store.disk_bytes();
            let compacted = tokio::task::spawn_blocking({
                let store = store.clone();
                move || store.compact()
            })
            .await?;
            if let Err(e) = compacted {
                tracing::warn!(error = %e, "compacting the store for its settled size");
            }
            disk_parts = store.disk_usage();
            (Some((before, store.disk_bytes())), Some(store.engine()))
        }
        None => (None, None),
    };
    let values = outcome.values.max(1) as f64;
    let per_value_us = |cpu: Option<f64>| cpu.map(|c| round2(c * 1e6 / values));
    let figures = serde_json::json!({
        "samples_per_s": (args.samples as f64 / elapsed).round(),
        "rate": args.rate,
        "p50_ms": round2(quantile(&mut outcome.latencies_ms, 0.50)),
        "p99_ms": round2(quantile(&mut outcome.latencies_ms, 0.99)),
        "anomaly_batches": outcome.anomaly_latencies_ms.len(),
        "p99_to_durable_anomaly_ms": (!outcome.anomaly_latencies_ms.is_empty())
            .then(|| round2(quantile(&mut outcome.anomaly_latencies_ms, 0.99))),
        "rss_mb": round2(rss_peak_mb),
        "rss_end_mb": round2(rss_end_mb),
        "rss_per_stream_kib": node_rss_per_stream(&args, rss_peak_mb - rss_before_mb),
        "streams": args.streams,
        "samples": args.samples,
        "values": outcome.values,
        "batch": args.batch,
        "concurrency": args.concurrency,
        "http": args.http,
        "engine": engine,
        "accepted": outcome.accepted,
        "duplicates": outcome.duplicates,
        "late": outcome.late,
        "elapsed_s": round2(elapsed),
        "disk_mb": disk.map(|(b, _)| round2(b as f64 / 1_048_576.0)),
        "disk_mb_compacted": disk.map(|(_, a)| round2(a as f64 / 1_048_576.0)),
        "disk_bytes_per_value": disk.map(|(_, a)| round2(a as f64 / values)),
        "disk_bytes_per_value_by_part": disk_parts
            .iter()
            .map(|p| (p.name.to_string(), round2(p.bytes as f64 / values).into()))
            .collect::<serde_json::Map<String, serde_json::Value>>(),
        // The log alone (events and their indexes), without per-stream state and the
        // bounded journal: what grows with the samples retained.
        "log_bytes_per_value": (!disk_parts.is_empty()).then(|| {
            let log: u64 = disk_parts
                .iter()
                .filter(|p| p.kind == DiskKind::Log)
                .map(|p| p.bytes)
                .sum();
            round2(log as f64 / values)
        }),
        "process_cpu_s": cpu_s.map(round2),
        "process_cpu_us_per_value": per_value_us(cpu_s),
        "servers_cpu_s": servers_cpu_s.map(round2),
        "server_cpu_us_per_value": per_value_us(servers_cpu_s),
        "targets": args.target,
    });
    println!("{figures}");
    Ok(())
}

/// Peak RSS above the process's size before the node started, per stream (in-process runs:
/// the node's memory, plus the load generator's few MiB).
fn node_rss_per_stream(args: &IngestBenchArgs, node_mb: f64) -> Option<f64> {
    args.target
        .is_empty()
        .then(|| round2(node_mb.max(0.0) * 1024.0 / args.streams as f64))
}

/// `concurrency` workers, each owning the streams `i % workers == worker` (like a collector
/// owning its switches, so each stream's samples arrive in order), each with one batch in
/// flight. Worker k sends to sink k mod n. The workers keep in step, as one fabric's sweeps
/// do: none starts a batch in round r before every other worker has finished round r-1, so no
/// stream falls behind the fabric's clock far enough to be marked stale by the benchmark itself.
async fn closed_loop(
    args: &IngestBenchArgs,
    sinks: &[Sink],
    base_ms: i64,
    started: Instant,
) -> anyhow::Result<Outcome> {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let workers_n = args.concurrency.min(args.streams);
    // Rounds each worker has finished (u64::MAX once it is done), and a wake-up on progress.
    let done: Arc<Vec<AtomicU64>> = Arc::new((0..workers_n).map(|_| AtomicU64::new(0)).collect());
    let progress = Arc::new(tokio::sync::Notify::new());
    let mut workers = Vec::new();
    for worker in 0..workers_n {
        let sink = sinks[worker % sinks.len()].clone();
        let owned_streams = (worker..args.streams).step_by(workers_n).count();
        let share = args.samples / workers_n + usize::from(worker < args.samples % workers_n);
        let (batch, anomaly_every) = (args.batch, args.anomaly_every);
        let (done, progress) = (done.clone(), progress.clone());
        workers.push(tokio::spawn(async move {
            let mut rng = sim::Rng::new(worker as u64 + 1);
            let mut out = Outcome::default();
            let mut j = 0;
            while j < share {
                let end = (j + batch).min(share);
                // The round this batch starts in: the other workers must have finished the
                // one before (a batch spanning several rounds waits only for its first).
                let round = (j / owned_streams) as u64;
                loop {
                    let woken = progress.notified();
                    if done.iter().enumerate().all(|(w, d)| {
                        w == worker || d.load(Ordering::Acquire).saturating_add(1) >= round
                    }) {
                        break;
                    }
                    woken.await;
                }
                let samples: Vec<_> = (j..end)
                    .map(|n| {
                        let stream = worker + workers_n * (n % owned_streams);
                        let k = (n / owned_streams) as u64;
                        sample_of(&mut rng, stream, k, base_ms, anomaly_every)
                    })
                    .collect();
                j = end;
                let values = samples.iter().map(|s| s.value_count()).sum();
                let t0 = Instant::now();
                let answer = sink.send(samples).await;
                let finished = if j >= share {
                    u64::MAX
                } else {
                    (j / owned_streams) as u64
                };
                done[worker].store(finished, Ordering::Release);
                progress.notify_waiters();
                out.add(
                    &answer?,
                    values,
                    t0.elapsed().as_secs_f64() * 1000.0,
                    started.elapsed().as_secs_f64(),
                );
            }
            done[worker].store(u64::MAX, Ordering::Release);
            progress.notify_waiters();
            anyhow::Ok(out)
        }));
    }
    let mut total = Outcome::default();
    for w in workers {
        total.merge(w.await??);
    }
    Ok(total)
}
