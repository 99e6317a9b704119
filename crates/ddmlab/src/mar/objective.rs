//! MAR's training objective on latent tokens: the random draws of one batch (addressed by
//! `(seed, step)`, as every objective's) and the Diffusion Loss of the masked tokens.
//!
//! Per batch: one mask ratio; per image: a random order (its first `ceil(L r)` tokens masked)
//! and the class label, replaced by the null class with probability `class_dropout`; per
//! (masked token, repeat): a timestep uniform over the cosine schedule's `T` and standard
//! normal noise. `repeat` is the paper's diffusion batch multiplier (4): each `z` is trained
//! on that many noisy versions of its token.
//!
//! The causal variants ([`MarVariant`]) predict every token from the ones before it in the
//! image's order (raster or random), so every token is a target and no ratio is drawn. The L2
//! baseline ([`MarLoss::L2`]) regresses each target token from its `z` and draws no noise.

use burn::tensor::{Device, Tensor, TensorData};

use rand::RngExt;
use rand_distr::StandardNormal;

use super::codebook::Codebook;
use super::order::{mask_of, mask_ratio, masked_count, variant_order};
use crate::config::{MarLoss, MarVariant, RunConfig};
use crate::data::loader::{Batch, purpose, step_rng};
use crate::diffusion::vlb::{VlbTables, vb_term};
use crate::diffusion::vp::{BetaSchedule, VpSchedule};
use crate::models::mar::Mar;
use crate::tokenizer::posterior::PosteriorTokens;
use crate::tokenizer::{FittedTokenizer, Tokenizer};
use crate::train::step::{Network, Objective};

/// The settings of MAR's objective.
#[derive(Debug, Clone, PartialEq)]
pub struct MarObjective {
    /// The head's noise schedule (cosine over 1000 steps, as the paper).
    pub schedule: VpSchedule,
    /// Lowest training mask ratio (0.7).
    pub min_mask_ratio: f64,
    /// Probability of replacing a label by the null class (0.1).
    pub class_dropout: f64,
    /// Noisy copies per masked token (4).
    pub repeat: usize,
    pub num_classes: usize,
    /// Tokens per image `L` and their width `C`.
    pub seq_len: usize,
    pub token_dim: usize,
    pub variant: MarVariant,
    pub loss: MarLoss,
    /// A fixed mask ratio instead of the truncated Gaussian (MAE's 0.75).
    pub fixed_ratio: Option<f64>,
    /// L2 targets normalised per token (MAE's `norm_pix_loss`).
    pub norm_target: bool,
    /// The learned variance's tables (`mar.learn_variance`): the loss adds the VLB term of the
    /// head's variance outputs to the MSE, as LTH14/mar's (`loss = mse + vb`, per row).
    pub vlb: Option<VlbTables>,
}

/// The random draws of one batch.
#[derive(Debug, Clone, PartialEq)]
pub struct MarDraws {
    /// Per image, the order of its tokens (a causal model reads it; MAR's mask is its head).
    pub order: Vec<Vec<usize>>,
    /// Per image, `L` flags of the tokens to predict; every image masks the same count (all
    /// of them for a causal model).
    pub mask: Vec<Vec<bool>>,
    /// Labels after dropout (`num_classes` = the null class).
    pub labels: Vec<usize>,
    /// One timestep per (image, repeat, masked token), in that order: an image's draws are
    /// contiguous, so a shard of images is a contiguous slice.
    pub t: Vec<usize>,
    /// `[M repeat, C]` standard normal noise (none for the L2 loss).
    pub eps: Vec<f32>,
    /// `[B, L, C]` standard normal noise of a stochastic tokenizer's posterior sample (MAR
    /// trains on `posterior.sample()`); empty for a deterministic one.
    pub tok_noise: Vec<f32>,
    /// `[B, L, C]` tokens from a latent cache (its sample with `tok_noise`); empty when the
    /// images are encoded.
    pub tokens: Vec<f32>,
}

