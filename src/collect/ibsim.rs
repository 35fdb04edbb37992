//! A simulated InfiniBand fabric on the real management stack, for the tests and
//! `ibsight demo --fabric ibsim`: Debian's `ibsim` (the fabric simulator) with its console on a
//! FIFO, `opensm` attached through `libumad2sim` (LD_PRELOAD), and the environment that
//! attaches any rdma-core tool (and `ibsight collect`) to it. Each fabric has its own socket
//! name, directory and processes, stopped by PID when dropped.
//!
//! At most `IBSIGHT_MAX_FABRICS` fabrics (2 by default) run at once in a process: a fabric
//! start waits for a slot, so tests that each start one never crowd a small machine (opensm
//! on a starved core can take long to reach MASTER). Every wait is on evidence (the
//! simulator's and opensm's own words, the ports' state) with a generous deadline.

use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const UMAD2SIM: &str = "/usr/lib/x86_64-linux-gnu/umad2sim/libumad2sim.so";

/// Whether the simulator and the tools are installed (Debian: `ibsim-utils libumad2sim0
/// opensm infiniband-diags`).
pub fn installed() -> bool {
    Path::new(UMAD2SIM).exists()
        && [
            "ibsim",
            "opensm",
            "iblinkinfo",
            "ibqueryerrors",
            "ibnetdiscover",
            "ibswitches",
        ]
        .iter()
        .all(|t| on_path(t))
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).exists()))
        .unwrap_or(false)
}

/// A two-tier fat tree: `leaves` leaf switches with `hosts` HCAs each, every leaf linked to
/// every one of `spines` spines, and two unused ports per switch. The subnet manager runs on
/// `smhost`, an extra HCA on the first leaf. HCAs are named "node001 mlx5_0" and so on.
pub fn fat_tree(leaves: usize, spines: usize, hosts: usize) -> String {
    let mut net = String::new();
    let leaf_ports = hosts + spines + 1 + 2;
    let spine_ports = leaves + 2;
    for s in 1..=spines {
        net.push_str(&format!("Switch {spine_ports} \"spine{s:02}\"\n"));
        for l in 1..=leaves {
            net.push_str(&format!("[{l}] \"leaf{l:02}\"[{}]\n", hosts + s));
        }
        net.push('\n');
    }
    for l in 1..=leaves {
        net.push_str(&format!("Switch {leaf_ports} \"leaf{l:02}\"\n"));
        for h in 1..=hosts {
            let n = (l - 1) * hosts + h;
            net.push_str(&format!("[{h}] \"node{n:03} mlx5_0\"[1]\n"));
        }
        for s in 1..=spines {
            net.push_str(&format!("[{}] \"spine{s:02}\"[{l}]\n", hosts + s));
        }
        if l == 1 {
            net.push_str(&format!("[{}] \"smhost\"[1]\n", hosts + spines + 1));
        }
        net.push('\n');
    }
    net.push_str(&format!(
        "Hca 1 \"smhost\"\n[1] \"leaf01\"[{}]\n\n",
        hosts + spines + 1
    ));
    for l in 1..=leaves {
        for h in 1..=hosts {
            let n = (l - 1) * hosts + h;
            net.push_str(&format!(
                "Hca 1 \"node{n:03} mlx5_0\"\n[1] \"leaf{l:02}\"[{h}]\n\n"
            ));
        }
    }
    net
}

pub struct Fabric {
    pub dir: tempfile::TempDir,
    sockname: String,
    ibsim: Child,
    opensm: Option<Child>,
    console: std::fs::File,
    /// Released after `drop` has stopped the processes (fields drop after `Drop::drop`).
    _slot: Slot,
}

/// How long the simulator and opensm may take to come up on a loaded machine.
const START_DEADLINE: Duration = Duration::from_secs(120);
/// How many times `Fabric::start` starts opensm before it gives up.
const OPENSM_STARTS: u32 = 3;

/// One of the fabrics that may run at once.
struct Slot;

static SLOTS: std::sync::Mutex<usize> = std::sync::Mutex::new(0);
static SLOT_FREED: std::sync::Condvar = std::sync::Condvar::new();

