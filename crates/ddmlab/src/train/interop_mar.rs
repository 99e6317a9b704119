//! MAR weights exchanged with the official code: a [`Mar`] exported under the key names and
//! tensor layouts of LTH14/mar's `MAR` (`models/mar.py`, `models/diffloss.py`), and such a
//! `state_dict` imported into one.
//!
//! The names are [`Layout::Mar`]'s renames (`encoder_blocks.N`, `decoder_pos_embed_learned`,
//! `diffloss.net.res_blocks.N.mlp.0`, ...); beyond them:
//! - ddmlab keeps the classes and the null class in one table `[classes + 1, W]`; the official
//!   model has `class_emb.weight` `[classes, W]` and `fake_latent` `[1, W]`;
//! - `mask_token` is `[1, W]` here, `[1, 1, W]` there;
//! - the official head's residual blocks normalise with an affine LayerNorm (`in_ln`, weight and
//!   bias trained), as ddmlab's with `mar.head_norm_affine`. Without that setting an export
//!   writes the identity (weight 1, bias 0), and an import accepts only that, naming the blocks
//!   whose `in_ln` is not;
//! - the official head predicts `2 C` channels (eps, then the variance interpolation of improved
//!   DDPM's learned variance), as ddmlab's with `mar.learn_variance`. Without that setting
//!   ddmlab's head predicts eps: an export appends zero rows for the variance half (the official
//!   sampler then interpolates half way between its two variance bounds), and an import accepts
//!   only such zero rows (a trained variance would be dropped silently), naming the setting.
//!
//! Linear weights `[out, in]` vs burn's `[in, out]`, LayerNorm `weight` / `bias` vs `gamma` /
//! `beta`, dtype casts and the report of what did not match are burn-store's adapters, as for the
//! denoising ViT's layouts (`interop`).

use std::path::Path;

use burn::store::{
    BurnToPyTorchAdapter, FloatCastAdapter, KeyRemapper, ModuleAdapter, ModuleSnapshot, PyTorchToBurnAdapter, bridge,
    burn_pack::Tensor as PackTensor,
};
use burn::tensor::{DType, TensorData};

use super::interop::{Layout, f32_bytes, read_tensors, report, serialize};
use crate::error::{Error, Result};
use crate::models::mar::{Mar, MarConfig};

/// ddmlab's class table, with the null class as its last row.
const CLASS_TABLE: &str = "class_emb.table.weight";

/// A tensor as plain host data: name, shape, values.
struct Plain {
    name: String,
    shape: Vec<usize>,
    values: Vec<f32>,
}

impl Plain {
    fn of(t: PackTensor) -> Result<Plain> {
        let name = t.name.clone();
        let data = bridge::into_data(t).map_err(|e| Error::Other(format!("reading tensor {name}: {e}")))?;
        let shape = data.shape().to_vec();
        let values =
            data.convert::<f32>().try_into_vec::<f32>().map_err(|e| Error::Other(format!("tensor {name}: {e:?}")))?;
        Ok(Plain { name, shape, values })
    }

    fn pack(self) -> PackTensor {
        bridge::from_data(TensorData::new(self.values, self.shape), self.name, None)
    }
}

/// The tensors of `model` under LTH14/mar's names and layouts, as safetensors bytes (f32, with
/// `format = pt` metadata), ready for `load_state_dict(strict=True)` of the official `MAR` built
/// with the same sizes.
pub fn export_mar(model: &Mar, config: &MarConfig) -> Result<Vec<u8>> {
    let tensors = model.collect(None, Some(Box::new(BurnToPyTorchAdapter)), true);
    let (tensors, _) = KeyRemapper::from_compiled_patterns(Layout::Mar.patterns(true)).remap(tensors);
    let mut out: Vec<Plain> = Vec::with_capacity(tensors.len() + 2 * config.head_depth + 1);
    for t in tensors {
        let mut p = Plain::of(t)?;
        match p.name.as_str() {
            CLASS_TABLE => {
                let w = config.width;
                let split = config.num_classes * w;
                out.push(Plain { name: "fake_latent".into(), shape: vec![1, w], values: p.values[split..].to_vec() });
                p.values.truncate(split);
                (p.name, p.shape) = ("class_emb.weight".into(), vec![config.num_classes, w]);
            }
            "mask_token" => p.shape = vec![1, 1, config.width],
            "diffloss.net.final_layer.linear.weight" | "diffloss.net.final_layer.linear.bias"
                if !config.learn_variance =>
            {
                // The variance half of the official head's output, zero.
                p.values.extend(std::iter::repeat_n(0.0, p.values.len()));
                p.shape[0] *= 2;
            }
            _ => {}
        }
        out.push(p);
    }
    for n in (0..config.head_depth).filter(|_| !config.head_affine_norm) {
        let name = |part: &str| format!("diffloss.net.res_blocks.{n}.in_ln.{part}");
        let w = config.head_width;
        out.push(Plain { name: name("weight"), shape: vec![w], values: vec![1.0; w] });
        out.push(Plain { name: name("bias"), shape: vec![w], values: vec![0.0; w] });
    }
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = out
        .into_iter()
        .map(|p| Ok((p.name, p.shape.clone(), f32_bytes(TensorData::new(p.values, p.shape))?)))
        .collect::<Result<_>>()?;
    serialize(&bytes, Layout::Mar)
}

