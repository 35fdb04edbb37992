//! `ibsight bench collect`: what a sweep of a large fabric costs. A fat tree in ibsim under
//! opensm, swept by the real `ibsight collect --once` (a child process, tools and all) into an
//! in-process server, `--sweeps` times. Prints per sweep: ports, seconds, the CPU seconds of
//! the collector with its tools (rusage of the child and everything it waited for), ibsim's
//! CPU, and the MADs the tools sent.
//!
//! `--mad-latency-us` makes every MAD slower, like real hardware: a small LD_PRELOAD shim
//! (compiled here with `cc`) wraps libibumad's `umad_send`, counts each MAD and sleeps the
//! given time before sending it. The sleep is serial within a tool (a tool with several MADs in
//! flight waits as if it had one), so the figure is an upper bound for that latency.

use super::round2;
use crate::collect::ibsim::{fat_tree, Fabric};
use crate::config::Config;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, clap::Args)]
pub struct CollectBenchArgs {
    /// Leaf switches.
    #[arg(long, default_value_t = 16)]
    pub leaves: usize,
    /// Spine switches (each linked to every leaf).
    #[arg(long, default_value_t = 8)]
    pub spines: usize,
    /// HCAs per leaf.
    #[arg(long, default_value_t = 28)]
    pub hosts: usize,
    /// Sweeps to time (after one warm-up sweep).
    #[arg(long, default_value_t = 3)]
    pub sweeps: usize,
    /// Microseconds added to every MAD the tools send (0: ibsim's own speed).
    #[arg(long, default_value_t = 0)]
    pub mad_latency_us: u64,
    /// Tools at once (collect's --max-clients).
    #[arg(long, default_value_t = 6)]
    pub max_clients: u8,
}

const SHIM: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
static int (*real_send)(int, int, void *, int, int, int);
static unsigned long sent;
static long latency_us = -1;
static void report(void) {
    const char *path = getenv("IBSIGHT_MAD_COUNT");
    FILE *f = path ? fopen(path, "a") : NULL;
    if (f) { fprintf(f, "%s %lu\n", program_invocation_short_name, sent); fclose(f); }
}
int umad_send(int fd, int agent, void *umad, int length, int timeout_ms, int retries) {
    if (!real_send) {
        real_send = (int (*)(int, int, void *, int, int, int))dlsym(RTLD_NEXT, "umad_send");
        const char *e = getenv("IBSIGHT_MAD_LATENCY_US");
        latency_us = e ? atol(e) : 0;
        atexit(report);
    }
    sent++;
    if (latency_us > 0) usleep((useconds_t)latency_us);
    return real_send(fd, agent, umad, length, timeout_ms, retries);
}
"#;

fn build_shim(dir: &Path) -> anyhow::Result<PathBuf> {
    let src = dir.join("madshim.c");
    let lib = dir.join("madshim.so");
    std::fs::write(&src, SHIM)?;
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&lib)
        .arg(&src)
        .arg("-ldl")
        .output()
        .map_err(|e| anyhow::anyhow!("cc (needed for the MAD shim): {e}"))?;
    anyhow::ensure!(
        out.status.success(),
        "cc failed to build the MAD shim: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(lib)
}

/// CPU seconds (user + system) of every child this process has waited for.
fn children_cpu_s() -> f64 {
    // SAFETY: getrusage writes into the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

pub fn run(args: CollectBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.sweeps > 0, "--sweeps must be at least 1");
    let work = tempfile::Builder::new()
        .prefix("ibsight-bench-collect")
        .tempdir()?;
    let shim = build_shim(work.path())?;
    let started = std::time::Instant::now();
    let fabric = Fabric::start(&fat_tree(args.leaves, args.spines, args.hosts))?;
    let fabric_up_s = started.elapsed().as_secs_f64();
    let mut config = Config::default();
    config.server.data_dir = work.path().join("data");
    crate::cli::runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let node = crate::node::Node::start(config).await?;
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(crate::api::serve(listener, node.app_state(), None, async {
            let _ = rx.await;
        }));
        let exe = std::env::current_exe()?;
        let mut runs = Vec::new();
        // One collector process per sweep: each sweep discovers the fabric (the MADs per tool
        // show what a sweep between discoveries, `--discover-every` > 1, leaves out).
        for i in 0..=args.sweeps {
            let count = work.path().join(format!("mads-{i}"));
            let mut env = fabric.env("smhost");
            // The shim first, so its umad_send is the one the tools bind to.
            env[0].1 = format!("{} {}", shim.display(), env[0].1);
            let cpu_before = children_cpu_s();
            let sim_before = super::cpu_seconds(Some(fabric.ibsim_pid())).unwrap_or(0.0);
            let exe = exe.clone();
            let (url, max) = (url.clone(), args.max_clients.to_string());
            let latency = args.mad_latency_us.to_string();
            let count_path = count.clone();
            let out = tokio::task::spawn_blocking(move || {
                Command::new(exe)
                    .args(["collect", "--once", "--target", &url, "--max-clients", &max])
                    .args(["--tool-timeout-s", "600", "--deliver-timeout-s", "600"])
                    .envs(env)
                    .env("IBSIGHT_MAD_LATENCY_US", latency)
                    .env("IBSIGHT_MAD_COUNT", count_path)
                    .env("RUST_LOG", "warn")
                    .output()
            })
            .await??;
            anyhow::ensure!(
                out.status.success(),
                "collect failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let cpu = children_cpu_s() - cpu_before;
            let sim_cpu = super::cpu_seconds(Some(fabric.ibsim_pid())).unwrap_or(0.0) - sim_before;
            let text = String::from_utf8_lossy(&out.stdout);
            let figures: serde_json::Value =
                serde_json::from_str(text.lines().last().unwrap_or(""))?;
            // "<tool> <MADs>" per tool process.
            let mut by_tool: std::collections::BTreeMap<String, u64> = Default::default();
            for line in std::fs::read_to_string(&count).unwrap_or_default().lines() {
                if let Some((tool, n)) = line.rsplit_once(' ') {
                    *by_tool.entry(tool.to_string()).or_default() += n.parse::<u64>().unwrap_or(0);
                }
            }
            let mads: u64 = by_tool.values().sum();
            if i > 0 {
                runs.push(serde_json::json!({
                    "ports": figures["ports"],
                    "sweep_s": figures["sweep_s"],
                    "collector_cpu_s": round2(cpu),
                    "ibsim_cpu_s": round2(sim_cpu),
                    "mads": mads,
                    "mads_by_tool": by_tool,
                    "tool_timeouts": figures["tool_timeouts"],
                    "counter_errors": figures["counter_errors"],
                }));
            }
        }
        let _ = stop.send(());
        let _ = server.await;
        node.shutdown().await;
        let mut secs: Vec<f64> = runs.iter().filter_map(|r| r["sweep_s"].as_f64()).collect();
        println!(
            "{}",
            serde_json::json!({
                "bench": "collect",
                "leaves": args.leaves,
                "spines": args.spines,
                "hosts_per_leaf": args.hosts,
                "mad_latency_us": args.mad_latency_us,
                "max_clients": args.max_clients,
                "fabric_up_s": round2(fabric_up_s),
                "median_sweep_s": super::quantile(&mut secs, 0.5),
                "sweeps": runs,
            })
        );
        drop(fabric);
        Ok(())
    })
}
