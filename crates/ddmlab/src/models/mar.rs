//! The MAR network (Li et al. 2024; LTH14/mar `models/mar.py`): an MAE-style bidirectional
//! encoder over the visible tokens plus `buffer` class tokens, a decoder that puts mask tokens
//! back at the masked positions, and the per-token condition vectors `z` that the Diffusion Loss
//! head ([`super::diffusion_head`]) turns into a distribution over each token.
//!
//! Encoder: `x = W_z tokens` (`[B, L, W]`), `buffer` positions in front holding the class
//! embedding (the null class when dropped), learned positions, LayerNorm, then only the
//! visible rows (buffer + unmasked) through `enc_depth` pre-LN blocks. Decoder: `W_dec`, mask
//! tokens scattered back, learned positions, `dec_depth` blocks, LayerNorm, the buffer dropped,
//! plus the head's learned positions: `z` is `[B, L, W]`.
//!
//! Every image of a batch masks the same number of tokens (one ratio per batch, as the
//! official code), so the visible rows form a dense `[B, buffer + L - m, W]`.
//!
//! The causal variants (the paper's AR rows, [`Mar::forward_causal`]) use the same weights over
//! the whole sequence in generation order, shifted by one (GPT-style: the last buffer token
//! predicts the first token), with causal attention in every block. The encoder adds the
//! position of the token each slot holds, the decoder the position of the token the slot
//! predicts, so a random order is known to the model.

use burn::module::{Module, Param};
use burn::nn::{LayerNorm, Linear};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};

use super::diffusion_head::{DiffusionHead, DiffusionHeadConfig};
use crate::nn::embed::LabelEmbedder;
use crate::nn::init::xavier_linear;
use crate::nn::linear::linear_tokens;
use crate::nn::vit_block::{VitBlock, layer_norm_affine};

/// The sizes of a MAR network.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MarConfig {
    /// Token width `C` (the tokenizer's latent dimension per token).
    pub token_dim: usize,
    /// Tokens per image `L`.
    pub seq_len: usize,
    /// Class-embedding tokens in front of the sequence (the paper: 64).
    pub buffer: usize,
    /// Encoder and decoder width.
    pub width: usize,
    pub enc_depth: usize,
    pub dec_depth: usize,
    pub heads: usize,
    /// MLP hidden width as a multiple of `width`.
    pub mlp_ratio: f64,
    pub num_classes: usize,
    /// The Diffusion Loss head: hidden width and residual blocks.
    pub head_width: usize,
    pub head_depth: usize,
    /// Causal attention over the sequence in generation order (the AR variants) instead of
    /// MAR's bidirectional attention over the visible tokens.
    pub causal: bool,
    /// The head's output width: `token_dim` (eps), `2 token_dim` (eps and the variance
    /// interpolation, with `learn_variance`), or the codebook size for cross-entropy.
    pub head_out: usize,
    /// The head's blocks normalise with an affine LayerNorm (LTH14/mar's `in_ln`).
    pub head_affine_norm: bool,
    /// The head's second `token_dim` outputs are improved DDPM's variance interpolation `v`.
    pub learn_variance: bool,
}

/// The MAR transformer with its Diffusion Loss head.
#[derive(Module, Debug)]
pub struct Mar {
    /// `num_classes` class vectors plus the learned null class (the official `fake_latent`).
    pub class_emb: LabelEmbedder,
    pub z_proj: Linear,
    pub z_proj_ln: LayerNorm,
    /// `[1, buffer + L, W]`
    pub enc_pos: Param<Tensor<3>>,
    pub enc_blocks: Vec<VitBlock>,
    pub enc_norm: LayerNorm,
    pub dec_embed: Linear,
    /// `[1, W]`
    pub mask_token: Param<Tensor<2>>,
    /// `[1, buffer + L, W]`
    pub dec_pos: Param<Tensor<3>>,
    pub dec_blocks: Vec<VitBlock>,
    pub dec_norm: LayerNorm,
    /// `[1, L, W]`: added to `z` before the head.
    pub head_pos: Param<Tensor<3>>,
    pub head: DiffusionHead,
    pub buffer: usize,
    pub causal: bool,
}