impl MarDraws {
    /// The draws of images `lo..hi` (a data-parallel shard).
    pub fn slice(&self, lo: usize, hi: usize) -> MarDraws {
        let per_image = self.t.len() / self.mask.len().max(1);
        let token_dim = self.eps.len() / self.t.len().max(1);
        let tok = self.tok_noise.len() / self.mask.len().max(1);
        let cached = self.tokens.len() / self.mask.len().max(1);
        MarDraws {
            tok_noise: self.tok_noise[lo * tok..hi * tok].to_vec(),
            tokens: self.tokens[lo * cached..hi * cached].to_vec(),
            order: self.order[lo..hi].to_vec(),
            mask: self.mask[lo..hi].to_vec(),
            labels: self.labels[lo..hi].to_vec(),
            t: self.t[lo * per_image..hi * per_image].to_vec(),
            eps: self.eps[lo * per_image * token_dim..hi * per_image * token_dim].to_vec(),
        }
    }
}

/// The head's noise schedule: improved DDPM's cosine over `T = 1000` (the paper's), for training
/// and, respaced, for sampling.
pub fn head_schedule() -> VpSchedule {
    VpSchedule::new(BetaSchedule::cosine(), 1000)
}

impl MarObjective {
    /// The paper's settings for `seq_len` tokens of width `token_dim`.
    pub fn paper(seq_len: usize, token_dim: usize, num_classes: usize) -> Self {
        MarObjective {
            schedule: head_schedule(),
            min_mask_ratio: 0.7,
            class_dropout: 0.1,
            repeat: 4,
            num_classes,
            seq_len,
            token_dim,
            variant: MarVariant::Mar,
            loss: MarLoss::Diffusion,
            fixed_ratio: None,
            norm_target: false,
            vlb: None,
        }
    }

    /// The draws of batch `step` of a run seeded `seed`: a pure function of `(seed, step)`.
    pub fn draw(&self, seed: u64, step: usize, labels: &[u32]) -> MarDraws {
        let (b, l) = (labels.len(), self.seq_len);
        let mut rng = step_rng(seed, purpose::MASK, step as u64);
        let count =
            if self.variant.is_causal() { l } else { masked_count(l, mask_ratio(&mut rng, self.min_mask_ratio)) };
        let order: Vec<Vec<usize>> = (0..b).map(|_| variant_order(self.variant, &mut rng, l)).collect();
        let mask = order.iter().map(|o| mask_of(o, count)).collect();
        let mut drop = step_rng(seed, purpose::LABEL_DROP, step as u64);
        let labels = labels
            .iter()
            .map(|&y| {
                let dropped = drop.random::<f64>() < self.class_dropout;
                // An unconditional model (no classes) reads the null class only.
                if dropped || self.num_classes == 0 { self.num_classes } else { y as usize }
            })
            .collect();
        let n = match self.loss {
            MarLoss::Diffusion => b * count * self.repeat,
            MarLoss::L2 | MarLoss::CrossEntropy => 0,
        };
        let mut noise = step_rng(seed, purpose::NOISE, step as u64);
        let t = (0..n).map(|_| noise.random_range(0..self.schedule.len())).collect();
        let eps = (0..n * self.token_dim).map(|_| noise.sample::<f32, _>(StandardNormal)).collect();
        MarDraws { order, mask, labels, t, eps, tok_noise: Vec::new(), tokens: Vec::new() }
    }

