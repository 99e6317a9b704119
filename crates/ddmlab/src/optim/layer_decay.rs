//! Layer-wise learning-rate decay (BEiT, MAE's `util/lr_decay.py::param_groups_lrd`): the
//! parameter of layer `i` of `n` (0: the embeddings, `n`: the head) trains at `lr * decay^(n - i)`,
//! so the layers nearest the input move least while fine-tuning.
//!
//! burn's optimizer has one learning rate per step. AdamW's update is linear in the learning
//! rate given its moments (which do not depend on it): `p' - p = -lr (m / (sqrt v + eps) + wd p)`.
//! So one step at the base rate followed by `p <- p + s (p' - p)` per parameter (its scale `s`)
//! is the step each parameter group takes at its own rate, which is what [`rescale_steps`] does.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;

/// Each parameter's values, flattened, by id (the model before the step).
struct Before {
    values: HashMap<ParamId, Tensor<1>>,
}

impl ModuleVisitor for Before {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = param.val();
        let n: usize = t.dims().iter().product();
        self.values.insert(param.id, t.reshape([n]));
    }
}

/// Scales each parameter's step by its path's scale.
struct Rescale<'a> {
    before: HashMap<ParamId, Tensor<1>>,
    scale: &'a dyn Fn(&[String]) -> f64,
    path: Vec<String>,
}

impl ModuleMapper for Rescale<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let s = (self.scale)(&self.path);
        let Some(old) = self.before.remove(&param.id).filter(|_| s != 1.0) else { return param };
        param.map(|new| {
            let dims = new.dims();
            let old = old.reshape(dims);
            if !new.is_autodiff() {
                return old.clone() + (new - old) * s;
            }
            // A new leaf, as the optimizer makes its updated parameters.
            let grad = new.is_require_grad();
            let (old, new) = (old.inner(), new.inner());
            let t = Tensor::from_inner(old.clone() + (new - old) * s);
            if grad { t.require_grad() } else { t }
        })
    }
}

/// Run `step` (one optimizer update of `model` at the base learning rate) and scale each
/// parameter's change by `scale(path)` (its module path from the root: field names, and the
/// index within a `Vec`): the update of every parameter group at `lr * scale`.
pub fn rescale_steps<M: Module>(model: M, step: impl FnOnce(M) -> M, scale: &dyn Fn(&[String]) -> f64) -> M {
    let mut before = Before { values: HashMap::new() };
    model.visit(&mut before);
    let stepped = step(model);
    stepped.map(&mut Rescale { before: before.values, scale, path: Vec::new() })
}