fn learned(shape: [usize; 3], device: &Device) -> Param<Tensor<3>> {
    Param::from_tensor(Tensor::random(shape, Distribution::Normal(0.0, 0.02), device))
}

impl MarConfig {
    /// A tiny network for tests: width 16, one block each side, 2 buffer tokens.
    #[cfg(test)]
    pub(crate) fn tiny(token_dim: usize, seq_len: usize, num_classes: usize) -> Self {
        MarConfig {
            token_dim,
            seq_len,
            buffer: 2,
            width: 16,
            enc_depth: 1,
            dec_depth: 1,
            heads: 2,
            mlp_ratio: 2.0,
            num_classes,
            head_width: 16,
            head_depth: 1,
            causal: false,
            head_out: token_dim,
            head_affine_norm: false,
            learn_variance: false,
        }
    }

    pub fn init(&self, device: &Device) -> Mar {
        let (w, l, buf) = (self.width, self.seq_len, self.buffer);
        let hidden = (self.mlp_ratio * w as f64).round() as usize;
        Mar {
            class_emb: LabelEmbedder::new(self.num_classes, w, device),
            z_proj: xavier_linear(self.token_dim, w, device),
            z_proj_ln: layer_norm_affine(w, device),
            enc_pos: learned([1, buf + l, w], device),
            enc_blocks: (0..self.enc_depth).map(|_| VitBlock::new(w, self.heads, hidden, device)).collect(),
            enc_norm: layer_norm_affine(w, device),
            dec_embed: xavier_linear(w, w, device),
            mask_token: Param::from_tensor(Tensor::random([1, w], Distribution::Normal(0.0, 0.02), device)),
            dec_pos: learned([1, buf + l, w], device),
            dec_blocks: (0..self.dec_depth).map(|_| VitBlock::new(w, self.heads, hidden, device)).collect(),
            dec_norm: layer_norm_affine(w, device),
            head_pos: learned([1, l, w], device),
            head: DiffusionHeadConfig {
                token_dim: self.token_dim,
                out_dim: self.head_out,
                cond_dim: w,
                width: self.head_width,
                depth: self.head_depth,
                affine_norm: self.head_affine_norm,
            }
            .init(device),
            buffer: buf,
            causal: self.causal,
        }
    }
}

/// Row indices into `[B * (buffer + L)]` of the rows the encoder keeps: every buffer row and the
/// unmasked tokens, in sequence order per image. All images must mask the same count.
fn visible_rows(mask: &[Vec<bool>], buffer: usize) -> Vec<i64> {
    let l = mask.first().map_or(0, Vec::len);
    let mut rows = Vec::new();
    for (b, m) in mask.iter().enumerate() {
        let base = b * (buffer + l);
        rows.extend((0..buffer).map(|i| (base + i) as i64));
        rows.extend(m.iter().enumerate().filter(|(_, masked)| !**masked).map(|(i, _)| (base + buffer + i) as i64));
    }
    rows
}

fn index(rows: Vec<i64>, device: &Device) -> Tensor<1, Int> {
    let n = rows.len();
    Tensor::from_data(TensorData::new(rows, [n]), device)
}

/// Each row minus its mean, over its unbiased standard deviation (eps 1e-6 on the variance,
/// as MAE's `norm_pix_loss`).
///
/// # Shapes
/// - `x`: `[M, C]`; returns `[M, C]`
fn normalise_rows(x: Tensor<2>) -> Tensor<2> {
    let c = x.dims()[1];
    let mean = x.clone().mean_dim(1);
    let centred = x - mean;
    let var = centred.clone().square().sum_dim(1) / (c as f64 - 1.0).max(1.0);
    centred / (var + 1e-6).sqrt()
}

