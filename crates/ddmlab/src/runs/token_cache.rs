//! A run's tokens as files, for code beside ddmlab (LTH14/mar's own training and sampling, issue
//! 49; any latent generator written elsewhere), as the official `main_cache.py` caches its
//! latents:
//! - [`encode_set`]: every image's posterior in the run's scaled token space, `mean` and `std`
//!   (a stochastic tokenizer's sample is `mean + std * noise`; a deterministic one has `std = 0`);
//! - [`decode_tokens`]: images from tokens written elsewhere, through the same tokenizer.
//!
//! The files are safetensors: `mean`, `std` `[N, L, d]` f32 and `labels` `[N]` i64 (encode);
//! `tokens` `[N, L, d]` f32 and optionally `labels` (decode). Tokens are in the run's order (rows
//! of the latent grid, one token per `cells x cells` latent cells).

use std::collections::HashMap;
use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::data::ImageSet;
use crate::error::{Error, Result};
use crate::tokenizer::Tokenizer;
pub use crate::tokenizer::posterior::PosteriorTokens;

/// The posterior of each image of `set` (`mean = encode(x)`, `std = encode_sample(x, 1) -
/// mean`: the tokenizer's own sample with unit noise, so its scale and layout are the ones
/// training draws from), in chunks of `chunk` images; `on_chunk(done)` after each.
pub fn encode_set(
    tokenizer: &dyn Tokenizer,
    set: &ImageSet,
    chunk: usize,
    device: &Device,
    on_chunk: &mut dyn FnMut(usize),
) -> PosteriorTokens {
    let s = set.shape;
    let (mut mean, mut std) = (Vec::new(), Vec::new());
    let mut dims = [0, 0, 0];
    for lo in (0..set.len()).step_by(chunk.max(1)) {
        let hi = (lo + chunk.max(1)).min(set.len());
        let pixels: Vec<f32> = (lo..hi).flat_map(|i| set.image_f32(i)).collect();
        let x = Tensor::<4>::from_data(TensorData::new(pixels, [hi - lo, s.channels, s.height, s.width]), device);
        let m = tokenizer.encode(x.clone()); // [b, L, d]
        dims = m.dims();
        let m: Vec<f32> = m.into_data().convert::<f32>().try_into_vec().expect("f32 tokens");
        let sd: Vec<f32> = if tokenizer.stochastic() {
            let ones = Tensor::<3>::ones(dims, device);
            let sample: Vec<f32> =
                tokenizer.encode_sample(x, ones).into_data().convert::<f32>().try_into_vec().expect("f32");
            sample.iter().zip(&m).map(|(a, b)| a - b).collect()
        } else {
            vec![0.0; m.len()]
        };
        mean.extend(m);
        std.extend(sd);
        on_chunk(hi);
    }
    let labels = set.labels.iter().map(|&y| y as i64).collect();
    PosteriorTokens { mean, std, labels, shape: [set.len(), dims[1], dims[2]] }
}

/// Little-endian f32 bytes as values.
fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect()
}

