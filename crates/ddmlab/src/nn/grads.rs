//! Gradients laid out for the optimizer on a GPU.
//!
//! burn 0.22's fused wgpu backend misreads some gradients that its convolution backward leaves
//! with a non-contiguous layout (measured: the weight `[1, C, 4, 4]` of the PatchGAN's logit
//! convolution): AdamW's fused update, reading the gradient in the same kernel, writes the
//! step to the wrong elements (1.02 absolute error after one step, while the gradient itself
//! reads back right). Flattening every gradient and restoring its shape materialises it
//! contiguously first. On the CPU the gradients pass untouched.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

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
        let grad = if crate::parallel::is_cpu(&grad.device()) {
            grad
        } else {
            let shape = grad.shape();
            let n = shape.num_elements();
            grad.reshape([n]).reshape(shape)
        };
        self.grads.register::<D>(param.id, grad);
    }
}