/// Per image, the rows of `order`'s tokens (`b * L + order[k]`) for `k` in `ks`.
fn rows_in_order(orders: &[Vec<usize>], ks: std::ops::Range<usize>) -> Vec<i64> {
    let l = orders.first().map_or(0, Vec::len);
    orders.iter().enumerate().flat_map(|(b, o)| o[ks.clone()].iter().map(move |&j| (b * l + j) as i64)).collect()
}

/// The rows of a position table `[buffer + L, W]` for each slot of a causal sequence: the
/// first `lead` slots take rows `0..lead`, slot `lead + k` the row `buffer + order[k]`.
fn position_rows(orders: &[Vec<usize>], lead: usize, buffer: usize, tokens: usize) -> Vec<i64> {
    orders
        .iter()
        .flat_map(|o| (0..lead).map(|s| s as i64).chain(o[..tokens].iter().map(|&j| (buffer + j) as i64)))
        .collect()
}

impl Mar {
    /// The condition vectors of every token: [`Mar::encode_visible`], then [`Mar::decode`].
    ///
    /// # Shapes
    /// - `tokens`: `[B, L, C]` (masked positions may hold anything: they are never read);
    ///   `mask`: `B` rows of `L` flags, each row with the same number of `true`; `labels`: `B`
    ///   class ids, `num_classes` for the null class; returns `z`: `[B, L, W]`
    pub fn forward(&self, tokens: Tensor<3>, mask: &[Vec<bool>], labels: &[usize]) -> Tensor<3> {
        let x = self.encode_visible(tokens, mask, labels);
        self.decode(x, mask)
    }

    /// MAR's encoder (the official `forward_mae_encoder`): the class (or null) vector in every
    /// buffer row, the projected tokens, positions, LayerNorm; the masked rows dropped; the
    /// encoder blocks and their LayerNorm.
    ///
    /// # Shapes
    /// - as [`Mar::forward`]; returns `[B, buffer + L - masked, W]`, the buffer rows first, then
    ///   the visible tokens in sequence order
    pub fn encode_visible(&self, tokens: Tensor<3>, mask: &[Vec<bool>], labels: &[usize]) -> Tensor<3> {
        assert!(!self.causal, "a causal MAR reads orders, not masks: use Mar::condition");
        let device = tokens.device();
        let [b, l, _] = tokens.dims();
        let buf = self.buffer;
        let masked = mask.first().map_or(0, |m| m.iter().filter(|&&x| x).count());
        assert!(
            mask.len() == b && mask.iter().all(|m| m.len() == l && m.iter().filter(|&&x| x).count() == masked),
            "MAR mask: {b} rows of {l} flags with one masked count expected"
        );
        let x = linear_tokens(&self.z_proj, tokens); // [B, L, W]
        let w = x.dims()[2];
        let class = self.class_emb.forward(labels, &device); // [B, W]
        let buffer = class.unsqueeze_dim::<3>(1).expand([b, buf, w]); // [B, buf, W]
        let x = Tensor::cat(vec![buffer, x], 1) + self.enc_pos.val(); // [B, buf + L, W]
        let x = self.z_proj_ln.forward(x);
        let keep = buf + l - masked;
        let rows = visible_rows(mask, buf);
        let mut x = x.reshape([b * (buf + l), w]).select(0, index(rows, &device)).reshape([b, keep, w]);
        for block in &self.enc_blocks {
            x = block.forward(x);
        }
        self.enc_norm.forward(x)
    }

