//! Exponential moving average of the weights, kept on the plain (non-autodiff) device.
//!
//! `ema <- d_s * ema + (1 - d_s) * theta` after every step, with the warmed-up decay
//! `d_s = min(decay, (1 + s) / (10 + s))` so that short runs are not dominated by the
//! initialisation.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;

/// The decay used after step `step` (0-based).
pub fn ema_decay_at(decay: f64, step: usize) -> f64 {
    decay.min((1.0 + step as f64) / (10.0 + step as f64))
}

struct Collect(HashMap<ParamId, Tensor<1>>);

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.insert(param.id, param.val().flatten::<1>(0, D - 1));
    }
}

struct Blend {
    current: HashMap<ParamId, Tensor<1>>,
    decay: f64,
}

impl ModuleMapper for Blend {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(cur) = self.current.remove(&param.id) else { return param };
        let decay = self.decay;
        param.map(|ema| {
            let dims = ema.dims();
            ema * decay + cur.reshape(dims) * (1.0 - decay)
        })
    }
}

/// Blend `model` (any device; its plain values are used) into `ema`.
pub fn update_ema<M: Module>(ema: M, model: &M, decay: f64) -> M {
    let mut collect = Collect(HashMap::new());
    model.valid().visit(&mut collect);
    ema.map(&mut Blend { current: collect.0, decay })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ema_decay_warms_up_then_caps() {
        assert!((ema_decay_at(0.999, 0) - 0.1).abs() < 1e-12);
        assert_eq!(ema_decay_at(0.999, 1_000_000), 0.999);
    }
}
