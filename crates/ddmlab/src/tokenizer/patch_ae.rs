//! Patch-wise linear autoencoder and VAE tokenizers (l-DAE paper §4.3, Table 2: "patch-wise
//! AE" and "patch-wise VAE").
//!
//! Each `p x p x C` patch `x` (`D = p p C`) is encoded by one linear map, `mu = x W_e + b_e`
//! (`[d]`), and decoded by another, `x_hat = z W_d + b_d`. The AE trains `z = mu` on the summed
//! squared reconstruction error `|x - x_hat|^2`; the VAE adds a log-variance head
//! `log sigma^2 = x W_v + b_v`, decodes the reparameterised sample `z = mu + sigma eps`, and adds
//! `kl_weight * KL(N(mu, sigma^2) || N(0, I))` with the closed form
//! `KL = 1/2 sum_k (mu_k^2 + sigma_k^2 - 1 - log sigma_k^2)`. Both train with Adam on patches
//! drawn like PCA's, with a cosine learning rate; the reconstruction error of a held-out tenth of
//! the patches is recorded every 100 steps. As a tokenizer the VAE encodes to its posterior mean
//! (or a sample, for training a diffusion model on it, as DiT samples its VAE latent).
//!
//! A linear AE's optimum spans PCA's subspace, so its error is bounded below by PCA's at the
//! same `d`: the fit report puts the two side by side.

use burn::module::Module;
use burn::nn::Linear;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_distr::{Distribution, StandardNormal};

use super::Tokenizer;
use crate::data::ImageShape;
use crate::nn::init::{ZeroBias, xavier_linear, zero_linear};
use crate::nn::{patchify, unpatchify};
use crate::optim::lr::lr_at;

/// A fitted patch AE / VAE on the host (f64, row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct PatchAutoencoder {
    pub patch: usize,
    pub channels: usize,
    pub latent_dim: usize,
    /// A VAE (with `logvar_*`) or a plain AE.
    pub variational: bool,
    /// `W_e`, `[D, d]`; `b_e`, `[d]`.
    pub enc_w: Vec<f64>,
    pub enc_b: Vec<f64>,
    /// `W_v`, `[D, d]`; `b_v`, `[d]` (VAE only; empty for an AE).
    pub logvar_w: Vec<f64>,
    pub logvar_b: Vec<f64>,
    /// `W_d`, `[d, D]`; `b_d`, `[D]`.
    pub dec_w: Vec<f64>,
    pub dec_b: Vec<f64>,
    /// The latent scale `s` (1, or `1 / std` of the training latents).
    pub scale: f64,
}

/// How to train one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AeTraining {
    pub latent_dim: usize,
    pub variational: bool,
    pub kl_weight: f64,
    pub steps: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub seed: u64,
}

/// The network being trained.
#[derive(Module, Debug)]
struct AeNet {
    enc: Linear,
    logvar: Option<Linear>,
    dec: Linear,
}

/// `KL(N(mu, exp(logvar)) || N(0, I))` summed over the latent and averaged over rows.
///
/// # Shapes
/// - `mu`, `logvar`: `[N, d]`; returns `[1]`
pub fn kl_divergence(mu: Tensor<2>, logvar: Tensor<2>) -> Tensor<1> {
    let per = (mu.square() + logvar.clone().exp() - logvar - 1.0) * 0.5; // [N, d]
    per.sum_dim(1).mean()
}

fn host(t: Tensor<2>) -> Vec<f64> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().expect("f32").into_iter().map(f64::from).collect()
}

fn host1(t: Tensor<1>) -> Vec<f64> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().expect("f32").into_iter().map(f64::from).collect()
}

fn rows(values: &[f64], n: usize, dim: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values.iter().map(|&v| v as f32).collect::<Vec<f32>>(), [n, dim]), device)
}

impl AeNet {
    /// `(x_hat, mu, logvar)` with `z = mu + exp(logvar / 2) eps` (VAE) or `z = mu` (AE).
    fn forward(&self, x: Tensor<2>, eps: Option<Tensor<2>>) -> (Tensor<2>, Tensor<2>, Option<Tensor<2>>) {
        let mu = self.enc.forward(x.clone());
        let logvar = self.logvar.as_ref().map(|l| l.forward(x));
        let z = match (&logvar, eps) {
            (Some(lv), Some(eps)) => mu.clone() + (lv.clone() * 0.5).exp() * eps,
            _ => mu.clone(),
        };
        (self.dec.forward(z), mu, logvar)
    }
}

