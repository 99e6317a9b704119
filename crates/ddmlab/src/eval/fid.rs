//! Generation metrics on Inception `pool3` features: FID (Heusel et al.) and KID (Binkowski et
//! al.), with the image sources they read and the feature cache.
//!
//! - FID `= |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))`, the covariances with the
//!   `N - 1` denominator (as numpy's `cov`). The trace of the matrix square root is computed
//!   as `sum_i sqrt(lambda_i)` over the eigenvalues of the symmetric `S_a^(1/2) S_b S_a^(1/2)`
//!   (same eigenvalues as `S_a S_b`), all in f64.
//! - KID: the unbiased MMD^2 with the kernel `k(x, y) = (x.y / d + 1)^3`, averaged over random
//!   subsets (torch-fidelity / clean-fid: 100 subsets of 1000).

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};

use super::inception::{FEATURE_DIM, INPUT_SIZE, InceptionV3, preprocess};
use crate::data::RawImage;
use crate::data::{DataSource, ImageSet, Split};
use crate::error::{Error, IoContext, Result};

/// Where FID images (or their statistics) come from: a split of a named data set, a folder of
/// images, or a numpy file ([`super::npz`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FidSource {
    /// `fashion-mnist:test`, `mnist:train`, ...
    DataSet { source: DataSource, split: Split },
    /// A folder of PNG / JPEG files (searched recursively).
    Folder(PathBuf),
    /// An ADM-style sample batch (`.npz` with `arr_0`).
    Samples(PathBuf),
    /// pytorch-fid / clean-fid statistics (`.npz` with `mu`, `sigma`): no images.
    Stats(PathBuf),
}

impl std::str::FromStr for FidSource {
    type Err = Error;

    /// `NAME:train` / `NAME:test` for a named data set, else an existing folder.
    fn from_str(s: &str) -> Result<Self> {
        if let Some((name, split)) = s.rsplit_once(':')
            && matches!(split, "train" | "test")
            && let Ok(source) = name.parse::<DataSource>()
            && source.native_shape().is_some()
        {
            let split = if split == "train" { Split::Train } else { Split::Test };
            return Ok(FidSource::DataSet { source, split });
        }
        let path = PathBuf::from(s);
        if path.is_dir() {
            return Ok(FidSource::Folder(path));
        }
        if path.is_file() && path.extension().is_some_and(|e| e == "npz") {
            let names = super::npz::array_names(&path)?;
            let has = |n: &str| names.iter().any(|a| a == n);
            if has("mu") && has("sigma") {
                return Ok(FidSource::Stats(path));
            }
            if has("arr_0") {
                return Ok(FidSource::Samples(path));
            }
            return Err(Error::format(
                &path,
                format!(
                    "holds {names:?}: expected FID statistics (`mu`, `sigma`) or a sample batch (`arr_0`, [N, H, W, C] \
                     uint8)"
                ),
            ));
        }
        Err(Error::config(
            "source (A or B)",
            format!(
                "`{s}` is neither a folder, an .npz (statistics or samples) nor a data-set split such as \
                 fashion-mnist:test or mnist:train"
            ),
        ))
    }
}

impl std::fmt::Display for FidSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FidSource::DataSet { source, split } => {
                write!(f, "{source}:{}", if *split == Split::Train { "train" } else { "test" })
            }
            FidSource::Folder(p) | FidSource::Samples(p) | FidSource::Stats(p) => write!(f, "{}", p.display()),
        }
    }
}

impl FidSource {
    /// The first `limit` images (0: all), with `data_root` for named sets.
    pub fn images(&self, data_root: &Path, limit: usize) -> Result<Vec<RawImage>> {
        match self {
            FidSource::DataSet { source, split } => {
                let shape = source.native_shape().expect("checked when parsed");
                Ok(images_of_set(&source.load(data_root, *split, shape)?, limit))
            }
            FidSource::Folder(dir) => read_image_dir(dir, limit),
            FidSource::Samples(path) => Ok(super::npz::read_samples(path, limit)?.images),
            FidSource::Stats(path) => {
                Err(Error::format(path, "holds statistics (`mu`, `sigma`), not images: it cannot give features"))
            }
        }
    }

    /// The feature-cache file of a named set under `cache_dir` (folders are not cached: their
    /// contents change between runs).
    pub fn cache_path(&self, cache_dir: &Path, n: usize) -> Option<PathBuf> {
        self.cache_stem().map(|stem| cache_dir.join(format!("{stem}{n}.safetensors")))
    }

