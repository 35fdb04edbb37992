//! The tables, and the fencing protocol's SQL: what a writer checks in its transaction, and
//! what a node taking or giving up leases waits for.
//!
//! Fencing without locking lease rows: every writing transaction of a node holds a shared
//! advisory lock named after the node (`FENCE_LOCK`, `hashtext(node)`) and then reads the
//! leases it writes under. A node taking leases from another first takes that node's lock
//! exclusively, which waits for the other's transactions in flight, and holds it until its
//! takeover commits; the other's later transactions then read the new holder and are refused.
//! A node releasing its own leases does the same with its own lock.

/// The advisory lock class of the fencing lock (the key is `hashtext(node id)`).
pub const FENCE_LOCK: i32 = 0x1b_5e_00;

/// The tables, created once per schema (under an advisory lock: nodes start together).
pub const SCHEMA_SQL: &str = r#"
CREATE TABLE IF NOT EXISTS meta (id INT PRIMARY KEY, last_offset BIGINT NOT NULL);
INSERT INTO meta VALUES (1, 0) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS events (
    off BIGINT PRIMARY KEY,
    stream_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    frame BYTEA NOT NULL,
    epoch BIGINT NOT NULL DEFAULT 0,
    CONSTRAINT events_stream_seq UNIQUE (stream_id, seq));
CREATE TABLE IF NOT EXISTS snapshots (stream_id TEXT PRIMARY KEY, seq BIGINT NOT NULL, state BYTEA NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (name TEXT PRIMARY KEY, off BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS views (view TEXT NOT NULL, key BYTEA NOT NULL, value BYTEA NOT NULL, PRIMARY KEY (view, key));
CREATE TABLE IF NOT EXISTS members (node_id TEXT PRIMARY KEY, url TEXT NOT NULL, heartbeat_at TIMESTAMPTZ NOT NULL);
CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, epoch BIGINT NOT NULL, expires_at TIMESTAMPTZ NOT NULL);
-- The directory: every stream with an event, and the lease it is written under (NULL: not
-- known yet, set when a node with fencing opens the store).
CREATE TABLE IF NOT EXISTS streams (stream_id TEXT PRIMARY KEY, lease TEXT);
CREATE INDEX IF NOT EXISTS streams_lease ON streams (lease);
INSERT INTO streams (stream_id) SELECT DISTINCT stream_id FROM events
 WHERE NOT EXISTS (SELECT 1 FROM streams) ON CONFLICT DO NOTHING;
-- Raw samples in batches (`batch`): one row per group commit and partition, in the segment
-- encoding; `epochs` holds the events' lease epochs as runs [epoch, count, ...]. The data is
-- compressed already: stored out of line without compression. `max_span` bounds any batch's
-- last_off - first_off, so a read of an offset window finds its batches by first_off.
CREATE TABLE IF NOT EXISTS batches (
    first_off BIGINT PRIMARY KEY,
    last_off BIGINT NOT NULL,
    part SMALLINT NOT NULL,
    epochs BIGINT[] NOT NULL,
    data BYTEA NOT NULL);
ALTER TABLE batches ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE INDEX IF NOT EXISTS batches_part ON batches (part, last_off);
ALTER TABLE meta ADD COLUMN IF NOT EXISTS max_span BIGINT NOT NULL DEFAULT 0;
-- Where a stream's packed events start (NULL: it has none), and, with a snapshot, an offset
-- below every event after it: a stream's reads start there in its partition.
ALTER TABLE streams ADD COLUMN IF NOT EXISTS packed_from BIGINT;
ALTER TABLE snapshots ADD COLUMN IF NOT EXISTS tail_off BIGINT;
-- Offsets: a sequence (no lock held to COMMIT; tailers read up to the watermark). A store
-- made with the counter row goes on from it.
CREATE SEQUENCE IF NOT EXISTS event_offsets AS BIGINT MINVALUE 1 CACHE 1;
SELECT setval('event_offsets', m.n)
  FROM (SELECT greatest((SELECT last_offset FROM meta WHERE id = 1),
                        (SELECT coalesce(max(off), 0) FROM events)) AS n) m
 WHERE m.n > 0 AND NOT (SELECT is_called FROM event_offsets);
CREATE OR REPLACE FUNCTION fence_check(node TEXT, names TEXT[], epochs BIGINT[]) RETURNS void
LANGUAGE plpgsql AS $f$
DECLARE
  bad RECORD;
BEGIN
  PERFORM pg_advisory_xact_lock_shared(1793536, hashtext(node));
  SELECT n.name, l.holder, l.epoch AS held, n.epoch AS wanted,
         coalesce(l.expires_at > clock_timestamp(), false) AS live
    INTO bad
    FROM unnest(names, epochs) AS n(name, epoch) LEFT JOIN leases l ON l.name = n.name
   WHERE l.name IS NULL OR l.holder <> node OR l.epoch <> n.epoch
      OR l.expires_at <= clock_timestamp()
   LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'IBS01', DETAIL = bad.name,
      MESSAGE = CASE WHEN bad.holder = node AND bad.live
                     THEN format('held at epoch %s, not %s', bad.held, bad.wanted)
                     ELSE 'lapsed or taken by another node' END;
  END IF;
END $f$;
"#;

/// The SQLSTATE `fence_check` raises.
pub const FENCED_SQLSTATE: &str = "IBS01";

/// In a transaction that takes the leases `$1` for node `$2`: wait for the transactions in
/// flight of every other node holding one of them (in a fixed order: takers never deadlock).
pub const LOCK_HOLDERS_SQL: &str = "SELECT pg_advisory_xact_lock(1793536, hashtext(h)) FROM \
     (SELECT DISTINCT holder AS h FROM leases WHERE name = ANY($1) AND holder <> '' \
      AND holder <> $2 ORDER BY 1) x";

/// In a transaction that gives up node `$1`'s leases: wait for its own writes in flight.
pub const LOCK_SELF_SQL: &str = "SELECT pg_advisory_xact_lock(1793536, hashtext($1))";

/// The PostgreSQL server tests run on (`PG_TEST_URL`, set by scripts/test). Without it the
/// PostgreSQL tests are skipped, unless `REQUIRE_PG_TESTS=1` (then they fail).
#[doc(hidden)]
pub fn test_url() -> Option<String> {
    match std::env::var("PG_TEST_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("REQUIRE_PG_TESTS").as_deref() != Ok("1"),
                "REQUIRE_PG_TESTS=1 but PG_TEST_URL is not set"
            );
            eprintln!("PG_TEST_URL is not set: skipping a PostgreSQL test");
            None
        }
    }
}

/// Whether `schema` is a plain identifier (it is put into SQL and the search path).
pub fn valid_schema(schema: &str) -> bool {
    !schema.is_empty()
        && schema.len() <= 63
        && schema.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_class_is_the_same_everywhere() {
        let class = FENCE_LOCK.to_string();
        assert_eq!(class, "1793536");
        for sql in [SCHEMA_SQL, LOCK_HOLDERS_SQL, LOCK_SELF_SQL] {
            assert!(sql.contains(&format!("({class},")), "{sql}");
        }
    }
}
