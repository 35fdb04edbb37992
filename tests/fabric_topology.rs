//! The fabric as it should be, on a real management stack (ibsim, opensm, infiniband-diags,
//! `ibsight collect` into `ibsight serve`): a link that trained low from the start among its
//! peers, and every sweep held against the topology saved after commissioning, with the names
//! of a node-name map.

mod common;

use common::ibsim::{self, collect_once_with, incidents, ports, Fabric};
use common::{get_json, Server};
use serde_json::Value;
use std::time::{Duration, Instant};

async fn stream(client: &reqwest::Client, url: &str, id: &str) -> (u16, Value) {
    get_json(client, &format!("{url}/v1/streams/{id}"), None).await
}

/// The (rule, metric) of every open anomaly of a stream.
async fn open(client: &reqwest::Client, url: &str, id: &str) -> Vec<(String, String)> {
    let (status, s) = stream(client, url, id).await;
    assert_eq!(status, 200, "{id}: {s}");
    let mut out: Vec<(String, String)> = s["open_anomalies"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|o| {
                    let f = |k: &str| o[k].as_str().unwrap_or("").to_string();
                    (f("rule"), f("metric"))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// A fat tree in which both ends of one cable (`leaf`[`port`] to `host`) are set to 1X, as a
/// cable with a dead lane trains.
fn with_1x_cable(net: &str, leaf: &str, port: u8, host: &str) -> String {
    let switch_side = format!("[{port}] \"{host}\"[1]\n");
    let host_side = format!("Hca 1 \"{host}\"\n[1] \"{leaf}\"[{port}]\n");
    assert!(net.contains(&switch_side) && net.contains(&host_side));
    net.replace(&switch_side, &format!("[{port}] \"{host}\"[1] w=1\n"))
        .replace(
            &host_side,
            &format!("Hca 1 \"{host}\"\n[1] \"{leaf}\"[{port}] w=1\n"),
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_trained_at_1x_from_the_start_among_4x_peers_is_one_incident_with_both_ends() {
    if !ibsim::available() {
        eprintln!("skipped: ibsim, opensm or infiniband-diags not installed");
        return;
    }
    // Given a fabric whose node002 cable came up at 1X (enabled 1X on both ends, so nothing
    // but its peers says it is low), and three other CA links of leaf01 at 4X,
    let net = with_1x_cable(&ibsim::fat_tree(2, 2, 3), "leaf01", 2, "node002 mlx5_0");
    let fabric = Fabric::start(&net).expect("fabric");
    let data = tempfile::tempdir().expect("tempdir");
    let srv = Server::start(data.path(), &[]);
    let client = reqwest::Client::new();
    let ends = ["leaf01/p2", "node002_mlx5_0/p1"];
    // when it is swept (from the first sweep on),
    let deadline = Instant::now() + Duration::from_secs(90);
    let found = loop {
        collect_once_with(&fabric, &srv.url, &[], &[]);
        let all = incidents(&client, &srv.url).await;
        let analysed = all
            .iter()
            .any(|i| ports(i) == ends && !i["prediction_type"].is_null());
        if analysed || Instant::now() > deadline {
            break all;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    // then there is one incident, with both ends of the cable, a non-optimal link,
    assert_eq!(found.len(), 1, "one incident in the fabric: {found:?}");
    assert_eq!(ports(&found[0]), ends, "{:?}", found[0]);
    assert_eq!(found[0]["scope"], "link", "{:?}", found[0]);
    assert_eq!(found[0]["prediction_type"], "bandwidth_throttling");
    for end in ends {
        let rules = open(&client, &srv.url, end).await;
        assert_eq!(
            rules,
            vec![("non_optimal_link".to_string(), "link_norm".to_string())],
            "{end}"
        );
        let (_, s) = stream(&client, &srv.url, end).await;
        let link = &s["last_sample"]["link"];
        assert_eq!(link["width"], "1x", "{s}");
        assert_eq!(link["width_enabled"], serde_json::json!(["1x"]), "{s}");
        let norm = &s["last_sample"]["norm"];
        assert_eq!(norm["width"], "4x", "{s}");
        assert_eq!(norm["group"], "CA links of leaf01", "{s}");
    }
    // and a healthy 4X peer on the same leaf, which enables 4X and supports 12X (as ibsim
    // claims for every port), raises nothing.
    let (_, peer) = stream(&client, &srv.url, "leaf01/p1").await;
    assert_eq!(
        peer["last_sample"]["link"]["width_enabled"],
        serde_json::json!(["4x"])
    );
    assert!(
        peer["last_sample"]["link"]["width_supported"]
            .as_array()
            .is_some_and(|w| w.iter().any(|x| x == "12x")),
        "{peer}"
    );
    assert!(open(&client, &srv.url, "leaf01/p1").await.is_empty());
    srv.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sweep_is_held_against_the_saved_topology_with_the_names_of_the_name_map() {
    if !ibsim::available() {
        eprintln!("skipped: ibsim, opensm or infiniband-diags not installed");
        return;
    }
    // Given a fabric (leaves of 9 ports: hosts 1-3, spines 4-6, the SM's host on leaf01[7],
    // 8-9 free) with one more host on leaf02[9], unplugged when the topology is saved,
    let net = ibsim::fat_tree(2, 3, 3).replace(
        "Switch 9 \"leaf02\"\n",
        "Switch 9 \"leaf02\"\n[9] \"intruder\"[1]\n",
    ) + "Hca 1 \"intruder\"\n[1] \"leaf02\"[9]\n\n";
    let mut fabric = Fabric::start(&net).expect("fabric");
    fabric.console("Unlink \"intruder\"").expect("console");
    let files = tempfile::tempdir().expect("tempdir");
    let saved = fabric.tool("ibnetdiscover", &[]).expect("ibnetdiscover");
    assert!(!saved.contains("intruder"), "{saved}");
    let topo_path = files.path().join("fabric.topo");
    std::fs::write(&topo_path, &saved).expect("write");
    // and a node-name map naming node001 as the site calls it,
    let topo = ibsight::collect::topology::parse("fabric.topo", &saved).expect("parses");
    let node001 = topo
        .nodes
        .iter()
        .find(|(_, n)| n.desc == "node001 mlx5_0")
        .map(|(g, _)| *g)
        .expect("node001 in the topology");
    let map_path = files.path().join("node-name-map");
    std::fs::write(
        &map_path,
        format!("# site names\n0x{node001:016x} \"gpu-a01\"\n"),
    )
    .expect("write");
    let data = tempfile::tempdir().expect("tempdir");
    let srv = Server::start(data.path(), &[]);
    let client = reqwest::Client::new();
    let topo_arg = topo_path.display().to_string();
    let map_arg = map_path.display().to_string();
    let args = ["--topology", &topo_arg, "--node-name-map", &map_arg];
    // when the fabric is swept as it was saved,
    collect_once_with(&fabric, &srv.url, &args, &[]);
    // then the named node's stream has the map's name, and nothing differs.
    assert_eq!(stream(&client, &srv.url, "gpu-a01/p1").await.0, 200);
    assert_eq!(stream(&client, &srv.url, "node001_mlx5_0/p1").await.0, 404);
    let (_, s) = stream(&client, &srv.url, "leaf01/p4").await;
    assert_eq!(s["last_sample"]["topology"], serde_json::json!([]), "{s}");
    assert!(incidents(&client, &srv.url).await.is_empty());

    // When a cable is unplugged (leaf02 to spine01), another is moved (node003 from leaf01[3]
    // to leaf01[8]), a switch is taken out (spine03), and the unknown host is plugged in (the
    // fabric stays connected through the other spines),
    fabric.console("Unlink \"leaf02\"[4]").expect("console");
    fabric.console("Unlink \"leaf01\"[3]").expect("console");
    fabric
        .console("Link \"leaf01\"[8] \"node003 mlx5_0\"[1]")
        .expect("console");
    fabric.console("Unlink \"spine03\"").expect("console");
    fabric.console("ReLink \"intruder\"").expect("console");
    let expect: [(&str, &str); 9] = [
        ("leaf02/p4", "topology_missing_link"),
        ("spine01/p2", "topology_missing_link"),
        ("leaf01/p3", "topology_missing_link"),
        ("leaf01/p8", "topology_miswired"),
        ("node003_mlx5_0/p1", "topology_miswired"),
        ("leaf01/p6", "topology_node_missing"),
        ("leaf02/p6", "topology_node_missing"),
        ("leaf02/p9", "topology_node_unexpected"),
        ("intruder/p1", "topology_node_unexpected"),
    ];
    // then, swept again, each affected port holds its mismatch,
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        collect_once_with(&fabric, &srv.url, &args, &[]);
        let mut missing = Vec::new();
        for (id, metric) in expect {
            let (status, _) = stream(&client, &srv.url, id).await;
            let has = status == 200
                && open(&client, &srv.url, id)
                    .await
                    .contains(&("topology_mismatch".to_string(), metric.to_string()));
            if !has {
                missing.push((id, metric));
            }
        }
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not found: {missing:?}; sweep: {:?}",
            fabric.tool("iblinkinfo", &["--line"])
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // with the port the topology expected at its far end,
    let (_, moved) = stream(&client, &srv.url, "node003_mlx5_0/p1").await;
    let m = &moved["last_sample"]["topology"][0];
    assert_eq!(m["kind"], "miswired", "{moved}");
    assert_eq!(m["expected"]["node_desc"], "leaf01", "{moved}");
    assert_eq!(m["expected"]["port_num"], 3, "{moved}");
    // and untouched ports differ in nothing.
    for quiet in [
        "leaf01/p1",
        "gpu-a01/p1",
        "leaf02/p1",
        "spine01/p1",
        "leaf02/p5",
    ] {
        let rules = open(&client, &srv.url, quiet).await;
        assert!(
            !rules.iter().any(|(r, _)| r == "topology_mismatch"),
            "{quiet}: {rules:?}"
        );
    }
    // The mismatches go through the incidents like any finding.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let all = incidents(&client, &srv.url).await;
        let touched: Vec<String> = all.iter().flat_map(ports).collect();
        let alone: Vec<&str> = expect
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| !touched.contains(&id.to_string()))
            .collect();
        if alone.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "in no incident: {alone:?}: {all:?}"
        );
        collect_once_with(&fabric, &srv.url, &args, &[]);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    srv.terminate();
}