impl PatchAutoencoder {
    /// Train on the rows of `patches` (`[n, D]`); the last tenth is held out. Returns the fitted
    /// tokenizer (unscaled) and the held-out reconstruction error per pixel every 100 steps.
    pub fn train(
        patches: &nalgebra::DMatrix<f64>,
        patch: usize,
        channels: usize,
        how: &AeTraining,
        device: &Device,
    ) -> (Self, Vec<(usize, f64)>) {
        let (n, dim) = patches.shape();
        let d = how.latent_dim;
        let n_val = (n / 10).clamp(1, 5000).min(n - 1);
        let n_train = n - n_val;
        // Train on centred patches (the mean patch of the training rows): an uncentred input
        // leaves the biases to absorb a large offset and slows Adam down by an order of
        // magnitude. The mean is folded back into the biases afterwards.
        let centre: Vec<f64> =
            (0..dim).map(|i| (0..n_train).map(|r| patches[(r, i)]).sum::<f64>() / n_train as f64).collect();
        let flat: Vec<f64> =
            (0..n).flat_map(|r| (0..dim).map(move |i| (r, i))).map(|(r, i)| patches[(r, i)] - centre[i]).collect();
        let ad = device.clone().autodiff();
        let mut net = crate::nn::init::seeded(&ad, how.seed, |ad| AeNet {
            enc: xavier_linear(dim, d, ad),
            // Start with a small posterior standard deviation (e^-2).
            logvar: how.variational.then(|| zero_linear(dim, d, ad).fill_bias(-4.0)),
            dec: xavier_linear(d, dim, ad),
        });
        let mut optim = AdamWConfig::new().with_weight_decay(0.0).init();
        let val = rows(&flat[n_train * dim..], n_val, dim, device);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(how.seed ^ 0xAE);
        let mut order: Vec<usize> = (0..n_train).collect();
        let mut cursor = n_train;
        let mut curve = Vec::new();
        let eval = |net: &AeNet| -> f64 {
            let plain = net.valid();
            let (x_hat, _, _) = plain.forward(val.clone(), None);
            (x_hat - val.clone()).square().mean().into_scalar::<f32>() as f64
        };
        for step in 0..how.steps {
            if step % 100 == 0 {
                curve.push((step, eval(&net)));
            }
            let b = how.batch_size.min(n_train);
            if cursor + b > n_train {
                order.shuffle(&mut rng);
                cursor = 0;
            }
            let idx = &order[cursor..cursor + b];
            cursor += b;
            let batch: Vec<f64> = idx.iter().flat_map(|&i| flat[i * dim..(i + 1) * dim].iter().copied()).collect();
            let x = rows(&batch, b, dim, &ad);
            let eps = how.variational.then(|| {
                let v: Vec<f32> = (0..b * d).map(|_| StandardNormal.sample(&mut rng)).collect();
                Tensor::<2>::from_data(TensorData::new(v, [b, d]), &ad)
            });
            let (x_hat, mu, logvar) = net.forward(x.clone(), eps);
            let rec = (x_hat - x).square().sum_dim(1).mean(); // [1]
            let loss = match logvar {
                Some(lv) => rec + kl_divergence(mu, lv) * how.kl_weight,
                None => rec,
            };
            let grads = crate::nn::grads::contiguous(&net, GradientsParams::from_grads(loss.backward(), &net));
            let lr = lr_at(step, how.steps, how.steps / 20, how.lr, 0.0);
            net = optim.step(lr, net, grads);
        }
        curve.push((how.steps, eval(&net)));
        let net = net.valid();
        let weight = |l: &Linear| host(l.weight.val());
        let bias = |l: &Linear| l.bias.as_ref().map(|b| host1(b.val())).expect("linear layers keep their bias");
        // x W + b on centred x is x W + (b - c W) on raw x; the decoder adds the centre back.
        let fold = |w: Vec<f64>, b: Vec<f64>| -> Vec<f64> {
            (0..d).map(|k| b[k] - (0..dim).map(|i| centre[i] * w[i * d + k]).sum::<f64>()).collect()
        };
        let (enc_w, logvar_w) = (weight(&net.enc), net.logvar.as_ref().map(weight).unwrap_or_default());
        let enc_b = fold(enc_w.clone(), bias(&net.enc));
        let logvar_b = net.logvar.as_ref().map(|l| fold(logvar_w.clone(), bias(l))).unwrap_or_default();
        let dec_b: Vec<f64> = bias(&net.dec).iter().zip(&centre).map(|(b, c)| b + c).collect();
        let fitted = PatchAutoencoder {
            patch,
            channels,
            latent_dim: d,
            variational: how.variational,
            enc_w,
            enc_b,
            logvar_w,
            logvar_b,
            dec_w: weight(&net.dec),
            dec_b,
            scale: 1.0,
        };
        (fitted, curve)
    }

    /// The patch dimension `D`.
    pub fn dim(&self) -> usize {
        self.patch * self.patch * self.channels
    }

