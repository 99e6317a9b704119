//! Process-wide set-up: the thread pool and the compute device.

use anyhow::{Result, bail};
use burn::tensor::Device;

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
