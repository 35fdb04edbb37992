//! `ibsight collect` against a real InfiniBand management stack: ibsim (the fabric
//! simulator) and opensm, with infiniband-diags' tools attached through libumad2sim, posting
//! to `ibsight serve`. Faults are injected the way they happen to an operator: counters set
//! through ibsim's console, links unplugged and plugged back.

mod common;

use common::ibsim::{self, collect_once, collect_once_with, Fabric};
use common::{binary, get_json, Server};
use serde_json::Value;
use std::process::Command;

async fn stream(client: &reqwest::Client, url: &str, id: &str) -> Value {
    let (status, v) = get_json(client, &format!("{url}/v1/streams/{id}"), None).await;
    assert_eq!(status, 200, "{id}: {v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collect_reads_every_port_counters_and_link_changes_of_a_live_fabric() {
    if !ibsim::available() {
        eprintln!("skipped: ibsim, opensm or infiniband-diags not installed");
        return;
    }
    // 2 spines, 2 leaves with 2 hosts each (+ the SM's host): 18 linked ports, and the
    // switches' unused ports.
    let mut fabric = Fabric::start(&ibsim::fat_tree(2, 2, 2)).expect("fabric");
    let data = tempfile::tempdir().expect("tempdir");
    let srv = Server::start(data.path(), &[]);
    let client = reqwest::Client::new();

    // Every port, with its GUID, peer, state, width and speed.
    let figures = collect_once(&fabric, &srv.url);
    let leaf_ports = 2 + 2 + 1 + 2;
    let spine_ports = 2 + 2;
    assert_eq!(
        figures["ports"],
        2 * leaf_ports + 2 * spine_ports + 5,
        "{figures}"
    );
    assert_eq!(figures["counter_errors"], 0, "{figures}");
    let host = stream(&client, &srv.url, "node001_mlx5_0/p1").await;
    assert_eq!(host["port"]["node_type"], "ca", "{host}");
    assert_eq!(host["port"]["node_desc"], "node001 mlx5_0");
    assert!(host["port"]["node_guid"]
        .as_str()
        .is_some_and(|g| g.len() == 18));
    assert_eq!(host["peer"]["node_desc"], "leaf01");
    assert_eq!(host["peer"]["port_num"], 1);
    assert_eq!(host["link"]["state"], "active");
    assert_eq!(host["link"]["phys_state"], "linkup");
    assert_eq!(host["link"]["width"], "4x");
    assert_eq!(host["link"]["speed"], "SDR");
    let uplink = stream(&client, &srv.url, "leaf01/p3").await;
    assert_eq!(uplink["port"]["node_type"], "switch");
    assert_eq!(uplink["peer"]["node_desc"], "spine01");
    let unused = stream(&client, &srv.url, "leaf01/p6").await;
    assert_eq!(unused["link"]["state"], "down");
    assert!(unused["peer"].is_null());

    // A counter set on the PMA shows up in the port's next sample; a 64-bit value is taken
    // as the extended counter.
    fabric
        .console("PerformanceSet \"leaf01\"[1] PortCounters.SymbolErrorCounter=50")
        .expect("console");
    fabric
        .console("PerformanceSet \"leaf01\"[1] PortCountersExtended.PortXmitData=99999999999")
        .expect("console");
    collect_once(&fabric, &srv.url);
    let p1 = stream(&client, &srv.url, "leaf01/p1").await;
    assert_eq!(p1["counters"]["SymbolErrorCounter"]["value"], 50, "{p1}");
    assert!(
        p1["counters"]["PortXmitData"]["value"].as_u64() >= Some(99_999_999_999),
        "{p1}"
    );
    assert_eq!(p1["counters"]["PortXmitData"]["width_bits"], 64);

    // A link that retrains narrower (the real ibportstate, width enabled 1x on both ends):
    // 1x at both ends.
    let host2 = stream(&client, &srv.url, "node002_mlx5_0/p1").await;
    let lid = host2["port"]["lid"].to_string();
    let leaf_lid = stream(&client, &srv.url, "leaf01/p2").await["port"]["lid"].to_string();
    // (A MAD can time out on a loaded machine: the change is retried until it shows.)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let (hca_end, switch_end) = loop {
        fabric
            .tool("ibportstate", &[&lid, "1", "width", "1"])
            .expect("tool");
        fabric
            .tool("ibportstate", &[&leaf_lid, "2", "width", "1"])
            .expect("tool");
        collect_once(&fabric, &srv.url);
        let hca_end = stream(&client, &srv.url, "node002_mlx5_0/p1").await;
        let switch_end = stream(&client, &srv.url, "leaf01/p2").await;
        let narrowed = hca_end["link"]["width"] == "1x" && switch_end["link"]["width"] == "1x";
        if narrowed || std::time::Instant::now() > deadline {
            break (hca_end, switch_end);
        }
    };
    assert_eq!(hca_end["link"]["width"], "1x", "{hca_end}");
    assert_eq!(switch_end["link"]["width"], "1x", "{switch_end}");
    assert_eq!(hca_end["link"]["rate_gbps"], 2.0);

    // A switch-to-switch cable pulled: both ends (still reachable through the other spine)
    // report down.
    fabric.console("Unlink \"leaf02\"[3]").expect("console");
    collect_once(&fabric, &srv.url);
    let leaf_end = stream(&client, &srv.url, "leaf02/p3").await;
    let spine_end = stream(&client, &srv.url, "spine01/p2").await;
    assert_eq!(leaf_end["link"]["state"], "down", "{leaf_end}");
    assert_eq!(spine_end["link"]["state"], "down", "{spine_end}");

    // An HCA's only cable pulled: the switch side is down, and the HCA, no longer reachable,
    // stops receiving samples (its last known peer is kept).
    let before = stream(&client, &srv.url, "node003_mlx5_0/p1").await["last_seq"].clone();
    fabric.console("Unlink \"leaf02\"[1]").expect("console");
    collect_once(&fabric, &srv.url);
    let switch_side = stream(&client, &srv.url, "leaf02/p1").await;
    assert_eq!(switch_side["link"]["state"], "down", "{switch_side}");
    let gone = stream(&client, &srv.url, "node003_mlx5_0/p1").await;
    assert_eq!(
        gone["last_seq"], before,
        "an unreachable HCA got a sample: {gone}"
    );
    assert_eq!(gone["peer"]["node_desc"], "leaf02");

    // Plugged back: both links come back active once the SM has swept them.
    fabric.console("ReLink \"leaf02\"[3]").expect("console");
    fabric.console("ReLink \"leaf02\"[1]").expect("console");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        collect_once(&fabric, &srv.url);
        let a = stream(&client, &srv.url, "leaf02/p3").await;
        let b = stream(&client, &srv.url, "node003_mlx5_0/p1").await;
        if a["link"]["state"] == "active" && b["link"]["state"] == "active" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "links did not come back: {a} {b}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    srv.terminate();
}

