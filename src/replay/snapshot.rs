//! A private copy of a data directory, so that a replay never touches the live log: opening a
//! store can write (journal recovery, flushes on close), and a running server holds its lock.
//! The engines' files are written append-only or replaced whole, so a copy taken while a
//! server writes is a state the engine recovers from (a torn journal tail is cut at its last
//! valid entry, like after a crash). A file removed mid-copy (compaction) restarts the copy.

use std::io;
use std::path::Path;

/// Copy `dir` into a fresh temporary directory.
pub fn copy(dir: &Path) -> io::Result<tempfile::TempDir> {
    let mut last_error = None;
    for _ in 0..5 {
        let tmp = tempfile::Builder::new()
            .prefix("ibsight-replay")
            .tempdir()?;
        match copy_tree(dir, tmp.path()) {
            Ok(()) => return Ok(tmp),
            Err(e) if e.kind() == io::ErrorKind::NotFound => last_error = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_error.unwrap_or_else(|| io::Error::other("copy kept failing")))
}

fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_nested_files_and_leaves_the_source_alone() {
        let src = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(src.path().join("a/b")).expect("mkdir");
        std::fs::write(src.path().join("a/b/f"), b"xyz").expect("write");
        std::fs::write(src.path().join("top"), b"1").expect("write");
        let copy = copy(src.path()).expect("copy");
        assert_eq!(
            std::fs::read(copy.path().join("a/b/f")).expect("read"),
            b"xyz"
        );
        assert_eq!(std::fs::read(copy.path().join("top")).expect("read"), b"1");
        assert_ne!(copy.path(), src.path());
    }
}
