//! Data parallelism on one device.
//!
//! On the CPU (`flex`) burn's element-wise kernels run the small tensors of these models on one
//! thread, so ddmlab splits a batch into shards (training) or runs batches side by side
//! (sampling, features, Inception), one per rayon worker. A GPU spreads every kernel over the
//! whole device: there the work stays in one stream and the batch stays whole.

use burn::tensor::Device;

/// Whether `device` (with or without autodiff) is burn's `flex` CPU backend, where ddmlab's CPU
/// fast paths (sharded steps, the vectorised GELU) apply.
pub fn is_cpu(device: &Device) -> bool {
    device.clone().without_autodiff() == Device::flex()
}

/// How many shards or batches to run concurrently on `device`: every rayon worker on the CPU,
/// one on a GPU.
pub fn workers(device: &Device) -> usize {
    if is_cpu(device) { rayon::current_num_threads().max(1) } else { 1 }
}

/// `f` over `items`, results in order: side by side on rayon's workers when `device` is the
/// CPU, one after another on the calling thread otherwise. A GPU is driven from one thread:
/// burn's fusion keeps a stream per thread, and a tensor made on one thread and used on another
/// (a shard run on a rayon worker) would cross streams.
pub fn map<T: Send, R: Send>(device: &Device, items: Vec<T>, f: impl Fn(T) -> R + Sync + Send) -> Vec<R> {
    use rayon::prelude::*;
    if is_cpu(device) { items.into_par_iter().map(f).collect() } else { items.into_iter().map(f).collect() }
}

/// `f` over a stream of `items`, results in order, computed [`workers`] items at a time by
/// [`map`]: at most one group's inputs and results are held at once, so a long stream
/// (thousands of sample chunks, a data set's batches) runs side by side in bounded memory.
/// Items are pulled on the calling thread; each result is yielded as its group finishes.
pub fn map_grouped<'f, I, R, F>(device: &Device, items: I, f: &'f F) -> Grouped<'f, I::IntoIter, R, F>
where
    I: IntoIterator,
    I::Item: Send,
    R: Send,
    F: Fn(I::Item) -> R + Sync + Send,
{
    Grouped {
        items: items.into_iter(),
        f,
        device: device.clone(),
        workers: workers(device),
        ready: Vec::new().into_iter(),
    }
}

/// The iterator of [`map_grouped`].
pub struct Grouped<'f, I, R, F> {
    items: I,
    f: &'f F,
    device: Device,
    workers: usize,
    ready: std::vec::IntoIter<R>,
}

impl<I, R, F> Iterator for Grouped<'_, I, R, F>
where
    I: Iterator,
    I::Item: Send,
    R: Send,
    F: Fn(I::Item) -> R + Sync + Send,
{
    type Item = R;

    fn next(&mut self) -> Option<R> {
        if let Some(r) = self.ready.next() {
            return Some(r);
        }
        let group: Vec<I::Item> = self.items.by_ref().take(self.workers).collect();
        if group.is_empty() {
            return None;
        }
        self.ready = map(&self.device, group, self.f).into_iter();
        self.ready.next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every item once, in order, whatever the group size; `f` never sees more than one group
    /// at a time ahead of what was consumed.
    #[test]
    fn grouped_map_keeps_the_order_and_bounds_the_items_in_flight() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let started = AtomicUsize::new(0);
        let f = |i: usize| {
            started.fetch_add(1, Ordering::SeqCst);
            i * i
        };
        let device = Device::flex();
        let w = workers(&device);
        let mut out = Vec::new();
        for (k, r) in map_grouped(&device, 0..10 * w + 1, &f).enumerate() {
            assert!(started.load(Ordering::SeqCst) <= (k / w + 1) * w, "more than one group ahead at item {k}");
            out.push(r);
        }
        assert_eq!(out, (0..10 * w + 1).map(|i| i * i).collect::<Vec<_>>());
    }

    #[test]
    fn the_cpu_runs_one_worker_per_thread_with_or_without_autodiff() {
        assert!(is_cpu(&Device::flex()));
        assert!(is_cpu(&Device::flex().autodiff()));
        assert_eq!(workers(&Device::flex().autodiff()), rayon::current_num_threads());
    }
}
