//! A k-means codebook over a tokenizer's token vectors: the discrete tokens of MAR's baselines
//! (Li et al. 2024, Table 2). Cross-entropy over the codes of the same latent stands in for a
//! VQ tokenizer, and Diffusion Loss on the quantised vectors is the paper's "VQ-16" row.
//!
//! Fitted by Lloyd's algorithm from k-means++ seeds on a sample of the training tokens; saved
//! with the run (`RUN/codebook.safetensors`) beside what it cost in reconstruction.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::RunConfig;
use crate::data::ImageSet;
use crate::data::loader::ordered_batches;
use crate::error::{Error, Result};
use crate::tokenizer::store::{self, Named};
use crate::tokenizer::{FittedTokenizer, Tokenizer};
use crate::train::Observer;
use crate::train::ae_losses::psnr;

/// Training images whose tokens a run's codebook is fitted on (a seeded sample of at most
/// `FIT_TOKENS` of their tokens), and Lloyd's iterations at most.
pub const FIT_IMAGES: usize = 4000;
pub const FIT_TOKENS: usize = 100_000;
pub const FIT_ITERATIONS: usize = 30;
/// Training images on which a fitted codebook's cost is also measured in pixels.
pub const ERROR_IMAGES: usize = 500;

/// `RUN/codebook.safetensors`.
pub fn codebook_path(run: &Path) -> PathBuf {
    run.join("codebook.safetensors")
}

/// `RUN/codebook-fit.json`: what fitting it measured.
pub fn codebook_report_path(run: &Path) -> PathBuf {
    run.join("codebook-fit.json")
}

/// The codebook of a run whose config quantises (`[mar] codebook > 0`); `None` otherwise. A
/// missing or mismatched file is an error naming it.
pub fn load_run_codebook(run: &Path, config: &RunConfig) -> Result<Option<Codebook>> {
    let Some(size) = config.mar.as_ref().map(|m| m.codebook).filter(|&k| k > 0) else { return Ok(None) };
    let dim = config.denoise.tokenizer.latent_dim(config.model.image.channels);
    let path = codebook_path(run);
    if !path.exists() {
        return Err(Error::format(&path, "missing: the run's k-means codebook (it is fitted when training starts)"));
    }
    Codebook::load(&path, size, dim).map(Some)
}

/// The run's codebook, fitted (and saved with its report) on the tokens of the first
/// [`FIT_IMAGES`] images of `set` when the run folder has none.
pub fn load_or_fit_run_codebook(
    run: &Path,
    config: &RunConfig,
    set: &ImageSet,
    tokenizer: &FittedTokenizer,
    device: &Device,
    obs: &mut dyn Observer,
) -> Result<Option<Codebook>> {
    let Some(size) = config.mar.as_ref().map(|m| m.codebook).filter(|&k| k > 0) else { return Ok(None) };
    if codebook_path(run).exists() {
        return load_run_codebook(run, config);
    }
    // Bound only when a codebook is fitted (binding a conv VAE decodes its weights).
    let tokenizer = tokenizer.bind(config.model.image, device);
    let mut tokens = Vec::new();
    let mut dim = 0;
    for x in image_batches(set, FIT_IMAGES, device) {
        let t = tokenizer.encode(x);
        dim = t.dims()[2];
        tokens.extend(t.into_data().try_into_vec::<f32>().expect("f32 tokens"));
    }
    let n = tokens.len() / dim.max(1);
    let mut rng = ChaCha8Rng::seed_from_u64(config.train.seed);
    let sample: Vec<f32> = if n > FIT_TOKENS {
        rand::seq::index::sample(&mut rng, n, FIT_TOKENS)
            .into_iter()
            .flat_map(|i| tokens[i * dim..(i + 1) * dim].to_vec())
            .collect()
    } else {
        tokens
    };
    let started = std::time::Instant::now();
    let (book, mut report) = Codebook::fit(&sample, dim, size, FIT_ITERATIONS, config.train.seed)?;
    let error = image_error(set, tokenizer.as_ref(), &book, device);
    report.image_error = Some(error.clone());
    book.save(&codebook_path(run))?;
    let json = serde_json::to_string_pretty(&report).expect("serialises");
    crate::atomic::write_atomic(&codebook_report_path(run), json.as_bytes())?;
    obs.message(&format!(
        "codebook: {size} k-means codes of {dim}-d tokens ({} tokens, {} iterations, {:.1} s): quantisation MSE {:.5} ({:.2}% of the tokens' variance); decoded PSNR {:.2} dB from the codes vs {:.2} dB from the continuous tokens",
        report.tokens,
        report.iterations,
        started.elapsed().as_secs_f64(),
        report.mse,
        100.0 * report.relative_mse,
        psnr(error.quantised),
        psnr(error.continuous),
    ));
    Ok(Some(book))
}

