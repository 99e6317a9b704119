//! The numpy files that generation metrics are exchanged in, read and written so that ddmlab's
//! numbers and the PyTorch tools' can be put side by side:
//!
//! - **statistics** (pytorch-fid `--save-stats`, clean-fid): an `.npz` with `mu` `[d]` and
//!   `sigma` `[d, d]` (float64, or float32), the mean and covariance of Inception features;
//! - **sample batches** (ADM's `evaluator.py`, DiT's `sample_ddp.py`): an `.npz` whose `arr_0`
//!   is `[N, H, W, C]` uint8 (`C` = 1 or 3; `[N, H, W]` is read as grey), with the class labels
//!   as `arr_1` `[N]` when the sampler was class-conditional.
//!
//! Readers check every declared size against the bytes actually present before allocating, and
//! name the file and the array in every error.

use std::io::{Cursor, Read};
use std::path::Path;

use nalgebra::{DMatrix, DVector};
use npyz::WriterBuilder;
use npyz::zip::{ZipArchive, write::FileOptions};

use super::frechet::Stats;
use crate::data::RawImage;
use crate::error::{Error, IoContext, Result};

/// One array of an `.npz`: its numpy type string (`<f8`, `|u1`, ...), shape and raw bytes
/// (little- or big-endian as the type string says).
struct Array {
    dtype: String,
    shape: Vec<usize>,
    fortran: bool,
    /// Bytes after the header.
    data_bytes: usize,
    file: npyz::NpyFile<Cursor<Vec<u8>>>,
}

/// An opened `.npz`.
struct Npz<'a> {
    path: &'a Path,
    zip: ZipArchive<Cursor<Vec<u8>>>,
}

impl<'a> Npz<'a> {
    fn open(path: &'a Path) -> Result<Self> {
        let raw = std::fs::read(path).at(path)?;
        let zip = ZipArchive::new(Cursor::new(raw))
            .map_err(|e| Error::format(path, format!("not an .npz file (a zip archive of .npy arrays): {e}")))?;
        Ok(Npz { path, zip })
    }

    /// The names of the arrays it holds.
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> =
            self.zip.file_names().filter_map(|f| f.strip_suffix(".npy").map(str::to_string)).collect();
        names.sort();
        names
    }

    /// Array `name`, or `None` when the archive has no such entry.
    fn array(&mut self, name: &str) -> Result<Option<Array>> {
        let path = self.path;
        let bad = |msg: String| Error::format(path, format!("array `{name}`: {msg}"));
        let mut entry = match self.zip.by_name(&format!("{name}.npy")) {
            Ok(e) => e,
            Err(npyz::zip::result::ZipError::FileNotFound) => return Ok(None),
            Err(e) => return Err(bad(format!("unreadable zip entry ({e})"))),
        };
        // No allocation from the declared size: read what is there.
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(|e| bad(format!("unreadable zip entry ({e})")))?;
        let total = bytes.len();
        let mut cursor = Cursor::new(bytes);
        // The header parser multiplies the declared dimensions unchecked: a corrupt header is an
        // error here, whatever the build's overflow checks.
        let header =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| npyz::NpyHeader::from_reader(&mut cursor)))
                .map_err(|_| bad("corrupt .npy header".into()))?
                .map_err(|e| bad(format!("not a .npy array ({e})")))?;
        let data_bytes = total.saturating_sub(cursor.position() as usize);
        let file = npyz::NpyFile::with_header(header, cursor);
        let dtype = match file.dtype() {
            npyz::DType::Plain(t) => t.to_string(),
            other => return Err(bad(format!("a structured array ({}), expected plain numbers", other.descr()))),
        };
        let shape: Vec<usize> = file.shape().iter().map(|&d| d as usize).collect();
        let fortran = file.order() == npyz::Order::Fortran;
        Ok(Some(Array { dtype, shape, fortran, data_bytes, file }))
    }

    /// Array `name`, which must be present.
    fn required(&mut self, name: &str, what: &str) -> Result<Array> {
        match self.array(name)? {
            Some(a) => Ok(a),
            None => {
                Err(Error::format(self.path, format!("no `{name}` array ({what}); the file holds {:?}", self.names())))
            }
        }
    }
}

impl Array {
    /// The element count, when the bytes behind the header hold that many `item`-byte values.
    fn checked_len(&self, item: usize, path: &Path, name: &str) -> Result<usize> {
        let n = self.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        match n.and_then(|n| n.checked_mul(item).map(|b| (n, b))) {
            Some((n, bytes)) if bytes <= self.data_bytes => Ok(n),
            _ => Err(Error::format(
                path,
                format!(
                    "array `{name}`: shape {:?} of {} needs more bytes than the file holds ({}): truncated?",
                    self.shape, self.dtype, self.data_bytes
                ),
            )),
        }
    }