    /// The loss of `model` (Diffusion Loss, L2 or cross-entropy) on clean tokens with `draws`;
    /// with a `codebook` the tokens are first replaced by their nearest codes (the
    /// cross-entropy loss needs one: its targets are the codes).
    ///
    /// # Shapes
    /// - `tokens`: `[B, L, C]`; returns `[1]`
    pub fn loss(
        &self,
        model: &Mar,
        tokens: Tensor<3>,
        draws: &MarDraws,
        codebook: Option<&Codebook>,
        device: &Device,
    ) -> Tensor<1> {
        let (tokens, codes) = match codebook {
            Some(book) => {
                let dims = tokens.dims();
                let values: Vec<f32> = tokens.into_data().try_into_vec().expect("f32 tokens");
                let codes = book.assign(&values);
                let quantised = Tensor::<3>::from_data(TensorData::new(book.lookup(&codes), dims), device);
                (quantised, Some(codes))
            }
            None => (tokens, None),
        };
        match self.loss {
            MarLoss::Diffusion => {}
            MarLoss::L2 => return model.l2_loss(tokens, &draws.mask, &draws.order, &draws.labels, self.norm_target),
            MarLoss::CrossEntropy => {
                let codes = codes.expect("the cross-entropy loss needs a codebook (checked by the config)");
                let l = self.seq_len;
                let targets: Vec<usize> = draws
                    .mask
                    .iter()
                    .enumerate()
                    .flat_map(|(i, row)| row.iter().enumerate().filter(|(_, m)| **m).map(move |(j, _)| i * l + j))
                    .map(|r| codes[r])
                    .collect();
                return model.ce_loss(tokens, &draws.mask, &draws.order, &draws.labels, &targets);
            }
        }
        let gamma: Vec<f32> = draws.t.iter().map(|&t| self.schedule.gamma(t) as f32).collect();
        let sigma: Vec<f32> = draws.t.iter().map(|&t| self.schedule.sigma(t) as f32).collect();
        let n = draws.t.len();
        let eps = Tensor::<2>::from_data(TensorData::new(draws.eps.clone(), [n, self.token_dim]), device);
        let rows =
            model.noised_rows(tokens, &draws.mask, &draws.order, &draws.labels, &draws.t, &gamma, &sigma, eps.clone());
        let c = self.token_dim;
        let eps_hat = rows.out.clone().narrow(1, 0, c);
        let mse = (eps_hat.clone() - eps).square().mean();
        let Some(tables) = &self.vlb else {
            return mse.reshape([1]);
        };
        // LTH14/mar's `mse + vb` per row, averaged.
        let v = rows.out.narrow(1, c, c);
        let vb = vb_term(tables, rows.x0, rows.x_t, eps_hat, v, &draws.t).mean();
        (mse + vb).reshape([1])
    }
}

/// MAR's objective on images: the run's tokenizer turns them into tokens (a VAE's posterior
/// sample, as the paper trains, else the deterministic latent), then [`MarObjective::loss`].
#[derive(Debug)]
pub struct MarTrainObjective {
    pub objective: MarObjective,
    /// The run's fitted tokenizer on the training device.
    pub tokenizer: Box<dyn Tokenizer>,
    /// The run's k-means codebook when `[mar] codebook` asks for quantised tokens.
    pub codebook: Option<Codebook>,
    /// The training set's posterior, encoded once (`train.cache_latents`).
    pub cache: Option<std::sync::Arc<PosteriorTokens>>,
}

impl MarTrainObjective {
    /// The objective of a MAR run (`config.mar` set) with its fitted tokenizer on `device` and
    /// its codebook (when the config quantises).
    pub fn new(config: &RunConfig, tokenizer: &FittedTokenizer, codebook: Option<&Codebook>, device: &Device) -> Self {
        let net = config.mar_network().expect("a MAR objective needs a [mar] section");
        let mar = config.mar.as_ref().expect("checked above");
        MarTrainObjective {
            objective: MarObjective {
                min_mask_ratio: mar.min_mask_ratio,
                class_dropout: config.denoise.class_dropout,
                repeat: mar.diffusion_repeat,
                variant: mar.variant,
                loss: mar.loss,
                fixed_ratio: mar.mask_ratio,
                norm_target: mar.norm_target,
                vlb: mar.learn_variance.then(|| VlbTables::new(&head_schedule())),
                ..MarObjective::paper(net.seq_len, net.token_dim, net.num_classes)
            },
            tokenizer: tokenizer.bind(config.model.image, device),
            codebook: codebook.cloned(),
            cache: None,
        }
    }
}

