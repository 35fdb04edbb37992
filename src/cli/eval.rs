//! `ibsight eval`: score detection on a labelled scenario and print a table (and JSON).

use crate::analyst::Backend;
use crate::config::Config;
use crate::sim::scenario::Scenario;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// A bundled scenario (mixed, switch-storm, healthy) or a TOML file.
    #[arg(long, default_value = "mixed")]
    pub scenario: String,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Write the report as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// `rules` (default), `bedrock` or `openai` (the configured model, for prompt work).
    #[arg(long, value_enum, default_value = "rules")]
    pub analyst: Backend,
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let mut scenario = Scenario::load(&args.scenario)?;
    if let Some(seed) = args.seed {
        scenario.seed = seed;
    }
    let mut config = Config::load(args.config.as_deref())?;
    config.analyst.backend = args.analyst;
    let name = scenario.name.clone();
    let eval = crate::cli::runtime()?.block_on(crate::eval::evaluate(config, scenario))?;
    println!("scenario {name} ({} analyst)\n", args.analyst.name());
    print!("{}", crate::sim::score::table(&eval.report));
    if args.analyst != Backend::Rules {
        print!("{}", eval.quality.summary());
    }
    if let Some(path) = args.out {
        let json = serde_json::json!({
            "scenario": name,
            "analyst": args.analyst.name(),
            "report": eval.report,
            "analyst_quality": eval.quality,
            "labels": eval.labels,
            "anomalies": eval.observed.iter().map(|o| serde_json::json!({
                "stream_id": o.stream_id,
                "at_ms": o.at_ms,
                "prediction_type": o.prediction.map(|p| p.name()),
                "risk": o.risk,
                "alerted": o.alerted,
                "incident": o.incident,
                "scope": o.scope.map(|s| s.name()),
            })).collect::<Vec<_>>(),
        });
        std::fs::write(&path, serde_json::to_string_pretty(&json)?)?;
        println!("\nreport written to {}", path.display());
    }
    Ok(())
}