    /// The values as f64 (from `f8` or `f4`), in C order.
    fn into_f64(self, path: &Path, name: &str) -> Result<Vec<f64>> {
        let bad = |msg: String| Error::format(path, format!("array `{name}`: {msg}"));
        let kind = self.dtype.trim_start_matches(['<', '>', '|', '=']).to_string();
        let item = match kind.as_str() {
            "f8" => 8,
            "f4" => 4,
            _ => return Err(bad(format!("dtype {}, expected float64 or float32", self.dtype))),
        };
        self.checked_len(item, path, name)?;
        let values = if item == 8 {
            self.file.into_vec::<f64>()
        } else {
            self.file.into_vec::<f32>().map(|v| v.into_iter().map(f64::from).collect())
        };
        values.map_err(|e| bad(format!("unreadable values ({e})")))
    }
}

/// The names of the arrays in an `.npz` (sorted).
pub fn array_names(path: &Path) -> Result<Vec<String>> {
    Ok(Npz::open(path)?.names())
}

/// Read pytorch-fid / clean-fid statistics (`mu`, `sigma`). The sample count is not stored in
/// that format: `n` is 0.
pub fn read_stats(path: &Path) -> Result<Stats> {
    let mut npz = Npz::open(path)?;
    let mu = npz.required("mu", "the feature mean")?;
    let sigma = npz.required("sigma", "the feature covariance")?;
    let d = match mu.shape[..] {
        [d] if d > 0 => d,
        _ => return Err(Error::format(path, format!("`mu` has shape {:?}, expected [d]", mu.shape))),
    };
    if sigma.shape != [d, d] {
        return Err(Error::format(
            path,
            format!("`sigma` has shape {:?}, expected [{d}, {d}] to match `mu`", sigma.shape),
        ));
    }
    // A covariance is symmetric: Fortran order reads the same.
    let mu = mu.into_f64(path, "mu")?;
    let sigma = sigma.into_f64(path, "sigma")?;
    if mu.iter().chain(&sigma).any(|v| !v.is_finite()) {
        return Err(Error::format(path, "`mu` or `sigma` holds a NaN or infinity"));
    }
    Ok(Stats { mu: DVector::from_vec(mu), sigma: DMatrix::from_row_slice(d, d, &sigma), n: 0 })
}

/// Write statistics as pytorch-fid does (`np.savez(path, mu=mu, sigma=sigma)`, float64),
/// atomically.
pub fn write_stats(path: &Path, stats: &Stats) -> Result<()> {
    let d = stats.mu.len();
    let sigma: Vec<f64> = (0..d).flat_map(|i| (0..d).map(move |j| (i, j))).map(|(i, j)| stats.sigma[(i, j)]).collect();
    let bytes = write_npz(path, |npz| {
        put(npz, "mu", &[d], stats.mu.iter().copied())?;
        put(npz, "sigma", &[d, d], sigma.into_iter())
    })?;
    crate::atomic::write_atomic(path, &bytes)
}

/// A batch of samples as ADM writes it: images, and labels when there are any.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleBatch {
    pub images: Vec<RawImage>,
    pub labels: Option<Vec<i64>>,
}

