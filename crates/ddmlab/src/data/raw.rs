//! One decoded image at its own size, as bytes: what FID reads from data sets, folders, sample
//! files and samplers alike.

/// One image at its own size, bytes `[C, H, W]` with `C` = 1 (grey) or 3 (RGB).
#[derive(Debug, Clone, PartialEq)]
pub struct RawImage {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub pixels: Vec<u8>,
}

impl RawImage {
    /// A `[C, H, W]` image of `shape` from values in `[0, 1]` (a sampler's output), quantised.
    pub fn from_unit(values: &[f32], shape: super::ImageShape) -> RawImage {
        RawImage {
            channels: shape.channels,
            height: shape.height,
            width: shape.width,
            pixels: values.iter().map(|&v| super::from_unit(v)).collect(),
        }
    }
}
