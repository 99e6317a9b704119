//! The patch-PCA latent as an image-shaped tensor, for diffusion models that run in latent space
//! (DiT on a tokenizer's latent, the l-DAE paper's Table 2 setting).
//!
//! `encode`: `x [B, C, H, W] -> patches [B, L, p p C] -> z = s V_d^T (x_p - mu) [B, L, d] ->
//! [B, d, H/p, W/p]`; `decode` inverts it up to the discarded residual. The single scale `s =
//! 1 / sqrt(mean of the kept eigenvalues)` gives the latent unit average variance, as a VAE
//! latent is scaled in latent diffusion (LDM's 0.18215, MAR's 0.2325).

use burn::tensor::{Device, Tensor};

use super::{PatchPca, PcaTensors, patchify, unpatchify};
use crate::data::ImageShape;

/// A fitted patch PCA used as an encoder / decoder to a `[d, H/p, W/p]` latent.
#[derive(Debug, Clone)]
pub struct LatentCodec {
    pub pca: PcaTensors,
    /// Patch side `p`.
    pub patch: usize,
    /// `s`.
    pub scale: f64,
    /// The data image shape `[C, H, W]`.
    pub image: ImageShape,
}

impl LatentCodec {
    /// The codec of `pca` keeping `d` components, for images of `image`.
    pub fn new(pca: &PatchPca, d: usize, image: ImageShape, device: &Device) -> Self {
        let kept = &pca.eigenvalues[..d];
        let mean_var = kept.iter().sum::<f64>() / d as f64;
        LatentCodec { pca: pca.tensors(d, device), patch: pca.patch, scale: 1.0 / mean_var.max(1e-12).sqrt(), image }
    }

    /// The latent's shape `[d, H/p, W/p]` for images of `image`.
    pub fn latent_shape(image: ImageShape, patch: usize, d: usize) -> ImageShape {
        ImageShape { channels: d, height: image.height / patch, width: image.width / patch }
    }

    /// # Shapes
    /// - `x`: `[B, C, H, W]`; returns `[B, d, H/p, W/p]`
    pub fn encode(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, _, h, w] = x.dims();
        let (gh, gw) = (h / self.patch, w / self.patch);
        let z = self.pca.encode(patchify(x, self.patch)) * self.scale; // [B, L, d]
        let d = z.dims()[2];
        z.reshape([b, gh, gw, d]).permute([0, 3, 1, 2])
    }

    /// # Shapes
    /// - `z`: `[B, d, H/p, W/p]`; returns `[B, C, H, W]`
    pub fn decode(&self, z: Tensor<4>) -> Tensor<4> {
        let [b, d, gh, gw] = z.dims();
        let tokens = z.permute([0, 2, 3, 1]).reshape([b, gh * gw, d]) / self.scale; // [B, L, d]
        let ImageShape { channels, height, width } = self.image;
        unpatchify(self.pca.decode(tokens), self.patch, channels, height, width)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn decode_inverts_encode_with_all_components_and_the_latent_is_unit_scaled() {
        let device = Device::flex();
        let (c, h, w, p) = (2, 4, 6, 2);
        let dim = p * p * c;
        // A basis: the identity with eigenvalues 4 (so s = 1/2).
        let pca = PatchPca {
            patch: p,
            channels: c,
            mean: (0..dim).map(|i| i as f64 * 0.1).collect(),
            components: (0..dim * dim).map(|i| if i / dim == i % dim { 1.0 } else { 0.0 }).collect(),
            eigenvalues: vec![4.0; dim],
        };
        let image = ImageShape { channels: c, height: h, width: w };
        let codec = LatentCodec::new(&pca, dim, image, &device);
        assert!((codec.scale - 0.5).abs() < 1e-12);
        let values: Vec<f32> = (0..3 * c * h * w).map(|i| ((i * 37) % 17) as f32 / 8.0 - 1.0).collect();
        let x = Tensor::<4>::from_data(TensorData::new(values.clone(), [3, c, h, w]), &device);
        let z = codec.encode(x);
        assert_eq!(z.dims(), [3, dim, h / p, w / p]);
        let back: Vec<f32> = codec.decode(z).into_data().try_into_vec().unwrap();
        for (a, b) in values.iter().zip(&back) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        // Latent channel k at grid cell (0, 0) is s (x_p[k] - mu[k]) of the first patch.
        let x = Tensor::<4>::from_data(TensorData::new(values.clone(), [3, c, h, w]), &device);
        let z: Vec<f32> = codec.encode(x).into_data().try_into_vec().unwrap();
        let first_patch: Vec<f32> = patchify(Tensor::<4>::from_data(TensorData::new(values, [3, c, h, w]), &device), p)
            .narrow(0, 0, 1)
            .narrow(1, 0, 1)
            .reshape([dim])
            .into_data()
            .try_into_vec()
            .unwrap();
        let cells = (h / p) * (w / p);
        for k in 0..dim {
            let want = 0.5 * (first_patch[k] - k as f32 * 0.1);
            assert!((z[k * cells] - want).abs() < 1e-5, "channel {k}");
        }
    }
}
