//! `ibsight cluster plan`: which shards (and how many of the known streams) move when the
//! member list changes. Moving them is an operator action (docs/OPERATIONS.md).

use crate::cluster::{moves, placement};
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
    /// Write the events of the streams this node loses under `--members` to a move file
    /// (run with the node stopped).
    Export {
        #[arg(long, value_delimiter = ',', required = true)]
        members: Vec<String>,
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Append a move file's streams that this node owns (its config has the new members;
    /// run with the node stopped). Its stream actors replay them on first use.
    Import {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The move file, and the member it came from.
        #[arg(long = "in")]
        input: PathBuf,
        #[arg(long)]
        from: String,
    },
    /// Remove the streams this node loses under `--members` (after their import elsewhere).
    Drop {
        #[arg(long, value_delimiter = ',', required = true)]
        members: Vec<String>,
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

fn ids(members: &[String]) -> Vec<String> {
    members
        .iter()
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
        .collect()
}

/// The streams this node owns now and another member owns under `members`.
fn leaving(
    config: &Config,
    writer: &crate::events::writer::Writer,
    members: &[String],
) -> anyhow::Result<BTreeMap<String, String>> {
    let c = &config.cluster;
    Ok(moves::leaving(
        writer.store().as_ref(),
        &c.node_id,
        &c.member_ids(),
        &ids(members),
        c.shards,
    )?)
}

/// The config (which must be clustered) and a writer on the node's store, opened in place.
fn open(
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
) -> anyhow::Result<(Config, crate::events::writer::Writer)> {
    let config = Config::load(config.as_deref())?;
    anyhow::ensure!(
        config.cluster.enabled(),
        "the config has no [cluster] members"
    );
    let dir = data_dir.unwrap_or(config.server.data_dir.clone());
    anyhow::ensure!(
        dir.exists(),
        "--data-dir {}: no such directory",
        dir.display()
    );
    let store =
        crate::events::open_store_with(config.store.engine, &dir, config.store.memtable_mib)?;
    let writer = crate::events::writer::Writer::spawn(store, config.store.max_batch_ops);
    Ok((config, writer))
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
        ClusterCommand::Export {
            members,
            config,
            data_dir,
            out,
        } => {
            let (config, writer) = open(config, data_dir)?;
            let c = &config.cluster;
            let leaving = leaving(&config, &writer, &members)?;
            let mut file = std::io::BufWriter::new(
                std::fs::File::create(&out)
                    .map_err(|e| anyhow::anyhow!("--out {}: {e}", out.display()))?,
            );
            let records =
                moves::export(writer.store().as_ref(), leaving.keys().cloned(), &mut file)?;
            println!(
                "{}",
                serde_json::json!({"node": c.node_id, "streams": leaving.len(), "records": records, "out": out})
            );
            Ok(())
        }
        ClusterCommand::Import {
            config,
            data_dir,
            input,
            from,
        } => {
            let (config, writer) = open(config, data_dir)?;
            let mut file = std::fs::File::open(&input)
                .map_err(|e| anyhow::anyhow!("--in {}: {e}", input.display()))?;
            let records = moves::read(&mut file)?;
            let c = config.cluster.clone();
            let (streams, records) = crate::cli::runtime()?.block_on(moves::import(
                &writer,
                records,
                &c.node_id,
                &from,
                &c.member_ids(),
                c.shards,
            ))?;
            println!(
                "{}",
                serde_json::json!({"node": c.node_id, "from": from, "streams": streams, "records": records})
            );
            Ok(())
        }
        ClusterCommand::Drop {
            members,
            config,
            data_dir,
        } => {
            let (config, writer) = open(config, data_dir)?;
            let c = &config.cluster;
            let leaving = leaving(&config, &writer, &members)?;
            let removed = crate::cli::runtime()?
                .block_on(moves::drop_streams(&writer, leaving.keys().cloned()))?;
            println!(
                "{}",
                serde_json::json!({"node": c.node_id, "streams": leaving.len(), "records_removed": removed})
            );
            Ok(())
        }
    }
}