    /// The cache file name up to the image count (`fashion-mnist-test-`); `None` for folders.
    fn cache_stem(&self) -> Option<String> {
        match self {
            FidSource::DataSet { .. } => Some(format!("{}-", self.to_string().replace(':', "-"))),
            FidSource::Folder(_) | FidSource::Samples(_) | FidSource::Stats(_) => None,
        }
    }
}

/// The features of `source` (first `limit` images): from the cache when a cached file of the
/// same source holds at least that many images (the first rows of a larger cache are the
/// features of the first images, as sets are read in order), else computed (and cached for
/// named sets). `on_batch` reports progress in images; `total` is called first with the image
/// count.
pub fn source_features(
    net: &InceptionV3,
    source: &FidSource,
    data_root: &Path,
    cache_dir: &Path,
    limit: usize,
    batch: usize,
    device: &Device,
    on_total: &mut dyn FnMut(usize),
    on_batch: &(dyn Fn(usize) + Sync),
) -> Result<Vec<f32>> {
    let images = source.images(data_root, limit)?;
    let want = images.len() * FEATURE_DIM;
    for path in cached_at_least(source, cache_dir, images.len()) {
        let (mut features, from) = load_features(&path)?;
        if from == source.to_string() && features.len() >= want {
            features.truncate(want);
            return Ok(features);
        }
    }
    let cache = source.cache_path(cache_dir, images.len());
    on_total(images.len());
    let features = inception_features(net, &images, batch, device, on_batch);
    if let Some(path) = &cache {
        save_features(path, &features, &source.to_string())?;
    }
    Ok(features)
}

/// Cache files of `source` holding `n` or more images, smallest count (the exact one) first.
fn cached_at_least(source: &FidSource, cache_dir: &Path, n: usize) -> Vec<PathBuf> {
    let Some(stem) = source.cache_stem() else { return Vec::new() };
    let mut found: Vec<(usize, PathBuf)> = std::fs::read_dir(cache_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let m: usize = name.strip_prefix(&stem)?.strip_suffix(".safetensors")?.parse().ok()?;
            (m >= n).then(|| (m, e.path()))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, p)| p).collect()
}

/// The first `limit` images of a data set (0: all).
pub fn images_of_set(set: &ImageSet, limit: usize) -> Vec<RawImage> {
    let n = if limit > 0 { limit.min(set.len()) } else { set.len() };
    let s = set.shape;
    set.images
        .chunks(s.numel())
        .take(n)
        .map(|p| RawImage { channels: s.channels, height: s.height, width: s.width, pixels: p.to_vec() })
        .collect()
}

/// Every PNG / JPEG image under `dir` (recursively, in path order); grey images stay one
/// channel, everything else becomes RGB. A file that does not decode is an error naming it.
pub fn read_image_dir(dir: &Path, limit: usize) -> Result<Vec<RawImage>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        for entry in std::fs::read_dir(dir).at(dir)? {
            let path = entry.at(dir)?.path();
            if path.is_dir() {
                walk(&path, out)?;
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
            {
                out.push(path);
            }
        }
        Ok(())
    }
    if !dir.is_dir() {
        return Err(Error::format(dir, "not a folder of images"));
    }
    let mut paths = Vec::new();
    walk(dir, &mut paths)?;
    paths.sort();
    if limit > 0 {
        paths.truncate(limit);
    }
    if paths.is_empty() {
        return Err(Error::format(dir, "holds no .png / .jpg image"));
    }
    paths
        .iter()
        .map(|p| {
            let img = image::open(p).map_err(|e| Error::format(p, format!("cannot decode image ({e})")))?;
            let (w, h) = (img.width() as usize, img.height() as usize);
            Ok(match img {
                image::DynamicImage::ImageLuma8(g) => {
                    RawImage { channels: 1, height: h, width: w, pixels: g.into_raw() }
                }
                other => {
                    let rgb = other.to_rgb8();
                    let mut pixels = vec![0u8; 3 * h * w];
                    for (i, px) in rgb.pixels().enumerate() {
                        for c in 0..3 {
                            pixels[c * h * w + i] = px[c];
                        }
                    }
                    RawImage { channels: 3, height: h, width: w, pixels }
                }
            })
        })
        .collect()
}

