//! Which code, on which machine, made a result: the binary's git commit and dirty flag and a hash
//! of the library's sources (all three from build time, `build.rs`), with the CPU model, the
//! worker threads and the compute device of the process.
//!
//! Every stage that writes into a run folder (training and each resume of it, a tokenizer fit,
//! a probe, an FID evaluation) appends one line to `RUN/provenance.jsonl`; a study's report reads
//! them back, lists the commits, and flags runs whose library sources differ.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};

/// The git commit the binary was built from (`unknown` outside a checkout).
pub const COMMIT: &str = env!("DDMLAB_GIT_COMMIT");

/// Whether the binary's sources differed from [`COMMIT`] when it was built.
pub const DIRTY: bool = const_str_eq(env!("DDMLAB_GIT_DIRTY"), "true");

/// A hash of `crates/ddmlab/src` (paths and contents) at build time: equal hashes, equal library.
pub const SRC_HASH: &str = env!("DDMLAB_SRC_HASH");

const fn const_str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The commit with `-dirty` appended when the sources differed from it.
pub fn commit_label() -> String {
    label(COMMIT, DIRTY)
}

fn label(commit: &str, dirty: bool) -> String {
    let short: String = commit.chars().take(12).collect();
    if dirty { format!("{short}-dirty") } else { short }
}

/// One stage's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// What ran: `train`, `tokenizer`, `probe`, `fid`, ...
    pub stage: String,
    /// A few words on what the stage did (steps, protocol).
    #[serde(default)]
    pub detail: String,
    pub commit: String,
    pub dirty: bool,
    pub src_hash: String,
    pub version: String,
    pub cpu: String,
    pub threads: usize,
    pub device: String,
    /// Seconds since the Unix epoch when the stage started.
    pub started: u64,
}

impl Provenance {
    /// The record of a stage run by this process on `device` (its `Debug` form).
    pub fn now(stage: &str, detail: impl Into<String>, device: &impl std::fmt::Debug) -> Provenance {
        Provenance {
            stage: stage.into(),
            detail: detail.into(),
            commit: COMMIT.into(),
            dirty: DIRTY,
            src_hash: SRC_HASH.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            cpu: cpu_model(),
            threads: rayon::current_num_threads(),
            device: format!("{device:?}"),
            started: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        }
    }

    /// The commit, short, with `-dirty` when it was.
    pub fn commit_label(&self) -> String {
        label(&self.commit, self.dirty)
    }
}

/// The CPU's model name (`/proc/cpuinfo` on Linux; the architecture elsewhere).
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name") || l.starts_with("Model"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// `RUN/provenance.jsonl`.
pub fn path(run: &Path) -> PathBuf {
    run.join("provenance.jsonl")
}

/// Append `record` to the run folder's provenance (one JSON line; the folder must exist).
pub fn record(run: &Path, record: &Provenance) -> Result<()> {
    let path = path(run);
    // A line torn by a kill is closed first, so that it stays the only bad line.
    let torn = std::fs::read(&path).map(|b| b.last().is_some_and(|&c| c != b'\n')).unwrap_or(false);
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path).at(&path)?;
    let line = serde_json::to_string(record).expect("a provenance record serialises");
    writeln!(file, "{}{line}", if torn { "\n" } else { "" }).at(&path)?;
    file.sync_data().at(&path)
}

/// Every record of a run folder (none for a folder made before provenance was recorded). A line
/// cut short by a kill mid-write (the last line, or one a later record closed) is skipped when it
/// is a prefix of a JSON object; any other bad line is an error naming the file.
pub fn read(run: &Path) -> Result<Vec<Provenance>> {
    let path = path(run);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(&path).at(&path)?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str(line) {
            Ok(p) => out.push(p),
            Err(e) if e.is_eof() => {}
            Err(e) => return Err(Error::format(&path, format!("line {}: not a provenance record ({e})", i + 1))),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binary_knows_its_commit_and_source_hash() {
        assert!(COMMIT == "unknown" || (COMMIT.len() == 40 && COMMIT.chars().all(|c| c.is_ascii_hexdigit())));
        assert_eq!(SRC_HASH.len(), 16);
        assert!(commit_label().len() >= 7);
    }

    #[test]
    fn records_append_and_read_back_and_a_torn_last_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let a = Provenance::now("train", "steps 0-600", &"Flex");
        let b = Provenance::now("probe", "avg-pool", &"Flex");
        record(dir.path(), &a).unwrap();
        record(dir.path(), &b).unwrap();
        assert_eq!(read(dir.path()).unwrap(), vec![a.clone(), b]);
        // A kill in the middle of a write leaves a partial last line.
        let mut f = std::fs::OpenOptions::new().append(true).open(path(dir.path())).unwrap();
        f.write_all(b"{\"stage\":\"fi").unwrap();
        assert_eq!(read(dir.path()).unwrap().len(), 2);
        record(dir.path(), &a).unwrap();
        assert_eq!(read(dir.path()).unwrap().len(), 3, "the next record starts on a line of its own");
        // A bad line in the middle is corruption, named.
        std::fs::write(path(dir.path()), "not json\n{}\n").unwrap();
        let err = read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("provenance.jsonl") && err.contains("line 1"), "{err}");
        assert_eq!(a.cpu, cpu_model());
    }
}
