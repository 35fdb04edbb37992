//! `ibsight collect`: on a host attached to the fabric (the subnet manager's, as UFM and the
//! common InfiniBand exporters do), sweep every port each interval through infiniband-diags
//! and post the samples. `--once` sweeps once, delivers, and prints the sweep's figures.
//! SIGTERM or SIGINT stops it at once, mid-sweep included: the sweep's tools are killed with
//! it. Sweeps the server has not yet acknowledged are not kept across a stop (the log says
//! how many).

use crate::collect::post::Poster;
use crate::collect::sweep::{self, Memory, Tools};
use crate::collect::tool::Timeouts;
use crate::collect::topology;
use serde_json::json;
use std::time::Duration;

/// The flags `collect` and `agent` share: where to post and how often.
#[derive(Debug, clap::Args)]
pub struct PostArgs {
    /// The ibsight server, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    pub target: String,
    /// Seconds between sweeps (reads).
    #[arg(long, default_value_t = 10)]
    pub interval_s: u64,
    /// Sweep (read) once, deliver, print the figures and exit.
    #[arg(long)]
    pub once: bool,
    /// Bearer token for ingest.
    #[arg(long, env = "IBSIGHT_TOKEN")]
    pub token: Option<String>,
    /// PEM file of the CA(s) that signed the server's certificate, for an https target
    /// (otherwise the system's roots are used).
    #[arg(long, env = "IBSIGHT_CA_FILE")]
    pub ca_file: Option<std::path::PathBuf>,
    /// Sweeps (reads) kept while the server cannot be reached; past it the oldest is dropped.
    #[arg(long, alias = "buffer-reads", default_value_t = 360)]
    pub buffer_sweeps: usize,
    /// With --once: give up delivering after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub deliver_timeout_s: u64,
}

impl PostArgs {
    /// The client for `--target`, with `--ca-file`.
    pub fn client(&self) -> anyhow::Result<reqwest::Client> {
        crate::collect::post::http_client(self.ca_file.as_deref(), Duration::from_secs(30))
            .map_err(anyhow::Error::msg)
    }
}

#[derive(Debug, clap::Args)]
pub struct CollectArgs {
    #[command(flatten)]
    pub post: PostArgs,
    /// The local HCA to use (the tools' -C).
    #[arg(long)]
    pub ca: Option<String>,
    /// Its port (the tools' -P).
    #[arg(long)]
    pub port: Option<u8>,
    /// Tools running against the fabric at once (at most 8).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u8).range(1..=8))]
    pub max_clients: u8,
    /// How long one tool run may take, in seconds (a tool past it loses only its own part).
    #[arg(long, env = "IBSIGHT_COLLECT_TOOL_TIMEOUT_S", default_value_t = 30.0)]
    pub tool_timeout_s: f64,
    /// A timeout for one tool, NAME=SECONDS (e.g. ibqueryerrors=120); repeatable.
    #[arg(long, value_parser = Timeouts::parse_override)]
    pub tool_timeout: Vec<(String, Duration)>,
    /// Discover the fabric every this many sweeps (and at once when a link changes).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub discover_every: u32,
    /// The expected topology, as `ibnetdiscover` prints it (save it after commissioning:
    /// `ibnetdiscover > fabric.topo`); every sweep is held against it.
    #[arg(long)]
    pub topology: Option<std::path::PathBuf>,
    /// rdma-core's node-name-map (`<node GUID> "<name>"` per line): stream ids of the nodes it
    /// names use its names.
    #[arg(long)]
    pub node_name_map: Option<std::path::PathBuf>,
}

fn read_text(flag: &str, path: &std::path::Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{flag} {}: {e}", path.display()))
}

pub fn run(args: CollectArgs) -> anyhow::Result<()> {
    let pending = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    crate::cli::runtime()?.block_on(async {
        tokio::select! {
            r = collect(args, pending.clone()) => r,
            _ = crate::cli::shutdown_signal() => {
                let pending = pending.load(std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(pending_sweeps = pending,
                    "stopped by a signal: the sweep's tools were killed, and sweeps not yet acknowledged are not kept");
                Ok(())
            }
        }
    })
}

fn tools(args: &CollectArgs) -> anyhow::Result<Tools> {
    anyhow::ensure!(
        args.tool_timeout_s.is_finite() && args.tool_timeout_s > 0.0,
        "--tool-timeout-s: must be a positive number of seconds, got {}",
        args.tool_timeout_s
    );
    let mut timeouts = Timeouts::all(Duration::from_secs_f64(args.tool_timeout_s));
    timeouts.by_tool.extend(args.tool_timeout.iter().cloned());
    Ok(Tools {
        ca: args.ca.clone(),
        port: args.port,
        max_clients: usize::from(args.max_clients),
        timeouts,
        discover_every: args.discover_every,
        env: Vec::new(),
        topology: match &args.topology {
            Some(path) => {
                let file = path.display().to_string();
                let text = read_text("--topology", path)?;
                Some(std::sync::Arc::new(topology::parse(&file, &text)?))
            }
            None => None,
        },
    })
}

fn memory(args: &CollectArgs) -> anyhow::Result<Memory> {
    let mut memory = Memory::default();
    if let Some(path) = &args.node_name_map {
        let file = path.display().to_string();
        let text = read_text("--node-name-map", path)?;
        memory.naming.names = topology::parse_name_map(&file, &text)?;
    }
    Ok(memory)
}

async fn collect(
    args: CollectArgs,
    pending: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> anyhow::Result<()> {
    let tools = tools(&args)?;
    let post = &args.post;
    let mut memory = memory(&args)?;
    let mut poster = Poster::new(
        post.client()?,
        &post.target,
        post.token.clone(),
        post.buffer_sweeps,
    );
    let interval = Duration::from_secs(post.interval_s.max(1));
    let mut next = tokio::time::Instant::now();
    loop {
        let mut swept = match tools.sweep(&mut memory).await {
            Ok(s) => s,
            Err(e) if post.once => return Err(e.into()),
            Err(e) => {
                tracing::error!(error = %e, "sweep failed; next sweep at the next interval");
                next += interval;
                tokio::time::sleep_until(next).await;
                continue;
            }
        };
        let ports = swept.samples.len();
        let switch_ports = sweep::switch_ports(&swept.samples);
        poster.push(std::mem::take(&mut swept.samples));
        if post.once {
            let deadline =
                tokio::time::Instant::now() + Duration::from_secs(post.deliver_timeout_s);
            let delivered = poster.drain(deadline).await;
            println!(
                "{}",
                json!({
                    "ports": ports,
                    "switch_ports": switch_ports,
                    "sweep_s": (swept.seconds * 1000.0).round() / 1000.0,
                    "counter_errors": swept.counter_errors,
                    "skipped_lines": swept.skipped_lines,
                    "tool_timeouts": swept.tool_timeouts,
                    "tool_failures": swept.tool_failures,
                    "discoveries": swept.discoveries,
                    "delivered": delivered,
                    "delivery": poster.delivery,
                })
            );
            anyhow::ensure!(
                delivered,
                "the sweep was not acknowledged within --deliver-timeout-s"
            );
            return Ok(());
        }
        tracing::info!(
            ports,
            sweep_s = swept.seconds,
            counter_errors = swept.counter_errors,
            tool_timeouts = swept.tool_timeouts,
            discoveries = swept.discoveries,
            pending = poster.pending(),
            "swept"
        );
        next += interval;
        if next < tokio::time::Instant::now() {
            next = tokio::time::Instant::now();
        }
        poster.drain(next).await;
        pending.store(poster.pending(), std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep_until(next).await;
    }
}