    /// `1 / std` of the posterior means of `patches` (`[n, D]`).
    pub fn unit_scale(&self, patches: &nalgebra::DMatrix<f64>) -> f64 {
        let (n, dim) = patches.shape();
        let d = self.latent_dim;
        let (mut sum, mut sq) = (0.0, 0.0);
        for r in 0..n {
            for k in 0..d {
                let z: f64 = self.enc_b[k] + (0..dim).map(|i| patches[(r, i)] * self.enc_w[i * d + k]).sum::<f64>();
                sum += z;
                sq += z * z;
            }
        }
        let count = (n * d) as f64;
        let var = sq / count - (sum / count).powi(2);
        1.0 / var.max(1e-12).sqrt()
    }

    /// Bound to `device` for images of `image`.
    pub fn bind(&self, image: ImageShape, device: &Device) -> PatchAeTokenizer {
        let (dim, d) = (self.dim(), self.latent_dim);
        let dec_t = nalgebra::DMatrix::from_fn(dim, d, |i, k| self.dec_w[k * dim + i]); // W_d^T, [D, d]
        let q = dec_t.qr().q(); // orthonormal columns spanning the decoder's range
        let q: Vec<f64> = (0..dim).flat_map(|i| (0..d).map(move |k| (i, k))).map(|(i, k)| q[(i, k)]).collect();
        let t2 = |v: &[f64], r: usize, c: usize| rows(v, r, c, device);
        let t1 = |v: &[f64]| {
            Tensor::<1>::from_data(
                TensorData::new(v.iter().map(|&x| x as f32).collect::<Vec<f32>>(), [v.len()]),
                device,
            )
        };
        PatchAeTokenizer {
            enc_w: t2(&self.enc_w, dim, d),
            enc_b: t1(&self.enc_b),
            logvar: self.variational.then(|| (t2(&self.logvar_w, dim, d), t1(&self.logvar_b))),
            dec_w: t2(&self.dec_w, d, dim),
            dec_b: t1(&self.dec_b),
            basis: t2(&q, dim, d),
            patch: self.patch,
            image,
            scale: self.scale,
        }
    }
}

/// A patch AE / VAE on a device.
#[derive(Debug, Clone)]
pub struct PatchAeTokenizer {
    pub enc_w: Tensor<2>,
    pub enc_b: Tensor<1>,
    pub logvar: Option<(Tensor<2>, Tensor<1>)>,
    pub dec_w: Tensor<2>,
    pub dec_b: Tensor<1>,
    /// An orthonormal basis of the decoder's range, `[D, d]`.
    pub basis: Tensor<2>,
    pub patch: usize,
    pub image: ImageShape,
    pub scale: f64,
}

impl PatchAeTokenizer {
    /// `x W + b` on the patches of `x`.
    ///
    /// # Shapes
    /// - `x`: `[B, C, H, W]`; returns `[B, L, d]`
    fn affine(&self, x: Tensor<4>, w: &Tensor<2>, b: &Tensor<1>) -> Tensor<3> {
        let p = patchify(x, self.patch); // [B, L, D]
        let [bs, l, dim] = p.dims();
        let d = w.dims()[1];
        (p.reshape([bs * l, dim]).matmul(w.clone()) + b.clone().reshape([1, d])).reshape([bs, l, d])
    }
}

impl Tokenizer for PatchAeTokenizer {
    fn patch(&self) -> usize {
        self.patch
    }

    fn latent_dim(&self) -> usize {
        self.enc_w.dims()[1]
    }

    fn image(&self) -> ImageShape {
        self.image
    }

    fn stochastic(&self) -> bool {
        self.logvar.is_some()
    }

    fn encode(&self, x: Tensor<4>) -> Tensor<3> {
        self.affine(x, &self.enc_w, &self.enc_b) * self.scale
    }

    fn encode_sample(&self, x: Tensor<4>, noise: Tensor<3>) -> Tensor<3> {
        let mu = self.affine(x.clone(), &self.enc_w, &self.enc_b);
        match &self.logvar {
            Some((w, b)) => (mu + (self.affine(x, w, b) * 0.5).exp() * noise) * self.scale,
            None => mu * self.scale,
        }
    }

    fn decode(&self, z: Tensor<3>) -> Tensor<4> {
        let [b, l, d] = z.dims();
        let dim = self.dec_w.dims()[1];
        let ImageShape { channels, height, width } = self.image;
        let x = (z / self.scale).reshape([b * l, d]).matmul(self.dec_w.clone()) + self.dec_b.clone().reshape([1, dim]);
        unpatchify(x.reshape([b, l, dim]), self.patch, channels, height, width)
    }

    fn residual_basis(&self) -> Option<Tensor<2>> {
        Some(self.basis.clone())
    }
}
