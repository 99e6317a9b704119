//! A data set's posterior in a tokenizer's token space, encoded once: what a latent cache holds
//! (`train.cache_latents`; `runs::token_cache` writes and reads it) and how a training step
//! samples from it.

/// Every image's posterior in token space.
#[derive(Debug, Clone, PartialEq)]
pub struct PosteriorTokens {
    /// `[N, L, d]`
    pub mean: Vec<f32>,
    /// `[N, L, d]`; zeros for a deterministic tokenizer.
    pub std: Vec<f32>,
    pub labels: Vec<i64>,
    /// `[N, L, d]`
    pub shape: [usize; 3],
}

impl PosteriorTokens {
    /// Values per image, `L d`.
    pub fn per_image(&self) -> usize {
        self.shape[1] * self.shape[2]
    }

    /// The tokens of images `indices` drawn with posterior noise `noise` (`[B, L, d]`; `None`:
    /// the mean, as a deterministic tokenizer encodes): `mean + std * noise`, `[B, L, d]`.
    pub fn sample(&self, indices: &[usize], noise: Option<&[f32]>) -> Vec<f32> {
        let per = self.per_image();
        let mut out = Vec::with_capacity(indices.len() * per);
        for (k, &i) in indices.iter().enumerate() {
            let (mean, std) = (&self.mean[i * per..(i + 1) * per], &self.std[i * per..(i + 1) * per]);
            match noise {
                Some(e) => {
                    out.extend(mean.iter().zip(std).zip(&e[k * per..(k + 1) * per]).map(|((m, s), e)| m + s * e))
                }
                None => out.extend_from_slice(mean),
            }
        }
        out
    }
}
