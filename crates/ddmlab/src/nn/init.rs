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

/// Setting a layer's bias to a constant after construction.
pub trait ZeroBias: Sized {
    /// The layer with every bias entry set to `value`, still trained.
    ///
    /// A parameter mapped to a fresh tensor takes that tensor's gradient setting, and a fresh
    /// constant tracks none: without restoring it the bias would stay frozen at `value` (it
    /// did, until a resumed run, whose loaded weights all train, drifted from an uninterrupted
    /// one).
    fn fill_bias(self, value: f64) -> Self;

    /// The layer with its bias set to zero, still trained.
    fn zero_bias(self) -> Self {
        self.fill_bias(0.0)
    }
}

impl ZeroBias for Linear {
    fn fill_bias(mut self, value: f64) -> Self {
        self.bias = self.bias.map(|b| b.map(|t| t.zeros_like() + value).set_require_grad(true));
        self
    }
}

/// Build a module with `init` on `device`, its initial weights drawn from `seed`, while no other
/// thread of the process can draw from the generator.
///
/// burn's generator is per device and process-wide, and a parameter draws its initial value
/// lazily, on first use: two runs in one process (tests, a run beside an evaluation) would
/// interleave their draws and neither would get the weights its seed names.
///
/// The draws are always the CPU generator's: on another device the module is built on `flex`
/// (with autodiff when `device` has it) and moved, so a seed names the same initial weights on
/// every device and a GPU run starts where its CPU twin does.
pub fn seeded<M: Module>(device: &Device, seed: u64, init: impl FnOnce(&Device) -> M) -> M {
    let draw = |on: &Device| {
        exclusive(|| {
            on.seed(seed);
            init(on)
        })
    };
    if crate::parallel::is_cpu(device) {
        return draw(device);
    }
    let cpu = if device.is_autodiff() { Device::flex().autodiff() } else { Device::flex() };
    // `fork`: fresh leaves on the device, each parameter still trained or frozen as built.
    draw(&cpu).fork(device)
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

#[cfg(test)]
mod tests {
    use burn::optim::GradientsParams;
    use burn::tensor::TensorData;

    use super::*;

    /// Regression (issue 11, defect b): a bias set after construction was frozen, so a fresh
    /// run never trained it while a resumed one did.
    #[test]
    fn a_filled_bias_is_set_and_still_trained() {
        let device = Device::flex().autodiff();
        for (layer, value) in [
            (xavier_linear(3, 2, &device), 0.0),
            (normal_linear(3, 2, 0.02, &device), 0.0),
            (zero_linear(3, 2, &device).fill_bias(-4.0), -4.0),
        ] {
            let bias = layer.bias.as_ref().unwrap();
            let values: Vec<f32> = bias.val().into_data().try_into_vec().unwrap();
            assert_eq!(values, vec![value as f32; 2]);
            let x = Tensor::<2>::from_data(TensorData::new(vec![1.0f32; 12], [4, 3]), &device);
            let grads = GradientsParams::from_grads(layer.forward(x).sum().backward(), &layer);
            let g = grads.get::<1>(bias.id).expect("the bias receives a gradient");
            // d(sum of outputs) / d(bias_j) = the batch size.
            assert_eq!(g.into_data().try_into_vec::<f32>().unwrap(), vec![4.0; 2]);
        }
    }
}
