//! `ibsight replay prompts`: the recorded anomalies asked again with a candidate template.

use super::{open_for_replay, Opened};
use crate::analyst::model::Model;
use crate::analyst::service::Analyst;
use crate::analyst::template::PromptTemplate;
use crate::analyst::Backend;
use crate::replay::prompts;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct PromptsArgs {
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The candidate template (see config/prompts/).
    #[arg(long)]
    pub prompt: PathBuf,
    /// Which analyst answers [default: the configured backend].
    #[arg(long, value_enum)]
    pub analyst: Option<Backend>,
    /// Only the first N recorded anomalies.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Write the side-by-side rows here, one JSON object per line.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub fn run(args: PromptsArgs) -> anyhow::Result<()> {
    let template = PromptTemplate::load(&args.prompt)?;
    let Opened {
        config,
        store,
        _snapshot,
        ..
    } = open_for_replay(args.config.clone(), args.data_dir.clone(), true)?;
    let recorded = prompts::recorded_anomalies(store.as_ref(), &config.detect, args.limit)?;
    eprintln!(
        "{} recorded anomalies ({} with an insight); asking with prompt {}",
        recorded.len(),
        recorded.iter().filter(|r| r.old.is_some()).count(),
        template.version
    );
    let mut cfg = config.analyst.clone();
    if let Some(backend) = args.analyst {
        cfg.backend = backend;
    }
    // Every anomaly is asked: no reuse of answers across anomalies.
    cfg.cache_window_s = 0;
    let batch = cfg.batch_max;
    crate::cli::runtime()?.block_on(async move {
        let model = Model::for_backend(&cfg, &config.aws).await?;
        let analyst = Analyst::new(
            cfg,
            model,
            Duration::from_millis(200),
            crate::clock::now_ms(),
        )
        .with_template(template);
        let total = recorded.len();
        let rows = prompts::ask_again(&recorded, &analyst, batch, |n| {
            if n % 100 < batch || n == total {
                eprintln!("asked {n}/{total}");
            }
        })
        .await;
        if let Some(path) = &args.out {
            let mut out = std::io::BufWriter::new(
                std::fs::File::create(path)
                    .map_err(|e| anyhow::anyhow!("--out {}: {e}", path.display()))?,
            );
            for row in &rows {
                serde_json::to_writer(&mut out, row)?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
        }
        println!(
            "{}",
            serde_json::to_string(&prompts::summarize(&rows, &analyst))?
        );
        anyhow::Ok(())
    })
}
