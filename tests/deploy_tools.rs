//! deploy/ for the operator's own tools, checked against the real tools and the code:
//! - the Grafana dashboard: every PromQL expression parses (promtool) and names only series
//!   ibsight exports;
//! - the Prometheus alert rules: `promtool check rules`, and `promtool test rules` shows they
//!   fire (and stay quiet) as meant;
//! - the systemd units: `systemd-analyze verify`, and their command lines parse as ibsight's;
//! - the agent's DaemonSet: its command line parses, and sysfs is mounted read-only;
//! - the collector image: a stage with infiniband-diags.

use clap::Parser;
use ibsight::cli::Cli;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Whether `tool` runs here; panics when it is missing but `require` is set to 1.
fn have(tool: &str, require: &str) -> bool {
    let here = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !here && std::env::var(require).is_ok_and(|v| v == "1") {
        panic!("{tool} is required ({require}=1): run scripts/test");
    }
    if !here {
        eprintln!("skipped: {tool} is not installed (scripts/test installs it)");
    }
    here
}

/// Every PromQL expression of the dashboard: panel targets and query variables.
fn dashboard_exprs(dash: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut panels: Vec<&Value> = dash["panels"].as_array().expect("panels").iter().collect();
    while let Some(p) = panels.pop() {
        if let Some(inner) = p["panels"].as_array() {
            panels.extend(inner);
        }
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push(t["expr"].as_str().expect("a target's expr").to_string());
        }
    }
    for v in dash["templating"]["list"].as_array().expect("templating") {
        if v["type"] == "query" {
            let q = v["query"]["query"].as_str().expect("a variable's query");
            // label_values(SELECTOR, label): the selector is PromQL.
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|r| r.rsplit_once(','))
                .map_or(q, |(sel, _)| sel);
            out.push(inner.trim().to_string());
        }
    }
    out
}

/// Grafana's variables as PromQL would see them once Grafana filled them in.
fn filled(expr: &str) -> String {
    expr.replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
        .replace("$switch", ".*")
}

/// Whether ibsight writes the series `name` (treydock's names are built from their suffixes;
/// ibsight's own are written whole).
fn exported(name: &str) -> bool {
    let sources = [
        "src/metrics.rs",
        "src/metrics/exposition.rs",
        "src/metrics/exposition/own.rs",
        "src/api/prometheus.rs",
    ]
    .map(read)
    .join("\n");
    if let Some(rest) = name
        .strip_prefix("infiniband_switch_")
        .or_else(|| name.strip_prefix("infiniband_hca_"))
    {
        rest.starts_with("port_") && sources.contains(&format!("\"{rest}\""))
            || ["info", "rate_bytes_per_second", "uplink_info"].contains(&rest)
    } else {
        let base = name.strip_suffix("_total").unwrap_or(name);
        sources.contains(&format!("\"{base}\""))
    }
}

/// The metric names an expression reads.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
            i += 1;
        }
        let word = &expr[start..i];
        if word.starts_with("ibsight_") || word.starts_with("infiniband_") {
            out.push(word.to_string());
        }
        i = i.max(start + 1);
    }
    out
}

#[test]
fn every_dashboard_expression_parses_and_reads_series_ibsight_exports() {
    let dash: Value = serde_json::from_str(&read("deploy/grafana/ibsight-fabric.json"))
        .expect("the dashboard is JSON");
    let exprs = dashboard_exprs(&dash);
    assert!(exprs.len() >= 20, "{} expressions", exprs.len());

    // Names: every series the dashboard reads is one ibsight writes.
    for expr in &exprs {
        for name in metric_names(expr) {
            assert!(
                exported(&name),
                "{name} (in {expr}) is not a series ibsight exports"
            );
        }
    }

    // Syntax: promtool parses each as a recording rule.
    if !have("promtool", "REQUIRE_PROM_TESTS") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        rules.push_str(&format!(
            "      - record: dashboard:expr_{i}\n        expr: {}\n",
            serde_json::to_string(&filled(e)).expect("quoted")
        ));
    }
    let path = dir.path().join("dashboard-rules.yml");
    std::fs::write(&path, &rules).expect("write");
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&path)
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "promtool refused a dashboard expression:\n{}{}\n{rules}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_health_rules_pass_promtool_check_and_their_unit_tests() {
    if !have("promtool", "REQUIRE_PROM_TESTS") {
        return;
    }
    let dir = root().join("deploy/prometheus");
    for args in [
        vec!["check", "rules", "ibsight-rules.yml"],
        vec!["test", "rules", "tests.yml"],
    ] {
        let out = Command::new("promtool")
            .args(&args)
            .current_dir(&dir)
            .output()
            .expect("promtool");
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The four health signals the issue names each have a rule.
    let rules = read("deploy/prometheus/ibsight-rules.yml");
    for series in [
        "ibsight_analyst_fallback_ratio",
        "ibsight_analyst_queue_depth",
        "ibsight_projection_lag_seconds",
        "ibsight_projection_dead_letters_total",
        "ibsight_ai_low_confidence_total",
        "ibsight_ai_answers_total",
    ] {
        assert!(rules.contains(series), "no rule on {series}");
    }
    for name in metric_names(&rules) {
        assert!(
            exported(&name),
            "{name} (in the rules) is not a series ibsight exports"
        );
    }
}