impl Network for Mar {
    /// # Panics
    /// On a config without `[mar]` (runs dispatch on it before building a network).
    fn build(config: &RunConfig, device: &Device) -> Self {
        config.mar_network().expect("a MAR network needs a [mar] section").init(device)
    }
}

impl Objective<Mar> for MarTrainObjective {
    type Draws = MarDraws;

    fn draw(&self, seed: u64, step: usize, labels: &[u32]) -> MarDraws {
        let mut draws = self.objective.draw(seed, step, labels);
        if self.tokenizer.stochastic() {
            let n = labels.len() * self.objective.seq_len * self.objective.token_dim;
            let mut rng = step_rng(seed, purpose::TOKENIZER, step as u64);
            draws.tok_noise = (0..n).map(|_| rng.sample::<f32, _>(StandardNormal)).collect();
        }
        draws
    }

    fn draw_batch(&self, seed: u64, batch: &Batch) -> MarDraws {
        let mut draws = self.draw(seed, batch.step, &batch.labels);
        if let Some(cache) = &self.cache {
            let noise = (!draws.tok_noise.is_empty()).then_some(&draws.tok_noise[..]);
            draws.tokens = cache.sample(&batch.indices, noise);
        }
        draws
    }

    fn slice(&self, draws: &MarDraws, lo: usize, hi: usize) -> MarDraws {
        draws.slice(lo, hi)
    }

