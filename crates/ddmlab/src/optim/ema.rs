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
        // (1 + s) / (10 + s) until it reaches the cap: 0.999 from s = 8990 on.
        for (step, want) in [(0, 0.1), (8, 0.5), (89, 90.0 / 99.0), (8989, 8990.0 / 8999.0), (8990, 0.999)] {
            assert!((ema_decay_at(0.999, step) - want).abs() < 1e-15, "step {step}: {}", ema_decay_at(0.999, step));
        }
        assert!(ema_decay_at(0.999, 8989) < 0.999);
        let curve: Vec<f64> = (0..20_000).map(|s| ema_decay_at(0.999, s)).collect();
        assert!(curve.windows(2).all(|w| w[0] <= w[1]), "never decreasing");
        assert!(curve[8990..].iter().all(|&d| d == 0.999), "capped");
        // A low cap binds from the first step that the warm-up passes it.
        assert_eq!(ema_decay_at(0.5, 8), 0.5);
        assert!((ema_decay_at(0.5, 7) - 8.0 / 17.0).abs() < 1e-15);
    }

    #[derive(Module, Debug)]
    struct Two {
        a: Param<Tensor<2>>,
        b: Param<Tensor<1>>,
    }

    #[test]
    fn update_ema_blends_every_parameter_by_the_decay() {
        let device = burn::tensor::Device::flex();
        let make = |a: [[f32; 2]; 2], b: [f32; 3]| Two {
            a: Param::from_tensor(Tensor::from_data(a, &device)),
            b: Param::from_tensor(Tensor::from_data(b, &device)),
        };
        // The EMA is a copy of the model (the same parameter ids) holding other values.
        let ema = make([[1.0, 2.0], [3.0, 4.0]], [0.0, 10.0, -10.0]);
        let model = Two {
            a: Param::initialized(ema.a.id, Tensor::from_data([[3.0f32, 2.0], [1.0, 0.0]], &device)),
            b: Param::initialized(ema.b.id, Tensor::from_data([1.0f32, 0.0, 10.0], &device)),
        };
        let out = update_ema(ema, &model, 0.75);
        let a: Vec<f32> = out.a.val().into_data().try_to_vec::<f32>().unwrap();
        let b: Vec<f32> = out.b.val().into_data().try_to_vec::<f32>().unwrap();
        // 0.75 ema + 0.25 model, element by element.
        assert_eq!(a, vec![1.5, 2.0, 2.5, 3.0]);
        assert_eq!(b, vec![0.25, 7.5, -5.0]);
    }
}
