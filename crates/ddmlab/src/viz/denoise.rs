//! The paper's Fig. 8: clean images, their noised inputs at several noise levels, and the
//! network's reconstructions, for any run whose network predicts an image or a latent that the
//! tokenizer decodes.

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

use super::grid::save_grid;
use crate::config::RunConfig;
use crate::data::ImageSet;
use crate::diffusion::denoise::{InputSpace, Latent, Target};
use crate::error::{Error, Result};
use crate::models::DenoisingVit;
use crate::nn::unpatchify;
use crate::tokenizer::Tokenizer;

/// Rows: clean images, then for each `t` in `levels` a row of the noisy input (as an image)
/// and a row of the clean image the network implies.
#[allow(clippy::too_many_arguments)]
pub fn save_denoise_grid(
    model: &DenoisingVit,
    config: &RunConfig,
    tokenizer: &dyn Tokenizer,
    set: &ImageSet,
    count: usize,
    levels: &[usize],
    seed: u64,
    path: &Path,
    device: &Device,
) -> Result<()> {
    let d = &config.denoise;
    let objective = d.objective();
    let shape = set.shape;
    let (p, c, h, w) = (tokenizer.patch(), shape.channels, shape.height, shape.width);
    if let Some(&t) = levels.iter().find(|&&t| t >= d.timesteps) {
        return Err(Error::config("denoise_grid.t", format!("{t} must be below {}", d.timesteps)));
    }
    let n = count.min(set.len());
    let clean: Vec<Vec<f32>> = (0..n).map(|i| set.image_f32(i)).collect();
    let x0 = Tensor::<4>::from_data(TensorData::new(clean.concat(), [n, c, h, w]), device);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let split = |t: Tensor<4>| -> Vec<Vec<f32>> {
        let v: Vec<f32> = t.into_data().try_into_vec().expect("f32");
        v.chunks(shape.numel()).map(|c| c.to_vec()).collect()
    };
    let per_image = if d.noise_is_pixels() { shape.numel() } else { config.model.tokens() * tokenizer.latent_dim() };
    let mut rows = vec![clean];
    for &t in levels {
        let eps = (0..n * per_image).map(|_| StandardNormal.sample(&mut rng)).collect();
        let ts = vec![t; n];
        let eps = objective.noise_tokens(tokenizer, eps, n, d.noise_is_pixels(), device);
        let (input, _) = objective.input_and_target(tokenizer, x0.clone(), &ts, eps, Latent::Encode(None));
        let out = model.forward(input.clone(), &ts, None); // [n, L, out]
        let shown = match d.input {
            InputSpace::Image => unpatchify(input.clone(), p, c, h, w),
            InputSpace::Latent => tokenizer.decode(input.clone()),
        };
        let (g, s) = (objective.tables.gamma[t], objective.tables.sigma[t].max(1e-12));
        let x0_hat = match d.target {
            Target::Image | Target::DecodedX0 => unpatchify(out, p, c, h, w),
            Target::X0 => tokenizer.decode(out),
            Target::Eps if d.input == InputSpace::Latent => tokenizer.decode((input - out * s) / g.max(1e-4)),
            Target::V if d.input == InputSpace::Latent => tokenizer.decode(input * g - out * s),
            _ => {
                return Err(Error::config(
                    "denoise_grid.run",
                    "this run's network predicts noise from an image input: there is no clean image to show",
                ));
            }
        };
        rows.push(split(shown.clamp(-1.0, 1.0)));
        rows.push(split(x0_hat.clamp(-1.0, 1.0)));
    }
    save_grid(path, &rows, shape, 3)
}
