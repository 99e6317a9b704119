//! Sampling images from a trained generator (a variance-preserving objective in a tokenizer's
//! latent, see `DenoiseConfig::is_generator`): the network is wrapped as a [`Denoiser`] over the
//! latent viewed as an image (`Tokenizer::tokens_to_grid`: the image itself for the pixel tokenizer,
//! `[d, H/p, W/p]` for the others), samples are decoded by the tokenizer; images are drawn in
//! chunks (each chunk seeded from `(seed, chunk index)`, so the
//! output depends only on the seed and the chunk size), and chunks run concurrently, one per
//! worker thread (burn's element-wise kernels are single-threaded).

use burn::tensor::{Device, Tensor};

use crate::config::RunConfig;
use crate::diffusion::{Denoiser, Guidance, Prediction, Sampler, SamplerKind, TimestepMap, VpSchedule};
use crate::error::{Error, Result};
use crate::models::DenoisingVit;
use crate::tokenizer::{LatentScale, Tokenizer, TokenizerSpec};

/// A network as the samplers see it: the latent grid to tokens, the network, its output back to
/// the grid, read as the objective's prediction.
pub struct VitDenoiser<'a> {
    pub model: &'a DenoisingVit,
    pub tokenizer: &'a dyn Tokenizer,
    pub prediction: Prediction,
}

impl Denoiser for VitDenoiser<'_> {
    fn prediction(&self) -> Prediction {
        self.prediction
    }

    fn predict(&self, x_t: Tensor<4>, t: &[usize], labels: Option<&[usize]>) -> Tensor<4> {
        let tokens = self.tokenizer.grid_to_tokens(x_t); // [B, L, d]
        self.tokenizer.tokens_to_grid(self.model.forward(tokens, t, labels))
    }
}

/// What to sample and how.
#[derive(Debug, Clone)]
pub struct SampleOptions {
    pub kind: SamplerKind,
    /// Network evaluations per image (the timestep map's length; before guidance doubling).
    pub steps: usize,
    /// Classifier-free guidance scale `w` (1: none).
    pub cfg: f64,
    /// One class label per image (empty: unconditional, or the null class of a conditional
    /// model).
    pub labels: Vec<usize>,
    /// Images to draw (equals `labels.len()` when labels are given).
    pub n: usize,
    pub seed: u64,
    /// Images per chunk.
    pub chunk: usize,
    /// Clip `x0_hat` to `[-1, 1]` at every step (pixel-space data).
    pub clip_x0: bool,
}

/// The sampler a run's config and the options describe.
pub fn sampler_of(config: &RunConfig, opts: &SampleOptions) -> Result<Sampler> {
    let d = &config.denoise;
    let Some(beta) = d.noise.beta().filter(|_| d.is_generator()) else {
        return Err(Error::config("sample.run", not_a_generator(config)));
    };
    if opts.cfg != 1.0 && config.model.num_classes == 0 {
        return Err(Error::config(
            "sample.cfg",
            "classifier-free guidance needs a class-conditional model (num_classes > 0)",
        ));
    }
    if !(opts.cfg.is_finite() && opts.cfg >= 0.0) {
        return Err(Error::config("sample.cfg", format!("{} must be a non-negative number", opts.cfg)));
    }
    let classes = config.model.num_classes;
    if let Some(&y) = opts.labels.iter().find(|&&y| classes == 0 || y > classes) {
        return Err(Error::config(
            "sample.labels",
            if classes == 0 {
                format!("{y}: this model is unconditional, it takes no class")
            } else {
                format!("{y} is not a class of this model, expected 0..={} ({classes}: the null class)", classes - 1)
            },
        ));
    }
    if !opts.labels.is_empty() && opts.labels.len() != opts.n {
        return Err(Error::config("sample.n", format!("{} images but {} labels", opts.n, opts.labels.len())));
    }
    if opts.steps == 0 || opts.steps > d.timesteps {
        return Err(Error::config("sample.steps", format!("{} must be in 1..={}", opts.steps, d.timesteps)));
    }
    let schedule = VpSchedule::new(beta, d.timesteps);
    Ok(Sampler {
        kind: opts.kind,
        map: TimestepMap::for_schedule(&schedule, opts.steps),
        schedule,
        guidance: (config.model.num_classes > 0)
            .then_some(Guidance { scale: opts.cfg, null_class: config.model.num_classes }),
        clip_x0: opts.clip_x0,
    })
}

fn not_a_generator(config: &RunConfig) -> String {
    format!(
        "sampling needs a generator: a variance-preserving schedule in the latent, read and predicted there (a \
         DiT preset); this run trains {}",
        config.denoise.label(config.model.image.channels)
    )
}

/// Whether `x0_hat` may be clipped to `[-1, 1]` at every step: only when the sampler runs on
/// unscaled pixels.
pub fn can_clip(config: &RunConfig) -> bool {
    matches!(config.denoise.tokenizer, TokenizerSpec::Pixels { scale: LatentScale::None, .. })
}

/// Draw `opts.n` images; `on_step` is called once per sampler step of every chunk (from worker
/// threads). The sampler runs on the run's `tokenizer` latent (clipping `x0_hat` only on
/// unscaled pixels) and the samples are decoded and clipped to `[-1, 1]`. Returns `[C, H, W]`
/// images, in label order.
pub fn sample_images(
    model: &DenoisingVit,
    config: &RunConfig,
    tokenizer: &dyn Tokenizer,
    opts: &SampleOptions,
    device: &Device,
    on_step: &(dyn Fn() + Sync),
) -> Result<Vec<Vec<f32>>> {
    let mut sampler = sampler_of(config, opts)?;
    sampler.clip_x0 = opts.clip_x0 && can_clip(config);
    let prediction = config.denoise.target.prediction().expect("checked by sampler_of");
    let net = VitDenoiser { model, tokenizer, prediction };
    let shape = tokenizer.grid_shape();
    let out_numel = config.model.image.numel();
    let chunk = opts.chunk.max(1);
    let labels = (!opts.labels.is_empty()).then_some(&opts.labels);
    let chunks: Vec<(usize, usize)> =
        (0..opts.n.div_ceil(chunk)).map(|i| (i, (opts.n - i * chunk).min(chunk))).collect();
    let run = |&(i, b): &(usize, usize)| -> Vec<f32> {
        let y = labels.map(|l| &l[i * chunk..i * chunk + b]);
        let seed = opts.seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let x = sampler
            .sample(&net, [b, shape.channels, shape.height, shape.width], y, seed, device, &mut |_, _| on_step());
        let x = tokenizer.decode(tokenizer.grid_to_tokens(x)).clamp(-1.0, 1.0); // [b, C, H, W]
        x.into_data().try_into_vec::<f32>().expect("f32 samples")
    };
    let mut out = Vec::with_capacity(opts.n);
    for values in crate::parallel::map_grouped(device, &chunks, &run) {
        out.extend(values.chunks(out_numel).map(|c| c.to_vec()));
    }
    if out.iter().flatten().any(|v| !v.is_finite()) {
        return Err(Error::Diverged("sampling produced non-finite pixels (is the checkpoint diverged?)".into()));
    }
    Ok(out)
}