fn f32_view(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Write `tokens` to `path` (safetensors, atomically).
pub fn write_posterior(path: &Path, tokens: &PosteriorTokens) -> Result<()> {
    let (mean, std) = (f32_view(&tokens.mean), f32_view(&tokens.std));
    let labels: Vec<u8> = tokens.labels.iter().flat_map(|v| v.to_le_bytes()).collect();
    let shape = tokens.shape.to_vec();
    let bad = |e: safetensors::SafeTensorError| Error::Other(format!("{}: {e}", path.display()));
    let views = vec![
        ("mean", TensorView::new(Dtype::F32, shape.clone(), &mean).map_err(bad)?),
        ("std", TensorView::new(Dtype::F32, shape, &std).map_err(bad)?),
        ("labels", TensorView::new(Dtype::I64, vec![tokens.labels.len()], &labels).map_err(bad)?),
    ];
    let meta =
        HashMap::from([("layout".to_string(), "ddmlab token cache: mean, std [N, L, d]; labels [N]".to_string())]);
    let bytes = safetensors::serialize(views, Some(meta)).map_err(bad)?;
    crate::atomic::write_atomic(path, &bytes)
}

/// `RUN/latents-train.safetensors`: a run's latent cache (`train.cache_latents`).
pub fn cache_path(run: &Path) -> std::path::PathBuf {
    run.join("latents-train.safetensors")
}

/// The training set's posterior for a run that caches its latents: read from the run folder
/// when it is there (a resumed run), else encoded once through the run's `tokenizer` (bound to
/// a plain device) and written. `tokens`: the run's `(L, d)`.
pub fn load_or_encode(
    run: &Path,
    tokenizer: &dyn Tokenizer,
    set: &ImageSet,
    tokens: (usize, usize),
    device: &Device,
    obs: &mut dyn crate::train::Observer,
) -> Result<PosteriorTokens> {
    let path = cache_path(run);
    if path.exists() {
        let cache = read_posterior(&path, set.len(), tokens)?;
        obs.message(&format!("latent cache: {} ({} images)", path.display(), set.len()));
        return Ok(cache);
    }
    let started = std::time::Instant::now();
    obs.message(&format!("latent cache: encoding {} training images once (train.cache_latents)", set.len()));
    let cache = encode_set(tokenizer, set, 250, device, &mut |_| {});
    if (cache.shape[1], cache.shape[2]) != tokens {
        return Err(Error::Other(format!(
            "the tokenizer encodes [{}, {}] tokens per image, the run's network reads {tokens:?}",
            cache.shape[1], cache.shape[2]
        )));
    }
    write_posterior(&path, &cache)?;
    obs.message(&format!("latent cache: {} written in {:.1} s", path.display(), started.elapsed().as_secs_f64()));
    Ok(cache)
}

/// A file of [`write_posterior`] read back, when it holds `n` images of `[l, d]` tokens; any
/// other file is an error naming it and what was expected.
pub fn read_posterior(path: &Path, n: usize, (l, d): (usize, usize)) -> Result<PosteriorTokens> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let expected = format!("expected `mean`, `std` f32 [{n}, {l}, {d}] and `labels` i64 [{n}]");
    let file = SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::format(path, format!("not a safetensors file ({e}); {expected}")))?;
    let array = |name: &str, dtype: Dtype, shape: &[usize]| -> Result<Vec<u8>> {
        match file.tensor(name) {
            Ok(v) if v.dtype() == dtype && v.shape() == shape => Ok(v.data().to_vec()),
            Ok(v) => Err(Error::format(path, format!("`{name}` is {:?} {:?}; {expected}", v.dtype(), v.shape()))),
            Err(_) => Err(Error::format(path, format!("no `{name}` array; {expected}"))),
        }
    };
    let mean = f32s(&array("mean", Dtype::F32, &[n, l, d])?);
    let std = f32s(&array("std", Dtype::F32, &[n, l, d])?);
    let labels = array("labels", Dtype::I64, &[n])?
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    Ok(PosteriorTokens { mean, std, labels, shape: [n, l, d] })
}

