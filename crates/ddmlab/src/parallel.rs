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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_runs_one_worker_per_thread_with_or_without_autodiff() {
        assert!(is_cpu(&Device::flex()));
        assert!(is_cpu(&Device::flex().autodiff()));
        assert_eq!(workers(&Device::flex().autodiff()), rayon::current_num_threads());
    }
}
