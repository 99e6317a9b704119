//! The paper's Fig. 4: the first PCA components of the patch basis, drawn as image patches.

use std::path::Path;

use super::grid::save_grid;
use crate::data::ImageShape;
use crate::error::Result;
use crate::tokenizer::PatchPca;

/// Draw the first `count` components, each rescaled to `[-1, 1]` by its largest magnitude,
/// `per_row` to a row; patches are upscaled to about 64 pixels.
pub fn save_components(pca: &PatchPca, count: usize, per_row: usize, path: &Path) -> Result<()> {
    let (p, c) = (pca.patch, pca.channels);
    let count = count.min(pca.dim());
    let shape = ImageShape { channels: c, height: p, width: p };
    let tiles: Vec<Vec<f32>> = (0..count)
        .map(|k| {
            let v = pca.component(k); // [p, p, C] layout
            let m = v.iter().fold(1e-12f64, |m, x| m.max(x.abs()));
            let mut chw = vec![0f32; p * p * c];
            for py in 0..p {
                for px in 0..p {
                    for ch in 0..c {
                        chw[(ch * p + py) * p + px] = (v[(py * p + px) * c + ch] / m) as f32;
                    }
                }
            }
            chw
        })
        .collect();
    let rows: Vec<Vec<Vec<f32>>> = tiles.chunks(per_row.max(1)).map(|r| r.to_vec()).collect();
    save_grid(path, &rows, shape, (64 / p as u32).max(1))
}
