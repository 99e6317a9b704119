//! MAR's Diffusion Loss head (Li et al. 2024, §3.2; `SimpleMLPAdaLN` of LTH14/mar): a small
//! MLP that predicts the noise `eps` in a noisy token `x_t`, conditioned on the timestep and on
//! the vector `z` the transformer produced for that token.
//!
//! `h = W_in x_t`; `c = t_emb(t) + W_z z`; `depth` residual blocks
//! `h += gate * MLP(modulate(LN(h), shift, scale))` with `(shift, scale, gate) = W_ada SiLU(c)`;
//! out `= W_out modulate(LN(h), shift', scale')`. The modulations and the output projection are
//! zero-initialised, so a fresh head predicts `eps_hat = 0` and its first loss is the noise
//! variance. Unlike the official head (`2 C` outputs for the learned-variance VLB term), this
//! one predicts `eps` only, trained by the plain MSE the paper states. The official blocks'
//! `LN` is affine (a trained weight and bias, `in_ln`); here that is `affine_norm` (off: a plain
//! LN, as every run before it).

use burn::module::Module;
use burn::nn::{LayerNorm, Linear};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::nn::adaln::{layer_norm, modulate};
use crate::nn::embed::TimestepEmbedder;
use crate::nn::init::{xavier_linear, zero_linear};
use crate::nn::silu::silu;
use crate::nn::vit_block::layer_norm_affine;

/// The sizes of a Diffusion Loss head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiffusionHeadConfig {
    /// Token width `C` (the input).
    pub token_dim: usize,
    /// Output width: `C` (the noise, or the token of the L2 baseline), or the codebook size
    /// (logits of the cross-entropy baseline).
    pub out_dim: usize,
    /// Width of the condition vector `z`.
    pub cond_dim: usize,
    /// Hidden width (the paper: 1024).
    pub width: usize,
    /// Residual blocks (the paper: 3).
    pub depth: usize,
    /// The blocks' LayerNorm has a trained weight and bias (LTH14/mar's `in_ln`).
    pub affine_norm: bool,
}

/// One residual block: `LN -> modulate -> Linear -> SiLU -> Linear`, gated.
#[derive(Module, Debug)]
pub struct HeadBlock {
    /// The affine LayerNorm (eps 1e-6) of `affine_norm`; `None`: a plain one.
    pub in_ln: Option<LayerNorm>,
    pub fc1: Linear,
    pub fc2: Linear,
    /// `SiLU(c) -> (shift, scale, gate)`, zero-initialised.
    pub ada: Linear,
}

impl HeadBlock {
    fn new(width: usize, affine_norm: bool, device: &Device) -> Self {
        HeadBlock {
            in_ln: affine_norm.then(|| layer_norm_affine(width, device)),
            fc1: xavier_linear(width, width, device),
            fc2: xavier_linear(width, width, device),
            ada: zero_linear(width, 3 * width, device),
        }
    }

    /// # Shapes
    /// - `h`: `[N, W]`; `c_act`: `SiLU(c)`, `[N, W]`; returns `[N, W]`
    fn forward(&self, h: Tensor<2>, c_act: Tensor<2>) -> Tensor<2> {
        let [n, w] = h.dims();
        let mods = self.ada.forward(c_act).chunk(3, 1);
        let (shift, scale, gate) = (mods[0].clone(), mods[1].clone(), mods[2].clone());
        let normed = match &self.in_ln {
            Some(ln) => ln.forward(h.clone().reshape([n, 1, w])),
            None => layer_norm(h.clone().reshape([n, 1, w]), 1e-6),
        };
        let x = modulate(normed, shift, scale).reshape([n, w]);
        let x = self.fc2.forward(silu(self.fc1.forward(x)));
        h + gate * x
    }
}

/// The Diffusion Loss MLP.
#[derive(Module, Debug)]
pub struct DiffusionHead {
    pub input: Linear,
    pub time: TimestepEmbedder,
    pub cond: Linear,
    pub blocks: Vec<HeadBlock>,
    /// `SiLU(c) -> (shift, scale)` of the final layer, zero-initialised.
    pub final_ada: Linear,
    /// `W -> C`, zero-initialised.
    pub output: Linear,
}

