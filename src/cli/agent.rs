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
    #[command(flatten)]
    pub post: crate::cli::collect::PostArgs,
    /// Where the kernel shows the InfiniBand devices.
    #[arg(long, default_value = "/sys/class/infiniband")]
    pub sysfs: PathBuf,
}

pub fn run(args: AgentArgs) -> anyhow::Result<()> {
    crate::cli::runtime()?.block_on(agent(args))
}

async fn agent(args: AgentArgs) -> anyhow::Result<()> {
    let mut poster = Poster::new(
        args.post.client()?,
        &args.post.target,
        args.post.token.clone(),
        args.post.buffer_sweeps,
    );
    let interval = Duration::from_secs(args.post.interval_s.max(1));
    let mut next = tokio::time::Instant::now();
    loop {
        let read = sysfs::read(&args.sysfs, crate::clock::now_ms())
            .map_err(|e| anyhow::anyhow!("--sysfs {}: {e}", args.sysfs.display()))?;
        let ports = read.samples.len();
        poster.push(read.samples);
        if args.post.once {
            let deadline =
                tokio::time::Instant::now() + Duration::from_secs(args.post.deliver_timeout_s);
            let delivered = poster.drain(deadline).await;
            println!(
                "{}",
                json!({"ports": ports, "unreadable": read.unreadable, "delivered": delivered,
                       "delivery": poster.delivery})
            );
            anyhow::ensure!(
                delivered,
                "the read was not acknowledged within --deliver-timeout-s"
            );
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