/// `pool3` features of `images`, `[N, 2048]` row-major; batches run concurrently (one per
/// worker thread); `on_batch(done)` reports progress in images.
pub fn inception_features(
    net: &InceptionV3,
    images: &[RawImage],
    batch: usize,
    device: &Device,
    on_batch: &(dyn Fn(usize) + Sync),
) -> Vec<f32> {
    let per = 3 * INPUT_SIZE * INPUT_SIZE;
    let run = |chunk: &[RawImage]| -> Vec<f32> {
        let mut x = Vec::with_capacity(chunk.len() * per);
        for img in chunk {
            x.extend(preprocess(&img.pixels, img.channels, img.height, img.width));
        }
        let x = Tensor::<4>::from_data(TensorData::new(x, [chunk.len(), 3, INPUT_SIZE, INPUT_SIZE]), device);
        let f = net.forward(x).into_data().try_into_vec::<f32>().expect("f32 features");
        on_batch(chunk.len());
        f
    };
    let mut out = Vec::with_capacity(images.len() * FEATURE_DIM);
    for f in crate::parallel::map_grouped(device, images.chunks(batch.max(1)), &run) {
        out.extend(f);
    }
    out
}

/// Save features (`[N, 2048]` f32) as safetensors, atomically.
pub fn save_features(path: &Path, features: &[f32], meta: &str) -> Result<()> {
    let n = features.len() / FEATURE_DIM;
    let bytes: Vec<u8> = features.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![n, FEATURE_DIM], &bytes)
        .map_err(|e| Error::format(path, e.to_string()))?;
    let metadata = std::collections::HashMap::from([("source".to_string(), meta.to_string())]);
    let out =
        safetensors::serialize([("features", view)], Some(metadata)).map_err(|e| Error::format(path, e.to_string()))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).at(dir)?;
    }
    crate::atomic::write_atomic(path, &out)
}

/// Load features saved by [`save_features`]; returns them and the `source` they describe.
pub fn load_features(path: &Path) -> Result<(Vec<f32>, String)> {
    let raw = std::fs::read(path).at(path)?;
    let bad = |msg: String| Error::format(path, msg);
    let (_, meta) =
        safetensors::SafeTensors::read_metadata(&raw).map_err(|e| bad(format!("not a safetensors file ({e})")))?;
    let st = safetensors::SafeTensors::deserialize(&raw).map_err(|e| bad(format!("not a safetensors file ({e})")))?;
    let t = st.tensor("features").map_err(|_| bad("no `features` tensor".into()))?;
    if t.dtype() != safetensors::Dtype::F32 || t.shape().len() != 2 || t.shape()[1] != FEATURE_DIM {
        return Err(bad(format!("`features` is {:?} {:?}, expected F32 [N, {FEATURE_DIM}]", t.dtype(), t.shape())));
    }
    let values = t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let source = meta.metadata().as_ref().and_then(|m| m.get("source").cloned()).unwrap_or_default();
    Ok((values, source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feature_cache_of_more_images_serves_a_smaller_count_and_other_sets_never_do() {
        let dir = tempfile::tempdir().unwrap();
        let test: FidSource = "fashion-mnist:test".parse().unwrap();
        for name in ["fashion-mnist-test-3", "fashion-mnist-test-10", "fashion-mnist-test-8", "mnist-test-20"] {
            std::fs::write(dir.path().join(format!("{name}.safetensors")), b"").unwrap();
        }
        let names = |n| -> Vec<String> {
            cached_at_least(&test, dir.path(), n)
                .iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        // The exact count first, then larger caches, smallest first; never smaller ones or mnist's.
        assert_eq!(names(8), ["fashion-mnist-test-8.safetensors", "fashion-mnist-test-10.safetensors"]);
        assert_eq!(names(5), ["fashion-mnist-test-8.safetensors", "fashion-mnist-test-10.safetensors"]);
        assert!(names(11).is_empty());
    }

    #[test]
    fn preprocessing_matches_tf_bilinear_at_hand_picked_points() {
        // A 2x2 grey image [[0, 100], [200, 255]]: output pixel (i, j) samples source
        // (i * 2 / 299, j * 2 / 299), clamped at the far edge.
        let out = preprocess(&[0, 100, 200, 255], 1, 2, 2);
        let n = INPUT_SIZE;
        let at = |c: usize, i: usize, j: usize| out[(c * n + i) * n + j];
        assert_eq!(at(0, 0, 0), -1.0);
        // j = 299 / 2 rounds to 149: source x = 298 / 299, between 0 and 100.
        let fx = 298.0f32 / 299.0;
        assert!((at(0, 0, 149) - ((100.0 * fx) / 128.0 - 1.0)).abs() < 1e-5);
        // The last column samples x = 596 / 299 > 1: the edge column (value 100 on row 0).
        assert!((at(0, 0, 298) - (100.0 / 128.0 - 1.0)).abs() < 1e-6);
        assert_eq!(at(1, 10, 20), at(0, 10, 20), "grey is replicated");
        assert_eq!(at(2, 10, 20), at(0, 10, 20));
    }
}
