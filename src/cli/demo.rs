//! `ibsight demo`: the whole pipeline in one command. Starts the node and its HTTP API, plays a
//! fault scenario against it over HTTP (compressed into `--duration` of wall time), prints every
//! insight and alert as it is recorded, then the detection-quality table. No AWS needed (rules
//! analyst); Bedrock is used when the configuration enables it.

mod ibsim;

use crate::api;
use crate::cli::simulate::{parse_duration, play, scenario_with};
use crate::config::Config;
use crate::events::StreamEvent;
use crate::node::Node;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    #[arg(long, default_value_t = 64)]
    pub nodes: usize,
    /// Wall-clock length of the demo; the scenario is played faster to fit.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub duration: Duration,
    #[arg(long, default_value = "mixed")]
    pub scenario: String,
    #[arg(long)]
    pub seed: Option<u64>,
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Keep the event log here (default: a fresh temporary directory).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// `sim`: the built-in simulator posts samples; `ibsim`: a fabric in Debian's ibsim under
    /// opensm, read by `collect`'s sweep, with the scenario injected through ibsim's console.
    #[arg(long, value_enum, default_value_t = FabricSource::Sim)]
    pub fabric: FabricSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FabricSource {
    Sim,
    Ibsim,
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let scenario = scenario_with(&args.scenario, Some(args.nodes), None, None, args.seed)?;
    let mut config = Config::load(args.config.as_deref())?;
    let tmp = tempfile::Builder::new().prefix("ibsight-demo").tempdir()?;
    config.server.data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let _telemetry = crate::telemetry::init(&config.telemetry)?;
    crate::cli::runtime()?.block_on(demo(args, scenario, config))
}

async fn demo(
    args: DemoArgs,
    scenario: crate::sim::scenario::Scenario,
    config: Config,
) -> anyhow::Result<()> {
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{} is busy ({e}); using a free port", args.listen);
            tokio::net::TcpListener::bind("127.0.0.1:0").await?
        }
    };
    let addr = listener.local_addr()?;
    let node = Node::start(config.clone()).await?;
    let state = node.app_state();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(api::serve(listener, state, None, async {
        let _ = stop_rx.await;
    }));
    let base = format!("http://{addr}");
    println!(
        "ibsight demo: {} streams on a {}-node fabric, scenario {:?} ({} s simulated in {} s), analyst {:?}",
        crate::sim::fabric::Fabric::new(scenario.nodes).ports.len(),
        scenario.nodes,
        scenario.name,
        scenario.duration_s,
        args.duration.as_secs(),
        config.analyst.backend,
    );
    println!("API: {base}/v1/insights/recent  {base}/v1/alerts/recent  {base}/v1/stats\n");

    let counts = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    let printer = tokio::spawn(print_insights(node.writer.store().clone(), counts.clone()));
    if args.fabric == FabricSource::Ibsim {
        let played = ibsim::play(&scenario, &base, args.duration.as_secs()).await;
        crate::eval::settle(&node).await?;
        tokio::time::sleep(Duration::from_millis(400)).await;
        printer.abort();
        println!(
            "\n{} insights, {} alerts (the detection-quality table needs the simulator's labels: \
             run the demo without --fabric ibsim for it)",
            counts.0.load(Ordering::Relaxed),
            counts.1.load(Ordering::Relaxed)
        );
        let _ = stop_tx.send(());
        let _ = server.await;
        node.shutdown().await;
        return played;
    }
    let speedup = (scenario.duration_s as f64 / args.duration.as_secs_f64().max(1.0)).max(1.0);
    let ticks_total = scenario.duration_s / scenario.interval_s;
    let shown = counts.clone();
    let sim = play(scenario, &base, speedup, None, move |t| {
        if t.tick % (ticks_total / 10).max(1) == 0 || t.tick == t.ticks {
            println!(
                "[{:>3}%] {} of {} intervals, {} samples, {} insights, {} alerts",
                t.tick * 100 / t.ticks.max(1),
                t.tick,
                t.ticks,
                t.samples,
                shown.0.load(Ordering::Relaxed),
                shown.1.load(Ordering::Relaxed)
            );
        }
    })
    .await?;
    crate::eval::settle(&node).await?;
    tokio::time::sleep(Duration::from_millis(400)).await;
    printer.abort();
    let (observed, incidents) = crate::eval::observe(&node)?;
    let labels = sim.labels();
    let run = crate::sim::score::Run {
        streams: sim.fabric.ports.len(),
        duration_ms: sim.scenario.duration_s as i64 * 1000,
        interval_ms: sim.interval_ms(),
    };
    let report = crate::sim::score::score(&labels, &observed, &incidents, &run);
    println!("\ndetection quality against the injected faults:\n");
    print!("{}", crate::sim::score::table(&report));
    let _ = stop_tx.send(());
    let _ = server.await;
    node.shutdown().await;
    Ok(())
}

/// Tail the log and print each insight and alert as one line.
async fn print_insights(
    store: Arc<dyn crate::events::EventStore>,
    counts: Arc<(AtomicU64, AtomicU64)>,
) {
    let mut from = 1;
    loop {
        let Ok(page) = store.read_from(from, 1000) else {
            return;
        };
        if let Some(last) = page.last() {
            from = last.offset + 1;
        } else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        for e in &page {
            let r = &e.record;
            if !matches!(&*r.event_type, "InsightGenerated" | "AlertRaised") {
                continue;
            }
            let time = crate::clock::rfc3339(r.recorded_at_ms);
            let time = time.get(11..19).unwrap_or(&time).to_string();
            match r.decode_event() {
                Ok(StreamEvent::InsightGenerated(i)) => {
                    counts.0.fetch_add(1, Ordering::Relaxed);
                    let first = i.explanation.split(". ").next().unwrap_or("");
                    println!(
                        "{time}  insight  {:<22} {:<24} risk {:>3}  {:<8} {first}",
                        i.anomaly_id,
                        i.prediction_type.name(),
                        i.risk_score,
                        format!("{:?}", i.source).to_lowercase(),
                    );
                }
                Ok(StreamEvent::AlertRaised(a)) => {
                    counts.1.fetch_add(1, Ordering::Relaxed);
                    println!(
                        "{time}  ALERT    {:<22} {:<24} risk {:>3}  {} port(s){}",
                        a.incident_id.as_deref().unwrap_or(&a.stream_id),
                        a.prediction_type.name(),
                        a.risk_score,
                        a.ports.len(),
                        a.escalated_from_tier
                            .map(|t| format!("  (escalated from tier {t})"))
                            .unwrap_or_default()
                    );
                }
                _ => {}
            }
        }
    }
}