/// `K` code vectors of width `C`.
#[derive(Debug, Clone, PartialEq)]
pub struct Codebook {
    /// `[K, C]` row-major.
    pub codes: Vec<f32>,
    pub dim: usize,
}

/// What fitting a codebook measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodebookReport {
    pub size: usize,
    /// Token vectors it was fitted on.
    pub tokens: usize,
    pub iterations: usize,
    /// Mean squared error per value between a token and its code (quantisation error).
    pub mse: f64,
    /// `mse` over the tokens' variance per value: the share of the latent's variance lost.
    pub relative_mse: f64,
    /// The tokenizer's reconstruction MSE per pixel (`[-1, 1]` units) from the continuous
    /// tokens and from their codes (absent in reports written before it was measured).
    #[serde(default)]
    pub image_error: Option<ImageError>,
}

/// What quantising the tokens costs in the decoded images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageError {
    /// The first `images` images of the training set.
    pub images: usize,
    /// Mean squared error per pixel of `decode(encode(x))` against `x`.
    pub continuous: f64,
    /// The same with every token replaced by its nearest code.
    pub quantised: f64,
}

/// The first `n` images of `set` (rounded up to a whole batch of 250), `[B, C, H, W]` each.
fn image_batches<'a>(set: &'a ImageSet, n: usize, device: &'a Device) -> impl Iterator<Item = Tensor<4>> + 'a {
    let shape = set.shape;
    ordered_batches(set, 250).take(n.div_ceil(250)).map(move |(images, labels)| {
        Tensor::<4>::from_data(
            TensorData::new(images, [labels.len(), shape.channels, shape.height, shape.width]),
            device,
        )
    })
}

/// The tokenizer's reconstruction error per pixel (images in `[-1, 1]`) on the first
/// [`ERROR_IMAGES`] images of `set`: from their continuous tokens, and from their codes.
fn image_error(set: &ImageSet, tokenizer: &dyn Tokenizer, book: &Codebook, device: &Device) -> ImageError {
    let (mut continuous, mut quantised, mut pixels, mut images) = (0.0, 0.0, 0usize, 0usize);
    for x in image_batches(set, ERROR_IMAGES, device) {
        let t = tokenizer.encode(x.clone());
        let dims = t.dims();
        let codes = book.quantize(&t.clone().into_data().try_into_vec::<f32>().expect("f32 tokens"));
        let q = Tensor::<3>::from_data(TensorData::new(codes, dims), device);
        let sse = |r: Tensor<4>| f64::from((r - x.clone()).square().sum().into_scalar::<f32>());
        continuous += sse(tokenizer.decode(t));
        quantised += sse(tokenizer.decode(q));
        pixels += x.dims().iter().product::<usize>();
        images += x.dims()[0];
    }
    let n = pixels.max(1) as f64;
    ImageError { images, continuous: continuous / n, quantised: quantised / n }
}

/// `|a - b|^2`.
fn distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

impl Codebook {
    /// The number of codes `K`.
    pub fn size(&self) -> usize {
        self.codes.len() / self.dim.max(1)
    }

    /// Code `k`.
    pub fn code(&self, k: usize) -> &[f32] {
        &self.codes[k * self.dim..(k + 1) * self.dim]
    }

    /// The nearest code of each token (`tokens` row-major `[N, C]`).
    pub fn assign(&self, tokens: &[f32]) -> Vec<usize> {
        tokens
            .chunks_exact(self.dim)
            .map(|t| {
                (0..self.size())
                    .map(|k| (k, distance(t, self.code(k))))
                    .min_by(|a, b| a.1.total_cmp(&b.1))
                    .map_or(0, |(k, _)| k)
            })
            .collect()
    }

    /// Every token replaced by its nearest code.
    pub fn quantize(&self, tokens: &[f32]) -> Vec<f32> {
        self.assign(tokens).into_iter().flat_map(|k| self.code(k).to_vec()).collect()
    }

    /// The codes of `indices`, row-major `[N, C]`.
    pub fn lookup(&self, indices: &[usize]) -> Vec<f32> {
        indices.iter().flat_map(|&k| self.code(k).to_vec()).collect()
    }

