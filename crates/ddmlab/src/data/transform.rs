//! Image transforms: the evaluation resize + center crop, and the training augmentations
//! random-resized-crop and horizontal flip (as in MAE's linear-probe recipe).
//!
//! Transforms work on one image at a time in `[C, H, W]` bytes and return the same layout, so
//! the loader can run them on its own thread. Resampling is bilinear (the `image` crate's
//! triangle filter).

use image::{DynamicImage, GrayImage, RgbImage, imageops::FilterType};
use rand::RngExt;

use super::ImageShape;

/// The augmentation applied to training images.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Augment {
    /// The image as stored (it is already center-cropped to size): l-DAE's default.
    None,
    /// A random crop of `scale` of the area and aspect in [3/4, 4/3], resized back.
    RandomResizedCrop { min_scale: f32, flip: bool },
    /// A horizontal flip with probability 1/2.
    Flip,
}

/// Resize so the shorter side is `size`, then center-crop to `size x size`; `[C, size, size]`.
pub fn resize_center_crop(img: &DynamicImage, channels: usize, size: usize) -> Vec<u8> {
    let (w, h) = (img.width() as f64, img.height() as f64);
    let s = size as f64 / w.min(h);
    let (nw, nh) = (((w * s).round() as u32).max(size as u32), ((h * s).round() as u32).max(size as u32));
    let resized = img.resize_exact(nw, nh, FilterType::Triangle);
    let x0 = (nw - size as u32) / 2;
    let y0 = (nh - size as u32) / 2;
    let cropped = resized.crop_imm(x0, y0, size as u32, size as u32);
    to_chw(&cropped, channels)
}

/// A decoded image as `[C, H, W]` bytes, grey (1) or RGB (3).
pub fn to_chw(img: &DynamicImage, channels: usize) -> Vec<u8> {
    if channels == 1 {
        img.to_luma8().into_raw()
    } else {
        let rgb = img.to_rgb8();
        let (w, h) = (rgb.width() as usize, rgb.height() as usize);
        let raw = rgb.into_raw();
        let mut out = vec![0u8; 3 * w * h];
        for (i, px) in raw.chunks_exact(3).enumerate() {
            for c in 0..3 {
                out[c * w * h + i] = px[c];
            }
        }
        out
    }
}

/// `[C, H, W]` bytes back to a decoded image.
pub fn from_chw(data: &[u8], shape: ImageShape) -> DynamicImage {
    let (w, h) = (shape.width as u32, shape.height as u32);
    if shape.channels == 1 {
        DynamicImage::ImageLuma8(GrayImage::from_raw(w, h, data.to_vec()).expect("size matches shape"))
    } else {
        let plane = shape.height * shape.width;
        let mut raw = vec![0u8; 3 * plane];
        for i in 0..plane {
            for c in 0..3 {
                raw[3 * i + c] = data[c * plane + i];
            }
        }
        DynamicImage::ImageRgb8(RgbImage::from_raw(w, h, raw).expect("size matches shape"))
    }
}

/// Apply `aug` to one image, `[C, H, W]` in and out, drawing from `rng`.
pub fn augment(data: &[u8], shape: ImageShape, aug: Augment, rng: &mut impl rand::Rng) -> Vec<u8> {
    match aug {
        Augment::None => data.to_vec(),
        Augment::Flip => {
            if rng.random_bool(0.5) {
                hflip(data, shape)
            } else {
                data.to_vec()
            }
        }
        Augment::RandomResizedCrop { min_scale, flip } => {
            let out = random_resized_crop(data, shape, min_scale, rng);
            if flip && rng.random_bool(0.5) { hflip(&out, shape) } else { out }
        }
    }
}

/// Mirror an image left to right.
pub fn hflip(data: &[u8], shape: ImageShape) -> Vec<u8> {
    let mut out = data.to_vec();
    for row in out.chunks_exact_mut(shape.width) {
        row.reverse();
    }
    out
}

/// torchvision's RandomResizedCrop: up to 10 tries for a box of the sampled area and aspect
/// inside the image, else the whole image; the box is resized back to the input size.
pub fn random_resized_crop(data: &[u8], shape: ImageShape, min_scale: f32, rng: &mut impl rand::Rng) -> Vec<u8> {
    let (h, w) = (shape.height as f32, shape.width as f32);
    let area = h * w;
    let (log_lo, log_hi) = ((3.0f32 / 4.0).ln(), (4.0f32 / 3.0).ln());
    let mut rect = (0u32, 0u32, shape.width as u32, shape.height as u32);
    for _ in 0..10 {
        let target = area * rng.random_range(min_scale..=1.0);
        let aspect = rng.random_range(log_lo..=log_hi).exp();
        let cw = (target * aspect).sqrt().round();
        let ch = (target / aspect).sqrt().round();
        if cw >= 1.0 && ch >= 1.0 && cw <= w && ch <= h {
            let x0 = rng.random_range(0..=(w - cw) as u32);
            let y0 = rng.random_range(0..=(h - ch) as u32);
            rect = (x0, y0, cw as u32, ch as u32);
            break;
        }
    }
    let img = from_chw(data, shape);
    let crop = img.crop_imm(rect.0, rect.1, rect.2, rect.3);
    let resized = crop.resize_exact(shape.width as u32, shape.height as u32, FilterType::Triangle);
    to_chw(&resized, shape.channels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chw_round_trips_through_an_rgb_image() {
        let shape = ImageShape { channels: 3, height: 2, width: 3 };
        let data: Vec<u8> = (0..18).collect();
        assert_eq!(to_chw(&from_chw(&data, shape), 3), data);
    }

    #[test]
    fn hflip_twice_is_identity() {
        let shape = ImageShape { channels: 1, height: 3, width: 4 };
        let data: Vec<u8> = (0..12).collect();
        assert_eq!(hflip(&data, shape)[..4], [3, 2, 1, 0]);
        assert_eq!(hflip(&hflip(&data, shape), shape), data);
    }

    #[test]
    fn random_resized_crop_keeps_the_shape() {
        use rand::SeedableRng;
        let shape = ImageShape { channels: 3, height: 16, width: 12 };
        let data = vec![100u8; shape.numel()];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let out = random_resized_crop(&data, shape, 0.2, &mut rng);
        assert_eq!(out.len(), shape.numel());
        assert!(out.iter().all(|&v| v == 100));
    }
}
