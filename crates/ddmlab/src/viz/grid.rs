//! Image grids to PNG: rows of equally sized images with a thin white gutter.

use std::path::Path;

use image::{DynamicImage, GenericImage, Rgb, RgbImage};

use crate::data::{ImageShape, from_unit, transform::from_chw};
use crate::error::{Error, Result};

/// Tile `rows` (each a list of `[C, H, W]` images in `[-1, 1]`) into one PNG, each image
/// upscaled by `scale` with nearest neighbour.
pub fn save_grid(path: &Path, rows: &[Vec<Vec<f32>>], shape: ImageShape, scale: u32) -> Result<()> {
    let cols = rows.iter().map(|r| r.len()).max().unwrap_or(0) as u32;
    if rows.is_empty() || cols == 0 {
        return Err(Error::Other(format!("{}: an image grid needs at least one image", path.display())));
    }
    let gap = 2u32;
    let (w, h) = (shape.width as u32 * scale, shape.height as u32 * scale);
    let mut canvas =
        RgbImage::from_pixel(cols * (w + gap) + gap, rows.len() as u32 * (h + gap) + gap, Rgb([255, 255, 255]));
    for (r, row) in rows.iter().enumerate() {
        for (c, img) in row.iter().enumerate() {
            let bytes: Vec<u8> = img.iter().map(|&v| from_unit(v)).collect();
            let tile = from_chw(&bytes, shape).resize_exact(w, h, image::imageops::FilterType::Nearest).to_rgb8();
            canvas
                .copy_from(&tile, gap + c as u32 * (w + gap), gap + r as u32 * (h + gap))
                .map_err(|e| Error::Other(format!("{}: {e}", path.display())))?;
        }
    }
    save_png(path, &DynamicImage::ImageRgb8(canvas))
}

/// Save a PNG atomically.
pub fn save_png(path: &Path, img: &DynamicImage) -> Result<()> {
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, image::ImageFormat::Png).map_err(|e| Error::Other(format!("{}: {e}", path.display())))?;
    crate::atomic::write_atomic(path, buf.get_ref())
}

/// Save each `[C, H, W]` image in `[-1, 1]` as its own PNG at its path (folders are created).
pub fn save_images(paths: &[std::path::PathBuf], images: &[Vec<f32>], shape: ImageShape) -> Result<()> {
    for (path, img) in paths.iter().zip(images) {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::Other(format!("{}: cannot create ({e})", dir.display())))?;
        }
        let bytes: Vec<u8> = img.iter().map(|&v| from_unit(v)).collect();
        save_png(path, &from_chw(&bytes, shape))?;
    }
    Ok(())
}