    /// MAR's decoder (the official `forward_mae_decoder`): the encoder's rows projected and
    /// scattered back among mask tokens, positions, the decoder blocks and their LayerNorm, the
    /// buffer dropped, the head's positions added.
    ///
    /// # Shapes
    /// - `x`: `[B, buffer + L - masked, W]` ([`Mar::encode_visible`]); `mask` as there; returns
    ///   `z`: `[B, L, W]`
    pub fn decode(&self, x: Tensor<3>, mask: &[Vec<bool>]) -> Tensor<3> {
        let device = x.device();
        let [b, keep, w] = x.dims();
        let buf = self.buffer;
        let l = mask.first().map_or(0, Vec::len);
        let x = linear_tokens(&self.dec_embed, x); // [B, keep, W]
        // Scatter back: row r of the full sequence reads visible row `source[r]`, or the mask
        // token (the extra last row) where the token is masked.
        let rows = visible_rows(mask, buf);
        let mut source = vec![(b * keep) as i64; b * (buf + l)];
        for (k, &r) in rows.iter().enumerate() {
            source[r as usize] = k as i64;
        }
        let table = Tensor::cat(vec![x.reshape([b * keep, w]), self.mask_token.val()], 0); // [B keep + 1, W]
        let mut x = table.select(0, index(source, &device)).reshape([b, buf + l, w]) + self.dec_pos.val();
        for block in &self.dec_blocks {
            x = block.forward(x);
        }
        let x = self.dec_norm.forward(x).slice_dim(1, buf..buf + l); // [B, L, W]
        x + self.head_pos.val()
    }

    /// The condition vectors of the causal variants: `z[b, order[k]]` reads the class and the
    /// tokens `order[0..k]` only.
    ///
    /// # Shapes
    /// - `tokens`: `[B, L, C]` (the last token of each order is never read); `orders`: `B`
    ///   permutations of `0..L`; `labels`: `B` class ids; returns `z`: `[B, L, W]` in sequence order
    pub fn forward_causal(&self, tokens: Tensor<3>, orders: &[Vec<usize>], labels: &[usize]) -> Tensor<3> {
        let device = tokens.device();
        let [b, l, c] = tokens.dims();
        let buf = self.buffer;
        assert!(orders.len() == b && orders.iter().all(|o| o.len() == l), "MAR orders: {b} permutations of {l}");
        // Inputs in generation order, shifted by one: slot buf + k holds token order[k].
        let inputs = tokens.reshape([b * l, c]).select(0, index(rows_in_order(orders, 0..l - 1), &device));
        let x = linear_tokens(&self.z_proj, inputs.reshape([b, l - 1, c])); // [B, L - 1, W]
        let w = x.dims()[2];
        let class = self.class_emb.forward(labels, &device).unsqueeze_dim::<3>(1).expand([b, buf, w]);
        let table = |pos: &Param<Tensor<3>>, lead: usize| {
            let rows = index(position_rows(orders, lead, buf, buf + l - 1 - lead), &device);
            pos.val().reshape([buf + l, w]).select(0, rows).reshape([b, buf + l - 1, w])
        };
        let x = Tensor::cat(vec![class, x], 1) + table(&self.enc_pos, buf); // [B, buf + L - 1, W]
        let mut x = self.z_proj_ln.forward(x);
        for block in &self.enc_blocks {
            x = block.forward_with(x, true);
        }
        // Slot buf - 1 + k predicts token order[k]: the decoder adds that token's position.
        let mut x = linear_tokens(&self.dec_embed, self.enc_norm.forward(x)) + table(&self.dec_pos, buf - 1);
        for block in &self.dec_blocks {
            x = block.forward_with(x, true);
        }
        let z = self.dec_norm.forward(x).slice_dim(1, buf - 1..buf + l - 1); // [B, L, W], generation order
        // Back to sequence order: row b L + j reads slot k with order[k] = j.
        let mut inverse = vec![0i64; b * l];
        for (i, o) in orders.iter().enumerate() {
            for (k, &j) in o.iter().enumerate() {
                inverse[i * l + j] = (i * l + k) as i64;
            }
        }
        z.reshape([b * l, w]).select(0, index(inverse, &device)).reshape([b, l, w]) + self.head_pos.val()
    }

    /// The condition vectors of a batch whatever the variant: [`Mar::forward`] with `mask`, or
    /// [`Mar::forward_causal`] with `orders` for a causal model.
    ///
    /// # Shapes
    /// - as those two; returns `[B, L, W]`
    pub fn condition(
        &self,
        tokens: Tensor<3>,
        mask: &[Vec<bool>],
        orders: &[Vec<usize>],
        labels: &[usize],
    ) -> Tensor<3> {
        if self.causal { self.forward_causal(tokens, orders, labels) } else { self.forward(tokens, mask, labels) }
    }

