//! Build-time provenance: the git commit the library is built from, whether its sources differ
//! from that commit, and a hash of the library's own source files, so that every run folder can
//! say which code made it (see `src/store/provenance.rs`).
//!
//! The dirty flag covers what the binary is built from: tracked files under `crates/`, and the
//! workspace's `Cargo.toml` and `Cargo.lock`. Outside a git checkout (a source tarball) the
//! commit is `unknown`; the source hash is computed all the same.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

fn git(root: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git").arg("-C").arg(root).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Every file under `dir`, sorted, relative to `dir`.
fn files(dir: &Path, prefix: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let rel = prefix.join(entry.file_name());
        if path.is_dir() {
            files(&path, &rel, out);
        } else {
            out.push(rel);
        }
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let root = manifest.join("../..");
    let src = manifest.join("src");

    // The library's sources, hashed by path and content in sorted order.
    let mut list = Vec::new();
    files(&src, Path::new(""), &mut list);
    list.sort();
    let mut hasher = Sha256::new();
    for rel in &list {
        hasher.update(rel.to_string_lossy().as_bytes());
        hasher.update([0]);
        hasher.update(std::fs::read(src.join(rel)).unwrap_or_default());
        hasher.update([0]);
    }
    let digest = hasher.finalize();
    let src_hash: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();

    let commit = git(&root, &["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty =
        git(&root, &["status", "--porcelain", "--untracked-files=no", "--", "crates", "Cargo.toml", "Cargo.lock"])
            .map(|s| !s.is_empty())
            .unwrap_or(false);

    println!("cargo:rustc-env=DDMLAB_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=DDMLAB_GIT_DIRTY={dirty}");
    println!("cargo:rustc-env=DDMLAB_SRC_HASH={src_hash}");
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=build.rs");
    for p in ["../../Cargo.toml", "../../Cargo.lock", "../ddmlab-cli/src"] {
        println!("cargo:rerun-if-changed={p}");
    }
    if let Some(git_dir) = git(&root, &["rev-parse", "--absolute-git-dir"]) {
        let git_dir = PathBuf::from(git_dir);
        for p in ["HEAD", "index"] {
            println!("cargo:rerun-if-changed={}", git_dir.join(p).display());
        }
        if let Some(head_ref) = git(&root, &["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={}", git_dir.join(head_ref).display());
        }
    }
}
