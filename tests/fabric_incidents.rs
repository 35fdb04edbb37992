//! Incidents from a real InfiniBand management stack: ibsim and opensm, swept by
//! `ibsight collect` into `ibsight serve`, faults injected the way they happen to an operator
//! (counters set on the PMA, widths changed with ibportstate, cables and switches unplugged).
//! What an operator sees is checked through `GET /v1/incidents` and `/v1/alerts/recent`.

mod common;

use common::ibsim::{self, collect_once, incidents, ports, Fabric};
use common::{get_json, Server};
use serde_json::Value;
use std::time::{Duration, Instant};

/// Sweeps here run back to back, one `collect --once` each, so on a loaded machine one event
/// (a cable's far end falling silent, a switch's ports going stale a sweep after its peers'
/// links went down) reaches the server over several seconds: the incidents settle over 10 s,
/// as a site sets `settle_ms` to cover one sweep's arrival.
const SETTLE: &[(&str, &str)] = &[("IBSIGHT_INCIDENTS__SETTLE_MS", "10000")];

fn sweep(fabric: &Fabric, url: &str) {
    collect_once(fabric, url);
}

/// Sweep every `pause` until an incident holding all of `streams` (and analysed) shows, or
/// `timeout` passes; returns every incident touching any of `streams`.
async fn sweep_until(
    fabric: &mut Fabric,
    srv: &Server,
    client: &reqwest::Client,
    streams: &[&str],
    timeout: Duration,
    mut each: impl FnMut(&mut Fabric),
) -> Vec<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        each(fabric);
        sweep(fabric, &srv.url);
        let all = incidents(client, &srv.url).await;
        let touching: Vec<Value> = all
            .into_iter()
            .filter(|i| ports(i).iter().any(|p| streams.contains(&p.as_str())))
            .collect();
        let whole = touching.iter().any(|i| {
            let ps = ports(i);
            streams.iter().all(|s| ps.contains(&s.to_string())) && !i["prediction_type"].is_null()
        });
        if whole || Instant::now() > deadline {
            return touching;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cable_faults_give_one_link_incident_and_benign_counters_give_none() {
    if !ibsim::available() {
        eprintln!("skipped: ibsim, opensm or infiniband-diags not installed");
        return;
    }
    let mut fabric = Fabric::start(&ibsim::fat_tree(2, 2, 2)).expect("fabric");
    let data = tempfile::tempdir().expect("tempdir");
    let srv = Server::start(data.path(), SETTLE);
    let client = reqwest::Client::new();

    // Benign: a port with old receive errors that never grow, and a port whose counters an
    // operator clears.
    fabric
        .console("PerformanceSet \"leaf02\"[2] PortCounters.PortRcvErrors=40")
        .expect("console");
    fabric
        .console("PerformanceSet \"spine01\"[1] PortCounters.SymbolErrorCounter=500")
        .expect("console");
    for _ in 0..3 {
        sweep(&fabric, &srv.url);
    }
    fabric
        .console("PerformanceSet \"spine01\"[1] PortCounters.SymbolErrorCounter=0")
        .expect("console");

    // Symbol errors rising on a host's switch port: 20 more every sweep on a 4x SDR link
    // (8 Gb/s) is far past a BER of 1e-12.
    let mut errors = 0;
    let found = sweep_until(
        &mut fabric,
        &srv,
        &client,
        &["leaf01/p1"],
        Duration::from_secs(90),
        |fabric| {
            errors += 20;
            fabric
                .console(&format!(
                    "PerformanceSet \"leaf01\"[1] PortCounters.SymbolErrorCounter={errors}"
                ))
                .expect("console");
        },
    )
    .await;
    let symbol = found
        .iter()
        .find(|i| i["prediction_type"] == "connection_instability")
        .unwrap_or_else(|| panic!("no connection_instability incident: {found:?}"));
    assert!(
        symbol["explanation"]
            .as_str()
            .is_some_and(|e| e.contains("SymbolErrorCounter")),
        "{symbol}"
    );

    // A width downgrade on both ends of node002's cable: one link incident with both ends.
    let host = get_json(
        &client,
        &format!("{}/v1/streams/node002_mlx5_0/p1", srv.url),
        None,
    )
    .await
    .1;
    let lid = host["port"]["lid"].to_string();
    let leaf = get_json(&client, &format!("{}/v1/streams/leaf01/p2", srv.url), None)
        .await
        .1;
    let leaf_lid = leaf["port"]["lid"].to_string();
    let ends = ["leaf01/p2", "node002_mlx5_0/p1"];
    let found = sweep_until(
        &mut fabric,
        &srv,
        &client,
        &ends,
        Duration::from_secs(90),
        |fabric| {
            fabric
                .tool("ibportstate", &[&lid, "1", "width", "1"])
                .expect("tool");
            fabric
                .tool("ibportstate", &[&leaf_lid, "2", "width", "1"])
                .expect("tool");
        },
    )
    .await;
    assert_eq!(found.len(), 1, "one incident for the cable: {found:?}");
    assert_eq!(found[0]["scope"], "link", "{:?}", found[0]);
    assert_eq!(ports(&found[0]), ends);
    assert_eq!(found[0]["prediction_type"], "bandwidth_throttling");

    // node003's only cable pulled: the switch side goes down, the host falls silent. One link
    // incident with both ends.
    fabric.console("Unlink \"leaf02\"[1]").expect("console");
    let ends = ["leaf02/p1", "node003_mlx5_0/p1"];
    let found = sweep_until(
        &mut fabric,
        &srv,
        &client,
        &ends,
        Duration::from_secs(90),
        |_| {},
    )
    .await;
    assert_eq!(found.len(), 1, "one incident for the cable: {found:?}");
    assert_eq!(found[0]["scope"], "link", "{:?}", found[0]);
    assert_eq!(ports(&found[0]), ends);
    assert_eq!(found[0]["prediction_type"], "connection_instability");

    // Nothing about the benign counters.
    let all = incidents(&client, &srv.url).await;
    for quiet in ["leaf02/p2", "spine01/p1"] {
        assert!(
            !all.iter().any(|i| ports(i).contains(&quiet.to_string())),
            "{quiet} got an incident: {all:?}"
        );
    }
    srv.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switch_unplugged_gives_one_switch_incident_and_one_critical_alert() {
    if !ibsim::available() {
        eprintln!("skipped: ibsim, opensm or infiniband-diags not installed");
        return;
    }
    let mut fabric = Fabric::start(&ibsim::fat_tree(2, 2, 2)).expect("fabric");
    let data = tempfile::tempdir().expect("tempdir");
    let srv = Server::start(data.path(), SETTLE);
    let client = reqwest::Client::new();
    for _ in 0..3 {
        sweep(&fabric, &srv.url);
    }
    // Every cable of leaf02: its two hosts and both spines lose it.
    fabric.console("Unlink \"leaf02\"").expect("console");
    let streams = [
        "node003_mlx5_0/p1",
        "node004_mlx5_0/p1",
        "spine01/p2",
        "spine02/p2",
    ];
    let found = sweep_until(
        &mut fabric,
        &srv,
        &client,
        &streams,
        Duration::from_secs(120),
        |_| {},
    )
    .await;
    // A few more sweeps: nothing splits off, nothing alerts twice.
    for _ in 0..4 {
        sweep(&fabric, &srv.url);
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    let all = incidents(&client, &srv.url).await;
    let switch: Vec<&Value> = all.iter().filter(|i| i["scope"] == "switch").collect();
    assert_eq!(
        switch.len(),
        1,
        "one switch incident: {all:?} (first seen {found:?})"
    );
    let inc = switch[0];
    assert_eq!(inc["node"]["node_desc"], "leaf02", "{inc}");
    let members = ports(inc);
    for s in streams {
        assert!(members.contains(&s.to_string()), "{s} not in {members:?}");
    }
    assert_eq!(inc["prediction_type"], "connection_instability");
    assert!(inc["risk_score"].as_u64() >= Some(80), "{inc}");
    assert_eq!(
        all.len(),
        1,
        "every port of the event is in the one incident: {all:?}"
    );
    let (_, alerts) = get_json(&client, &format!("{}/v1/alerts/recent", srv.url), None).await;
    let alerts = alerts["alerts"].as_array().cloned().unwrap_or_default();
    assert_eq!(alerts.len(), 1, "one critical alert: {alerts:?}");
    assert_eq!(alerts[0]["incident_id"], inc["id"]);
    srv.terminate();
}