/// Every error counter ibqueryerrors reports, as ibsim's PMA names it.
const ERROR_COUNTERS: [&str; 13] = [
    "SymbolErrorCounter",
    "LinkErrorRecoveryCounter",
    "LinkDownedCounter",
    "PortRcvErrors",
    "PortRcvRemotePhysicalErrors",
    "PortRcvSwitchRelayErrors",
    "PortXmitDiscards",
    "PortXmitConstraintErrors",
    "PortRcvConstraintErrors",
    "LocalLinkIntegrityErrors",
    "ExcessiveBufferOverrunErrors",
    "VL15Dropped",
    "PortXmitWait",
];

fn counter(stream: &Value, name: &str) -> u64 {
    stream["counters"][name]["value"]
        .as_u64()
        .unwrap_or_else(|| panic!("{name} missing: {stream}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_ends_of_a_cable_get_every_error_counter_and_rates_from_their_data_counters() {
    let Some((mut fabric, _data, srv)) = small_fabric_and_server() else {
        return;
    };
    let client = reqwest::Client::new();
    let (hca, switch) = ("node001_mlx5_0/p1", "leaf01/p1");

    // The first sweep: counters, but no rate yet (nothing to compare to).
    collect_once(&fabric, &srv.url);
    let first_hca = stream(&client, &srv.url, hca).await;
    let first_switch = stream(&client, &srv.url, switch).await;
    assert!(first_hca["rates"].is_null(), "{first_hca}");
    assert_eq!(first_hca["peer"]["node_desc"], "leaf01");

    // Each error counter on both ends of one cable, with a value of its own (the HCA end is
    // named by its port GUID in ibqueryerrors' error report, the switch end by node GUID).
    // Every value fits the 4-bit counters (LocalLinkIntegrityErrors, ExcessiveBufferOverrun).
    for (i, name) in ERROR_COUNTERS.iter().enumerate() {
        let v = i + 1;
        fabric
            .console(&format!(
                "PerformanceSet \"node001 mlx5_0\"[1] PortCounters.{name}={v}"
            ))
            .expect("console");
        fabric
            .console(&format!(
                "PerformanceSet \"leaf01\"[1] PortCounters.{name}={}",
                14 - i
            ))
            .expect("console");
    }
    // Traffic on the cable: 10^8 words (3.2 Gbit) out of the HCA and into the switch port,
    // at most 40 % of the 8 Gb/s 4X SDR link over the second or more between the sweeps.
    const WORDS: u64 = 100_000_000;
    let tx0 = counter(&first_hca, "PortXmitData");
    let rx0 = counter(&first_switch, "PortRcvData");
    std::thread::sleep(std::time::Duration::from_secs(1));
    fabric
        .console(&format!(
            "PerformanceSet \"node001 mlx5_0\"[1] PortCountersExtended.PortXmitData={}",
            tx0 + WORDS
        ))
        .expect("console");
    fabric
        .console(&format!(
            "PerformanceSet \"leaf01\"[1] PortCountersExtended.PortRcvData={}",
            rx0 + WORDS
        ))
        .expect("console");
    collect_once(&fabric, &srv.url);

    let h = stream(&client, &srv.url, hca).await;
    let s = stream(&client, &srv.url, switch).await;
    for (i, name) in ERROR_COUNTERS.iter().enumerate() {
        assert_eq!(counter(&h, name), i as u64 + 1, "HCA end {name}: {h}");
        assert_eq!(counter(&s, name), 14 - i as u64, "switch end {name}: {s}");
    }
    // The rates are the counters' own deltas over the sample time between the two sweeps.
    for (end, view, dir, data_counter, before) in [
        ("HCA", &h, "tx", "PortXmitData", tx0),
        ("switch", &s, "rx", "PortRcvData", rx0),
    ] {
        let rates = &view["rates"];
        let over_ms = rates["over_ms"].as_f64().expect("over_ms");
        let words = counter(view, data_counter) - before;
        assert!(words >= WORDS, "{end}: {view}");
        let want = words as f64 * 32.0 / (over_ms * 1e6);
        let got = rates[format!("{dir}_gbps")].as_f64().expect("gbps");
        assert!((got - want).abs() < 1e-6, "{end}: {got} != {want}: {rates}");
        let pct = rates[format!("{dir}_utilization")].as_f64().expect("util");
        assert!((pct - want / 8.0 * 100.0).abs() < 1e-6, "{end}: {rates}");
        assert!(pct > 1.0 && pct <= 40.0, "{end}: {rates}");
        // The derived gauges are judged and learned like posted ones.
        assert_eq!(
            view["metrics"]["utilization"]["samples"], 1,
            "{end}: {view}"
        );
        assert_eq!(
            view["metrics"]["bandwidth_gbps"]["samples"], 1,
            "{end}: {view}"
        );
        // The stored sample is the one collect posted: no gauges were written into it.
        assert!(
            view["last_sample"]["utilization"].is_null(),
            "{end}: {view}"
        );
    }
    // The other direction moved only with ibsim's own management traffic.
    assert!(
        h["rates"]["rx_utilization"].as_f64().expect("rx") < 1.0,
        "{h}"
    );
    srv.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_posts_a_hosts_ports_from_sysfs() {
    let sysfs = tempfile::tempdir().expect("tempdir");
    let port = common::sysfs_hca(sysfs.path());
    let data = tempfile::tempdir().expect("tempdir");
    let srv = Server::start(data.path(), &[]);
    let hw = port.join("hw_counters");
    std::fs::create_dir_all(&hw).expect("hw_counters");
    let client = reqwest::Client::new();
    let id = "node042_mlx5_0/p1";
    // Four reads, 100 ms apart: transport errors climbing on the host (retransmissions after
    // packet loss), and traffic on the data counters.
    let mut last = Value::Null;
    for read in 0..4u64 {
        for (file, value) in [
            ("out_of_sequence", 100 + read * 5_000),
            ("local_ack_timeout_err", 2 + read),
            ("rnr_nak_retry_err", 0),
            ("req_cqe_error", 0),
        ] {
            std::fs::write(hw.join(file), format!("{value}\n")).expect("write");
        }
        std::fs::write(
            port.join("counters/port_xmit_data"),
            format!("{}\n", 123_456_789_012 + read * 1_000_000),
        )
        .expect("write");
        let out = Command::new(binary())
            .args(["agent", "--once", "--target", &srv.url, "--sysfs"])
            .arg(sysfs.path())
            .output()
            .expect("agent");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s = stream(&client, &srv.url, id).await;
        if read == 0 {
            assert_eq!(s["port"]["node_guid"], "0x0002c90300a1b2c3", "{s}");
            assert_eq!(s["link"]["speed"], "HDR");
            assert_eq!(s["link"]["rate_gbps"], 200.0);
            assert_eq!(s["counters"]["SymbolErrorCounter"]["value"], 7);
            assert_eq!(s["counters"]["OutOfSequence"]["value"], 100, "{s}");
            assert!(s["rates"].is_null(), "a first read has no rate: {s}");
        } else {
            // Each later read: its transport errors since the one before, and its rates.
            assert_eq!(s["rates"]["qp_errors"], 5_001, "{s}");
            let over_ms = s["rates"]["over_ms"].as_f64().expect("over_ms");
            let want = 1e6 * 32.0 / (over_ms * 1e6);
            let got = s["rates"]["tx_gbps"].as_f64().expect("tx_gbps");
            assert!((got - want).abs() < 1e-9, "{got} != {want}: {s}");
        }
        last = s;
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Three reads in a row past 1 QP error/s: the seed's QP-error rule holds and opens.
    let open: Vec<&str> = last["open_anomalies"]
        .as_array()
        .map(|a| a.iter().filter_map(|o| o["rule"].as_str()).collect())
        .unwrap_or_default();
    assert!(open.contains(&"qp_errors_high"), "{last}");
    srv.terminate();
}

/// Sample timestamps of a stream's `MetricObserved` events.
async fn sample_times(client: &reqwest::Client, url: &str, id: &str) -> Vec<i64> {
    let (_, v) = get_json(
        client,
        &format!("{url}/v1/streams/{id}/events?from_seq=1&limit=1000"),
        None,
    )
    .await;
    v["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .filter(|e| e["event_type"] == "MetricObserved")
                .filter_map(|e| e["payload"]["sample"]["timestamp_ms"].as_i64())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweeps_taken_while_the_server_is_down_are_delivered_after_it_restarts() {
    if !ibsim::available() {
        eprintln!("skipped: ibsim, opensm or infiniband-diags not installed");
        return;
    }
    let fabric = Fabric::start(&ibsim::fat_tree(1, 1, 2)).expect("fabric");
    let data = tempfile::tempdir().expect("tempdir");
    let listen = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").to_string()
    };
    let srv = Server::start_full(data.path(), &listen, &[], &[], &[]);
    let url = srv.url.clone();
    let mut collector = Command::new(binary())
        .args(["collect", "--interval-s", "1", "--target", &url])
        .envs(fabric.env("smhost"))
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("collector");
    let client = reqwest::Client::new();
    let id = "leaf01/p1";
    let wait_for = |n: usize| {
        let client = client.clone();
        let url = url.clone();
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
            loop {
                let t = sample_times(&client, &url, id).await;
                if t.len() >= n {
                    return t;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "only {} samples",
                    t.len()
                );
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    };
    let before = wait_for(2).await;
    // SIGKILL the server; the collector keeps sweeping into its buffer.
    srv.kill9();
    let down_at = common::now_ms();
    tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
    let up_at = common::now_ms();
    let srv = Server::start_full(data.path(), &listen, &[], &[], &[]);
    let after = wait_for(before.len() + 5).await;
    let _ = collector.kill();
    let _ = collector.wait();
    // The sweeps of the outage arrived, in order, with nothing missing in between: sweeps are
    // 1 s apart, so no gap between consecutive samples is much longer than that.
    let during = after
        .iter()
        .filter(|t| **t > down_at && **t < up_at)
        .count();
    assert!(
        during >= 2,
        "sweeps taken during the outage: {during} ({after:?})"
    );
    assert!(after.windows(2).all(|w| w[1] > w[0]), "in order: {after:?}");
    let longest_gap = after.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    assert!(
        longest_gap < 2_500,
        "a sweep was lost: gap of {longest_gap} ms in {after:?}"
    );
    srv.terminate();
}

#[test]
fn the_demo_runs_on_ibsim_with_the_scenario_injected_through_the_console() {
    if !ibsim::available() {
        eprintln!("skipped: ibsim, opensm or infiniband-diags not installed");
        return;
    }
    let data = tempfile::tempdir().expect("tempdir");
    let out = Command::new(binary())
        .args([
            "demo",
            "--fabric",
            "ibsim",
            "--duration",
            "15s",
            "--listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(data.path())
        .env("RUST_LOG", "warn")
        .output()
        .expect("demo");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("ibsim fabric up"), "{text}");
    // The scenario reached the simulator: symbol errors set on node009's PMA, node028's cable
    // pulled, leaf04 unplugged; they came back through the sweep as incidents.
    assert!(
        text.contains(
            "inject  PerformanceSet \"node009 mlx5_0\"[1] PortCounters.SymbolErrorCounter"
        ),
        "{text}"
    );
    assert!(
        text.contains("inject  Unlink \"node028 mlx5_0\"[1]"),
        "{text}"
    );
    assert!(text.contains("inject  Unlink \"leaf04\""), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("insight") && l.contains("connection_instability")),
        "{text}"
    );
    assert!(text.contains("skipped latency_spike"), "{text}");
}

/// A one-leaf fabric (2 hosts, the SM's host, one spine) and a server, or `None` (skipped)
/// when the simulator is not installed.
fn small_fabric_and_server() -> Option<(Fabric, tempfile::TempDir, Server)> {
    if !ibsim::available() {
        eprintln!("skipped: ibsim, opensm or infiniband-diags not installed");
        return None;
    }
    let fabric = Fabric::start(&ibsim::fat_tree(1, 1, 2)).expect("fabric");
    let data = tempfile::tempdir().expect("tempdir");
    let srv = Server::start(data.path(), &[]);
    Some((fabric, data, srv))
}

/// A directory to put first on PATH, holding an `ibqueryerrors` that runs the real one, but
/// first sleeps `sleep_s` in a child when its arguments match `when` (a shell `case` pattern
/// over " args "), writing its own PID and the child's to `pids/`. It stands for a tool stuck
/// on a slow fabric, with a grandchild that only a kill of the whole process group reaches.
fn slow_ibqueryerrors(when: &str, sleep_s: u32) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let real = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("ibqueryerrors"))
        .find(|p| p.exists())
        .expect("ibqueryerrors on PATH");
    let pids = dir.path().join("pids");
    std::fs::create_dir(&pids).expect("pids dir");
    let script = format!(
        "#!/bin/sh\ncase \" $* \" in\n  {when}) echo $$ > {pids}/$$; sleep {sleep_s} & echo $! > {pids}/$!; wait $! ;;\nesac\nexec {real} \"$@\"\n",
        pids = pids.display(),
        real = real.display()
    );
    let path = dir.path().join("ibqueryerrors");
    std::fs::write(&path, script).expect("write wrapper");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

fn path_with(first: &std::path::Path) -> std::ffi::OsString {
    let rest = std::env::var_os("PATH").unwrap_or_default();
    std::env::join_paths(std::iter::once(first.to_path_buf()).chain(std::env::split_paths(&rest)))
        .expect("PATH")
}

/// PIDs the wrapper wrote.
fn wrapper_pids(dir: &tempfile::TempDir) -> Vec<i32> {
    std::fs::read_dir(dir.path().join("pids"))
        .map(|r| {
            r.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `pid` runs (a zombie waiting for its reaper has ended).
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        })
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_that_times_out_loses_only_its_own_part_of_the_sweep() {
    let Some((fabric, _data, srv)) = small_fabric_and_server() else {
        return;
    };
    // The switches' error query hangs; every other query answers.
    let slow = slow_ibqueryerrors("*' --switch '*'--threshold-file'*", 60);
    let path = path_with(slow.path());
    let figures = collect_once_with(
        &fabric,
        &srv.url,
        &["--tool-timeout", "ibqueryerrors=3"],
        &[("PATH", path.as_os_str())],
    );
    assert_eq!(figures["tool_timeouts"], 1, "{figures}");
    // leaf01 (2 hosts, 1 spine, the SM's host) and spine01 (leaf01): 5 linked switch ports
    // whose errors were not read.
    assert_eq!(figures["counter_errors"], 5, "{figures}");
    let client = reqwest::Client::new();
    // A switch port keeps its link and data counters, and claims no error count it did not read.
    let sw = stream(&client, &srv.url, "leaf01/p1").await;
    assert_eq!(sw["link"]["state"], "active", "{sw}");
    assert!(sw["counters"]["PortXmitData"]["value"].is_u64(), "{sw}");
    assert!(sw["counters"]["SymbolErrorCounter"].is_null(), "{sw}");
    // The HCA ports lost nothing.
    let hca = stream(&client, &srv.url, "node001_mlx5_0/p1").await;
    assert_eq!(hca["counters"]["SymbolErrorCounter"]["value"], 0, "{hca}");
    assert!(hca["counters"]["PortXmitData"]["value"].is_u64(), "{hca}");
    // The timed-out tool and its child were killed, not left behind.
    for pid in wrapper_pids(&slow) {
        assert!(!running(pid), "ibqueryerrors wrapper {pid} still runs");
    }
    srv.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_sweep_leaves_no_tool_running() {
    let Some((fabric, _data, srv)) = small_fabric_and_server() else {
        return;
    };
    // Every counter query hangs, far past the test: the sweep is mid-way when SIGTERM comes.
    let slow = slow_ibqueryerrors("*", 600);
    let mut collector = Command::new(binary())
        .args(["collect", "--interval-s", "1", "--target", &srv.url])
        .envs(fabric.env("smhost"))
        .env("PATH", path_with(slow.path()))
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("collector");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let pids = loop {
        let pids = wrapper_pids(&slow);
        if pids.len() >= 4 {
            break pids;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sweep never reached ibqueryerrors"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(pids.iter().all(|p| running(*p)), "{pids:?}");
    // SAFETY: signalling our own child by its PID.
    unsafe {
        libc::kill(collector.id() as i32, libc::SIGTERM);
    }
    let status = collector.wait().expect("wait");
    assert!(status.success(), "collect exited {status}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while pids.iter().any(|p| running(*p)) {
        assert!(
            std::time::Instant::now() < deadline,
            "tools left running after SIGTERM: {:?}",
            pids.iter().filter(|p| running(**p)).collect::<Vec<_>>()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    srv.terminate();
}
