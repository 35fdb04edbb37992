//! The embedded engines' common table layout, read once for both: each engine keeps its
//! stream index, snapshots, checkpoints and views in ordered key-value trees (fjall
//! keyspaces, sled trees), and implements [`Tree`] for them; the reads below are the
//! engines' `EventStore` reads over those trees.

use super::store::{engine_err, head_of, keys, Snapshot, StoreError, ViewEntry};

/// One ordered key-value tree of an embedded engine.
pub trait Tree {
    type Bytes: AsRef<[u8]>;
    type Error: std::fmt::Display;

    fn get_bytes(&self, key: &[u8]) -> Result<Option<Self::Bytes>, Self::Error>;

    /// The last key that starts with `prefix`, if any.
    fn last_key(&self, prefix: Vec<u8>) -> Option<Result<Self::Bytes, Self::Error>>;

    /// Every entry from `start` on, in key order.
    fn entries_from(
        &self,
        start: Vec<u8>,
    ) -> impl Iterator<Item = Result<(Self::Bytes, Self::Bytes), Self::Error>>;
}

/// The stream's snapshot in the snapshots tree.
pub fn snapshot(snapshots: &impl Tree, stream_id: &str) -> Result<Option<Snapshot>, StoreError> {
    let v = snapshots
        .get_bytes(stream_id.as_bytes())
        .map_err(engine_err)?;
    Ok(keys::snapshot_of(stream_id, v))
}

/// The named checkpoint in the checkpoints tree.
pub fn checkpoint(checkpoints: &impl Tree, name: &str) -> Result<Option<u64>, StoreError> {
    let v = checkpoints.get_bytes(name.as_bytes()).map_err(engine_err)?;
    Ok(keys::checkpoint_of(v))
}

/// Up to `limit` entries of `view` from `from_key` on, in the views tree.
pub fn scan_view(
    views: &impl Tree,
    view: &str,
    from_key: &[u8],
    limit: usize,
) -> Result<Vec<ViewEntry>, StoreError> {
    let items = views
        .entries_from(keys::view_key(view, from_key))
        .map(|i| i.map_err(engine_err));
    keys::view_entries(view, items, limit)
}

/// The last seq of the stream in the index tree, if it has any entry there.
pub fn index_head(index: &impl Tree, stream_id: &str) -> Result<Option<u64>, StoreError> {
    match index.last_key(keys::stream_prefix(stream_id)) {
        Some(key) => {
            let key = key.map_err(engine_err)?;
            let seq = keys::index_seq(key.as_ref());
            Ok(Some(seq.ok_or_else(|| engine_err("index key too short"))?))
        }
        None => Ok(None),
    }
}

/// The stream's head: its last indexed seq, `more` (events kept outside the index), or its
/// snapshot's seq, whichever is highest.
pub fn stream_head(
    index: &impl Tree,
    snapshots: &impl Tree,
    stream_id: &str,
    more: Option<u64>,
) -> Result<u64, StoreError> {
    let indexed = index_head(index, stream_id)?.max(more);
    Ok(head_of(indexed, snapshot(snapshots, stream_id)?.as_ref()))
}

impl Tree for fjall::Keyspace {
    type Bytes = fjall::Slice;
    type Error = fjall::Error;

    fn get_bytes(&self, key: &[u8]) -> Result<Option<Self::Bytes>, Self::Error> {
        self.get(key)
    }

    fn last_key(&self, prefix: Vec<u8>) -> Option<Result<Self::Bytes, Self::Error>> {
        self.prefix(prefix).next_back().map(|g| g.key())
    }

    fn entries_from(
        &self,
        start: Vec<u8>,
    ) -> impl Iterator<Item = Result<(Self::Bytes, Self::Bytes), Self::Error>> {
        self.range(start..).map(|g| g.into_inner())
    }
}

impl Tree for sled::Tree {
    type Bytes = sled::IVec;
    type Error = sled::Error;

    fn get_bytes(&self, key: &[u8]) -> Result<Option<Self::Bytes>, Self::Error> {
        self.get(key)
    }

    fn last_key(&self, prefix: Vec<u8>) -> Option<Result<Self::Bytes, Self::Error>> {
        self.scan_prefix(prefix)
            .next_back()
            .map(|i| i.map(|(k, _)| k))
    }

    fn entries_from(
        &self,
        start: Vec<u8>,
    ) -> impl Iterator<Item = Result<(Self::Bytes, Self::Bytes), Self::Error>> {
        self.range(start..)
    }
}