/// Load LTH14/mar weights file `path` (`.safetensors`, or a `torch.save` file holding the
/// `state_dict`) into `model`, built from `config`. A file whose keys or shapes do not match is
/// one error listing the missing, unexpected and mis-shaped keys by the official names.
pub fn import_mar(mut model: Mar, config: &MarConfig, path: &Path) -> Result<Mar> {
    let mut plain: Vec<Plain> = read_tensors(path)?.into_iter().map(Plain::of).collect::<Result<_>>()?;
    let take = |plain: &mut Vec<Plain>, name: &str| plain.iter().position(|p| p.name == name).map(|i| plain.remove(i));
    // The class table: the classes, then the null class.
    if let (Some(classes), Some(null)) = (take(&mut plain, "class_emb.weight"), take(&mut plain, "fake_latent")) {
        let rows = classes.shape.first().copied().unwrap_or(0) + 1;
        let mut values = classes.values;
        values.extend(null.values);
        let w = values.len() / rows.max(1);
        plain.push(Plain { name: CLASS_TABLE.into(), shape: vec![rows, w], values });
    }
    let mut not_identity = Vec::new();
    for n in (0..config.head_depth).filter(|_| !config.head_affine_norm) {
        for (part, expect) in [("weight", 1.0f32), ("bias", 0.0)] {
            let name = format!("diffloss.net.res_blocks.{n}.in_ln.{part}");
            if let Some(p) = take(&mut plain, &name)
                && p.values.iter().any(|v| (v - expect).abs() > 1e-6)
            {
                not_identity.push(name);
            }
        }
    }
    if !not_identity.is_empty() {
        return Err(Error::format(
            path,
            format!(
                "the official head's affine LayerNorm is trained away from the identity in {}; this model's head \
                 normalises without affine parameters: import into a config with mar.head_norm_affine = true",
                not_identity.join(", ")
            ),
        ));
    }
    for p in plain.iter_mut() {
        if p.name == "mask_token" && p.shape.len() == 3 {
            p.shape.remove(0);
        }
    }
    let head = ["diffloss.net.final_layer.linear.weight", "diffloss.net.final_layer.linear.bias"];
    let c = config.token_dim;
    let mut trained_variance = Vec::new();
    for p in plain.iter_mut().filter(|p| !config.learn_variance && head.contains(&p.name.as_str())) {
        if p.shape.first() == Some(&(2 * c)) {
            let cols: usize = p.shape[1..].iter().product();
            if p.values[c * cols..].iter().any(|&v| v != 0.0) {
                trained_variance.push(p.name.clone());
            }
            p.values.truncate(c * cols);
            p.shape[0] = c;
        }
    }
    if !trained_variance.is_empty() {
        return Err(Error::format(
            path,
            format!(
                "the head's variance outputs (rows {c}..{} of {}) are trained; this model's head predicts eps \
                 only: import into a config with mar.learn_variance = true",
                2 * c,
                trained_variance.join(", ")
            ),
        ));
    }
    let tensors: Vec<PackTensor> = plain.into_iter().map(Plain::pack).collect();
    let (tensors, _) = KeyRemapper::from_compiled_patterns(Layout::Mar.patterns(false)).remap(tensors);
    let adapter = FloatCastAdapter::to(DType::F32).chain(PyTorchToBurnAdapter);
    let result = model.apply(tensors, None, Some(Box::new(adapter)), true);
    report(&result, Layout::Mar, path)?;
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    fn values(model: &Mar) -> Vec<(String, Vec<f32>)> {
        let mut v: Vec<(String, Vec<f32>)> = model
            .collect(None, None, true)
            .into_iter()
            .map(|t| {
                let p = Plain::of(t).unwrap();
                (p.name, p.values)
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    #[test]
    fn a_mar_network_goes_out_and_back_bit_for_bit_under_the_official_names() {
        let device = Device::flex();
        let config = MarConfig::tiny(3, 8, 4);
        let a = crate::nn::init::seeded(&device, 1, |d| config.init(d));
        let bytes = export_mar(&a, &config).unwrap();
        let names: Vec<String> =
            safetensors::SafeTensors::deserialize(&bytes).unwrap().names().into_iter().map(String::from).collect();
        for key in [
            "class_emb.weight",
            "fake_latent",
            "z_proj_ln.weight",
            "encoder_pos_embed_learned",
            "encoder_blocks.0.attn.qkv.weight",
            "decoder_blocks.0.mlp.fc2.bias",
            "mask_token",
            "diffusion_pos_embed_learned",
            "diffloss.net.time_embed.mlp.2.weight",
            "diffloss.net.res_blocks.0.in_ln.weight",
            "diffloss.net.final_layer.adaLN_modulation.1.bias",
        ] {
            assert!(names.iter().any(|n| n == key), "{key} missing from {names:?}");
        }
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("mar.safetensors");
        std::fs::write(&path, &bytes).unwrap();
        let b = import_mar(crate::nn::init::seeded(&device, 2, |d| config.init(d)), &config, &path).unwrap();
        let (va, vb) = (values(&a), values(&b));
        assert_eq!(va.len(), vb.len());
        for ((na, xa), (nb, xb)) in va.iter().zip(&vb) {
            assert_eq!(na, nb);
            assert!(xa == xb, "{na} differs after the round trip");
        }
    }

    /// A learned-variance head's `2 C` outputs go out and back as they are; into a head that
    /// predicts eps only they are refused (the trained variance would be dropped), while that
    /// head's own export (zero variance rows) reads back.
    #[test]
    fn a_learned_variance_head_keeps_its_variance_rows_and_an_eps_head_refuses_them() {
        let device = Device::flex();
        let eps_only = MarConfig::tiny(3, 8, 4);
        let learned = MarConfig { head_out: 6, learn_variance: true, ..eps_only };
        let mut a = crate::nn::init::seeded(&device, 1, |d| learned.init(d));
        a.head.output = crate::nn::init::xavier_linear(16, 6, &device);
        let bytes = export_mar(&a, &learned).unwrap();
        let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(file.tensor("diffloss.net.final_layer.linear.weight").unwrap().shape(), [6, 16]);
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("mar.safetensors");
        std::fs::write(&path, &bytes).unwrap();
        let b = import_mar(crate::nn::init::seeded(&device, 2, |d| learned.init(d)), &learned, &path).unwrap();
        assert!(values(&a) == values(&b), "the learned-variance head changed on the way");
        let err = import_mar(eps_only.init(&device), &eps_only, &path).unwrap_err().to_string();
        assert!(err.contains("mar.learn_variance") && err.contains("final_layer.linear.weight"), "{err}");
        let eps_model = crate::nn::init::seeded(&device, 3, |d| eps_only.init(d));
        std::fs::write(&path, export_mar(&eps_model, &eps_only).unwrap()).unwrap();
        let back = import_mar(eps_only.init(&device), &eps_only, &path).unwrap();
        assert!(values(&eps_model) == values(&back));
    }

    #[test]
    fn a_mismatched_state_dict_is_named_by_the_official_keys() {
        let device = Device::flex();
        let config = MarConfig::tiny(3, 8, 4);
        let a = crate::nn::init::seeded(&device, 1, |d| config.init(d));
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("mar.safetensors");
        std::fs::write(&path, export_mar(&a, &config).unwrap()).unwrap();
        // A model with another head depth: one block too few in the file.
        let deeper = MarConfig { head_depth: config.head_depth + 1, ..config };
        let err = import_mar(deeper.init(&device), &deeper, &path).unwrap_err().to_string();
        assert!(err.contains("missing keys") && err.contains("diffloss.net.res_blocks.1.mlp.0.weight"), "{err}");
        // A trained (non-identity) affine norm cannot be held.
        let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
        let file = std::fs::read(&path).unwrap();
        for (name, view) in safetensors::SafeTensors::deserialize(&file).unwrap().tensors() {
            let mut v: Vec<f32> = view.data().chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
            if name == "diffloss.net.res_blocks.0.in_ln.weight" {
                v[0] = 1.5;
            }
            tensors.push((name, view.shape().to_vec(), v));
        }
        let bytes: Vec<(String, Vec<usize>, Vec<u8>)> =
            tensors.into_iter().map(|(n, s, v)| (n, s, v.iter().flat_map(|x| x.to_le_bytes()).collect())).collect();
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = bytes
            .iter()
            .map(|(n, s, b)| {
                (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap())
            })
            .collect();
        std::fs::write(&path, safetensors::serialize(views, None).unwrap()).unwrap();
        let err = import_mar(config.init(&device), &config, &path).unwrap_err().to_string();
        assert!(err.contains("diffloss.net.res_blocks.0.in_ln.weight") && err.contains("head_norm_affine"), "{err}");
        // A head with the official affine norm holds it, and gives it back.
        let affine = MarConfig { head_affine_norm: true, ..config };
        let model = import_mar(affine.init(&device), &affine, &path).unwrap();
        let ln = model.head.blocks[0].in_ln.as_ref().expect("affine");
        assert_eq!(ln.gamma.val().into_data().try_into_vec::<f32>().unwrap()[0], 1.5);
        let back = export_mar(&model, &affine).unwrap();
        let back = safetensors::SafeTensors::deserialize(&back).unwrap();
        let w = back.tensor("diffloss.net.res_blocks.0.in_ln.weight").unwrap();
        assert_eq!(f32::from_le_bytes(w.data()[..4].try_into().unwrap()), 1.5);
    }
}