    /// The rows of the predicted tokens, image-major: for image `i`, `repeat` copies of its
    /// `mask`ed tokens in sequence order; `z` and the clean tokens at those rows.
    ///
    /// # Shapes
    /// - `z`: `[B, L, W]`; `tokens`: `[B, L, C]`; returns `([M repeat, W], [M repeat, C])`
    fn targets(z: Tensor<3>, tokens: Tensor<3>, mask: &[Vec<bool>], repeat: usize) -> (Tensor<2>, Tensor<2>) {
        let device = tokens.device();
        let [b, l, c] = tokens.dims();
        let w = z.dims()[2];
        let rows: Vec<i64> = mask
            .iter()
            .enumerate()
            .flat_map(|(i, row)| {
                let masked: Vec<i64> =
                    row.iter().enumerate().filter(|(_, x)| **x).map(|(j, _)| (i * l + j) as i64).collect();
                (0..repeat).flat_map(move |_| masked.clone())
            })
            .collect();
        let idx = index(rows, &device);
        (z.reshape([b * l, w]).select(0, idx.clone()), tokens.reshape([b * l, c]).select(0, idx))
    }

    /// The L2 regression baseline (the paper's Table 2 "L2 loss" row): the head reads `z` alone
    /// ([`DiffusionHead::regress`]) and its output is the token itself; the loss is
    /// `|x0 - x0_hat(z)|^2 / C` over the `mask`ed tokens (every token for a causal model).
    ///
    /// # Shapes
    /// - `tokens`: `[B, L, C]`; returns `[1]`
    ///
    /// With `norm_target` each target token is first normalised by its own mean and (unbiased)
    /// variance, MAE's `norm_pix_loss`.
    pub fn l2_loss(
        &self,
        tokens: Tensor<3>,
        mask: &[Vec<bool>],
        orders: &[Vec<usize>],
        labels: &[usize],
        norm_target: bool,
    ) -> Tensor<1> {
        let z = self.condition(tokens.clone(), mask, orders, labels);
        let (z, x0) = Self::targets(z, tokens, mask, 1);
        let x0 = if norm_target { normalise_rows(x0) } else { x0 };
        (self.regress(z) - x0).square().mean().reshape([1])
    }

    /// Encoder features of every token (nothing masked): the first `depth` encoder blocks over
    /// the class (or null) buffer and all tokens, then the encoder's LayerNorm; the buffer rows
    /// dropped. What a linear probe of a MAR / MAE run reads.
    ///
    /// # Shapes
    /// - `tokens`: `[B, L, C]`; `labels`: `B` ids; returns `[B, L, W]`
    pub fn encode(&self, tokens: Tensor<3>, labels: &[usize], depth: usize) -> Tensor<3> {
        let device = tokens.device();
        let [b, l, _] = tokens.dims();
        let buf = self.buffer;
        let x = linear_tokens(&self.z_proj, tokens);
        let w = x.dims()[2];
        let class = self.class_emb.forward(labels, &device).unsqueeze_dim::<3>(1).expand([b, buf, w]);
        let mut x = self.z_proj_ln.forward(Tensor::cat(vec![class, x], 1) + self.enc_pos.val());
        for block in self.enc_blocks.iter().take(depth) {
            x = block.forward_with(x, self.causal);
        }
        self.enc_norm.forward(x).slice_dim(1, buf..buf + l)
    }