fn max_fabrics() -> usize {
    std::env::var("IBSIGHT_MAX_FABRICS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(2)
}

impl Slot {
    fn take() -> Slot {
        let max = max_fabrics();
        let mut live = SLOTS.lock().unwrap_or_else(|e| e.into_inner());
        while *live >= max {
            live = SLOT_FREED.wait(live).unwrap_or_else(|e| e.into_inner());
        }
        *live += 1;
        Slot
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut live = SLOTS.lock().unwrap_or_else(|e| e.into_inner());
        *live = live.saturating_sub(1);
        SLOT_FREED.notify_one();
    }
}

impl Fabric {
    /// Start ibsim on `net` and opensm on `smhost`; returns once the subnet is up.
    pub fn start(net: &str) -> anyhow::Result<Fabric> {
        let slot = Slot::take();
        let dir = tempfile::tempdir()?;
        let net_path = dir.path().join("net");
        std::fs::write(&net_path, net)?;
        let fifo = dir.path().join("console");
        let c = std::ffi::CString::new(fifo.to_string_lossy().as_bytes())?;
        // SAFETY: mkfifo with a valid NUL-terminated path.
        if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
            anyhow::bail!(
                "mkfifo {}: {}",
                fifo.display(),
                std::io::Error::last_os_error()
            );
        }
        // Read-write: ibsim's stdin never sees EOF (its console spins at EOF), and opening it
        // does not wait for a writer.
        let console = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&fifo)
            .context("open the console FIFO")?;
        let sockname = format!("ibsight-{}-{}", std::process::id(), unique());
        let log = std::fs::File::create(dir.path().join("ibsim.log"))?;
        let ibsim = Command::new("ibsim")
            .arg("-s")
            .arg(&net_path)
            .env("IBSIM_SOCKNAME", &sockname)
            .stdin(console.try_clone()?)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("start ibsim (Debian package ibsim-utils)")?;
        let mut fabric = Fabric {
            dir,
            sockname,
            ibsim,
            opensm: None,
            console,
            _slot: slot,
        };
        fabric.wait_for_log("ibsim.log", "Network simulator ready", START_DEADLINE)?;
        // opensm now and then fails its own init (IB_INSUFFICIENT_RESOURCES, seen once in many
        // runs on a loaded machine) and exits at once: start it again, a few times.
        let mut attempt = 1;
        while let Err(e) = fabric.start_opensm() {
            if attempt == OPENSM_STARTS {
                let log = std::fs::read_to_string(fabric.dir.path().join("opensm.log"));
                return Err(e.context(format!(
                    "opensm failed {attempt} starts; its log:\n{}",
                    log.unwrap_or_default()
                )));
            }
            tracing::warn!(attempt, error = %e, "opensm did not start; starting it again");
            attempt += 1;
        }
        fabric.wait_until_active(START_DEADLINE)?;
        Ok(fabric)
    }

    /// Start opensm as `smhost` and wait until it is MASTER. An opensm that exited is reaped.
    fn start_opensm(&mut self) -> anyhow::Result<()> {
        let osm_log = self.dir.path().join("opensm.log");
        let osm_out = std::fs::File::create(self.dir.path().join("opensm.out"))?;
        let opensm = Command::new("opensm")
            .arg("-f")
            .arg(&osm_log)
            .envs(self.env("smhost"))
            .stdout(osm_out)
            .stderr(Stdio::null())
            .spawn()
            .context("start opensm")?;
        self.opensm = Some(opensm);
        let up = self.wait_for_log("opensm.out", "Entering MASTER state", START_DEADLINE);
        if up.is_err() {
            if let Some(mut o) = self.opensm.take() {
                let _ = o.kill();
                let _ = o.wait();
            }
        }
        up
    }

    /// Wait until the SM has brought every linked port to Active.
    pub fn wait_until_active(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let links = self.tool("iblinkinfo", &["--line"])?;
            let settling = links.contains(" Init/") || links.contains(" Armed/");
            if links.contains("Active/") && !settling {
                return Ok(());
            }
            if Instant::now() > deadline {
                anyhow::bail!("the subnet never came up:\n{links}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The environment that attaches a tool to this fabric as node `host`.
    pub fn env(&self, host: &str) -> Vec<(String, String)> {
        vec![
            ("LD_PRELOAD".into(), UMAD2SIM.into()),
            ("SIM_HOST".into(), host.into()),
            ("IBSIM_SOCKNAME".into(), self.sockname.clone()),
        ]
    }

    /// The simulator's process id.
    pub fn ibsim_pid(&self) -> u32 {
        self.ibsim.id()
    }

    /// Send a console command (`PerformanceSet …`, `Unlink …`, `ReLink …`).
    pub fn console(&mut self, command: &str) -> std::io::Result<()> {
        writeln!(self.console, "{command}")?;
        self.console.flush()?;
        // The console answers in its log; give it a moment to apply the change.
        std::thread::sleep(Duration::from_millis(300));
        Ok(())
    }

    /// Run an rdma-core tool attached to the fabric; its stdout.
    pub fn tool(&self, tool: &str, args: &[&str]) -> std::io::Result<String> {
        let out = Command::new(tool)
            .args(args)
            .envs(self.env("smhost"))
            .output()?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn wait_for_log(&mut self, name: &str, needle: &str, timeout: Duration) -> anyhow::Result<()> {
        let path: PathBuf = self.dir.path().join(name);
        let deadline = Instant::now() + timeout;
        loop {
            if std::fs::read_to_string(&path).is_ok_and(|t| t.contains(needle)) {
                return Ok(());
            }
            // A process that died will never say it: fail now, with its log.
            let ibsim_died = self.ibsim.try_wait()?.map(|s| ("ibsim", s));
            let opensm_died = match self.opensm.as_mut() {
                Some(o) => o.try_wait()?.map(|s| ("opensm", s)),
                None => None,
            };
            if let Some((who, status)) = ibsim_died.or(opensm_died) {
                let log = std::fs::read_to_string(&path).unwrap_or_default();
                anyhow::bail!("{who} exited ({status}) before {name} said {needle:?}:\n{log}");
            }
            if Instant::now() > deadline {
                anyhow::bail!("{name} never said {needle:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Fabric {
    fn drop(&mut self) {
        // opensm first (a client), then the simulator, each by PID.
        if let Some(mut osm) = self.opensm.take() {
            stop(&mut osm);
        }
        stop(&mut self.ibsim);
    }
}

fn stop(child: &mut Child) {
    // SAFETY: signalling our own child by its PID.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}