/// Tokens written elsewhere: `tokens` `[N, L, d]` f32 (or, in a file of [`write_posterior`],
/// the posterior `mean`: its images are the reconstructions) and, when present, `labels` `[N]`
/// (i64 or i32). A missing or mis-shaped array is an error naming the file and the array.
pub fn read_tokens(path: &Path, want: (usize, usize)) -> Result<(Vec<f32>, usize, Option<Vec<i64>>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let file = SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::format(path, format!("not a safetensors file ({e}); expected `tokens` [N, L, d] f32")))?;
    let tokens = file.tensor("tokens").or_else(|_| file.tensor("mean")).map_err(|_| {
        Error::format(path, "no `tokens` (or `mean`) array: expected `tokens` [N, L, d] f32 (and optional `labels`)")
    })?;
    let (l, d) = want;
    if tokens.dtype() != Dtype::F32 || tokens.shape().len() != 3 || tokens.shape()[1..] != [l, d] {
        return Err(Error::format(
            path,
            format!(
                "`tokens` is {:?} {:?}, expected f32 [N, {l}, {d}] (this run's tokens)",
                tokens.dtype(),
                tokens.shape()
            ),
        ));
    }
    let n = tokens.shape()[0];
    let values = f32s(tokens.data());
    let labels = match file.tensor("labels") {
        Err(_) => None,
        Ok(v) if v.shape() == [n] && v.dtype() == Dtype::I64 => {
            Some(v.data().chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes"))).collect())
        }
        Ok(v) if v.shape() == [n] && v.dtype() == Dtype::I32 => {
            Some(v.data().chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes")) as i64).collect())
        }
        Ok(v) => {
            return Err(Error::format(
                path,
                format!("`labels` is {:?} {:?}, expected i64 or i32 [{n}]", v.dtype(), v.shape()),
            ));
        }
    };
    Ok((values, n, labels))
}

/// Images of `tokens` (`n` sequences `[L, d]`) decoded by `tokenizer` in chunks of `chunk`:
/// one `[C H W]` vector in `[-1, 1]` per image; `on_chunk(done)` after each chunk.
pub fn decode_tokens(
    tokenizer: &dyn Tokenizer,
    tokens: &[f32],
    n: usize,
    chunk: usize,
    device: &Device,
    on_chunk: &mut dyn FnMut(usize),
) -> Result<Vec<Vec<f32>>> {
    let per = tokens.len() / n.max(1);
    let d = tokenizer.latent_dim();
    let mut out = Vec::with_capacity(n);
    for lo in (0..n).step_by(chunk.max(1)) {
        let hi = (lo + chunk.max(1)).min(n);
        let z = TensorData::new(tokens[lo * per..hi * per].to_vec(), [hi - lo, per / d, d]);
        let x = tokenizer.decode(Tensor::<3>::from_data(z, device));
        let values: Vec<f32> = x.into_data().convert::<f32>().try_into_vec().expect("f32 pixels");
        out.extend(values.chunks(values.len() / (hi - lo)).map(|c| c.to_vec()));
        on_chunk(hi);
    }
    if out.iter().flatten().any(|v| !v.is_finite()) {
        return Err(Error::Diverged("decoding produced non-finite pixels (non-finite tokens in the file?)".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ImageShape;

    /// A deterministic patch tokenizer (scaled by 0.5) round trip: the file keeps the posterior
    /// as written, its `std` is zero, decoding the means gives back the images; a token file
    /// of the wrong width or without `tokens` is refused by name.
    #[test]
    fn tokens_go_to_a_file_and_back_to_images() {
        let device = Device::flex();
        let shape = ImageShape { channels: 1, height: 8, width: 8 };
        let images: Vec<u8> = (0..3 * 64).map(|i| (i * 7 % 256) as u8).collect();
        let set = ImageSet { images, labels: vec![2, 0, 1], shape, classes: vec!["a".into(), "b".into(), "c".into()] };
        let tokenizer = crate::tokenizer::pixels::PixelTokenizer { patch: 4, image: shape, scale: 0.5 };
        let mut calls = Vec::new();
        let post = encode_set(&tokenizer, &set, 2, &device, &mut |d| calls.push(d));
        assert_eq!((post.shape, calls), ([3, 4, 16], vec![2, 3]));
        assert!(post.std.iter().all(|&s| s == 0.0));
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("tokens.safetensors");
        write_posterior(&path, &post).unwrap();
        // A token file written elsewhere: `tokens` (here the means), `labels`.
        let bytes = std::fs::read(&path).unwrap();
        let file = SafeTensors::deserialize(&bytes).unwrap();
        let mean = file.tensor("mean").unwrap();
        let labels = file.tensor("labels").unwrap();
        let views = vec![("tokens", mean), ("labels", labels)];
        let decode_path = tmp.path().join("decode.safetensors");
        std::fs::write(&decode_path, safetensors::serialize(views, None).unwrap()).unwrap();
        let (tokens, n, labels) = read_tokens(&decode_path, (4, 16)).unwrap();
        assert_eq!(read_tokens(&path, (4, 16)).unwrap().0, tokens, "the cache's means read as tokens");
        assert_eq!((n, labels), (3, Some(vec![2, 0, 1])));
        let back = decode_tokens(&tokenizer, &tokens, n, 2, &device, &mut |_| {}).unwrap();
        for (i, img) in back.iter().enumerate() {
            let want = set.image_f32(i);
            assert!(img.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-5), "image {i}");
        }
        let err = read_tokens(&decode_path, (4, 8)).unwrap_err().to_string();
        assert!(err.contains("decode.safetensors") && err.contains("[N, 4, 8]"), "{err}");
        let views = vec![("labels", file.tensor("labels").unwrap())];
        std::fs::write(&decode_path, safetensors::serialize(views, None).unwrap()).unwrap();
        let err = read_tokens(&decode_path, (4, 16)).unwrap_err().to_string();
        assert!(err.contains("no `tokens` (or `mean`) array"), "{err}");
    }
}
