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
///
/// One arena for every thread: glibc gives each worker thread its own arena of 64 MB heaps and
/// returns an emptied heap to the kernel whatever the trim threshold says, so the rayon workers'
/// buffers were faulted in again and again (each fault a copy-on-write of the zero page plus a
/// TLB shoot-down to the other core). Measured with `bench` (minor faults, `/usr/bin/time`):
/// the `dit-fmnist` step at batch 64 went from ~5k faults per step after warm-up to none, and
/// Inception features from ~160k faults per batch of 25 to none, with peak RSS 1180 -> 772 MB.
pub fn allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tunables; called once at start-up, before threads.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Flush subnormal floats to zero on this thread (x86-64: MXCSR's FTZ and DAZ bits; aarch64:
/// FPCR.FZ); threads spawned afterwards inherit the setting.
///
/// As a model trains, some products land below f32's normal range (~1.2e-38): attention weights
/// of sharpening softmaxes, GELU of large negative inputs. Every arithmetic instruction that meets
/// such a value takes a microcode assist of ~100 cycles. Measured on `dit-fmnist`: its step slowed
/// from 0.49 s to 1.5 s over the first 2000 steps of a run, with the GEMM microkernel's share of the
/// profile at 75% (31% on fresh weights); the same process flushing subnormals keeps the fresh
/// step's speed. Values that small carry no information for these networks, and PyTorch offers
/// the same switch (`torch.set_flush_denormal`).
pub fn flush_denormals() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: only the flush-to-zero / denormals-are-zero control bits of this thread's MXCSR change.
    #[allow(deprecated)] // _mm_getcsr / _mm_setcsr: the plain intrinsics say exactly what is meant
    unsafe {
        use std::arch::x86_64::{_mm_getcsr, _mm_setcsr};
        const FTZ: u32 = 1 << 15;
        const DAZ: u32 = 1 << 6;
        _mm_setcsr(_mm_getcsr() | FTZ | DAZ);
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: only the flush-to-zero bit of this thread's FPCR changes.
    unsafe {
        let mut fpcr: u64;
        std::arch::asm!("mrs {}, fpcr", out(reg) fpcr);
        fpcr |= 1 << 24;
        std::arch::asm!("msr fpcr, {}", in(reg) fpcr);
    }
}

/// Make burn's implicit default device the CPU unless the user named one (`BURN_DEVICE`).
///
/// burn 0.22 materialises a loaded optimizer state on `Device::default()` (the first GPU
/// backend compiled in) and moves it to each parameter's device at the next step. On a build
/// with the `wgpu` feature every resumed CPU run therefore started a GPU device (measured: on
/// lavapipe it loaded Vulkan, printed the loader's complaints to stderr and ran cubecl's
/// throughput probe) only to hand the state back. The device a command computes on is always
/// the explicit `--device`; this changes only where burn puts what it creates implicitly.
pub fn default_device() {
    if std::env::var_os("BURN_DEVICE").is_none() {
        // SAFETY: called at the start of `main`, before any thread exists.
        unsafe { std::env::set_var("BURN_DEVICE", "flex") };
    }
}

/// Size rayon's global pool (burn's flex backend runs on it); `None` = all cores. Its workers
/// flush subnormals like the main thread.
pub fn threads(n: Option<usize>) -> Result<()> {
    if n == Some(0) {
        bail!("invalid value for --threads: 0, expected at least 1");
    }
    pool(n).build_global()?;
    Ok(())
}

/// The pool `threads` installs: `n` workers (`None`: all cores), each flushing subnormals.
fn pool(n: Option<usize>) -> rayon::ThreadPoolBuilder {
    rayon::ThreadPoolBuilder::new().num_threads(n.unwrap_or(0)).start_handler(|_| flush_denormals())
}

/// The devices this build offers, for messages.
fn offered() -> String {
    let mut names = vec!["flex"];
    if cfg!(feature = "wgpu") {
        names.push("wgpu");
    }
    if cfg!(feature = "vulkan") {
        names.push("vulkan");
    }
    if cfg!(feature = "cuda") {
        names.push("cuda");
    }
    names.join(", ")
}

/// The device named by `--device`, checked to run a kernel before any work starts.
///
/// burn creates GPU devices lazily and panics inside its runtime when no adapter or driver is
/// there; the check turns that into one error naming what to install.
// Without a GPU feature every arm returns, and the check after the match is unreachable.
#[cfg_attr(not(any(feature = "wgpu", feature = "vulkan", feature = "cuda")), allow(unreachable_code, unused_variables))]
pub fn device(name: &str) -> Result<Device> {
    let device = match name {
        "flex" | "cpu" => return Ok(Device::flex()),
        #[cfg(feature = "wgpu")]
        "wgpu" => Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
        #[cfg(feature = "vulkan")]
        "vulkan" => Device::vulkan(burn::tensor::DeviceKind::DefaultDevice),
        #[cfg(feature = "cuda")]
        "cuda" => Device::cuda(0),
        gpu if ["wgpu", "vulkan", "cuda"].contains(&gpu) => bail!(
            "invalid value for --device: `{gpu}` is not in this build (it offers {}); rebuild with `cargo build --release --features {gpu}`",
            offered()
        ),
        other => bail!("invalid value for --device: `{other}`, expected one of {}", offered()),
    };
    check_runs(name, &device)?;
    Ok(device)
}

/// Run one small kernel on `device` and read it back, with burn's panic caught and its message
/// kept for the error.
fn check_runs(name: &str, device: &Device) -> Result<()> {
    use burn::tensor::{Tensor, TensorData};
    use std::sync::{Arc, Mutex};

    let message = Arc::new(Mutex::new(String::new()));
    let previous = std::panic::take_hook();
    let sink = message.clone();
    std::panic::set_hook(Box::new(move |info| {
        let text = match (info.payload().downcast_ref::<&str>(), info.payload().downcast_ref::<String>()) {
            (Some(s), _) => s.to_string(),
            (_, Some(s)) => s.clone(),
            _ => "unknown failure".into(),
        };
        // The first panic is the cause (the runtime's own thread); later ones are its echoes.
        let mut first = sink.lock().unwrap_or_else(|e| e.into_inner());
        if first.is_empty() {
            *first = text;
        }
    }));
    let device = device.clone();
    let result = std::panic::catch_unwind(move || {
        let x = Tensor::<1>::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0], [3]), &device);
        (x.clone() * x).sum().into_scalar::<f32>()
    });
    std::panic::set_hook(previous);
    match result {
        Ok(v) => {
            if v != 14.0 {
                bail!("--device {name}: a check kernel returned {v} instead of 14 (a broken driver?)");
            }
            Ok(())
        }
        Err(_) => {
            let why = message.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let hint = match name {
                "cuda" => "an NVIDIA GPU with its driver and the CUDA runtime",
                _ => {
                    "a Vulkan driver (a GPU's, or Mesa's software one: `apt-get install mesa-vulkan-drivers`); \
                     `vulkaninfo --summary` (package vulkan-tools) lists what the loader finds"
                }
            };
            bail!("--device {name}: no usable device ({why}); this needs {hint}")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::hint::black_box;

    /// 1e-30 * 1e-10 = 1e-40 is below f32's smallest normal (1.18e-38): a subnormal unless flushed.
    fn subnormal_product() -> f32 {
        black_box(1e-30f32) * black_box(1e-10f32)
    }

    #[test]
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    fn subnormal_results_are_flushed_on_the_thread_and_on_pool_workers() {
        std::thread::spawn(|| {
            assert!(subnormal_product() > 0.0, "a fresh thread keeps subnormals");
            super::flush_denormals();
            assert_eq!(subnormal_product(), 0.0);
            // A thread spawned afterwards inherits the setting.
            assert_eq!(std::thread::spawn(subnormal_product).join().unwrap(), 0.0);
        })
        .join()
        .unwrap();
        // The pool `threads` installs as the global one flushes on its workers.
        assert_eq!(super::pool(Some(2)).build().unwrap().install(subnormal_product), 0.0);
        assert!(subnormal_product() > 0.0, "the test harness's thread was left alone");
    }
}
