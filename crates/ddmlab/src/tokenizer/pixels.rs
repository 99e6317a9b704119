//! The pixel "tokenizer": the identity on `p x p` patches, `d = p p C` (l-DAE Table 2's
//! no-compression row and Fig. 5). The sequence length is `(H/p)(W/p)`: the ladder resizes the
//! images so that it stays fixed while `p`, and so `d`, varies. Its only fitted value is the scale (`1 / std` of the training pixels when
//! unit variance is asked for).

use burn::tensor::Tensor;

use super::Tokenizer;
use crate::data::ImageShape;
use crate::nn::{patchify, unpatchify};

/// The identity tokenizer on a device.
#[derive(Debug, Clone)]
pub struct PixelTokenizer {
    pub patch: usize,
    pub image: ImageShape,
    /// The latent scale `s` (1 without scaling).
    pub scale: f64,
}

impl Tokenizer for PixelTokenizer {
    fn patch(&self) -> usize {
        self.patch
    }

    fn latent_dim(&self) -> usize {
        self.patch * self.patch * self.image.channels
    }

    fn image(&self) -> ImageShape {
        self.image
    }

    fn encode(&self, x: Tensor<4>) -> Tensor<3> {
        let tokens = patchify(x, self.patch); // [B, L, p p C]
        if self.scale == 1.0 { tokens } else { tokens * self.scale }
    }

    fn decode(&self, z: Tensor<3>) -> Tensor<4> {
        let ImageShape { channels, height, width } = self.image;
        let z = if self.scale == 1.0 { z } else { z / self.scale };
        unpatchify(z, self.patch, channels, height, width)
    }

    fn residual_basis(&self) -> Option<Tensor<2>> {
        None
    }

    /// The latent as an image: the (scaled) pixels themselves, `[B, C, H, W]`.
    fn tokens_to_grid(&self, z: Tensor<3>) -> Tensor<4> {
        let ImageShape { channels, height, width } = self.image;
        unpatchify(z, self.patch, channels, height, width)
    }

    fn grid_to_tokens(&self, g: Tensor<4>) -> Tensor<3> {
        patchify(g, self.patch)
    }

    fn grid_shape(&self) -> ImageShape {
        self.image
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn pixel_tokenizer_is_the_identity_on_patches() {
        let device = Device::flex();
        let image = ImageShape { channels: 2, height: 4, width: 6 };
        let values: Vec<f32> = (0..2 * image.numel()).map(|i| i as f32 * 0.01 - 0.3).collect();
        let x = Tensor::<4>::from_data(TensorData::new(values.clone(), [2, 2, 4, 6]), &device);
        let tok = PixelTokenizer { patch: 2, image, scale: 1.0 };
        let z = tok.encode(x.clone());
        assert_eq!(z.dims(), [2, 6, 8]);
        let want: Vec<f32> = patchify(x, 2).into_data().try_into_vec().unwrap();
        assert_eq!(z.clone().into_data().try_into_vec::<f32>().unwrap(), want, "encode is patchify");
        assert_eq!(tok.decode(z.clone()).into_data().try_into_vec::<f32>().unwrap(), values, "decode inverts it");
        assert_eq!(tok.tokens_to_grid(z).into_data().try_into_vec::<f32>().unwrap(), values, "its grid is the image");
        let scaled = PixelTokenizer { scale: 2.0, ..tok };
        let back: Vec<f32> = scaled
            .decode(scaled.encode(Tensor::from_data(TensorData::new(values.clone(), [2, 2, 4, 6]), &device)))
            .into_data()
            .try_into_vec()
            .unwrap();
        assert!(back.iter().zip(&values).all(|(a, b)| (a - b).abs() < 1e-6));
    }
}
