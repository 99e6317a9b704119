//! Atomic file writes: write a sibling temp file, flush it to disk, rename over the target.
//!
//! A reader (or a resumed run) therefore sees either the old file or the new one, never a
//! half-written one, whenever the process is killed.

use std::io::Write;
use std::path::Path;

use crate::error::{IoContext, Result};

/// Write `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).at(dir)?;
    tmp.write_all(bytes).at(path)?;
    tmp.as_file().sync_all().at(path)?;
    tmp.persist(path).map_err(|e| crate::error::Error::io(path, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.txt");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn atomic_write_into_missing_folder_names_it() {
        let err = write_atomic(Path::new("/nonexistent-ddmlab/x/f.txt"), b"x").unwrap_err().to_string();
        assert!(err.contains("/nonexistent-ddmlab/x"), "{err}");
    }
}
