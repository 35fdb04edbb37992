//! `ibsight bench actors --count N`: what one idle ractor actor costs, alone: N actors that
//! hold nothing, linked to one supervisor as the stream actors are, and the RSS they add. The
//! floor under the per-stream memory of the design's one-actor-per-stream model (#18).

use super::{current_rss_mb, round2};
use ractor::{Actor, ActorProcessingErr, ActorRef};

#[derive(Debug, clap::Args)]
pub struct ActorsBenchArgs {
    /// Actors to spawn.
    #[arg(long, default_value_t = 100_000)]
    pub count: usize,
}

struct Idle;

impl Actor for Idle {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _myself: ActorRef<()>, _args: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

pub fn run(args: ActorsBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.count > 0, "--count must be at least 1");
    crate::cli::runtime()?.block_on(async move {
        let (supervisor, _) = Actor::spawn(None, Idle, ()).await?;
        let before_mb = current_rss_mb();
        let started = std::time::Instant::now();
        let mut actors = Vec::with_capacity(args.count);
        for _ in 0..args.count {
            let (a, _) = Actor::spawn_linked(None, Idle, (), supervisor.get_cell()).await?;
            actors.push(a);
        }
        let spawn_s = started.elapsed().as_secs_f64();
        // Every actor handles one message, so its task and mailbox are as a live stream's.
        for a in &actors {
            a.cast(())?;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let after_mb = current_rss_mb();
        let per_actor_bytes = (after_mb - before_mb) * 1_048_576.0 / args.count as f64;
        println!(
            "{}",
            serde_json::json!({
                "bench": "actors",
                "count": args.count,
                "rss_before_mb": round2(before_mb),
                "rss_after_mb": round2(after_mb),
                "bytes_per_actor": per_actor_bytes.round(),
                "spawns_per_s": (args.count as f64 / spawn_s).round(),
            })
        );
        for a in actors {
            a.stop(None);
        }
        supervisor.stop(None);
        anyhow::Ok(())
    })
}