    fn loss(&self, model: &Mar, x0: Tensor<4>, draws: &MarDraws) -> Tensor<1> {
        let device = x0.device();
        let (b, o) = (draws.mask.len(), &self.objective);
        let tokens = if !draws.tokens.is_empty() {
            Tensor::from_data(TensorData::new(draws.tokens.clone(), [b, o.seq_len, o.token_dim]), &device)
        } else if draws.tok_noise.is_empty() {
            self.tokenizer.encode(x0) // [B, L, C]
        } else {
            let noise = TensorData::new(draws.tok_noise.clone(), [b, o.seq_len, o.token_dim]);
            self.tokenizer.encode_sample(x0, Tensor::from_data(noise, &device))
        };
        self.objective.loss(model, tokens, draws, self.codebook.as_ref(), &device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_a_pure_function_of_seed_and_step_with_one_mask_count_per_batch() {
        let obj = MarObjective::paper(64, 8, 10);
        let labels: Vec<u32> = (0..32).map(|i| i % 10).collect();
        let a = obj.draw(3, 17, &labels);
        assert_eq!(a, obj.draw(3, 17, &labels));
        assert_ne!(a.mask, obj.draw(3, 18, &labels).mask);
        assert_ne!(a.mask, obj.draw(4, 17, &labels).mask);
        let count = a.mask[0].iter().filter(|&&m| m).count();
        assert!((45..=64).contains(&count), "{count}"); // ceil(64 * 0.7) = 45
        assert!(a.mask.iter().all(|m| m.iter().filter(|&&x| x).count() == count));
        assert_eq!(a.t.len(), 32 * count * 4);
        assert_eq!(a.eps.len(), a.t.len() * 8);
        assert!(a.t.iter().all(|&t| t < 1000));
    }

    #[test]
    fn the_loss_of_a_batch_is_the_mean_of_its_shards_losses() {
        use crate::models::mar::MarConfig;
        use burn::tensor::Distribution;
        let device = Device::flex();
        let config = MarConfig::tiny(4, 16, 10);
        let mut model = crate::nn::init::seeded(&device, 9, |device| config.init(device));
        // Give the zero-initialised output a value so that the loss depends on the inputs.
        model.head.output = crate::nn::init::xavier_linear(16, 4, &device);
        let obj = MarObjective::paper(16, 4, 10);
        let labels: Vec<u32> = (0..6).collect();
        let draws = obj.draw(2, 5, &labels);
        let tokens = Tensor::<3>::random([6, 16, 4], Distribution::Normal(0.0, 1.0), &device);
        let whole: f32 = obj.loss(&model, tokens.clone(), &draws, None, &device).into_scalar();
        let shard = |lo: usize, hi: usize| -> f32 {
            let t = tokens.clone().slice_dim(0, lo..hi);
            obj.loss(&model, t, &draws.slice(lo, hi), None, &device).into_scalar()
        };
        let mean = (shard(0, 2) * 2.0 + shard(2, 6) * 4.0) / 6.0;
        assert!((whole - mean).abs() < 1e-5 * whole.abs(), "{whole} vs {mean}");
        // A stochastic tokenizer's noise is per image too: a shard takes its images' share.
        let mut noisy = draws.clone();
        noisy.tok_noise = (0..6 * 16 * 4).map(|i| i as f32).collect();
        assert_eq!(noisy.slice(2, 5).tok_noise, noisy.tok_noise[2 * 64..5 * 64]);
    }

    /// With `mar.learn_variance` the loss is LTH14/mar's `mse + vb` per row, averaged: checked
    /// against f64 on the host from the head's own rows (a timestep 0 among them, where the term
    /// is the discretized likelihood), and the VLB term trains the variance outputs only (the
    /// official `frozen_out`): the gradient reaching the eps columns of the output layer is the
    /// MSE's alone.
    #[test]
    fn the_learned_variance_loss_is_mse_plus_the_vlb_term_and_trains_only_the_variance() {
        use crate::models::mar::MarConfig;
        use burn::tensor::Distribution;
        let device = Device::flex().autodiff();
        let config = MarConfig { head_out: 8, learn_variance: true, ..MarConfig::tiny(4, 16, 10) };
        let mut model = crate::nn::init::seeded(&device, 9, |device| config.init(device));
        model.head.output = crate::nn::init::xavier_linear(16, 8, &device);
        let schedule = head_schedule();
        let tables = VlbTables::new(&schedule);
        let obj = MarObjective { vlb: Some(tables.clone()), ..MarObjective::paper(16, 4, 10) };
        let labels: Vec<u32> = (0..3).collect();
        let mut draws = obj.draw(2, 5, &labels);
        draws.t[0] = 0;
        draws.t[5] = 1;
        let tokens = Tensor::<3>::random([3, 16, 4], Distribution::Normal(0.0, 0.5), &device);
        let tokens2 = tokens.clone();
        let loss = obj.loss(&model, tokens.clone(), &draws, None, &device);
        let got: f32 = loss.clone().into_scalar();
        // The host's f64 value from the same rows.
        let gamma: Vec<f32> = draws.t.iter().map(|&t| schedule.gamma(t) as f32).collect();
        let sigma: Vec<f32> = draws.t.iter().map(|&t| schedule.sigma(t) as f32).collect();
        let n = draws.t.len();
        let eps = Tensor::<2>::from_data(TensorData::new(draws.eps.clone(), [n, 4]), &device);
        let rows = model.noised_rows(tokens, &draws.mask, &draws.order, &draws.labels, &draws.t, &gamma, &sigma, eps);
        let host = |t: Tensor<2>| -> Vec<f64> {
            t.into_data().try_into_vec::<f32>().unwrap().into_iter().map(f64::from).collect()
        };
        let (out, x0, xt) = (host(rows.out), host(rows.x0), host(rows.x_t));
        let cdf = |x: f64| 0.5 * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh());
        let (mut mse, mut vb) = (0.0, 0.0);
        for (r, &t) in draws.t.iter().enumerate() {
            let mut row = 0.0;
            for k in 0..4 {
                let (e_hat, v) = (out[r * 8 + k], out[r * 8 + 4 + k]);
                mse += (e_hat - draws.eps[r * 4 + k] as f64).powi(2) / (4 * n) as f64;
                let (a, b) = (x0[r * 4 + k], xt[r * 4 + k]);
                let true_mean = tables.coef_x0[t] * a + tables.coef_xt[t] * b;
                let a_hat = tables.recip[t] * b - tables.recip_m1[t] * e_hat;
                let mean = tables.coef_x0[t] * a_hat + tables.coef_xt[t] * b;
                let lv = tables.log_variance(t, v);
                row += if t == 0 {
                    let inv = (-0.5 * lv).exp();
                    let p = cdf(inv * (a - mean + 1.0 / 255.0)) - cdf(inv * (a - mean - 1.0 / 255.0));
                    -p.max(1e-12).ln()
                } else {
                    let lv1 = tables.min_log[t];
                    0.5 * (lv - lv1 + (lv1 - lv).exp() + (true_mean - mean).powi(2) * (-lv).exp() - 1.0)
                };
            }
            vb += row / 4.0 / std::f64::consts::LN_2 / n as f64;
        }
        let want = mse + vb;
        assert!(vb > 1e-3, "the VLB term is there: {vb}");
        assert!((got as f64 - want).abs() < 1e-4 * want, "{got} vs {want} (mse {mse}, vb {vb})");
        // The eps columns' gradient is the MSE's alone; the variance columns get the VLB's.
        let weight_grad = |loss: Tensor<1>| host(model.head.output.weight.grad(&loss.backward()).unwrap());
        let full = weight_grad(loss);
        let plain = MarObjective { vlb: None, ..obj.clone() };
        let mse_only = weight_grad(plain.loss(&model, tokens2, &draws, None, &device));
        for (i, (a, b)) in full.iter().zip(&mse_only).enumerate() {
            if i % 8 < 4 {
                assert!((a - b).abs() < 1e-6 * b.abs().max(1e-3), "eps column {}: {a} vs {b}", i % 8);
            } else {
                assert_eq!(*b, 0.0);
            }
        }
        assert!(full.iter().enumerate().any(|(i, g)| i % 8 >= 4 && g.abs() > 1e-6), "the VLB trains the variance");
    }

    #[test]
    fn a_tiny_mar_learns_its_tokens() {
        // Tokens are one of two constants (by class) plus a small pattern: the loss must fall
        // well below a fresh head's (the noise variance, 1) within 60 AdamW steps (measured:
        // 0.98 -> about 0.2), which needs gradients through the head and the gathers.
        use crate::models::mar::MarConfig;
        use burn::optim::{AdamWConfig, GradientsParams};
        let device = Device::flex().autodiff();
        let mut model = crate::nn::init::seeded(&device, 4, |device| MarConfig::tiny(4, 16, 2).init(device));
        let mut optim = AdamWConfig::new().with_weight_decay(0.0).init();
        let obj = MarObjective::paper(16, 4, 2);
        let labels: Vec<u32> = (0..8).map(|i| i % 2).collect();
        let values: Vec<f32> = labels
            .iter()
            .flat_map(|&y| (0..64).map(move |k| if y == 0 { 0.8 } else { -0.8 } + 0.01 * (k % 3) as f32))
            .collect();
        let tokens = Tensor::<3>::from_data(TensorData::new(values, [8, 16, 4]), &device);
        let mut losses = Vec::new();
        for step in 0..60 {
            let draws = obj.draw(0, step, &labels);
            let loss = obj.loss(&model, tokens.clone(), &draws, None, &device);
            losses.push(loss.clone().into_scalar::<f32>());
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(3e-3, model, grads);
        }
        let first = losses[..5].iter().sum::<f32>() / 5.0;
        let last = losses[55..].iter().sum::<f32>() / 5.0;
        assert!((first - 1.0).abs() < 0.2, "{first}");
        assert!(last < 0.6 * first, "{first} -> {last}: {losses:?}");
    }

    #[test]
    fn labels_drop_to_the_null_class_at_the_configured_rate() {
        let obj = MarObjective::paper(16, 4, 10);
        let labels = vec![3u32; 1000];
        let dropped: usize = (0..20).map(|s| obj.draw(1, s, &labels).labels.iter().filter(|&&y| y == 10).count()).sum();
        let rate = dropped as f64 / 20_000.0;
        // 0.1 +- 4 standard errors (0.0021 each).
        assert!((rate - 0.1).abs() < 0.0085, "{rate}");
        let kept: Vec<usize> = obj.draw(1, 0, &labels).labels;
        assert!(kept.iter().all(|&y| y == 3 || y == 10));
    }
}