/// `KEY=VALUE` lines of the units' environment file.
fn env_file() -> Vec<(String, String)> {
    read("deploy/systemd/ibsight.env")
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[test]
fn the_systemd_units_verify_and_run_ibsight_with_flags_it_takes() {
    let env = env_file();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut units: Vec<PathBuf> = Vec::new();
    for unit in ["ibsight-collect.service", "ibsight-agent.service"] {
        let text = read(&format!("deploy/systemd/{unit}"));
        let exec = text
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .unwrap_or_else(|| panic!("{unit} has no ExecStart"));
        // The command line, with the environment file's values, parses as ibsight's.
        let mut line = exec.to_string();
        for (k, v) in &env {
            line = line.replace(&format!("${{{k}}}"), v);
        }
        assert!(
            !line.contains("${"),
            "{unit}: {line} names a variable ibsight.env lacks"
        );
        let args: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(args[0], "/usr/local/bin/ibsight");
        if let Err(e) = Cli::try_parse_from(&args) {
            panic!("{unit}: ibsight does not take `{line}`: {e}");
        }
        // systemd's own check, with ExecStart pointed at the built binary.
        let local = text.replace("/usr/local/bin/ibsight", env!("CARGO_BIN_EXE_ibsight"));
        let path = dir.path().join(unit);
        std::fs::write(&path, local).expect("write");
        units.push(path);
    }
    if !have("systemd-analyze", "REQUIRE_SYSTEMD_TESTS") {
        return;
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .output()
        .expect("systemd-analyze");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Only lines about these units count: the host's own units may not verify.
    let ours: Vec<&str> = said.lines().filter(|l| l.contains("ibsight-")).collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify:\n{said}"
    );
}

#[test]
fn the_agent_daemonset_runs_ibsight_agent_on_read_only_sysfs() {
    let docs: Vec<serde_yaml_ng::Value> =
        serde_yaml_ng::Deserializer::from_str(&read("deploy/k8s/agent-daemonset.yaml"))
            .map(|d| serde::Deserialize::deserialize(d).expect("valid YAML"))
            .collect();
    let ds = &docs[0];
    assert_eq!(ds["kind"].as_str(), Some("DaemonSet"));
    let pod = &ds["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    let mut args = vec!["ibsight".to_string()];
    args.extend(
        c["args"]
            .as_sequence()
            .expect("args")
            .iter()
            .map(|a| a.as_str().expect("an arg").to_string()),
    );
    assert_eq!(args[1], "agent");
    if let Err(e) = Cli::try_parse_from(&args) {
        panic!("ibsight does not take {args:?}: {e}");
    }
    let sysfs = args
        .iter()
        .position(|a| a == "--sysfs")
        .map(|i| args[i + 1].clone())
        .expect("--sysfs");
    let mount = c["volumeMounts"]
        .as_sequence()
        .expect("mounts")
        .iter()
        .find(|m| sysfs.starts_with(m["mountPath"].as_str().unwrap_or("-")))
        .expect("--sysfs is under a mount");
    assert_eq!(mount["readOnly"].as_bool(), Some(true));
    assert_eq!(
        c["securityContext"]["allowPrivilegeEscalation"].as_bool(),
        Some(false)
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
}

#[test]
fn the_collector_image_has_infiniband_diags() {
    let dockerfile = read("deploy/Dockerfile");
    let stage = dockerfile
        .split("\nFROM ")
        .find(|s| s.contains(" AS collect"))
        .expect("a collect stage");
    assert!(stage.contains("infiniband-diags"), "{stage}");
    assert!(stage.contains("COPY --from=build /usr/local/bin/ibsight"));
}