    /// The cross-entropy baseline (the paper's Table 2 "cross-entropy" rows): the head reads
    /// `z` alone and its `K` outputs are logits over the codebook; the loss is the mean negative
    /// log-likelihood of each target token's code.
    ///
    /// # Shapes
    /// - `tokens`: `[B, L, C]` (the quantised tokens the model reads); `codes`: the code of every
    ///   target token, image-major in sequence order; returns `[1]`
    pub fn ce_loss(
        &self,
        tokens: Tensor<3>,
        mask: &[Vec<bool>],
        orders: &[Vec<usize>],
        labels: &[usize],
        codes: &[usize],
    ) -> Tensor<1> {
        let device = tokens.device();
        let z = self.condition(tokens.clone(), mask, orders, labels);
        let (z, _) = Self::targets(z, tokens, mask, 1);
        let log_p = burn::tensor::activation::log_softmax(self.regress(z), 1); // [M, K]
        let m = codes.len();
        let idx = Tensor::<2, Int>::from_data(
            TensorData::new(codes.iter().map(|&k| k as i64).collect::<Vec<_>>(), [m, 1]),
            &device,
        );
        -log_p.gather(1, idx).mean().reshape([1])
    }

    /// The L2 head's token estimate (or the cross-entropy head's logits) from its condition
    /// vectors ([`DiffusionHead::regress`]).
    ///
    /// # Shapes
    /// - `z`: `[M, W]`; returns `[M, head_out]`
    pub fn regress(&self, z: Tensor<2>) -> Tensor<2> {
        self.head.regress(z)
    }

    /// The rows of the Diffusion Loss of the masked tokens (every token for a causal model): for
    /// each of those tokens x `repeat` draws, `x_t = gamma_t x0 + sigma_t eps` and the head's
    /// output `eps_hat(x_t, t, z)` (and, with a learned variance, `v`). The objective
    /// (`mar::objective`) makes the loss of them: `|eps - eps_hat|^2 / C` averaged, plus the VLB term of
    /// `v`.
    ///
    /// # Shapes
    /// - `tokens`: `[B, L, C]` clean; `mask`, `orders`, `labels` as [`Mar::condition`]; `t`: one timestep per
    ///   (image, repeat, masked token), in that order; `gamma`, `sigma`: the schedule's values at `t`;
    ///   `eps`: `[M repeat, C]`; the rows are `[M repeat, head_out]`, `[M repeat, C]` twice
    #[allow(clippy::too_many_arguments)]
    pub fn noised_rows(
        &self,
        tokens: Tensor<3>,
        mask: &[Vec<bool>],
        orders: &[Vec<usize>],
        labels: &[usize],
        t: &[usize],
        gamma: &[f32],
        sigma: &[f32],
        eps: Tensor<2>,
    ) -> NoisedRows {
        let device = tokens.device();
        let z = self.condition(tokens.clone(), mask, orders, labels);
        let m: usize = mask.iter().map(|row| row.iter().filter(|&&x| x).count()).sum();
        let (z, x0) = Self::targets(z, tokens, mask, t.len() / m.max(1)); // [M r, W], [M r, C]
        let col = |v: &[f32]| Tensor::<2>::from_data(TensorData::new(v.to_vec(), [v.len(), 1]), &device);
        let x_t = x0.clone() * col(gamma) + eps * col(sigma);
        NoisedRows { out: self.head.forward(x_t.clone(), t, z), x0, x_t }
    }
}

/// The head's outputs on noised tokens with those tokens ([`Mar::noised_rows`]).
#[derive(Debug, Clone)]
pub struct NoisedRows {
    /// `[N, head_out]`: eps, then (a learned-variance head) the variance interpolation.
    pub out: Tensor<2>,
    /// `[N, C]` clean tokens.
    pub x0: Tensor<2>,
    /// `[N, C]` noisy tokens.
    pub x_t: Tensor<2>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mar::order::{mask_of, random_order};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn config() -> MarConfig {
        MarConfig::tiny(4, 9, 3)
    }

