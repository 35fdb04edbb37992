//! `ibsight replay …`: audit the log with today's code, ask a candidate prompt about the
//! recorded anomalies, rebuild projections. A store in use by a running server (the engines
//! lock their directory) is read from a private snapshot copy.

mod prompts;

use crate::config::Config;
use crate::events::open_store_with;
use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
pub enum ReplayCommand {
    /// Check every record and re-run the stream decisions against the recorded anomalies.
    Audit {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Only this stream.
        #[arg(long)]
        stream: Option<String>,
        /// Detection settings to audit with (default: the configured ones).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Report divergences recorded at or after this time (RFC 3339 or epoch ms). The whole
        /// log is still replayed, since baselines need the history.
        #[arg(long, value_parser = parse_time)]
        from: Option<i64>,
        /// …and before this time.
        #[arg(long, value_parser = parse_time)]
        to: Option<i64>,
    },
    /// Ask a candidate prompt template about every recorded anomaly; write the old and new
    /// insights side by side. Reads a private copy of the log and never writes to it.
    Prompts(prompts::PromptsArgs),
    /// Rebuild a projection from the log: `views` (verified against the live views unless
    /// `--apply`) or `dynamodb` (re-put every item; writes are idempotent).
    Projection {
        name: String,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long, default_value_t = 1)]
        from_offset: u64,
        /// Rewrite the live views instead of verifying them.
        #[arg(long)]
        apply: bool,
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// `2026-11-25T12:00:00Z` or epoch milliseconds.
fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|e| format!("{s:?} is neither RFC 3339 nor epoch milliseconds: {e}"))
}

/// A store opened for a replay, and the snapshot copy it lives in, if any.
struct Opened {
    config: Config,
    store: std::sync::Arc<dyn crate::events::EventStore>,
    _snapshot: Option<tempfile::TempDir>,
}

/// The config and the store of `--data-dir` (default: the configured one). The store is opened
/// in place when it is free; in use by a server (or with `always_copy`), a snapshot copy is.
fn open_for_replay(
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    always_copy: bool,
) -> anyhow::Result<Opened> {
    let config = Config::load(config.as_deref())?;
    let dir = data_dir.unwrap_or(config.server.data_dir.clone());
    anyhow::ensure!(
        dir.exists(),
        "--data-dir {}: no such directory",
        dir.display()
    );
    let (engine, mib) = (config.store.engine, config.store.memtable_mib);
    if !always_copy {
        match open_store_with(engine, &dir, mib) {
            Ok(store) => {
                return Ok(Opened {
                    config,
                    store,
                    _snapshot: None,
                })
            }
            Err(e) => eprintln!("{e}; reading a snapshot copy of {} instead", dir.display()),
        }
    }
    let copy = crate::replay::snapshot::copy(&dir)
        .map_err(|e| anyhow::anyhow!("cannot copy {} for the replay: {e}", dir.display()))?;
    let store = open_store_with(engine, copy.path(), mib)?;
    Ok(Opened {
        config,
        store,
        _snapshot: Some(copy),
    })
}

/// For commands that write to the store (`replay projection`): in place, never a copy.
fn open(
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
) -> anyhow::Result<(Config, std::sync::Arc<dyn crate::events::EventStore>)> {
    let config = Config::load(config.as_deref())?;
    let dir = data_dir.unwrap_or(config.server.data_dir.clone());
    anyhow::ensure!(
        dir.exists(),
        "--data-dir {}: no such directory",
        dir.display()
    );
    let store = open_store_with(config.store.engine, &dir, config.store.memtable_mib)?;
    Ok((config, store))
}

pub fn run(cmd: ReplayCommand) -> anyhow::Result<()> {
    match cmd {
        ReplayCommand::Projection {
            name,
            data_dir,
            from_offset,
            apply,
            config,
        } => projection(&name, data_dir, from_offset, apply, config),
        ReplayCommand::Prompts(args) => prompts::run(args),
        ReplayCommand::Audit {
            data_dir,
            stream,
            config,
            from,
            to,
        } => {
            let Opened {
                config,
                store,
                _snapshot,
            } = open_for_replay(config, data_dir, false)?;
            let started = std::time::Instant::now();
            // A progress bar on a terminal, plain lines otherwise (logs, CI).
            let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
                let bar = indicatif::ProgressBar::new(store.last_offset());
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{bar:40} {pos}/{len} events {per_sec} eta {eta}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                bar
            });
            let report = crate::replay::audit::audit(
                store.as_ref(),
                &config.detect,
                stream.as_deref(),
                |n| match &bar {
                    Some(bar) => bar.set_position(n),
                    None if n % 1_000_000 < 1000 => eprintln!("audited {n} events"),
                    None => {}
                },
            )?;
            if let Some(bar) = &bar {
                bar.finish_and_clear();
            }
            let secs = started.elapsed().as_secs_f64();
            let mut report = report;
            report
                .divergences
                .retain(|d| from.is_none_or(|f| d.at_ms >= f) && to.is_none_or(|t| d.at_ms < t));
            for d in &report.divergences {
                println!(
                    "divergence {} seq {} {}: {}",
                    d.stream_id, d.seq, d.kind, d.detail
                );
            }
            for c in &report.corrupt {
                println!("corrupt record at offset {}: {}", c.offset, c.reason);
            }
            println!(
                "{}",
                serde_json::json!({
                    "events": report.events,
                    "streams": report.streams,
                    "recorded_anomaly_events": report.recorded_anomaly_events,
                    "matched": report.matched,
                    "divergences": report.divergences.len(),
                    "corrupt": report.corrupt.len(),
                    "events_per_s": (report.events as f64 / secs.max(1e-9)).round(),
                })
            );
            anyhow::ensure!(
                report.corrupt.is_empty(),
                "{} corrupt record(s) in the log",
                report.corrupt.len()
            );
            Ok(())
        }
    }
}

fn projection(
    name: &str,
    data_dir: Option<PathBuf>,
    from_offset: u64,
    apply: bool,
    config: Option<PathBuf>,
) -> anyhow::Result<()> {
    use crate::projections::dynamodb::{DynamoProjection, DynamoSink};
    use crate::projections::views::ViewsProjection;
    use crate::replay::rebuild;
    let (config, store) = open(config, data_dir)?;
    let writer = crate::events::writer::Writer::spawn(store, config.store.max_batch_ops);
    crate::cli::runtime()?.block_on(async move {
        match name {
            "views" if apply => {
                let head = rebuild::rerun(&writer, ViewsProjection::default(), from_offset).await?;
                println!("views rebuilt up to offset {head}");
            }
            "views" => {
                let report = rebuild::verify_views(&writer).await?;
                println!("{}", serde_json::to_string(&report)?);
                anyhow::ensure!(
                    report.iter().all(|v| v.differing == 0),
                    "the rebuilt views differ from the live ones"
                );
            }
            "dynamodb" => {
                let sdk = crate::aws::sdk_config(&config.aws).await;
                let sink = DynamoSink::new(&sdk, &config.dynamodb.table);
                let head = rebuild::rerun(&writer, DynamoProjection { sink }, from_offset).await?;
                println!("dynamodb items re-put up to offset {head}");
            }
            other => anyhow::bail!(
                "projection {other:?}: only views and dynamodb can be rebuilt (alerts are events \
                 in the log; EventBridge would re-send them)"
            ),
        }
        anyhow::Ok(())
    })
}
