//! `ibsight bench …`: benchmarks of the real paths. Each prints one JSON line of figures.

pub mod actors;
pub mod analyst;
pub mod collect;
pub mod fake_bedrock;
pub mod fuzz;
pub mod ingest;
pub mod scrape;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Ingest throughput and latency: router → actors → durable store (or through HTTP).
    Ingest(ingest::IngestBenchArgs),
    /// Analyst pool in a fault storm, against a local Bedrock-protocol server.
    Analyst(analyst::AnalystBenchArgs),
    /// What one idle actor costs in memory (the floor under the per-stream cost).
    Actors(actors::ActorsBenchArgs),
    /// A sweep of an ibsim fat tree by `collect`: seconds, CPU and MADs, optionally with a
    /// per-MAD latency like real hardware's.
    Collect(collect::CollectBenchArgs),
    /// One Prometheus scrape of GET /metrics/ports with N ports: series, bytes, seconds, RSS.
    Scrape(scrape::ScrapeBenchArgs),
    /// Robustness of POST /v1/metrics: N generated and mutated bodies through the real router.
    Fuzz(fuzz::FuzzBenchArgs),
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Ingest(args) => ingest::run(args),
        BenchCommand::Analyst(args) => analyst::run(args),
        BenchCommand::Fuzz(args) => fuzz::run(args),
        BenchCommand::Actors(args) => actors::run(args),
        BenchCommand::Collect(args) => collect::run(args),
        BenchCommand::Scrape(args) => scrape::run(args),
    }
}

/// Peak resident set size of this process in MiB (Linux; 0 elsewhere).
pub fn peak_rss_mb() -> f64 {
    proc_status_mb("VmHWM:")
}

/// Current resident set size of this process in MiB (Linux; 0 elsewhere).
pub fn current_rss_mb() -> f64 {
    proc_status_mb("VmRSS:")
}

fn proc_status_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU seconds (user + system) a process has used: `None` for this one. `None` when it cannot
/// be read (not Linux, or the process is gone).
pub fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name (which may hold spaces) start at ") ".
    let rest = stat.rsplit_once(") ")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (hz > 0.0).then(|| ticks / hz)
}

/// Rounded to two decimals, for printing.
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The q-quantile (0..=1) of unsorted values, in place.
pub fn quantile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let i = ((values.len() - 1) as f64 * q).round() as usize;
    values[i]
}
