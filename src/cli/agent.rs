//! `ibsight agent`: on a compute node (not the SM's host), read the host's own ports from
//! sysfs each interval and post them, with the same delivery as `collect` (retries, bounded
//! buffer).

use crate::collect::post::Poster;
use crate::collect::sysfs;
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// The ibsight server, e.g. http://10.0.0.5:8080.
    #[arg(long)]
    pub target: String,
    /// Where the kernel shows the InfiniBand devices.
    #[arg(long, default_value = "/sys/class/infiniband")]
    pub sysfs: PathBuf,
    /// Seconds between reads.
    #[arg(long, default_value_t = 10)]
    pub interval_s: u64,
    /// Read once, deliver, print the figures and exit.
    #[arg(long)]
    pub once: bool,
    /// Bearer token for ingest.
    #[arg(long, env = "IBSIGHT_TOKEN")]
    pub token: Option<String>,
    /// Reads kept while the server cannot be reached; past it the oldest is dropped.
    #[arg(long, default_value_t = 360)]
    pub buffer_reads: usize,
}

pub fn run(args: AgentArgs) -> anyhow::Result<()> {
    crate::cli::runtime()?.block_on(agent(args))
}

async fn agent(args: AgentArgs) -> anyhow::Result<()> {
    let mut poster = Poster::new(&args.target, args.token.clone(), args.buffer_reads);
    let interval = Duration::from_secs(args.interval_s.max(1));
    let mut next = tokio::time::Instant::now();
    loop {
        let read = sysfs::read(&args.sysfs, crate::clock::now_ms())
            .map_err(|e| anyhow::anyhow!("--sysfs {}: {e}", args.sysfs.display()))?;
        let ports = read.samples.len();
        poster.push(read.samples);
        if args.once {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            let delivered = poster.drain(deadline).await;
            println!(
                "{}",
                json!({"ports": ports, "unreadable": read.unreadable, "delivered": delivered,
                       "delivery": poster.delivery})
            );
            anyhow::ensure!(delivered, "the read was not acknowledged within 60 s");
            return Ok(());
        }
        next += interval;
        if next < tokio::time::Instant::now() {
            next = tokio::time::Instant::now();
        }
        poster.drain(next).await;
        tokio::time::sleep_until(next).await;
    }
}
