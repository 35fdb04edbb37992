//! The layers of `src/`, and a test that keeps them: every `crate::` path in the library's own
//! code (test code aside) must name a module of a lower layer. Modules of one layer never
//! import each other, so no import loop can form.
//!
//! The table is the one place the layers are written down (README's architecture section
//! shows it). A new top-level module goes into it; the test says so.

/// From the ground up. Each module may import only modules of the layers before its own.
const LAYERS: &[&[&str]] = &[
    // Plain helpers and the shared vocabulary (names every layer above uses).
    &["hash", "clock", "vocab", "secret", "errors"],
    // What a port reports.
    &["sample"],
    // Pure detection.
    &["detect"],
    // Process-wide counters, over detection's and the vocabulary's names.
    &["metrics"],
    // The event log: types, codec, engines, the projection trait.
    &["events"],
    // Logs and traces, with the trace context the log carries.
    &["telemetry"],
    // Maintenance windows: in the log, and which ports they cover.
    &["maintenance"],
    // Synthetic fabrics, the real fabric's readers, the AWS clients.
    &["sim", "collect", "aws"],
    // The analyst.
    &["analyst"],
    // Cluster membership, placement and peers.
    &["cluster"],
    // Stream actors, their router and supervisor.
    &["actors"],
    // Incidents (anomalies grouped), then alerts from them.
    &["incidents"],
    &["alerts"],
    // The projections' runner and the read models and sinks it drives.
    &["projections"],
    // Replay and audits of the log.
    &["replay"],
    // Ingest (bodies to actors) and the configuration of everything.
    &["ingest", "config"],
    // The HTTP API.
    &["api"],
    // A whole node; the detection-quality harness over one.
    &["node"],
    &["eval"],
    // The command line.
    &["cli"],
];

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// Every `.rs` file under `dir`.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text with every `#[cfg(test)]` item (a `mod tests { … }`, a function, a `use`) cut.
fn without_test_code(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let item = &rest[at + "#[cfg(test)]".len()..];
        let semi = item.find(';');
        let brace = item.find('{');
        let end = match (semi, brace) {
            (Some(s), Some(b)) if s < b => s + 1,
            (_, Some(b)) => {
                let mut depth = 0usize;
                let mut end = item.len();
                for (i, c) in item[b..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = b + i + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                end
            }
            (Some(s), None) => s + 1,
            (None, None) => item.len(),
        };
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

/// Files that only tests compile: declared `#[cfg(test)] mod name;` by their parent.
fn test_only_files(src: &Path, all: &[PathBuf]) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    for file in all {
        let text = std::fs::read_to_string(file).expect("read");
        let dir = if file
            .file_name()
            .is_some_and(|n| n == "lib.rs" || n == "main.rs")
        {
            src.to_path_buf()
        } else {
            file.with_extension("")
        };
        let mut rest = text.as_str();
        while let Some(at) = rest.find("#[cfg(test)]") {
            rest = &rest[at + "#[cfg(test)]".len()..];
            let item = rest.trim_start();
            let item = item.strip_prefix("pub ").unwrap_or(item);
            if let Some(decl) = item.strip_prefix("mod ") {
                let name: String = decl
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if decl[name.len()..].trim_start().starts_with(';') {
                    out.insert(dir.join(format!("{name}.rs")));
                    out.insert(dir.join(&name));
                }
            }
        }
    }
    out
}

/// The top-level modules a text names through `crate::` (`crate::a::b`, `crate::{a, b::c}`).
fn imported(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level names of the group: after `{` and after each `,` at depth 0.
            let mut depth = 0usize;
            let mut start = true;
            let mut name = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && (c.is_alphanumeric() || c == '_') => name.push(c),
                    _ if start && !name.is_empty() => {
                        out.insert(std::mem::take(&mut name));
                        start = false;
                    }
                    _ => {}
                }
            }
            if !name.is_empty() {
                out.insert(name);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// The top-level modules a file at `depth` (1 for `src/x.rs`, 2 for `src/x/y.rs`) names by
/// climbing to the crate root with `super::` (`super::super::api` from `src/x/y.rs`).
fn climbed(text: &str, depth: usize) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("super::") {
        let before = rest[..at].chars().next_back();
        let mut tail = &rest[at..];
        let mut ups = 0;
        while let Some(t) = tail.strip_prefix("super::") {
            ups += 1;
            tail = t;
        }
        rest = tail;
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') || ups < depth {
            continue;
        }
        let name: String = tail
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

/// The top-level module a file belongs to (`src/events/codec.rs` → `events`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next().expect("a component");
    let s = first.as_os_str().to_string_lossy();
    s.strip_suffix(".rs").unwrap_or(&s).to_string()
}

#[test]
fn imports_run_down_the_layers_only() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    all.sort();
    let test_only = test_only_files(&src, &all);
    let mut problems: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in &all {
        let module = module_of(&src, file);
        if module == "lib" || module == "main" {
            continue;
        }
        let rel = file
            .strip_prefix(&src)
            .expect("under src")
            .display()
            .to_string();
        if test_only.iter().any(|t| file.starts_with(t)) {
            continue;
        }
        let Some(own) = layer_of(&module) else {
            problems.entry(rel).or_default().push(format!(
                "module `{module}` is in no layer: add it to LAYERS"
            ));
            continue;
        };
        let text = without_test_code(&std::fs::read_to_string(file).expect("read"));
        let depth = file
            .strip_prefix(&src)
            .expect("under src")
            .components()
            .count();
        for target in imported(&text).into_iter().chain(climbed(&text, depth)) {
            if target == module {
                continue;
            }
            match layer_of(&target) {
                Some(l) if l < own => {}
                Some(l) => problems.entry(rel.clone()).or_default().push(format!(
                    "imports crate::{target} (layer {l}) from `{module}` (layer {own}): {}",
                    if l == own {
                        "same layer, which can close a loop"
                    } else {
                        "upward"
                    }
                )),
                None => problems
                    .entry(rel.clone())
                    .or_default()
                    .push(format!("imports crate::{target}, which is in no layer")),
            }
        }
    }
    let report: Vec<String> = problems
        .iter()
        .flat_map(|(file, ps)| ps.iter().map(move |p| format!("src/{file}: {p}")))
        .collect();
    assert!(
        report.is_empty(),
        "{} imports break the layers:\n{}",
        report.len(),
        report.join("\n")
    );
}

#[test]
fn the_scanner_reads_paths_groups_and_skips_test_code() {
    let text = "use crate::events::codec;\nuse crate::{sample::Sample, detect::{rules, link}};\n\
                fn f() { crate::clock::now_ms(); }\n#[cfg(test)]\nmod tests { use crate::sim; }\n";
    let got = imported(&without_test_code(text));
    let want: BTreeSet<String> = ["events", "sample", "detect", "clock"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(got, want);
    assert!(layer_of("cli") > layer_of("sample"));
    // From src/x/y.rs, two `super::` reach the crate root; one stays inside `x`.
    let up = "use super::super::api::auth;\nuse super::sibling;\n";
    assert_eq!(climbed(up, 2), ["api".to_string()].into_iter().collect());
    assert!(climbed(up, 3).is_empty());
}
