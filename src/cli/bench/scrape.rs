//! `ibsight bench scrape --streams N`: what one Prometheus scrape of `GET /metrics/ports`
//! costs when a node owns N ports. The ports are a simulated fat tree's, each with every
//! counter `collect` reads, posted twice through the real ingest path (so each has derived
//! rates); then the real server is scraped over loopback HTTP, as Prometheus would.
//! Prints the series and bytes of one scrape, its time to the first byte and to the last,
//! and the RSS the scrape added (it is streamed, so this stays flat as N grows).

use super::{current_rss_mb, peak_rss_mb, quantile, round2};
use crate::api;
use crate::config::Config;
use crate::events::Origin;
use crate::node::Node;
use crate::sample::{Counter, Sample};
use crate::sim::fabric::{healthy_link, Fabric};
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct ScrapeBenchArgs {
    /// Ports the node owns.
    #[arg(long, default_value_t = 10_000)]
    pub streams: usize,
    /// Scrapes to time (the figures are their median).
    #[arg(long, default_value_t = 3)]
    pub scrapes: usize,
    /// Ask for gzip, as Prometheus does (`Accept-Encoding: gzip`); the series are counted on
    /// the unzipped text.
    #[arg(long)]
    pub gzip: bool,
}

/// Every counter a sweep of a real port reads, climbing with `round`.
fn sample(port: &crate::sim::fabric::Port, i: usize, t: i64, round: u64) -> Sample {
    let counters = Counter::ALL
        .iter()
        .take_while(|c| **c != Counter::OutOfSequence)
        .enumerate()
        .map(|(k, c)| (*c, round * (1_000 + (i * 7 + k) as u64)))
        .collect();
    Sample {
        stream_id: port.stream_id.clone(),
        timestamp_ms: t,
        counters,
        port: port.identity.clone(),
        peer: Some(port.peer_port.clone()),
        link: Some(healthy_link()),
        ..Sample::default()
    }
}

pub fn run(args: ScrapeBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.streams > 0, "--streams must be at least 1");
    anyhow::ensure!(args.scrapes > 0, "--scrapes must be at least 1");
    let tmp = tempfile::Builder::new().prefix("ibsight-bench").tempdir()?;
    let mut config = Config::load(None)?;
    config.server.data_dir = tmp.path().to_path_buf();
    config.validate()?;
    crate::cli::runtime()?.block_on(drive(args, config))
}

async fn drive(args: ScrapeBenchArgs, config: Config) -> anyhow::Result<()> {
    let node = Node::start(config).await?;
    let fabric = Fabric::new(args.streams / 3 + 1);
    let ports: Vec<_> = fabric.ports.iter().take(args.streams).collect();
    anyhow::ensure!(
        ports.len() == args.streams,
        "the simulated fabric has {} ports, fewer than --streams",
        ports.len()
    );
    let t0 = crate::clock::now_ms() - 20_000;
    for round in 1..=2u64 {
        let t = t0 + round as i64 * 10_000;
        for chunk in ports.chunks(1000).enumerate() {
            let (c, chunk) = chunk;
            let samples = chunk
                .iter()
                .enumerate()
                .map(|(j, p)| sample(p, c * 1000 + j, t, round))
                .collect();
            node.ingestor.ingest(samples, Origin::default()).await?;
        }
    }
    // The projections catch up first, so the scrapes are timed on an idle node.
    let last = node.writer.store().last_offset();
    let deadline = Instant::now() + std::time::Duration::from_secs(300);
    while node
        .projections
        .iter()
        .any(|(_, lag)| lag.checkpoint.load(std::sync::atomic::Ordering::Relaxed) < last)
        && Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/metrics/ports", listener.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(api::serve(listener, node.app_state(), None, async {
        let _ = stop_rx.await;
    }));
    let client = reqwest::Client::new();
    let rss_before_mb = current_rss_mb();
    let (mut first, mut total, mut rss) = (Vec::new(), Vec::new(), Vec::new());
    let (mut bytes, mut series) = (0usize, 0usize);
    for _ in 0..args.scrapes {
        let started = Instant::now();
        let mut req = client.get(&url);
        if args.gzip {
            req = req.header("accept-encoding", "gzip");
        }
        let mut resp = req.send().await?.error_for_status()?;
        let zipped = resp
            .headers()
            .get("content-encoding")
            .is_some_and(|v| v == "gzip");
        anyhow::ensure!(
            zipped == args.gzip,
            "asked gzip={}, got gzip={zipped}",
            args.gzip
        );
        let mut first_at = None;
        let mut b = 0usize;
        let mut count = LineCounter::default();
        let mut unzip = flate2::write::GzDecoder::new(LineSink(&mut count));
        while let Some(chunk) = resp.chunk().await? {
            first_at.get_or_insert_with(|| started.elapsed().as_secs_f64());
            b += chunk.len();
            if zipped {
                std::io::Write::write_all(&mut unzip, &chunk)?;
            } else {
                unzip.get_mut().0.feed(&chunk);
            }
        }
        if zipped {
            unzip.finish()?;
        } else {
            drop(unzip);
        }
        let lines = count.series;
        total.push(started.elapsed().as_secs_f64());
        rss.push(round2(current_rss_mb()));
        first.push(first_at.unwrap_or(0.0));
        bytes = b;
        series = lines;
    }
    println!(
        "{}",
        serde_json::json!({
            "bench": "scrape",
            "streams": args.streams,
            "series": series,
            "bytes": bytes,
            "gzip": args.gzip,
            "series_per_stream": round2(series as f64 / args.streams as f64),
            "first_byte_ms": round2(quantile(&mut first, 0.5) * 1000.0),
            "scrape_s": round2(quantile(&mut total, 0.5)),
            "series_per_s": (series as f64 / quantile(&mut total, 0.5)).round(),
            "rss_before_scrapes_mb": round2(rss_before_mb),
            "rss_after_each_scrape_mb": rss,
            "peak_rss_mb": round2(peak_rss_mb()),
        })
    );
    let _ = stop_tx.send(());
    let _ = server.await;
    node.shutdown().await;
    Ok(())
}

/// Counts the series lines (not `#` lines) of the exposition text, fed in any chunks.
#[derive(Default)]
struct LineCounter {
    series: usize,
    at_line_start: bool,
    started: bool,
}

impl LineCounter {
    fn feed(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            let line_start = !self.started || self.at_line_start;
            self.started = true;
            if line_start && byte != b'#' {
                self.series += 1;
            }
            self.at_line_start = byte == b'\n';
        }
    }
}

/// The unzipped text goes to the counter.
struct LineSink<'a>(&'a mut LineCounter);

impl std::io::Write for LineSink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.feed(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
