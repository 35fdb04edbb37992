//! The simulated fabric of `ibsight::collect::ibsim`, and whether the tests may use it.

pub use ibsight::collect::ibsim::*;

/// Whether the simulator and the tools are installed. `REQUIRE_IBSIM_TESTS=1` (set by
/// scripts/test, which installs them) turns a missing install into a failure.
pub fn available() -> bool {
    let ok = installed();
    if !ok && std::env::var("REQUIRE_IBSIM_TESTS").is_ok() {
        panic!("ibsim, opensm or infiniband-diags is missing (scripts/test installs them)");
    }
    ok
}

/// `ibsight collect --once` attached to `fabric` from the SM's host, posting to `url`; the
/// figures it prints.
pub fn collect_once(fabric: &Fabric, url: &str) -> serde_json::Value {
    collect_once_with(fabric, url, &[], &[])
}

/// `collect_once` with extra arguments and environment (a PATH with wrapped tools, say).
pub fn collect_once_with(
    fabric: &Fabric,
    url: &str,
    args: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
) -> serde_json::Value {
    let out = std::process::Command::new(super::binary())
        .args([
            "collect",
            "--once",
            "--target",
            url,
            "--deliver-timeout-s",
            "30",
        ])
        .args(args)
        .envs(fabric.env("smhost"))
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .output()
        .expect("run collect");
    assert!(
        out.status.success(),
        "collect failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or("")).expect("collect prints figures")
}

/// Every incident the server at `url` knows, open or resolved.
pub async fn incidents(client: &reqwest::Client, url: &str) -> Vec<serde_json::Value> {
    let (status, v) = super::get_json(
        client,
        &format!("{url}/v1/incidents?state=all&limit=500"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    v["incidents"].as_array().cloned().unwrap_or_default()
}

/// The stream ids of an incident's ports, sorted.
pub fn ports(incident: &serde_json::Value) -> Vec<String> {
    let mut out: Vec<String> = incident["ports"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter_map(|p| p["stream_id"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}
