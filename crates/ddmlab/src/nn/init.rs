//! Weight initialisations used by DiT (`initialize_weights` in facebookresearch/DiT).

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

/// A linear layer with Xavier-uniform weights and zero bias (DiT's default for every Linear).
pub fn xavier_linear(d_in: usize, d_out: usize, device: &Device) -> Linear {
    LinearConfig::new(d_in, d_out).with_initializer(Initializer::XavierUniform { gain: 1.0 }).init(device).zero_bias()
}

/// A linear layer with N(0, std^2) weights and zero bias (DiT's timestep MLP uses std 0.02).
pub fn normal_linear(d_in: usize, d_out: usize, std: f64, device: &Device) -> Linear {
    LinearConfig::new(d_in, d_out).with_initializer(Initializer::Normal { mean: 0.0, std }).init(device).zero_bias()
}

/// A linear layer with all-zero weights and bias (adaLN-Zero modulation, final projection).
pub fn zero_linear(d_in: usize, d_out: usize, device: &Device) -> Linear {
    LinearConfig::new(d_in, d_out).with_initializer(Initializer::Zeros).init(device)
}

/// Zeroing a layer's bias after construction.
pub trait ZeroBias {
    /// The layer with its bias set to zero.
    fn zero_bias(self) -> Self;
}

impl ZeroBias for Linear {
    fn zero_bias(mut self) -> Self {
        self.bias = self.bias.map(|b| b.map(|t| t.zeros_like()));
        self
    }
}

/// Seed `device`'s generator with `seed`, build a module with `init` and draw all of its
/// initial weights, while no other thread of the process can draw from the generator.
///
/// burn's generator is per device and process-wide, and a parameter draws its initial value
/// lazily, on first use: two runs in one process (tests, a run beside an evaluation) would
/// interleave their draws and neither would get the weights its seed names.
pub fn seeded<M: Module>(device: &Device, seed: u64, init: impl FnOnce() -> M) -> M {
    exclusive(|| {
        device.seed(seed);
        init()
    })
}

/// Build a module with `init` and draw its initial weights (e.g. a network built only to
/// receive loaded weights) while no seeded initialisation of another thread is under way.
pub fn exclusive<M: Module>(init: impl FnOnce() -> M) -> M {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let module = init();
    module.visit(&mut Materialise);
    module
}

/// Reads every parameter once, which runs its lazy initialisation.
struct Materialise;

impl ModuleVisitor for Materialise {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let _ = param.val();
    }
}