    fn masks(b: usize, l: usize, count: usize, seed: u64) -> Vec<Vec<bool>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..b).map(|_| mask_of(&random_order(&mut rng, l), count)).collect()
    }

    #[test]
    fn masked_tokens_are_never_read() {
        let device = Device::flex();
        let mar = crate::nn::init::seeded(&device, 1, |device| config().init(device));
        let mask = masks(3, 9, 6, 4);
        let tokens = Tensor::<3>::random([3, 9, 4], Distribution::Normal(0.0, 1.0), &device);
        // The same tokens with every masked position replaced by large noise.
        let flags: Vec<f32> = mask.iter().flatten().flat_map(|&m| [if m { 1.0 } else { 0.0 }; 4]).collect();
        let flags = Tensor::<3>::from_data(TensorData::new(flags, [3, 9, 4]), &device);
        let other = tokens.clone() + flags * Tensor::random([3, 9, 4], Distribution::Normal(0.0, 100.0), &device);
        let a = mar.forward(tokens.clone(), &mask, &[0, 1, 3]);
        let b = mar.forward(other.clone(), &mask, &[0, 1, 3]);
        assert_eq!(a.dims(), [3, 9, 16]);
        let diff: f32 = (a.clone() - b).abs().max().into_scalar();
        assert_eq!(diff, 0.0);
        // ...while a visible token's value, or the label, changes z.
        let unmasked = mask[0].iter().position(|&m| !m).unwrap();
        let bump = Tensor::<3>::zeros([3, 9, 4], &device)
            .slice_assign([0..1, unmasked..unmasked + 1, 0..4], Tensor::ones([1, 1, 4], &device));
        let c = mar.forward(tokens.clone() + bump, &mask, &[0, 1, 3]);
        let moved: f32 = (a.clone() - c).abs().max().into_scalar();
        assert!(moved > 1e-4);
        let d = mar.forward(tokens, &mask, &[2, 1, 3]);
        let moved: f32 = (a - d).abs().max().into_scalar();
        assert!(moved > 1e-4);
    }

    #[test]
    fn a_fresh_heads_prediction_is_zero_so_its_loss_is_the_noise_variance() {
        let device = Device::flex();
        let mar = crate::nn::init::seeded(&device, 2, |device| config().init(device));
        let mask = masks(2, 9, 7, 5);
        let (m, repeat) = (14, 4);
        let tokens = Tensor::<3>::random([2, 9, 4], Distribution::Normal(0.0, 1.0), &device);
        let t: Vec<usize> = (0..m * repeat).map(|i| (i * 37) % 1000).collect();
        let eps = Tensor::<2>::random([m * repeat, 4], Distribution::Normal(0.0, 1.0), &device);
        let ones = vec![0.5f32; m * repeat];
        let rows = mar.noised_rows(tokens, &mask, &[], &[0, 3], &t, &ones, &ones, eps.clone());
        let loss: f32 = (rows.out - eps.clone()).square().mean().into_scalar();
        let variance: f32 = eps.square().mean().into_scalar();
        assert!((loss - variance).abs() < 1e-6, "{loss} vs {variance}");
    }

    #[test]
    fn a_causal_prediction_reads_only_the_tokens_before_it_in_its_order() {
        let device = Device::flex();
        let config = MarConfig { causal: true, ..config() };
        let mar = crate::nn::init::seeded(&device, 3, |device| config.init(device));
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let orders: Vec<Vec<usize>> = vec![random_order(&mut rng, 9), (0..9).collect()];
        let tokens = Tensor::<3>::random([2, 9, 4], Distribution::Normal(0.0, 1.0), &device);
        let z: Vec<f32> = mar.forward_causal(tokens.clone(), &orders, &[0, 2]).into_data().try_into_vec().unwrap();
        assert_eq!(z.len(), 2 * 9 * 16);
        for k in 0..9 {
            // Change token order[k] of both images: z of order[0..=k] must not move, every later one must.
            let mut bump = Tensor::<3>::zeros([2, 9, 4], &device);
            for (b, o) in orders.iter().enumerate() {
                bump = bump.slice_assign([b..b + 1, o[k]..o[k] + 1, 0..4], Tensor::ones([1, 1, 4], &device) * 3.0);
            }
            let moved: Vec<f32> =
                mar.forward_causal(tokens.clone() + bump, &orders, &[0, 2]).into_data().try_into_vec().unwrap();
            for (b, o) in orders.iter().enumerate() {
                for (j, &pos) in o.iter().enumerate() {
                    let row = (b * 9 + pos) * 16;
                    let diff = (row..row + 16).map(|i| (z[i] - moved[i]).abs()).fold(0f32, f32::max);
                    if j <= k {
                        assert_eq!(diff, 0.0, "image {b}: z of the {j}th token read the {k}th");
                    } else {
                        assert!(diff > 1e-5, "image {b}: z of the {j}th token ignores the {k}th");
                    }
                }
            }
        }
        // The order itself is known to the model: the same tokens in another order give other z.
        let other: Vec<Vec<usize>> = vec![orders[1].clone(), orders[0].clone()];
        let swapped: Vec<f32> = mar.forward_causal(tokens, &other, &[0, 2]).into_data().try_into_vec().unwrap();
        assert_ne!(z, swapped);
    }

    #[test]
    fn a_fresh_cross_entropy_head_is_uniform_over_its_codes() {
        // Zero-initialised output: every logit 0, so the loss is ln K whatever the targets; a
        // head whose output favours code 0 has a lower loss on code-0 targets than on others.
        let device = Device::flex();
        let config = MarConfig { head_out: 6, ..config() };
        let mut mar = crate::nn::init::seeded(&device, 2, |device| config.init(device));
        let mask = masks(2, 9, 4, 7);
        let tokens = Tensor::<3>::random([2, 9, 4], Distribution::Normal(0.0, 1.0), &device);
        let loss = |mar: &Mar, codes: &[usize]| -> f32 {
            mar.ce_loss(tokens.clone(), &mask, &[], &[0, 1], codes).into_scalar()
        };
        assert!((loss(&mar, &[0, 1, 2, 3, 4, 5, 0, 1]) - 6f32.ln()).abs() < 1e-5);
        let bias: Vec<f32> = (0..6).map(|k| if k == 0 { 5.0 } else { 0.0 }).collect();
        mar.head.output.bias =
            Some(burn::module::Param::from_tensor(Tensor::from_data(TensorData::new(bias, [6]), &device)));
        let (zeros, others) = (loss(&mar, &[0; 8]), loss(&mar, &[3; 8]));
        // log-softmax of (5, 0, 0, 0, 0, 0): -ln(1 + 5 e^-5) for code 0, -(ln(e^5 + 5) - 0) else.
        assert!((zeros - (1.0 + 5.0 * (-5f32).exp()).ln()).abs() < 1e-4, "{zeros}");
        assert!((others - (5f32.exp() + 5.0).ln()).abs() < 1e-4, "{others}");
    }

    #[test]
    fn a_fresh_l2_heads_loss_is_the_mean_square_of_the_masked_tokens() {
        // The head's output layer starts at zero, so x0_hat = 0 and the loss is mean(x0^2) over
        // the masked tokens only.
        let device = Device::flex();
        let mar = crate::nn::init::seeded(&device, 2, |device| config().init(device));
        let mask = masks(2, 9, 3, 6);
        let values: Vec<f32> = (0..2 * 9 * 4).map(|i| (i % 7) as f32 - 3.0).collect();
        let want: f32 = mask
            .iter()
            .flatten()
            .enumerate()
            .filter(|(_, m)| **m)
            .flat_map(|(r, _)| values[r * 4..r * 4 + 4].iter().map(|v| v * v))
            .sum::<f32>()
            / (6.0 * 4.0);
        let tokens = Tensor::<3>::from_data(TensorData::new(values, [2, 9, 4]), &device);
        let loss: f32 = mar.l2_loss(tokens.clone(), &mask, &[], &[1, 3], false).into_scalar();
        assert!((loss - want).abs() < 1e-5 * want, "{loss} vs {want}");
        // MAE's normalised targets: each token has mean 0 and unbiased variance ~1, so the
        // mean square over its C = 4 values is (C - 1) / C.
        let loss: f32 = mar.l2_loss(tokens, &mask, &[], &[1, 3], true).into_scalar();
        assert!((loss - 0.75).abs() < 1e-4, "{loss}");
    }
}