impl DiffusionHeadConfig {
    pub fn init(&self, device: &Device) -> DiffusionHead {
        DiffusionHead {
            input: xavier_linear(self.token_dim, self.width, device),
            time: TimestepEmbedder::new(256, self.width, device),
            cond: xavier_linear(self.cond_dim, self.width, device),
            blocks: (0..self.depth).map(|_| HeadBlock::new(self.width, self.affine_norm, device)).collect(),
            final_ada: zero_linear(self.width, 2 * self.width, device),
            output: zero_linear(self.width, self.out_dim, device),
        }
    }
}

impl DiffusionHead {
    /// The predicted noise of each noisy token.
    ///
    /// # Shapes
    /// - `x_t`: `[N, C]`; `t`: `N` timesteps (host); `z`: `[N, Z]`; returns `[N, C]`
    pub fn forward(&self, x_t: Tensor<2>, t: &[usize], z: Tensor<2>) -> Tensor<2> {
        self.forward_conditioned(x_t, t, self.condition(z))
    }

    /// `W_z z`, the part of the head's condition that a sampler can compute once for all of its
    /// steps.
    ///
    /// # Shapes
    /// - `z`: `[N, Z]`; returns `[N, W]`
    pub fn condition(&self, z: Tensor<2>) -> Tensor<2> {
        self.cond.forward(z)
    }

    /// [`DiffusionHead::forward`] with `W_z z` given (see [`DiffusionHead::condition`]). The
    /// timestep MLP runs once per distinct `t` (a sampler's step has one; a training batch of
    /// tens of thousands of rows at most `T`), its rows then gathered.
    ///
    /// # Shapes
    /// - `x_t`: `[N, C]`; `t`: `N` timesteps (host); `cz`: `[N, W]`; returns `[N, C]`
    pub fn forward_conditioned(&self, x_t: Tensor<2>, t: &[usize], cz: Tensor<2>) -> Tensor<2> {
        self.trunk(self.input.forward(x_t), t, cz)
    }

    /// The head as a plain regressor of its condition (the L2 and cross-entropy baselines): the
    /// residual stream starts from `W_z z` in place of `W_in x_t`, at `t = 0`. Starting it from a
    /// zero token instead would make it the same vector for every row, which the LayerNorms map
    /// to a constant, so that with the zero-initialised output and modulations no gradient ever
    /// reaches anything but the output bias: the head would predict one token whatever `z`.
    /// `W_in` is unused on this path (it stays in the checkpoint, untrained).
    ///
    /// # Shapes
    /// - `z`: `[N, Z]`; returns `[N, out_dim]`
    pub fn regress(&self, z: Tensor<2>) -> Tensor<2> {
        let [n, _] = z.dims();
        let cz = self.condition(z);
        self.trunk(cz.clone(), &vec![0; n], cz)
    }

