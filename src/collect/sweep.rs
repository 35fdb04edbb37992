//! One sweep of the fabric through rdma-core's infiniband-diags, as the subnet manager's host
//! sees it, in five processes whatever the fabric's size: `ibswitches`, `ibnetdiscover` (node
//! GUIDs of CA ports) and `iblinkinfo --line` (every port's state, width, speed and peer), `ibqueryerrors --counters` (the 64-bit data
//! counters of every linked port) and `ibqueryerrors` with every error threshold at 0 (each
//! non-zero error counter of every linked port; a counter it does not print is zero). One
//! process per port (perfquery) takes 6 to 9 ms each and cannot sweep a large fabric in
//! seconds. Ports that are down are reported with their link only: their counters are read
//! again once they come back. At most `max_clients` tools run at once: ibsim, like a real SM
//! host's umad, serves few clients.
//!
//! The tools are run as child processes and inherit the environment, so
//! `LD_PRELOAD=libumad2sim.so SIM_HOST=<node>` attaches them to a simulated fabric. A tool
//! that fails on one node costs that node its counters (the ports are still reported, with
//! their link) and is counted; it never drops the sweep.

use super::assemble::{self, Naming, SweepReadings};
use super::parse;
use crate::sample::port::{LinkState, NodeType};
use crate::sample::{Counter, Sample};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::process::Command;
use tokio::sync::Semaphore;

/// How the tools reach the fabric.
#[derive(Debug, Clone)]
pub struct Tools {
    /// `-C <ca>`: the local HCA to use (default: the first).
    pub ca: Option<String>,
    /// `-P <port>`: its port.
    pub port: Option<u8>,
    /// Tools running at once.
    pub max_clients: usize,
    /// One tool run may take this long.
    pub timeout: Duration,
    /// Extra environment of the tools (e.g. what attaches them to ibsim); they inherit the
    /// process's own.
    pub env: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("{tool}: {reason}")]
    Tool { tool: String, reason: String },
}

/// A sweep's samples and figures.
#[derive(Debug, Default)]
pub struct Swept {
    pub samples: Vec<Sample>,
    /// Nodes whose counters could not be read (their ports are reported without counters).
    pub counter_errors: usize,
    /// Lines of iblinkinfo that did not parse.
    pub skipped_lines: usize,
    pub seconds: f64,
}

impl Tools {
    async fn run(
        &self,
        sem: &Semaphore,
        program: &str,
        args: &[String],
    ) -> Result<String, SweepError> {
        let _permit = sem.acquire().await.expect("the semaphore is never closed");
        let mut cmd = Command::new(program);
        if let Some(ca) = &self.ca {
            cmd.arg("-C").arg(ca);
        }
        if let Some(port) = self.port {
            cmd.arg("-P").arg(port.to_string());
        }
        cmd.args(args).kill_on_drop(true);
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let err = |reason: String| SweepError::Tool {
            tool: format!("{program} {}", args.join(" ")),
            reason,
        };
        let out = tokio::time::timeout(self.timeout, cmd.output())
            .await
            .map_err(|_| err(format!("no answer within {:?}", self.timeout)))?
            .map_err(|e| err(e.to_string()))?;
        // ibqueryerrors exits 1 when it found counters beyond the thresholds: with thresholds
        // at 0 that is any error at all, and its report is what we asked for.
        let found_errors = program == "ibqueryerrors" && out.status.code() == Some(1);
        if !out.status.success() && !found_errors {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(err(format!("{}: {}", out.status, stderr.trim())));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Sweep the fabric once; samples are stamped `timestamp_ms`.
    pub async fn sweep(&self, naming: &mut Naming, timestamp_ms: i64) -> Result<Swept, SweepError> {
        let started = Instant::now();
        let sem = Arc::new(Semaphore::new(self.max_clients.max(1)));
        let line = ["--line".to_string()];
        let (switches, links, topology) = tokio::join!(
            self.run(&sem, "ibswitches", &[]),
            self.run(&sem, "iblinkinfo", &line),
            self.run(&sem, "ibnetdiscover", &[]),
        );
        // The topology changes rarely: when it cannot be read, the last one serves.
        match switches {
            Ok(text) => naming.switches = parse::ibswitches(&text),
            Err(e) => tracing::warn!(error = %e, "switches not read; using the last sweep's"),
        }
        match topology {
            Ok(text) => naming.node_of_port = parse::ibnetdiscover_port_guids(&text),
            Err(e) => tracing::warn!(error = %e, "CA node GUIDs not read; using the last sweep's"),
        }
        let switches = naming.switches.clone();
        let node_of_port = naming.node_of_port.clone();
        let (ports, skipped_lines) = parse::iblinkinfo(&links?);
        let thresholds = tempfile::NamedTempFile::new().map_err(|e| SweepError::Tool {
            tool: "threshold file".into(),
            reason: e.to_string(),
        })?;
        std::fs::write(thresholds.path(), parse::zero_thresholds()).map_err(|e| {
            SweepError::Tool {
                tool: "threshold file".into(),
                reason: e.to_string(),
            }
        })?;
        let data_args = ["--counters".to_string()];
        let error_args = [
            "--threshold-file".to_string(),
            thresholds.path().display().to_string(),
        ];
        let (data, errors) = tokio::join!(
            self.run(&sem, "ibqueryerrors", &data_args),
            self.run(&sem, "ibqueryerrors", &error_args),
        );
        // A counter query that fails (ibqueryerrors has been seen to crash while a whole
        // switch was unplugged) costs the sweep its counters, not its ports and links.
        let read = |what: &str, out: Result<String, SweepError>| match out {
            Ok(text) => Some(parse::ibqueryerrors(&text)),
            Err(e) => {
                tracing::warn!(error = %e, "{what} not read this sweep");
                None
            }
        };
        let data = read("data counters", data);
        let errors = read("error counters", errors);
        let mut counters: HashMap<(u64, u8), BTreeMap<Counter, u64>> = HashMap::new();
        let mut counter_errors = 0;
        for p in &ports {
            if p.port_num == 0 || p.state == Some(LinkState::Down) || p.state.is_none() {
                continue;
            }
            let key = (
                node_of_port
                    .get(&p.node_guid)
                    .copied()
                    .unwrap_or(p.node_guid),
                p.port_num,
            );
            let (Some(data), Some(errors)) = (&data, &errors) else {
                counter_errors += 1;
                continue;
            };
            let Some(mut c) = data.get(&key).cloned() else {
                // A linked port that ibqueryerrors could not read: reported without counters.
                counter_errors += 1;
                continue;
            };
            for e in parse::ERROR_COUNTERS {
                c.insert(e, 0);
            }
            if let Some(errs) = errors.get(&key) {
                c.extend(errs.iter().map(|(k, v)| (*k, *v)));
            }
            counters.insert(key, c);
        }
        let readings = SweepReadings {
            ports,
            switches,
            counters,
            node_of_port,
        };
        let samples = assemble::samples(&readings, naming, timestamp_ms);
        Ok(Swept {
            samples,
            counter_errors,
            skipped_lines,
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

/// How many samples of a sweep are switch ports (for the printed figures).
pub fn switch_ports(samples: &[Sample]) -> usize {
    samples
        .iter()
        .filter(|s| s.port.node_type == Some(NodeType::Switch))
        .count()
}
