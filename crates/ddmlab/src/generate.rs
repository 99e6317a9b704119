//! Sampling images from a trained DDPM-objective network: the network is wrapped as a
//! [`Denoiser`] (a latent-space model samples latents, decoded by the run's PCA), images are
//! drawn in chunks (each chunk seeded from `(seed, chunk index)`, so the
//! output depends only on the seed and the chunk size), and chunks run concurrently, one per
//! worker thread (burn's element-wise kernels are single-threaded).

use burn::tensor::{Device, Tensor};
use rayon::prelude::*;

use crate::config::RunConfig;
use crate::diffusion::{Denoiser, Guidance, Prediction, Sampler, SamplerKind, TimestepMap, VpSchedule};
use crate::error::{Error, Result};
use crate::models::DenoisingVit;
use crate::tokenizer::{LatentCodec, PatchPca};
use crate::train::objective::latent_codec;

/// A network as the samplers see it: its output read as the objective's prediction.
pub struct VitDenoiser<'a> {
    pub model: &'a DenoisingVit,
    pub prediction: Prediction,
}

impl Denoiser for VitDenoiser<'_> {
    fn prediction(&self) -> Prediction {
        self.prediction
    }

    fn predict(&self, x_t: Tensor<4>, t: &[usize], labels: Option<&[usize]>) -> Tensor<4> {
        self.model.forward_labelled(x_t, t, labels)
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
    let d = config.objective.ddpm().ok_or_else(|| {
        Error::config(
            "--run",
            format!("sampling needs a DDPM-objective run (a DiT preset); this run trains {}", config.objective.label()),
        )
    })?;
    if opts.cfg != 1.0 && config.model.num_classes == 0 {
        return Err(Error::config(
            "--cfg",
            "classifier-free guidance needs a class-conditional model (num_classes > 0)",
        ));
    }
    if !(opts.cfg.is_finite() && opts.cfg >= 0.0) {
        return Err(Error::config("--cfg", format!("{} must be a non-negative number", opts.cfg)));
    }
    let classes = config.model.num_classes;
    if let Some(&y) = opts.labels.iter().find(|&&y| classes == 0 || y > classes) {
        return Err(Error::config(
            "--class",
            if classes == 0 {
                format!("{y}: this model is unconditional, it takes no class")
            } else {
                format!("{y} is not a class of this model, expected 0..={} ({classes}: the null class)", classes - 1)
            },
        ));
    }
    if !opts.labels.is_empty() && opts.labels.len() != opts.n {
        return Err(Error::config("--n", format!("{} images but {} labels", opts.n, opts.labels.len())));
    }
    if opts.steps == 0 || opts.steps > d.timesteps {
        return Err(Error::config("--steps", format!("{} must be in 1..={}", opts.steps, d.timesteps)));
    }
    Ok(Sampler {
        schedule: VpSchedule::new(d.schedule, d.timesteps),
        kind: opts.kind,
        map: TimestepMap::evenly_spaced(d.timesteps, opts.steps),
        guidance: (config.model.num_classes > 0)
            .then_some(Guidance { scale: opts.cfg, null_class: config.model.num_classes }),
        clip_x0: opts.clip_x0,
    })
}

/// The latent codec of a latent-space run, from `RUN/pca.safetensors` (`None` in pixel space).
pub fn run_codec(run: &std::path::Path, config: &RunConfig, device: &Device) -> Result<Option<LatentCodec>> {
    if config.objective.ddpm().and_then(|d| d.latent.as_ref()).is_none() {
        return Ok(None);
    }
    let pca = PatchPca::load(&run.join("pca.safetensors"))?;
    latent_codec(config, Some(&pca), device)
}

/// Draw `opts.n` images; `on_step` is called once per sampler step of every chunk (from worker
/// threads). A latent-space model needs its `codec` (see [`run_codec`]): it samples latents
/// (unclipped) and decodes them. Returns `[C, H, W]` images in `[-1, 1]`, in label order.
pub fn sample_images(
    model: &DenoisingVit,
    config: &RunConfig,
    codec: Option<&LatentCodec>,
    opts: &SampleOptions,
    device: &Device,
    on_step: &(dyn Fn() + Sync),
) -> Result<Vec<Vec<f32>>> {
    let mut sampler = sampler_of(config, opts)?;
    let d = config.objective.ddpm().expect("checked by sampler_of");
    if d.latent.is_some() != codec.is_some() {
        return Err(Error::Other("a latent-space model samples with its PCA codec, a pixel-space one without".into()));
    }
    if codec.is_some() {
        sampler.clip_x0 = false; // the latent has no fixed range; images are clipped after decoding
    }
    let net = VitDenoiser { model, prediction: d.prediction };
    let shape = config.network().image;
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
        let x = match codec {
            Some(codec) => codec.decode(x).clamp(-1.0, 1.0), // [b, C, H, W]
            None => x,
        };
        x.into_data().try_into_vec::<f32>().expect("f32 samples")
    };
    let workers = rayon::current_num_threads().max(1);
    let mut out = Vec::with_capacity(opts.n);
    for group in chunks.chunks(workers) {
        for values in group.par_iter().map(run).collect::<Vec<_>>() {
            out.extend(values.chunks(out_numel).map(|c| c.to_vec()));
        }
    }
    if out.iter().flatten().any(|v| !v.is_finite()) {
        return Err(Error::Diverged("sampling produced non-finite pixels (is the checkpoint diverged?)".into()));
    }
    Ok(out)
}
