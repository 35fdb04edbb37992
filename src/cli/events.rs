//! `ibsight events`: print the event log (all streams in offset order, or one stream in seq
//! order) as JSON lines. Reads the store directly, so the server must not hold it open.

use crate::config::Config;
use crate::events::json::event_json;
use crate::events::{open_store, Engine};
use anyhow::Context;
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Only this stream's events.
    #[arg(long)]
    pub stream: Option<String>,
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Storage engine [default: from config, fjall].
    #[arg(long, value_enum)]
    pub engine: Option<EngineArg>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum EngineArg {
    Fjall,
    Sled,
}

impl From<EngineArg> for Engine {
    fn from(e: EngineArg) -> Engine {
        match e {
            EngineArg::Fjall => Engine::Fjall,
            EngineArg::Sled => Engine::Sled,
        }
    }
}

pub fn run(args: EventsArgs) -> anyhow::Result<()> {
    let config = Config::load(args.config.as_deref())?;
    let dir = args.data_dir.unwrap_or(config.server.data_dir);
    let engine = args.engine.map_or(config.store.engine, Engine::from);
    let store = if engine == Engine::Postgres {
        crate::events::open_configured(&config.store, &dir)
            .with_context(|| format!("opening the postgres schema {}", config.store.schema))?
    } else {
        if !dir.exists() {
            anyhow::bail!("--data-dir {}: no such directory", dir.display());
        }
        open_store(engine, &dir)
            .with_context(|| format!("opening the {engine:?} store in {}", dir.display()))?
    };
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    const PAGE: usize = 1000;
    match args.stream {
        Some(stream_id) => {
            let mut from = 1;
            loop {
                let page = store.read_stream(&stream_id, from, PAGE)?;
                let Some(last) = page.last() else { break };
                from = last.record.seq + 1;
                for e in &page {
                    writeln!(out, "{}", event_json(e))?;
                }
            }
        }
        None => {
            let mut from = 1;
            loop {
                let page = store.read_from(from, PAGE)?;
                let Some(last) = page.last() else { break };
                from = last.offset + 1;
                for e in &page {
                    writeln!(out, "{}", event_json(e))?;
                }
            }
        }
    }
    out.flush()?;
    Ok(())
}