    /// K-means with `size` codes on `tokens` (`[N, C]`, `N >= size`): k-means++ seeding, then
    /// Lloyd's iterations until no assignment changes or `max_iter`; an emptied cluster is
    /// re-seeded at the token farthest from its code.
    pub fn fit(
        tokens: &[f32],
        dim: usize,
        size: usize,
        max_iter: usize,
        seed: u64,
    ) -> Result<(Codebook, CodebookReport)> {
        let n = tokens.len() / dim.max(1);
        if size == 0 || n < size || dim == 0 {
            return Err(Error::config("mar.codebook", format!("{size} codes from {n} tokens: need 1..={n} codes")));
        }
        let row = |i: usize| &tokens[i * dim..(i + 1) * dim];
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // k-means++: each next seed drawn with probability proportional to its squared distance.
        let mut codes: Vec<f32> = row(rng.random_range(0..n)).to_vec();
        let mut nearest: Vec<f32> = (0..n).map(|i| distance(row(i), &codes[..dim])).collect();
        while codes.len() < size * dim {
            let total: f64 = nearest.iter().map(|&d| d as f64).sum();
            let pick = if total > 0.0 {
                let mut u = rng.random::<f64>() * total;
                nearest.iter().position(|&d| {
                    u -= d as f64;
                    u <= 0.0
                })
            } else {
                None
            }
            .unwrap_or_else(|| rng.random_range(0..n));
            let start = codes.len();
            codes.extend_from_slice(row(pick));
            for (i, d) in nearest.iter_mut().enumerate() {
                *d = d.min(distance(row(i), &codes[start..start + dim]));
            }
        }
        let mut book = Codebook { codes, dim };
        let mut assignment = book.assign(tokens);
        let mut iterations = 0;
        for _ in 0..max_iter {
            iterations += 1;
            let mut sums = vec![0f64; size * dim];
            let mut counts = vec![0usize; size];
            for (i, &k) in assignment.iter().enumerate() {
                counts[k] += 1;
                for (s, &v) in sums[k * dim..(k + 1) * dim].iter_mut().zip(row(i)) {
                    *s += v as f64;
                }
            }
            for k in 0..size {
                if counts[k] > 0 {
                    for j in 0..dim {
                        book.codes[k * dim + j] = (sums[k * dim + j] / counts[k] as f64) as f32;
                    }
                } else {
                    let far = (0..n)
                        .max_by(|&a, &b| {
                            distance(row(a), book.code(assignment[a]))
                                .total_cmp(&distance(row(b), book.code(assignment[b])))
                        })
                        .expect("n >= 1");
                    book.codes[k * dim..(k + 1) * dim].copy_from_slice(row(far));
                }
            }
            let next = book.assign(tokens);
            let changed = next != assignment;
            assignment = next;
            if !changed {
                break;
            }
        }
        let values = (n * dim) as f64;
        let mse =
            assignment.iter().enumerate().map(|(i, &k)| distance(row(i), book.code(k)) as f64).sum::<f64>() / values;
        let mean: Vec<f64> =
            (0..dim).map(|j| (0..n).map(|i| tokens[i * dim + j] as f64).sum::<f64>() / n as f64).collect();
        let variance = (0..n)
            .flat_map(|i| (0..dim).map(move |j| (i, j)))
            .map(|(i, j)| (tokens[i * dim + j] as f64 - mean[j]).powi(2))
            .sum::<f64>()
            / values;
        let report = CodebookReport {
            size,
            tokens: n,
            iterations,
            mse,
            relative_mse: mse / variance.max(1e-12),
            image_error: None,
        };
        Ok((book, report))
    }

