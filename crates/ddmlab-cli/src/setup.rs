//! Process-wide set-up: the thread pool and the compute device.

use anyhow::{Result, bail};
use burn::tensor::Device;

/// Keep freed memory in the process instead of returning it to the kernel.
///
/// A training step allocates and frees many tensors of tens of megabytes. With glibc's
/// defaults each of them is a fresh `mmap`, so every step pays for page faults and for the
/// kernel zeroing pages: measured at about 30% of the l-DAE step on flex. Serving them from the
/// heap and never trimming it removes that cost (peak memory is unchanged: the same buffers are
/// reused).
pub fn allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tunables; called once at start-up, before threads.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

/// Size rayon's global pool (burn's flex backend runs on it); `None` = all cores.
pub fn threads(n: Option<usize>) -> Result<()> {
    if let Some(n) = n {
        if n == 0 {
            bail!("invalid value for --threads: 0, expected at least 1");
        }
        rayon::ThreadPoolBuilder::new().num_threads(n).build_global()?;
    }
    Ok(())
}

/// The device named by `--device`.
pub fn device(name: &str) -> Result<Device> {
    match name {
        "flex" | "cpu" => Ok(Device::flex()),
        #[cfg(feature = "cuda")]
        "cuda" => Ok(Device::cuda(0)),
        other => bail!(
            "invalid value for --device: `{other}`, expected flex{}",
            if cfg!(feature = "cuda") { " or cuda" } else { " (build with --features cuda for cuda)" }
        ),
    }
}
