//! The command line: one file per subcommand; this file holds only the enum and dispatch.

pub mod agent;
pub mod alerts;
pub mod aws;
pub mod bench;
pub mod client;
pub mod collect;
pub mod demo;
pub mod eval;
pub mod events;
pub mod incidents;
pub mod maintenance;
pub mod replay;
pub mod serve;
pub mod simulate;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "ibsight", version, about = "InfiniBand fabric monitor")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API and the stream actors.
    Serve(serve::ServeArgs),
    /// Print the event log as JSON lines.
    Events(events::EventsArgs),
    /// The whole pipeline in one command: server, simulated fabric with faults, live insights.
    Demo(demo::DemoArgs),
    /// Play a fault scenario against a running server.
    Simulate(simulate::SimulateArgs),
    /// Sweep a live InfiniBand fabric through rdma-core (on the SM's host) and post it.
    Collect(collect::CollectArgs),
    /// Read this host's InfiniBand ports from sysfs and post them.
    Agent(agent::AgentArgs),
    /// Replay the event log (`replay audit`).
    #[command(subcommand)]
    Replay(replay::ReplayCommand),
    /// Score detection on a labelled fault scenario.
    Eval(eval::EvalArgs),
    /// AWS setup (`aws init` creates the DynamoDB table).
    #[command(subcommand)]
    Aws(aws::AwsCommand),
    /// Benchmarks that print one JSON line of figures.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// The incidents, as the API has them (open by default).
    Incidents(incidents::IncidentsArgs),
    /// The recent alerts.
    Alerts(alerts::AlertsArgs),
    /// Maintenance windows: add, list, end.
    #[command(subcommand)]
    Maintenance(maintenance::MaintenanceCommand),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Events(args) => events::run(args),
        Command::Bench(cmd) => bench::run(cmd),
        Command::Aws(cmd) => aws::run(cmd),
        Command::Eval(args) => eval::run(args),
        Command::Replay(cmd) => replay::run(cmd),
        Command::Demo(args) => demo::run(args),
        Command::Simulate(args) => simulate::run(args),
        Command::Collect(args) => collect::run(args),
        Command::Agent(args) => agent::run(args),
        Command::Incidents(args) => incidents::run(args),
        Command::Alerts(args) => alerts::run(args),
        Command::Maintenance(cmd) => maintenance::run(cmd),
    }
}

impl Command {
    /// `serve`, `demo` and `bench ingest` set up logs and traces from their config
    /// (`[telemetry]`); the other commands log to stderr with `RUST_LOG` (default `info`).
    pub fn sets_up_telemetry(&self) -> bool {
        matches!(
            self,
            Command::Serve(_) | Command::Demo(_) | Command::Bench(bench::BenchCommand::Ingest(_))
        )
    }
}

/// A multi-threaded runtime for the subcommands that need one.
/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
