//! `ibsight cluster plan`: which shards (and how many of the known streams) move when the
//! member list changes. Moving them is an operator action (docs/OPERATIONS.md).

use crate::cluster::placement;
use crate::config::Config;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
pub enum ClusterCommand {
    /// Print the shards that change owner from the configured members to `--members`.
    Plan {
        /// The new member ids, comma-separated (e.g. n1,n2,n3,n4).
        #[arg(long, value_delimiter = ',', required = true)]
        members: Vec<String>,
        /// The config with the current `[cluster]` members.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

pub fn run(cmd: ClusterCommand) -> anyhow::Result<()> {
    match cmd {
        ClusterCommand::Plan { members, config } => {
            let config = Config::load(config.as_deref())?;
            anyhow::ensure!(
                config.cluster.enabled(),
                "the config has no [cluster] members to plan from"
            );
            let mut after: Vec<String> = members.iter().map(|m| m.trim().to_string()).collect();
            after.retain(|m| !m.is_empty());
            anyhow::ensure!(!after.is_empty(), "--members: no member ids given");
            let before = config.cluster.member_ids();
            let moves = placement::plan(&before, &after, config.cluster.shards);
            let mut by_pair: BTreeMap<(String, String), usize> = BTreeMap::new();
            for m in &moves {
                println!("{}", serde_json::to_string(m)?);
                *by_pair.entry((m.from.clone(), m.to.clone())).or_default() += 1;
            }
            println!(
                "{}",
                serde_json::json!({
                    "shards": config.cluster.shards,
                    "moving": moves.len(),
                    "by_pair": by_pair
                        .iter()
                        .map(|((f, t), n)| serde_json::json!({"from": f, "to": t, "shards": n}))
                        .collect::<Vec<_>>(),
                })
            );
            Ok(())
        }
    }
}