/// Read an ADM-style sample batch: `arr_0` `[N, H, W, C]` (or `[N, H, W]`) uint8, labels from
/// `arr_1` when present; the first `limit` images (0: all).
pub fn read_samples(path: &Path, limit: usize) -> Result<SampleBatch> {
    let mut npz = Npz::open(path)?;
    let arr = npz.required("arr_0", "the sample images, [N, H, W, C] uint8")?;
    if arr.dtype.trim_start_matches(['<', '>', '|', '=']) != "u1" {
        return Err(Error::format(
            path,
            format!("`arr_0` has dtype {}, expected uint8 (|u1) images in 0..=255", arr.dtype),
        ));
    }
    let (n, h, w, c) = match arr.shape[..] {
        [n, h, w] => (n, h, w, 1),
        [n, h, w, c] if c == 1 || c == 3 => (n, h, w, c),
        _ => {
            return Err(Error::format(
                path,
                format!("`arr_0` has shape {:?}, expected [N, H, W, C] with C = 1 or 3 (or [N, H, W])", arr.shape),
            ));
        }
    };
    if h == 0 || w == 0 {
        return Err(Error::format(path, format!("`arr_0` has shape {:?}: empty images", arr.shape)));
    }
    if arr.fortran {
        return Err(Error::format(path, "`arr_0` is in Fortran order; save it C-contiguous (np.ascontiguousarray)"));
    }
    arr.checked_len(1, path, "arr_0")?;
    let values =
        arr.file.into_vec::<u8>().map_err(|e| Error::format(path, format!("array `arr_0`: unreadable ({e})")))?;
    let take = if limit > 0 { limit.min(n) } else { n };
    let images = values
        .chunks_exact(h * w * c)
        .take(take)
        .map(|hwc| {
            // HWC -> CHW
            let pixels = (0..c).flat_map(|ch| (0..h * w).map(move |p| hwc[p * c + ch])).collect();
            RawImage { channels: c, height: h, width: w, pixels }
        })
        .collect();
    let labels = match npz.array("arr_1")? {
        None => None,
        Some(a) => {
            if a.shape != [n] {
                return Err(Error::format(path, format!("`arr_1` (labels) has shape {:?}, expected [{n}]", a.shape)));
            }
            let kind = a.dtype.trim_start_matches(['<', '>', '|', '=']).to_string();
            let item = match kind.as_str() {
                "i8" => 8,
                "i4" => 4,
                _ => return Err(Error::format(path, format!("`arr_1` has dtype {}, expected int64 labels", a.dtype))),
            };
            a.checked_len(item, path, "arr_1")?;
            let read = if item == 8 {
                a.file.into_vec::<i64>()
            } else {
                a.file.into_vec::<i32>().map(|v| v.into_iter().map(i64::from).collect())
            };
            let mut labels = read.map_err(|e| Error::format(path, format!("array `arr_1`: unreadable ({e})")))?;
            labels.truncate(take);
            Some(labels)
        }
    };
    Ok(SampleBatch { images, labels })
}

/// Write an ADM-style sample batch (`arr_0` `[N, H, W, C]` uint8, `arr_1` int64 labels),
/// atomically. Every image must have the first one's size.
pub fn write_samples(path: &Path, batch: &SampleBatch) -> Result<()> {
    let Some(first) = batch.images.first() else {
        return Err(Error::format(path, "a sample batch needs at least one image"));
    };
    let (c, h, w) = (first.channels, first.height, first.width);
    if let Some(odd) = batch.images.iter().find(|i| (i.channels, i.height, i.width) != (c, h, w)) {
        return Err(Error::format(
            path,
            format!("images of different sizes: {c}x{h}x{w} and {}x{}x{}", odd.channels, odd.height, odd.width),
        ));
    }
    if let Some(labels) = &batch.labels
        && labels.len() != batch.images.len()
    {
        return Err(Error::format(path, format!("{} images but {} labels", batch.images.len(), labels.len())));
    }
    let n = batch.images.len();
    let hwc = batch
        .images
        .iter()
        .flat_map(|img| (0..h * w).flat_map(move |p| (0..c).map(move |ch| img.pixels[ch * h * w + p])));
    let bytes = write_npz(path, |npz| {
        put(npz, "arr_0", &[n, h, w, c], hwc)?;
        if let Some(labels) = &batch.labels {
            put(npz, "arr_1", &[n], labels.iter().copied())?;
        }
        Ok(())
    })?;
    crate::atomic::write_atomic(path, &bytes)
}

type Writer = npyz::npz::NpzWriter<Cursor<Vec<u8>>>;

/// An `.npz` built in memory by `fill` (uncompressed, as `np.savez`).
fn write_npz(path: &Path, fill: impl FnOnce(&mut Writer) -> std::io::Result<()>) -> Result<Vec<u8>> {
    let fail = |e: std::io::Error| Error::format(path, format!("cannot encode the .npz ({e})"));
    let mut npz = npyz::npz::NpzWriter::new(Cursor::new(Vec::new()));
    fill(&mut npz).map_err(fail)?;
    let cursor = npz.zip_writer().finish().map_err(|e| fail(e.into()))?;
    Ok(cursor.into_inner())
}

/// Array `name` of `shape` from `values` (C order), with numpy's default type of `T`.
fn put<T: npyz::AutoSerialize>(
    npz: &mut Writer,
    name: &str,
    shape: &[usize],
    values: impl Iterator<Item = T>,
) -> std::io::Result<()> {
    let options = FileOptions::default().compression_method(npyz::zip::CompressionMethod::Stored);
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let mut writer = npz.array::<T>(name, options)?.default_dtype().shape(&shape).begin_nd()?;
    writer.extend(values)?;
    writer.finish()
}
