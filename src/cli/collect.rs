//! `ibsight collect`: on a host attached to the fabric (the subnet manager's, as UFM and the
//! common InfiniBand exporters do), sweep every port each interval through infiniband-diags
//! and post the samples. `--once` sweeps once, delivers, and prints the sweep's figures.

use crate::collect::assemble::Naming;
use crate::collect::post::Poster;
use crate::collect::sweep::{self, Tools};
use serde_json::json;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct CollectArgs {
    /// The ibsight server, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    pub target: String,
    /// Seconds between sweeps.
    #[arg(long, default_value_t = 10)]
    pub interval_s: u64,
    /// Sweep once, deliver, print the figures and exit.
    #[arg(long)]
    pub once: bool,
    /// Bearer token for ingest.
    #[arg(long, env = "IBSIGHT_TOKEN")]
    pub token: Option<String>,
    /// The local HCA to use (the tools' -C).
    #[arg(long)]
    pub ca: Option<String>,
    /// Its port (the tools' -P).
    #[arg(long)]
    pub port: Option<u8>,
    /// Tools running against the fabric at once (at most 8).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u8).range(1..=8))]
    pub max_clients: u8,
    /// Sweeps kept while the server cannot be reached; past it the oldest is dropped.
    #[arg(long, default_value_t = 360)]
    pub buffer_sweeps: usize,
    /// With --once: give up delivering after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub deliver_timeout_s: u64,
}

pub fn run(args: CollectArgs) -> anyhow::Result<()> {
    crate::cli::runtime()?.block_on(collect(args))
}

async fn collect(args: CollectArgs) -> anyhow::Result<()> {
    let tools = Tools {
        ca: args.ca.clone(),
        port: args.port,
        max_clients: usize::from(args.max_clients),
        timeout: Duration::from_secs(30),
        env: Vec::new(),
    };
    let mut naming = Naming::default();
    let mut poster = Poster::new(&args.target, args.token.clone(), args.buffer_sweeps);
    let interval = Duration::from_secs(args.interval_s.max(1));
    let mut next = tokio::time::Instant::now();
    loop {
        let swept = tools.sweep(&mut naming, crate::clock::now_ms()).await;
        let swept = match swept {
            Ok(s) => s,
            Err(e) if args.once => return Err(e.into()),
            Err(e) => {
                tracing::error!(error = %e, "sweep failed; next sweep at the next interval");
                next += interval;
                tokio::time::sleep_until(next).await;
                continue;
            }
        };
        let ports = swept.samples.len();
        let switch_ports = sweep::switch_ports(&swept.samples);
        poster.push(swept.samples);
        if args.once {
            let deadline =
                tokio::time::Instant::now() + Duration::from_secs(args.deliver_timeout_s);
            let delivered = poster.drain(deadline).await;
            println!(
                "{}",
                json!({
                    "ports": ports,
                    "switch_ports": switch_ports,
                    "sweep_s": (swept.seconds * 1000.0).round() / 1000.0,
                    "counter_errors": swept.counter_errors,
                    "skipped_lines": swept.skipped_lines,
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
            pending = poster.pending(),
            "swept"
        );
        next += interval;
        if next < tokio::time::Instant::now() {
            next = tokio::time::Instant::now();
        }
        poster.drain(next).await;
        tokio::time::sleep_until(next).await;
    }
}
