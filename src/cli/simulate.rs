//! `ibsight simulate`: play a scenario against a running server over HTTP, in batches, one
//! interval at a time. `--speedup` compresses simulated time: timestamps advance by the
//! interval while wall time advances `speedup` times faster (timestamps stay in the past).

use crate::sim::generator::Simulator;
use crate::sim::scenario::Scenario;
use anyhow::Context;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Base URL of the ibsight server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub target: String,
    /// A bundled scenario (mixed, switch-storm, healthy) or a TOML file.
    #[arg(long, default_value = "mixed")]
    pub scenario: String,
    #[arg(long)]
    pub nodes: Option<usize>,
    /// Sample interval, e.g. `1s`.
    #[arg(long, value_parser = parse_duration)]
    pub interval: Option<Duration>,
    /// Simulated duration, e.g. `60s` or `2m`.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Simulated seconds per wall-clock second.
    #[arg(long, default_value_t = 1.0)]
    pub speedup: f64,
    /// Write the fault labels (JSON) here, for scoring.
    #[arg(long)]
    pub labels_out: Option<PathBuf>,
    /// Bearer token for ingest.
    #[arg(long, env = "IBSIGHT_INGEST_TOKEN")]
    pub token: Option<String>,
}

/// `250ms`, `1s`, `2m`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 500ms, 30s, 2m or 1h"))?;
    Ok(match unit {
        "ms" => Duration::from_millis(n),
        "s" | "" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m, h)")),
    })
}

/// The scenario with the command line's overrides, validated.
pub fn scenario_with(
    name: &str,
    nodes: Option<usize>,
    interval: Option<Duration>,
    duration: Option<Duration>,
    seed: Option<u64>,
) -> anyhow::Result<Scenario> {
    let mut s = Scenario::load(name)?;
    if let Some(n) = nodes {
        s.nodes = n;
    }
    if let Some(i) = interval {
        s.interval_s = i.as_secs().max(1);
    }
    if let Some(d) = duration {
        s.duration_s = d.as_secs();
    }
    if let Some(seed) = seed {
        s.seed = seed;
    }
    s.validate()
        .map_err(|e| anyhow::anyhow!("scenario {name} with these flags: {e}"))?;
    Ok(s)
}

/// Progress of a playback, reported after each interval.
pub struct Tick {
    pub tick: u64,
    pub ticks: u64,
    pub samples: u64,
}

/// Play `scenario` against `target`; returns the simulator (for its labels).
pub async fn play(
    scenario: Scenario,
    target: &str,
    speedup: f64,
    token: Option<&str>,
    mut progress: impl FnMut(&Tick),
) -> anyhow::Result<Simulator> {
    anyhow::ensure!(speedup > 0.0, "--speedup must be positive");
    let duration_ms = scenario.duration_s as f64 * 1000.0;
    // Keep every timestamp at or before the wall clock, whatever the speed-up.
    let base_ms = crate::clock::now_ms() - duration_ms as i64 + (duration_ms / speedup) as i64;
    let mut sim = Simulator::new(scenario, base_ms);
    let client = reqwest::Client::new();
    let url = format!("{}/v1/metrics", target.trim_end_matches('/'));
    let wall_interval = Duration::from_secs_f64(sim.interval_ms() as f64 / 1000.0 / speedup);
    let started = Instant::now();
    let (mut tick, ticks, mut sent) = (0u64, sim.ticks(), 0u64);
    while let Some(samples) = sim.next_tick() {
        sent += samples.len() as u64;
        let body = serde_json::json!({
            "samples": samples.iter().map(crate::sample::Sample::to_json).collect::<Vec<_>>()
        });
        loop {
            let mut req = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body.to_string());
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let resp = req
                .send()
                .await
                .with_context(|| format!("posting to {url}"))?;
            match resp.status().as_u16() {
                202 => break,
                503 => tokio::time::sleep(Duration::from_millis(200)).await,
                s => anyhow::bail!(
                    "{url} answered {s}: {}",
                    resp.text().await.unwrap_or_default()
                ),
            }
        }
        tick += 1;
        progress(&Tick {
            tick,
            ticks,
            samples: sent,
        });
        let due = started + wall_interval * tick as u32;
        tokio::time::sleep_until(due.into()).await;
    }
    Ok(sim)
}

pub fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let scenario = scenario_with(
        &args.scenario,
        args.nodes,
        args.interval,
        args.duration,
        args.seed,
    )?;
    let name = scenario.name.clone();
    crate::cli::runtime()?.block_on(async move {
        let sim = play(
            scenario,
            &args.target,
            args.speedup,
            args.token.as_deref(),
            |t| {
                if t.tick % 10 == 0 || t.tick == t.ticks {
                    eprintln!(
                        "simulate {name}: {}/{} intervals, {} samples sent",
                        t.tick, t.ticks, t.samples
                    );
                }
            },
        )
        .await?;
        if let Some(path) = args.labels_out {
            std::fs::write(&path, serde_json::to_string_pretty(&sim.labels())?)?;
            eprintln!("labels written to {}", path.display());
        }
        anyhow::Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5d").is_err());
    }
}
