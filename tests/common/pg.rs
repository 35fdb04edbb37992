//! Helpers for the tests on PostgreSQL: the server scripts/test started, and the shared log
//! read back whole.

use ibsight::events::pg_store::PgStore;
use ibsight::events::EventStore;
use std::collections::BTreeMap;

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