    /// Save as safetensors (`codes`, f64), atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let values: Vec<f64> = self.codes.iter().map(|&v| v as f64).collect();
        store::save(
            path,
            &[Named { name: "codes", shape: vec![self.size(), self.dim], values: &values }],
            &[("size", self.size().to_string()), ("dim", self.dim.to_string())],
        )
    }

    /// Load what [`Codebook::save`] wrote; it must hold `size` codes of width `dim`.
    pub fn load(path: &Path, size: usize, dim: usize) -> Result<Codebook> {
        let file = store::Loaded::read(path)?;
        let (k, c): (usize, usize) = (file.number("size")?, file.number("dim")?);
        if (k, c) != (size, dim) {
            return Err(file.bad(format!("{k} codes of width {c}, the run's config wants {size} of width {dim}")));
        }
        let codes = file.tensor("codes", k * c)?.into_iter().map(|v| v as f32).collect();
        Ok(Codebook { codes, dim })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_distr::{Distribution, Normal};

    #[test]
    fn kmeans_finds_well_separated_clusters_and_reports_their_spread() {
        // Four tight clusters in 2-d: four codes land on the centres, and the quantisation
        // error is the within-cluster variance (0.05^2 per value).
        let centres = [[-2.0f32, -2.0], [2.0, -2.0], [-2.0, 2.0], [2.0, 2.0]];
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let noise = Normal::new(0.0f32, 0.05).unwrap();
        let tokens: Vec<f32> = (0..4000).flat_map(|i| centres[i % 4].map(|c| c + noise.sample(&mut rng))).collect();
        let (book, report) = Codebook::fit(&tokens, 2, 4, 50, 0).unwrap();
        for c in centres {
            let k = book.assign(&c)[0];
            assert!(distance(book.code(k), &c) < 1e-3, "{c:?} -> {:?}", book.code(k));
        }
        assert!((report.mse - 0.0025).abs() < 3e-4, "{report:?}");
        // Variance per value is 4 (centres at +-2) plus the noise: relative error ~ 0.0025 / 4.
        assert!((report.relative_mse - 0.0025 / 4.0025).abs() < 1e-4, "{report:?}");
        assert_eq!(book.quantize(&tokens[..2]), book.code(book.assign(&tokens[..2])[0]).to_vec());
    }

    #[test]
    fn the_pixel_cost_of_a_codebook_is_measured_on_decoded_images() {
        // The pixel tokenizer at scale 2 decodes a token error e to a pixel error e / 2: the
        // image-space MSE of the codes is their token-space MSE / 4, and the continuous tokens
        // reconstruct exactly. Comparing tokens instead of decoded images would miss the / 4.
        use crate::data::ImageShape;
        use crate::tokenizer::pixels::PixelTokenizer;
        let device = Device::flex();
        let shape = ImageShape { channels: 1, height: 4, width: 4 };
        let n = 300;
        let images: Vec<u8> = (0..n * 16).map(|i| ((i * 7919 + i / 16 * 31) % 256) as u8).collect();
        let set = ImageSet { images, labels: vec![0; n], shape, classes: vec!["x".into()] };
        let tokenizer = PixelTokenizer { patch: 2, image: shape, scale: 2.0 };
        let tokens: Vec<f32> = (0..n)
            .flat_map(|i| {
                let x = Tensor::<4>::from_data(TensorData::new(set.image_f32(i), [1, 1, 4, 4]), &device);
                tokenizer.encode(x).into_data().try_into_vec::<f32>().unwrap()
            })
            .collect();
        let (book, _) = Codebook::fit(&tokens, 4, 16, 20, 0).unwrap();
        let quantised = book.quantize(&tokens);
        let token_mse =
            tokens.iter().zip(&quantised).map(|(a, b)| f64::from((a - b) * (a - b))).sum::<f64>() / tokens.len() as f64;
        assert!(token_mse > 1e-3, "16 codes cannot hold these tokens exactly: {token_mse}");
        let ImageError { continuous, quantised: pixels, .. } = image_error(&set, &tokenizer, &book, &device);
        assert!(continuous < 1e-10, "{continuous}");
        assert!((pixels - token_mse / 4.0).abs() < 1e-6 * token_mse, "{pixels} vs {}", token_mse / 4.0);
    }

    #[test]
    fn a_codebook_round_trips_and_a_mismatched_file_is_named() {
        let tokens: Vec<f32> = (0..300).map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0).collect();
        let (book, _) = Codebook::fit(&tokens, 3, 8, 20, 4).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("codebook.safetensors");
        book.save(&path).unwrap();
        assert_eq!(Codebook::load(&path, 8, 3).unwrap(), book);
        let e = Codebook::load(&path, 16, 3).unwrap_err().to_string();
        assert!(e.contains("codebook.safetensors") && e.contains("16"), "{e}");
        std::fs::write(&path, b"garbage").unwrap();
        assert!(Codebook::load(&path, 8, 3).unwrap_err().to_string().contains("codebook.safetensors"));
        let e = Codebook::fit(&tokens, 3, 200, 5, 0).unwrap_err().to_string();
        assert!(e.contains("mar.codebook"), "{e}");
    }
}
