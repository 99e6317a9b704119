//! Which weights AdamW's decoupled weight decay reaches.
//!
//! burn's AdamW decays every parameter alike. The official MAR and MAE code builds two
//! parameter groups (`util/misc.py::add_weight_decay` of LTH14/mar, timm's of MAE): no decay on
//! 1-D tensors (biases, LayerNorm weights) and, in MAR, on the Diffusion Loss head. With such a
//! rule the optimizer runs without decay and [`decay_weights`] applies
//! `p <- p (1 - lr wd)` to the decayed parameters first, which is what PyTorch's AdamW does
//! (`p.mul_(1 - lr wd)`, then the Adam update, which does not read `p`).

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// The parameters weight decay skips.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DecayExempt {
    /// None: every parameter decays (burn's AdamW; the runs made before this setting).
    #[default]
    None,
    /// 1-D tensors (biases, norms) and the parameters under the network's `head` (MAR's
    /// Diffusion Loss head): LTH14/mar's `add_weight_decay`.
    NormsBiasesHead,
    /// 1-D tensors (biases, norms): timm's rule, which MAE's fine-tuning uses
    /// (`param_groups_lrd`).
    NormsBiases,
}

impl DecayExempt {
    /// Whether a parameter of `rank` at module path `path` (field names from the root) decays.
    pub fn decays(self, path: &[String], rank: usize) -> bool {
        match self {
            DecayExempt::None => true,
            DecayExempt::NormsBiasesHead => rank > 1 && path.first().is_none_or(|p| p != "head"),
            DecayExempt::NormsBiases => rank > 1,
        }
    }
}

/// `model` with every parameter that `rule` decays multiplied by `1 - rate` (`rate = lr wd`);
/// parameter ids are kept, so the optimizer's state and the gradients still match them.
pub fn decay_weights<M: Module>(model: M, rule: DecayExempt, rate: f64) -> M {
    model.map(&mut Decay { rule, factor: Some(1.0 - rate), path: Vec::new(), decayed: Vec::new() })
}

/// The names of the parameters `rule` decays (module paths joined by `.`), in module order.
pub fn decayed_names<M: Module>(model: M, rule: DecayExempt) -> Vec<String> {
    let mut probe = Decay { rule, factor: None, path: Vec::new(), decayed: Vec::new() };
    let _ = model.map(&mut probe);
    probe.decayed
}

/// Walks the module tracking each parameter's path; scales the decayed ones by `factor` (none:
/// only lists them).
struct Decay {
    rule: DecayExempt,
    factor: Option<f64>,
    path: Vec<String>,
    decayed: Vec<String>,
}

impl ModuleMapper for Decay {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if !self.rule.decays(&self.path, D) {
            return param;
        }
        self.decayed.push(self.path.join("."));
        let Some(factor) = self.factor else { return param };
        param.map(|t| {
            if !t.is_autodiff() {
                return t.mul_scalar(factor);
            }
            // A new leaf, as the optimizer makes its updated parameters.
            let grad = t.is_require_grad();
            let t = Tensor::from_inner(t.inner().mul_scalar(factor));
            if grad { t.require_grad() } else { t }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
    use burn::tensor::Device;

    #[derive(Module, Debug)]
    struct Net {
        body: Linear,
        norm: LayerNorm,
        head: Linear,
    }

    fn net(device: &Device) -> Net {
        Net {
            body: LinearConfig::new(3, 4).init(device),
            norm: LayerNormConfig::new(4).init(device),
            head: LinearConfig::new(4, 2).init(device),
        }
    }

    fn values(t: Tensor<2>) -> Vec<f32> {
        t.into_data().try_into_vec().unwrap()
    }

    /// LTH14/mar's groups: matrices decay, biases, norms and the head do not; the decay is
    /// `p (1 - lr wd)` on exactly those, keeping each parameter's id.
    #[test]
    fn the_official_rule_decays_the_matrices_outside_the_head_only() {
        let device = Device::flex();
        let model = net(&device);
        assert_eq!(decayed_names(model.clone(), DecayExempt::NormsBiasesHead), ["body.weight"]);
        assert_eq!(decayed_names(model.clone(), DecayExempt::None).len(), 6);
        assert_eq!(decayed_names(model.clone(), DecayExempt::NormsBiases), ["body.weight", "head.weight"]);
        let decayed = decay_weights(model.clone(), DecayExempt::NormsBiasesHead, 0.25);
        let (before, after) = (values(model.body.weight.val()), values(decayed.body.weight.val()));
        assert!(before.iter().zip(&after).all(|(b, a)| (a - 0.75 * b).abs() < 1e-7));
        assert_eq!(decayed.body.weight.id, model.body.weight.id);
        assert_eq!(values(decayed.head.weight.val()), values(model.head.weight.val()));
        let bias = |l: &Linear| l.bias.as_ref().unwrap().val().into_data().try_into_vec::<f32>().unwrap();
        assert_eq!(bias(&decayed.body), bias(&model.body));
        // On an autodiff device the decayed weights are leaves that still take gradients.
        let ad = Device::flex().autodiff();
        let decayed = decay_weights(net(&ad), DecayExempt::NormsBiasesHead, 0.1);
        let x = Tensor::<2>::ones([2, 3], &ad);
        let loss = decayed.head.forward(decayed.norm.forward(decayed.body.forward(x))).sum();
        let grads = loss.backward();
        assert!(decayed.body.weight.val().grad(&grads).is_some());
    }
}
