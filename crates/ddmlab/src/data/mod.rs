//! Data sets: readers for the standard formats, augmentations, a background batch loader and
//! the `data fetch` command's download through the system's package clients.
//!
//! Every reader produces an [`ImageSet`]: images as bytes in `[N, C, H, W]` order with one
//! label each. Images become floats in `[-1, 1]` only when a batch is made, so a whole data set
//! costs one byte per pixel in memory.

pub mod cifar;
pub mod fetch;
pub mod folder;
pub mod idx;
pub mod loader;
pub mod raw;
pub mod source;
pub mod transform;

pub use raw::RawImage;
pub use source::{DataSource, Split};

/// Channels, height and width of every image of a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageShape {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl ImageShape {
    /// Values per image, `C * H * W`.
    pub fn numel(&self) -> usize {
        self.channels * self.height * self.width
    }
}

impl std::fmt::Display for ImageShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}x{}", self.channels, self.height, self.width)
    }
}

/// A labelled set of same-sized images held as bytes.
#[derive(Debug, Clone)]
pub struct ImageSet {
    /// Pixel bytes, `[N, C, H, W]`.
    pub images: Vec<u8>,
    /// One class index per image.
    pub labels: Vec<u32>,
    pub shape: ImageShape,
    /// Class names, index = label.
    pub classes: Vec<String>,
}

impl ImageSet {
    /// The number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The bytes of image `i`, `[C, H, W]`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.shape.numel();
        &self.images[i * n..(i + 1) * n]
    }

    /// Image `i` as floats in `[-1, 1]`, `[C, H, W]`.
    pub fn image_f32(&self, i: usize) -> Vec<f32> {
        self.image(i).iter().map(|&v| to_unit(v)).collect()
    }

    /// The first `n` images (all of them when `n >= len`).
    pub fn truncate(mut self, n: usize) -> Self {
        if n < self.len() {
            self.images.truncate(n * self.shape.numel());
            self.labels.truncate(n);
        }
        self
    }

    /// Every image resized to `shape`'s height and width (bilinear, the `image` crate's
    /// triangle filter, which averages over the footprint when shrinking).
    pub fn resized(self, shape: ImageShape) -> Self {
        use rayon::prelude::*;
        let from = self.shape;
        let images: Vec<u8> = (0..self.len())
            .into_par_iter()
            .flat_map_iter(|i| {
                let img = transform::from_chw(self.image(i), from);
                let out =
                    img.resize_exact(shape.width as u32, shape.height as u32, image::imageops::FilterType::Triangle);
                transform::to_chw(&out, from.channels)
            })
            .collect();
        ImageSet { images, shape: ImageShape { channels: from.channels, ..shape }, ..self }
    }

    /// The number of classes.
    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }
}

/// A pixel byte mapped to `[-1, 1]`, the range every model here works in.
#[inline]
pub fn to_unit(v: u8) -> f32 {
    v as f32 / 127.5 - 1.0
}

/// A value in `[-1, 1]` mapped back to a pixel byte (clamped).
#[inline]
pub fn from_unit(v: f32) -> u8 {
    ((v + 1.0) * 127.5).round().clamp(0.0, 255.0) as u8
}
