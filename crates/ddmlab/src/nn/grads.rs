//! Gradients laid out for fused kernels on a GPU.
//!
//! burn 0.22's fused wgpu backend misreads some gradients that its convolution backward leaves
//! with a non-contiguous layout when a fused element-wise kernel reads them beside tensors of
//! another layout. Measured on lavapipe, twice:
//! - the weight `[1, C, 4, 4]` of the PatchGAN's logit convolution: AdamW's fused update,
//!   reading the gradient in the same kernel, wrote the step to the wrong elements (1.02
//!   absolute error after one step, while the gradient itself read back right);
//! - the PatchGAN's input gradient `d g_loss / d x_hat` of the conv tokenizer: `grad_nll +
//!   grad_g * d_weight` read back with a maximum of 3.8e12 where every term is below 4 (each
//!   term alone read right), so the autoencoder's first adversarial gradient was ~1e12 times
//!   too large and Adam's normalised step hid it as a 2e-3 loss difference. It happened only
//!   with some fusion schedules (always with `CUBECL_DEBUG_LOG` set, sometimes under load).
//!
//! Flattening a tensor and restoring its shape materialises it contiguously ([`materialize`]).
//! On the CPU tensors pass untouched.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

/// `tensor`, copied to a contiguous layout when it lives on a GPU device; call on every gradient
/// taken out of an autodiff graph (`Tensor::grad`) before element-wise arithmetic with it.
pub fn materialize<const D: usize>(tensor: Tensor<D>) -> Tensor<D> {
    if crate::parallel::is_cpu(&tensor.device()) {
        tensor
    } else {
        let shape = tensor.shape();
        let n = shape.num_elements();
        tensor.reshape([n]).reshape(shape)
    }
}

/// `grads` of `module` with each gradient on a GPU device copied to a contiguous layout;
/// call before every optimizer step.
pub fn contiguous<M: Module>(module: &M, mut grads: GradientsParams) -> GradientsParams {
    module.visit(&mut Relay { grads: &mut grads });
    grads
}

struct Relay<'a> {
    grads: &'a mut GradientsParams,
}

impl ModuleVisitor for Relay<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(grad) = self.grads.remove::<D>(param.id) else { return };
        self.grads.register::<D>(param.id, materialize(grad));
    }
}
