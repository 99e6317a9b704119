//! Global-norm gradient clipping, as PyTorch's `clip_grad_norm_` (MAR, MAE and DiT's training
//! scripts use it): when `||g||_2` over all parameters together exceeds `max_norm`, every
//! gradient is scaled by `max_norm / (||g|| + 1e-6)`. burn's `GradientClippingConfig::Norm`
//! clips each tensor by its own norm instead, which changes the update's direction.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

/// Sums the squared gradient entries of every float parameter of a module.
struct SquaredNorm<'a> {
    grads: &'a GradientsParams,
    sum: f64,
}

impl ModuleVisitor for SquaredNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            self.sum += g.square().sum().into_scalar::<f32>() as f64;
        }
    }
}

/// Scales every gradient of a module by one factor.
struct Scale<'a> {
    grads: &'a mut GradientsParams,
    factor: f64,
}

impl ModuleVisitor for Scale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            self.grads.register::<D>(param.id, g * self.factor);
        }
    }
}

/// The global L2 norm of `model`'s gradients in `grads`.
pub fn global_norm<M: Module>(model: &M, grads: &GradientsParams) -> f64 {
    let mut visitor = SquaredNorm { grads, sum: 0.0 };
    model.visit(&mut visitor);
    visitor.sum.sqrt()
}

/// Clip `grads` to global norm `max_norm` (no-op when `max_norm <= 0` or the norm is within
/// it); returns the norm before clipping.
pub fn clip_global_norm<M: Module>(model: &M, grads: &mut GradientsParams, max_norm: f64) -> f64 {
    let norm = global_norm(model, grads);
    if max_norm > 0.0 && norm > max_norm {
        model.visit(&mut Scale { grads, factor: max_norm / (norm + 1e-6) });
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::LinearConfig;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn gradients_are_scaled_together_to_the_global_norm() {
        let device = Device::flex().autodiff();
        let layer = LinearConfig::new(2, 2).init(&device);
        // loss = sum(W x + b) with x = (3, 4): dW rows = (3, 4), db = (1, 1).
        let x = Tensor::<2>::from_data(TensorData::new(vec![3.0f32, 4.0], [1, 2]), &device);
        let loss = layer.forward(x).sum();
        let mut grads = GradientsParams::from_grads(loss.backward(), &layer);
        // ||g||^2 = 2 * (9 + 16) + 2 * 1 = 52.
        let norm = clip_global_norm(&layer, &mut grads, 2.0);
        assert!((norm - 52f64.sqrt()).abs() < 1e-5, "{norm}");
        assert!((global_norm(&layer, &grads) - 2.0).abs() < 1e-5);
        // Direction kept: dW / db keeps its ratio (3 : 1), which per-tensor clipping would not.
        let dw: Vec<f32> = grads.get::<2>(layer.weight.id).unwrap().into_data().try_into_vec().unwrap();
        let db: Vec<f32> = grads.get::<1>(layer.bias.as_ref().unwrap().id).unwrap().into_data().try_into_vec().unwrap();
        assert!((dw[0] / db[0] - 3.0).abs() < 1e-5, "{dw:?} {db:?}");
        // Within the bound: untouched.
        let before = global_norm(&layer, &grads);
        clip_global_norm(&layer, &mut grads, 10.0);
        assert_eq!(global_norm(&layer, &grads), before);
    }
}
