//! Helpers for the tests on PostgreSQL: the server scripts/test started, and the shared log
//! read back whole.

use ibsight::events::pg_store::PgStore;
use ibsight::events::EventStore;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Run `scripts/pg-server ARGS…` (a private server: start, standby, crash, promote, stop) and
/// return what it printed (the URL, for start and standby).
pub fn pg_server(args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pg-server");
    let out = Command::new(script)
        .args(args)
        .output()
        .expect("scripts/pg-server");
    assert!(
        out.status.success(),
        "pg-server {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Stops the servers it started, by their PIDs (scripts/pg-server stop), whatever happens.
pub struct Servers(pub Vec<PathBuf>);

impl Drop for Servers {
    fn drop(&mut self) {
        for dir in &self.0 {
            let _ = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pg-server"))
                .arg("stop")
                .arg(dir)
                .status();
        }
    }
}

/// The server scripts/test started (`PG_TEST_URL`); `None` skips the test.
pub fn pg_url() -> Option<String> {
    ibsight::events::pg_store::test_url()
}

/// The log, read back: MetricObserved per stream and the streams of the AlertRaised events.
/// Asserts that every stream's seqs run 1, 2, 3… with no gap and no repeat.
pub fn log_counts(store: &PgStore) -> (BTreeMap<String, usize>, Vec<String>) {
    let mut samples: BTreeMap<String, usize> = BTreeMap::new();
    let mut heads: BTreeMap<String, u64> = BTreeMap::new();
    let mut alerts = Vec::new();
    let mut from = 1;
    loop {
        let page = store.read_from(from, 50_000).expect("read the log");
        let Some(last) = page.last() else { break };
        from = last.offset + 1;
        for e in page {
            let r = &e.record;
            let head = heads.entry(r.stream_id.clone()).or_insert(0);
            assert_eq!(r.seq, *head + 1, "{}: seqs continue", r.stream_id);
            *head = r.seq;
            match &*r.event_type {
                "MetricObserved" => *samples.entry(r.stream_id.clone()).or_default() += 1,
                "AlertRaised" => alerts.push(r.stream_id.clone()),
                _ => {}
            }
        }
    }
    (samples, alerts)
}
