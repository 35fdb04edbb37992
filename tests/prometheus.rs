//! A real Prometheus (Debian's) scraping a running `serve` at `/metrics/ports`: the counters
//! the test posts come out under treydock/infiniband_exporter's names, on both ends of a cable
//! (a switch port and an HCA port), and `rate()` over them gives the rates the test posted.

mod common;

use common::{now_ms, prom, InProcess};
use ibsight::config::Config;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const SW: &str = "0x0002c90300001000";
const HCA: &str = "0x0002c90300002000";
/// Words per second on the wire: 250,000 words = 1,000,000 bytes/s.
const WORDS_PER_S: f64 = 250_000.0;
const SYMBOL_ERRORS_PER_S: f64 = 2.0;

fn link() -> Value {
    json!({"state": "active", "phys_state": "linkup", "width": "4x", "speed": "EDR",
           "rate_gbps": 100.0})
}

/// Both ends of the cable at `elapsed` seconds since the start: the switch transmits what the
/// HCA receives, and the HCA's symbol errors climb.
fn samples(elapsed: f64) -> Value {
    let t = now_ms();
    let words = (elapsed * WORDS_PER_S) as u64;
    let errors = (elapsed * SYMBOL_ERRORS_PER_S) as u64;
    json!({"samples": [
        {"stream_id": "leaf01/p3", "timestamp": t, "node_guid": SW, "port_num": 3,
         "node_type": "switch", "node_desc": "leaf01", "lid": 3,
         "peer": {"node_guid": HCA, "port_num": 1, "node_desc": "node001 mlx5_0"},
         "link": link(),
         "counters": {"PortXmitData": 1_000_000 + words, "PortRcvData": 5}},
        {"stream_id": "node001/p1", "timestamp": t, "node_guid": HCA, "port_num": 1,
         "node_type": "ca", "node_desc": "node001 mlx5_0", "lid": 41,
         "peer": {"node_guid": SW, "port_num": 3, "node_desc": "leaf01"},
         "link": link(),
         "counters": {"PortRcvData": 1_000_000 + words, "SymbolErrorCounter": errors}}
    ]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_every_port_under_treydocks_names_and_rate_gives_the_posted_rate() {
    if !prom::available() {
        eprintln!("skipped: prometheus is not installed (scripts/test installs it)");
        return;
    }
    let srv = InProcess::start(Config::default()).await;
    let target = srv.url.trim_start_matches("http://").to_string();
    let prometheus = prom::prometheus(&[&target], "/metrics/ports", None).await;
    // Given both ends of a cable posted every half second for 14 s, their counters climbing
    // at a steady rate,
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(14) {
        let (status, body) = srv.post(&samples(start.elapsed().as_secs_f64())).await;
        assert_eq!(status, 202, "{body}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // when Prometheus is asked for their rates over the last 8 s,
    let rate = |q: String| {
        let prometheus = &prometheus;
        async move {
            let r = prom::query(prometheus, &q).await;
            (prom::value(&r), r)
        }
    };
    let expected_bytes = WORDS_PER_S * 4.0;
    for (promql, want) in [
        (
            format!("rate(infiniband_switch_port_transmit_data_bytes_total{{guid=\"{SW}\",port=\"3\"}}[8s])"),
            expected_bytes,
        ),
        (
            format!("rate(infiniband_hca_port_receive_data_bytes_total{{guid=\"{HCA}\",port=\"1\"}}[8s])"),
            expected_bytes,
        ),
        (
            format!("rate(infiniband_hca_port_symbol_error_total{{guid=\"{HCA}\",port=\"1\"}}[8s])"),
            SYMBOL_ERRORS_PER_S,
        ),
        // ibsight's own derived rate, a gauge, agrees.
        (
            "ibsight_port_transmit_bytes_per_second{stream=\"leaf01/p3\"}".to_string(),
            expected_bytes,
        ),
    ] {
        let (got, raw) = rate(promql.clone()).await;
        let got = got.unwrap_or_else(|| panic!("no value for {promql}: {raw:?}\n{}", prometheus.log()));
        // then each is the posted rate, within the jitter of the posting and scraping clocks.
        assert!(
            (got - want).abs() <= want * 0.1,
            "{promql} = {got}, want {want} ± 10 %"
        );
    }
    // The uplink of each end names the other, so treydock's join rules work.
    let up = prom::query(&prometheus, "infiniband_hca_uplink_info").await;
    assert_eq!(up.len(), 1, "{up:?}");
    let m = &up[0]["metric"];
    assert_eq!(m["uplink"], "leaf01");
    assert_eq!(m["uplink_guid"], SW);
    assert_eq!(m["uplink_type"], "SW");
    assert_eq!(m["uplink_port"], "3");
    // And the scrape itself was healthy every time.
    let up = prom::query(&prometheus, "min_over_time(up[10s])").await;
    assert_eq!(prom::value(&up), Some(1.0), "{up:?}\n{}", prometheus.log());
    drop(prometheus);
    srv.stop().await;
}