    /// The residual blocks and the output layer over the stream `h`.
    ///
    /// # Shapes
    /// - `h`: `[N, W]`; `t`: `N` timesteps (host); `cz`: `[N, W]`; returns `[N, out_dim]`
    fn trunk(&self, mut h: Tensor<2>, t: &[usize], cz: Tensor<2>) -> Tensor<2> {
        let device = h.device();
        let c = match t.first() {
            Some(&t0) if t.iter().all(|&s| s == t0) => self.time.forward(&[t0], &device) + cz, // [1, W] + [N, W]
            _ => {
                let mut distinct = t.to_vec();
                distinct.sort_unstable();
                distinct.dedup();
                let rows: Vec<i64> = t.iter().map(|s| distinct.binary_search(s).expect("listed") as i64).collect();
                let idx = Tensor::<1, Int>::from_data(TensorData::new(rows, [t.len()]), &device);
                self.time.forward(&distinct, &device).select(0, idx) + cz // [N, W]
            }
        };
        let c_act = silu(c);
        for block in &self.blocks {
            h = block.forward(h, c_act.clone());
        }
        let [n, w] = h.dims();
        let mods = self.final_ada.forward(c_act).chunk(2, 1);
        let h = modulate(layer_norm(h.reshape([n, 1, w]), 1e-6), mods[0].clone(), mods[1].clone()).reshape([n, w]);
        self.output.forward(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    fn head(device: &Device) -> DiffusionHead {
        crate::nn::init::seeded(device, 3, |device| {
            DiffusionHeadConfig { token_dim: 8, out_dim: 8, cond_dim: 12, width: 32, depth: 2, affine_norm: false }
                .init(device)
        })
    }

    /// The official head's affine `in_ln` at its initial identity computes exactly the plain
    /// LayerNorm (the same eps, 1e-6), and a trained one is applied.
    #[test]
    fn an_affine_head_norm_at_the_identity_is_the_plain_head() {
        let device = Device::flex();
        let mut plain = head(&device);
        // Non-zero modulations and output, so that the norm reaches the prediction.
        for b in plain.blocks.iter_mut() {
            b.ada = xavier_linear(32, 96, &device);
        }
        plain.final_ada = xavier_linear(32, 64, &device);
        plain.output = xavier_linear(32, 8, &device);
        let mut affine = plain.clone();
        for b in affine.blocks.iter_mut() {
            b.in_ln = Some(layer_norm_affine(32, &device));
        }
        let x_t = Tensor::<2>::random([16, 8], Distribution::Normal(0.0, 1.0), &device);
        let z = Tensor::<2>::random([16, 12], Distribution::Normal(0.0, 1.0), &device);
        let t: Vec<usize> = (0..16).map(|i| i * 60).collect();
        let run = |h: &DiffusionHead| h.forward(x_t.clone(), &t, z.clone());
        let (a, b) = (run(&plain), run(&affine));
        let scale: f32 = a.clone().abs().max().into_scalar();
        assert!(scale > 1e-3, "the output depends on the norm: {scale}");
        let diff: f32 = (a.clone() - b).abs().max().into_scalar();
        assert!(diff <= 1e-6 * scale, "identity affine norm vs plain: {diff}");
        let ln = affine.blocks[0].in_ln.as_mut().unwrap();
        ln.gamma = burn::module::Param::from_tensor(Tensor::ones([32], &device) * 2.0);
        let diff: f32 = (a - run(&affine)).abs().max().into_scalar();
        assert!(diff > 1e-3 * scale, "a trained norm changes the prediction: {diff}");
    }

    #[test]
    fn a_fresh_head_predicts_zero_noise_so_its_first_loss_is_the_noise_variance() {
        let device = Device::flex();
        let head = head(&device);
        let n = 4096;
        let eps = Tensor::<2>::random([n, 8], Distribution::Normal(0.0, 1.0), &device);
        let x_t = Tensor::<2>::random([n, 8], Distribution::Normal(0.0, 1.0), &device);
        let z = Tensor::<2>::random([n, 12], Distribution::Normal(0.0, 1.0), &device);
        let t: Vec<usize> = (0..n).map(|i| i % 1000).collect();
        let pred = head.forward(x_t, &t, z);
        let loss: f32 = (pred - eps.clone()).square().mean().into_scalar();
        let variance: f32 = eps.square().mean().into_scalar();
        assert_eq!(loss, variance);
        assert!((variance - 1.0).abs() < 0.03, "{variance}");
    }

    #[test]
    fn one_shared_timestep_embedding_gives_the_per_row_result() {
        // The sampler's fast path (all rows at one t: one embedding, broadcast) against the
        // general path (a last row at another t forces one embedding per row).
        let device = Device::flex();
        let mut head = head(&device);
        let fill = |l: Linear| crate::nn::init::xavier_linear(l.weight.dims()[0], l.weight.dims()[1], &device);
        head.final_ada = fill(head.final_ada);
        head.output = fill(head.output);
        let x = Tensor::<2>::random([5, 8], Distribution::Normal(0.0, 1.0), &device);
        let z = Tensor::<2>::random([5, 12], Distribution::Normal(0.0, 1.0), &device);
        let shared = head.forward(x.clone().slice_dim(0, 0..4), &[300; 4], z.clone().slice_dim(0, 0..4));
        let mixed = head.forward(x, &[300, 300, 300, 300, 7], z).slice_dim(0, 0..4);
        let diff: f32 = (shared - mixed).abs().max().into_scalar();
        assert!(diff < 1e-6, "{diff}");
        // Repeated timesteps (embedded once each, rows gathered) give each row's own result.
        let ts = [300, 7, 300, 999, 7];
        let x = Tensor::<2>::random([5, 8], Distribution::Normal(0.0, 1.0), &device);
        let z = Tensor::<2>::random([5, 12], Distribution::Normal(0.0, 1.0), &device);
        let all = head.forward(x.clone(), &ts, z.clone());
        for (i, &t) in ts.iter().enumerate() {
            let one = head.forward(x.clone().slice_dim(0, i..i + 1), &[t], z.clone().slice_dim(0, i..i + 1));
            let diff: f32 = (all.clone().slice_dim(0, i..i + 1) - one).abs().max().into_scalar();
            assert!(diff < 1e-6, "row {i}: {diff}");
        }
    }

    /// The L2 / cross-entropy baselines regress a token from `z` alone. A fresh head (zero
    /// output and modulations) must still learn a target that depends on `z`: once it read a
    /// zero token, every row's stream was one vector, the LayerNorms made it a constant, and only
    /// the output bias ever moved (the L2 baseline then drew one token whatever its class).
    #[test]
    fn a_fresh_regression_head_learns_a_target_that_depends_on_the_condition() {
        use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
        let device = Device::flex().autodiff();
        let mut head = crate::nn::init::seeded(&device, 3, |device| {
            DiffusionHeadConfig { token_dim: 2, out_dim: 2, cond_dim: 6, width: 32, depth: 2, affine_norm: false }
                .init(device)
        });
        let mut optim: ModuleOptimizer = AdamWConfig::new().with_weight_decay(0.0).init();
        let z = Tensor::<2>::random([256, 6], Distribution::Normal(0.0, 1.0), &device);
        // A target that is a fixed linear map of z: zero mean, so the bias alone cannot fit it.
        let a = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, 0.0, 0.0, 1.0, 0.5, -0.5, 0.0, 0.0, -1.0, 0.5, 0.0, 0.0], [6, 2]),
            &device,
        );
        let target = z.clone().matmul(a).detach();
        let variance: f32 = target.clone().square().mean().into_scalar();
        let mut loss = variance;
        for _ in 0..200 {
            let l = (head.regress(z.clone()) - target.clone()).square().mean();
            loss = l.clone().into_scalar();
            let grads = crate::nn::grads::contiguous(&head, GradientsParams::from_grads(l.backward(), &head));
            head = optim.step(3e-3, head, grads);
        }
        assert!(loss < 0.1 * variance, "loss {loss} vs the target's variance {variance}");
    }

    #[test]
    fn a_trained_head_depends_on_the_condition_and_the_timestep() {
        // With its zero layers given values (as after training), the output must change with z
        // and with t: the adaLN path is wired.
        let device = Device::flex();
        let mut head = head(&device);
        let fill = |l: Linear| crate::nn::init::xavier_linear(l.weight.dims()[0], l.weight.dims()[1], &device);
        head.final_ada = fill(head.final_ada);
        head.output = fill(head.output);
        head.blocks = head
            .blocks
            .into_iter()
            .map(|mut b| {
                b.ada = fill(b.ada);
                b
            })
            .collect();
        let x = Tensor::<2>::random([2, 8], Distribution::Normal(0.0, 1.0), &device);
        let z = Tensor::<2>::random([2, 12], Distribution::Normal(0.0, 1.0), &device);
        let base = head.forward(x.clone(), &[10, 10], z.clone());
        let other_t = head.forward(x.clone(), &[900, 900], z.clone());
        let other_z = head.forward(x, &[10, 10], z * 2.0);
        let diff = |a: Tensor<2>, b: Tensor<2>| -> f32 { (a - b).abs().max().into_scalar() };
        assert!(diff(base.clone(), other_t) > 1e-3);
        assert!(diff(base, other_z) > 1e-3);
    }
}