/// The layer-wise decay of a ViT encoder of `depth` blocks under the module path `encoder`
/// (MAE's `get_layer_id_for_vit`): the embeddings (patch or token projection, positions,
/// timestep and class embeddings) are layer 0, block `i` (`blocks`, or a MAR / MAE encoder's
/// `enc_blocks`) layer `i + 1`, a long skip layer `depth`, everything else (the classifier's
/// norm and head, an encoder's final norm) layer `depth + 1`; the scale is
/// `decay^(depth + 1 - layer)`.
pub fn vit_layer_scale(path: &[String], depth: usize, decay: f64) -> f64 {
    const EMBEDDINGS: [&str; 8] =
        ["patch_embed", "pos_embed", "t_embed", "y_embed", "class_emb", "z_proj", "z_proj_ln", "enc_pos"];
    let layer = match path {
        [first, rest @ ..] if first == "encoder" => match rest {
            [group, index, ..] if group == "blocks" || group == "enc_blocks" => {
                index.parse::<usize>().map_or(depth + 1, |i| i + 1)
            }
            [group, ..] if group == "skips" => depth,
            [group, ..] if EMBEDDINGS.contains(&group.as_str()) => 0,
            _ => depth + 1,
        },
        _ => depth + 1,
    };
    decay.powi((depth + 1).saturating_sub(layer.min(depth + 1)) as i32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::{AdamWConfig, GradientsParams};
    use burn::tensor::Device;

    #[derive(Module, Debug)]
    struct Net {
        low: Linear,
        high: Linear,
    }

    fn values(t: Tensor<2>) -> Vec<f32> {
        t.into_data().try_into_vec().unwrap()
    }

    /// Three AdamW steps with weight decay, the low layer's change scaled by 0.3: each layer
    /// ends where an optimizer of its own at `lr * scale` takes it.
    #[test]
    fn a_rescaled_step_is_each_group_stepped_at_its_own_rate() {
        let ad = Device::flex().autodiff();
        let net = Net { low: LinearConfig::new(3, 4).init(&ad), high: LinearConfig::new(4, 2).init(&ad) };
        let adamw = || AdamWConfig::new().with_weight_decay(0.1).init();
        let scale = |path: &[String]| if path.first().is_some_and(|p| p == "low") { 0.3 } else { 1.0 };
        let (lr, x) = (0.05, Tensor::<2>::from_data([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]], &ad));
        let loss = |n: &Net| n.high.forward(n.low.forward(x.clone()).tanh()).powf_scalar(2.0).sum();
        // Ours: one optimizer at the base rate, steps rescaled.
        let (mut ours, mut optim) = (net.clone(), adamw());
        // Reference: the same start, one optimizer per layer at its own rate; each update sees the
        // gradient of the whole network at the current weights.
        let start = values(net.low.weight.val().inner());
        let (mut reference, mut low_optim, mut high_optim) = (net, adamw(), adamw());
        for _ in 0..3 {
            let grads = GradientsParams::from_grads(loss(&ours).backward(), &ours);
            ours = rescale_steps(ours, |m| optim.step(lr, m, grads), &scale);
            let g = loss(&reference).backward();
            let mut low = GradientsParams::new();
            let mut high = GradientsParams::new();
            for (p, to) in [(&reference.low.weight, &mut low), (&reference.high.weight, &mut high)] {
                to.register(p.id, p.val().grad(&g).unwrap());
            }
            for (l, to) in [(&reference.low, &mut low), (&reference.high, &mut high)] {
                let b = l.bias.as_ref().unwrap();
                to.register(b.id, b.val().grad(&g).unwrap());
            }
            reference = low_optim.step(lr * 0.3, reference, low);
            reference = high_optim.step(lr, reference, high);
        }
        for (a, b) in [
            (values(ours.low.weight.val().inner()), values(reference.low.weight.val().inner())),
            (values(ours.high.weight.val().inner()), values(reference.high.weight.val().inner())),
        ] {
            let gap = a.iter().zip(&b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(gap < 1e-6, "{a:?} vs {b:?}");
        }
        let moved =
            values(ours.low.weight.val().inner()).iter().zip(&start).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(moved > 1e-3, "the low layer trained ({moved})");
    }

    #[test]
    fn the_layer_scales_are_maes() {
        let p = |s: &str| s.split('.').map(String::from).collect::<Vec<_>>();
        let at = |s: &str| vit_layer_scale(&p(s), 4, 0.5);
        assert_eq!(at("head.weight"), 1.0);
        assert_eq!(at("norm.gamma"), 1.0);
        assert_eq!(at("encoder.blocks.3.attn.qkv.weight"), 0.5);
        assert_eq!(at("encoder.blocks.0.mlp.fc1.weight"), 0.5f64.powi(4));
        assert_eq!(at("encoder.patch_embed.proj.weight"), 0.5f64.powi(5));
        assert_eq!(at("encoder.t_embed.mlp.weight"), 0.5f64.powi(5));
        assert_eq!(at("encoder.enc_blocks.1.mlp.fc1.weight"), 0.5f64.powi(3));
        assert_eq!(at("encoder.z_proj.weight"), 0.5f64.powi(5));
        assert_eq!(at("encoder.enc_norm.gamma"), 1.0);
    }
}
