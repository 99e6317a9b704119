//! The paper's Fig. 8: clean images, their latent-noised inputs `x_t` at several noise levels,
//! and the network's reconstructions `x0_hat`.

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

use super::grid::save_grid;
use crate::data::ImageSet;
use crate::diffusion::{LdaeObjective, LdaeTerms};
use crate::error::Result;
use crate::models::DenoisingVit;
use crate::tokenizer::PatchPca;

/// Rows: clean images, then for each `t` in `levels` a row of `x_t` and a row of `x0_hat`.
#[allow(clippy::too_many_arguments)]
pub fn save_denoise_grid(
    model: &DenoisingVit,
    objective: &LdaeObjective,
    pca: &PatchPca,
    latent_dim: usize,
    set: &ImageSet,
    count: usize,
    levels: &[usize],
    seed: u64,
    path: &Path,
    device: &Device,
) -> Result<()> {
    let shape = set.shape;
    let n = count.min(set.len());
    let clean: Vec<Vec<f32>> = (0..n).map(|i| set.image_f32(i)).collect();
    let x0 =
        Tensor::<4>::from_data(TensorData::new(clean.concat(), [n, shape.channels, shape.height, shape.width]), device);
    let tensors = pca.tensors(latent_dim, device);
    let tokens = (shape.height / objective.patch) * (shape.width / objective.patch);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let split = |t: Tensor<4>| -> Vec<Vec<f32>> {
        let v: Vec<f32> = t.into_data().try_into_vec().expect("f32");
        v.chunks(shape.numel()).map(|c| c.to_vec()).collect()
    };
    let mut rows = vec![clean];
    for &t in levels {
        let eps = (0..n * tokens * latent_dim).map(|_| StandardNormal.sample(&mut rng)).collect();
        let terms = LdaeTerms { t: vec![t; n], eps };
        let x_t = objective.noisy_input(&tensors, x0.clone(), &terms);
        let pred = model.forward(x_t.clone(), &terms.t);
        rows.push(split(x_t));
        rows.push(split(pred));
    }
    save_grid(path, &rows, shape, 3)
}
