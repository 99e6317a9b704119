//! Cutting images into non-overlapping patch vectors and putting them back.
//!
//! A patch vector of a `p x p` patch with `C` channels has length `D = p * p * C`, laid out
//! `(row, column, channel)` with the channel fastest, as DiT's `unpatchify` (`nhwpqc`). Tokens
//! are in raster order over the `H/p x W/p` grid.

use burn::tensor::Tensor;

/// `[B, C, H, W]` -> `[B, L, D]` with `L = (H/p)(W/p)` and `D = p p C`.
///
/// # Shapes
/// - `x`: `[B, C, H, W]`, `H` and `W` multiples of `p`
/// - returns `[B, L, D]`
pub fn patchify(x: Tensor<4>, p: usize) -> Tensor<3> {
    let [b, c, h, w] = x.dims();
    let (gh, gw) = (h / p, w / p);
    x.reshape([b, c, gh, p, gw, p]) // [B, C, h, p, w, p]
        .permute([0, 2, 4, 3, 5, 1]) // [B, h, w, p, p, C]
        .reshape([b, gh * gw, p * p * c])
}

/// The inverse of [`patchify`].
///
/// # Shapes
/// - `tokens`: `[B, L, D]` with `L = (H/p)(W/p)`, `D = p p C`
/// - returns `[B, C, H, W]`
pub fn unpatchify(tokens: Tensor<3>, p: usize, channels: usize, height: usize, width: usize) -> Tensor<4> {
    let [b, _, _] = tokens.dims();
    let (gh, gw) = (height / p, width / p);
    tokens
        .reshape([b, gh, gw, p, p, channels]) // [B, h, w, p, p, C]
        .permute([0, 5, 1, 3, 2, 4]) // [B, C, h, p, w, p]
        .reshape([b, channels, height, width])
}

/// The patch vector at grid cell `(gy, gx)` of one `[C, H, W]` image, as f64 (for PCA fitting).
pub fn patch_vector(image: &[f32], channels: usize, width: usize, p: usize, gy: usize, gx: usize) -> Vec<f64> {
    let height = image.len() / (channels * width);
    let mut v = Vec::with_capacity(p * p * channels);
    for py in 0..p {
        for px in 0..p {
            for c in 0..channels {
                let (y, x) = (gy * p + py, gx * p + px);
                v.push(image[(c * height + y) * width + x] as f64);
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn unpatchify_inverts_patchify_and_layout_matches_patch_vector() {
        let device = Device::flex();
        let (c, h, w, p) = (3, 4, 6, 2);
        let data: Vec<f32> = (0..2 * c * h * w).map(|v| v as f32).collect();
        let x = Tensor::<4>::from_data(TensorData::new(data.clone(), [2, c, h, w]), &device);
        let tokens = patchify(x.clone(), p);
        assert_eq!(tokens.dims(), [2, 6, 12]);
        let back = unpatchify(tokens.clone(), p, c, h, w);
        assert_eq!(back.into_data().try_into_vec::<f32>().unwrap(), data);
        // Token 4 of image 1 is grid cell (1, 1).
        let tok: Vec<f32> = tokens.slice([1..2, 4..5, 0..12]).into_data().try_into_vec().unwrap();
        let expect = patch_vector(&data[c * h * w..], c, w, p, 1, 1);
        assert_eq!(tok.iter().map(|&v| v as f64).collect::<Vec<_>>(), expect);
    }
}
