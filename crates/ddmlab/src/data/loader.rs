//! The batch loader: a background thread that prepares the next batches while the model runs.
//!
//! Which images form batch `s` is a pure function of `(seed, s)`: the data is shuffled by a
//! fresh permutation each epoch, seeded by `(seed, epoch)`, and augmentation draws from an RNG
//! seeded by `(seed, s, i)`. A run resumed at step `s` therefore sees exactly the batches the
//! uninterrupted run would have seen, and the loader can start anywhere.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::transform::{Augment, augment};
use super::{ImageSet, to_unit};

/// One training batch on the host.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The global step this batch is for.
    pub step: usize,
    /// Pixels in `[-1, 1]`, `[B, C, H, W]`.
    pub images: Vec<f32>,
    /// Class labels, `[B]`.
    pub labels: Vec<u32>,
    /// The images' indices in the data set, `[B]` (what a cache of their latents is read by).
    pub indices: Vec<usize>,
}

/// An RNG for one purpose at one step: streams never overlap between purposes or steps.
pub fn step_rng(seed: u64, purpose: u64, step: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ purpose.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    rng.set_stream(step);
    rng
}

/// RNG purposes (the `purpose` argument of [`step_rng`]).
pub mod purpose {
    pub const SHUFFLE: u64 = 1;
    pub const AUGMENT: u64 = 2;
    pub const NOISE: u64 = 3;
    pub const PCA: u64 = 4;
    pub const LABEL_DROP: u64 = 5;
    pub const TOKENIZER: u64 = 6;
    /// MAR's mask ratio and generation orders.
    pub const MASK: u64 = 7;
}

/// How a training run draws its batches.
#[derive(Debug, Clone, Copy)]
pub struct BatchPlan {
    pub seed: u64,
    pub batch_size: usize,
    pub augment: Augment,
}

impl BatchPlan {
    /// Full batches per epoch (the last partial batch is dropped, as in the papers' loaders).
    pub fn steps_per_epoch(&self, n: usize) -> usize {
        (n / self.batch_size).max(1)
    }

    /// The data-set indices of the images of batch `step`.
    pub fn indices(&self, n: usize, step: usize) -> Vec<usize> {
        let per_epoch = self.steps_per_epoch(n);
        let epoch = step / per_epoch;
        let mut perm: Vec<usize> = (0..n).collect();
        perm.shuffle(&mut step_rng(self.seed, purpose::SHUFFLE, epoch as u64));
        let start = (step % per_epoch) * self.batch_size;
        (start..start + self.batch_size).map(|i| perm[i % n]).collect()
    }

    /// Assemble batch `step` (images as floats, augmented).
    pub fn make(&self, set: &ImageSet, step: usize) -> Batch {
        let idx = self.indices(set.len(), step);
        let mut images = Vec::with_capacity(idx.len() * set.shape.numel());
        let mut labels = Vec::with_capacity(idx.len());
        for (i, &j) in idx.iter().enumerate() {
            let img = if self.augment == Augment::None {
                std::borrow::Cow::Borrowed(set.image(j))
            } else {
                let mut rng = step_rng(self.seed, purpose::AUGMENT, ((step as u64) << 20) | i as u64);
                std::borrow::Cow::Owned(augment(set.image(j), set.shape, self.augment, &mut rng))
            };
            images.extend(img.iter().map(|&v| to_unit(v)));
            labels.push(set.labels[j]);
        }
        Batch { step, images, labels, indices: idx }
    }
}

/// Batches for steps `start..end`, prepared `depth` ahead on a background thread.
pub struct Loader {
    rx: Receiver<Batch>,
    handle: Option<JoinHandle<()>>,
}

impl Loader {
    /// Start preparing batches `start..end` of `plan` over `set`.
    pub fn spawn(set: Arc<ImageSet>, plan: BatchPlan, start: usize, end: usize, depth: usize) -> Self {
        let (tx, rx): (SyncSender<Batch>, _) = sync_channel(depth.max(1));
        let handle = std::thread::Builder::new()
            .name("ddmlab-loader".into())
            .spawn(move || {
                for step in start..end {
                    if tx.send(plan.make(&set, step)).is_err() {
                        return; // The consumer stopped early.
                    }
                }
            })
            .expect("spawning the loader thread");
        Loader { rx, handle: Some(handle) }
    }
}

impl Iterator for Loader {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        self.rx.recv().ok()
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        // Close the channel first so a blocked producer wakes up and exits.
        let (_, dead) = sync_channel(0);
        drop(std::mem::replace(&mut self.rx, dead));
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The set in order, `batch_size` images at a time (the last batch may be short); for
/// evaluation. Yields `(images [b, C, H, W] in [-1, 1], labels [b])`.
pub fn ordered_batches(set: &ImageSet, batch_size: usize) -> impl Iterator<Item = (Vec<f32>, Vec<u32>)> + '_ {
    (0..set.len()).step_by(batch_size.max(1)).map(move |start| {
        let end = (start + batch_size).min(set.len());
        let n = set.shape.numel();
        let images = set.images[start * n..end * n].iter().map(|&v| to_unit(v)).collect();
        (images, set.labels[start..end].to_vec())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ImageShape;

    fn toy_set(n: usize) -> ImageSet {
        ImageSet {
            images: (0..n).map(|i| i as u8).collect(),
            labels: (0..n as u32).collect(),
            shape: ImageShape { channels: 1, height: 1, width: 1 },
            classes: (0..n).map(|i| i.to_string()).collect(),
        }
    }

    #[test]
    fn each_epoch_visits_every_image_once() {
        let plan = BatchPlan { seed: 3, batch_size: 4, augment: Augment::None };
        let mut seen: Vec<usize> = (0..5).flat_map(|s| plan.indices(20, s)).collect();
        seen.sort();
        assert_eq!(seen, (0..20).collect::<Vec<_>>());
        assert_ne!(plan.indices(20, 0), plan.indices(20, 5), "epochs reshuffle");
    }

    #[test]
    fn loader_started_midway_yields_the_same_batches() {
        let set = Arc::new(toy_set(10));
        let plan = BatchPlan { seed: 1, batch_size: 3, augment: Augment::Flip };
        let all: Vec<_> = Loader::spawn(set.clone(), plan, 0, 8, 2).map(|b| b.labels).collect();
        let tail: Vec<_> = Loader::spawn(set, plan, 5, 8, 2).map(|b| b.labels).collect();
        assert_eq!(all.len(), 8);
        assert_eq!(&all[5..], &tail[..]);
    }
}
