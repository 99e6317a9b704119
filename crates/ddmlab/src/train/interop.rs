//! Weights exchanged with PyTorch: a [`DenoisingVit`] exported to safetensors under the key
//! names of a PyTorch model, and a PyTorch `state_dict` (safetensors, or a `torch.save` file)
//! imported into one.
//!
//! Two layouts, each a table of key renames plus the tensor reshapes its modules need:
//! - [`Layout::Reference`]: `bench/pytorch_ldae.py`'s `DenoisingVit`, the model ddmlab's training
//!   is measured against (`patch_embed`, `t1`/`t2`, `blocks.N.{attn.qkv, attn.proj, fc1, fc2,
//!   ada_ln}`, `final_ada`, `final_proj`, `y_embed`, U-ViT's long skips `skips.N`, the `pos`
//!   buffer);
//! - [`Layout::Dit`]: facebookresearch/DiT's `models.py` (`x_embedder.proj` as a strided conv
//!   `[W, C, p, p]`, `t_embedder.mlp.{0,2}`, `y_embedder.embedding_table`,
//!   `blocks.N.adaLN_modulation.1`, `final_layer.linear` / `final_layer.adaLN_modulation.1`,
//!   `pos_embed`). A `learn_sigma` checkpoint's output layer predicts `2C` channels per pixel
//!   (eps, then the variance interpolation): the import keeps the eps half. DiT's MLP uses the
//!   tanh GELU and its conditioning is as wide as its tokens, so the model to import into sets
//!   `gelu = "tanh"` and `cond_width = width`.
//!
//! Everything else (linear weights `[out, in]` vs burn's `[in, out]`, dtype casts, matching
//! tensors to parameters and reporting what did not match) is burn-store's: `KeyRemapper`, the
//! PyTorch adapters and `ModuleSnapshot::apply`. The fixed 2-D position table is not a
//! parameter in ddmlab; an imported one is checked against ours (a different grid or width
//! would show there first) and an exported one is written because PyTorch's strict
//! `load_state_dict` expects it.

use std::collections::HashMap;
use std::path::Path;

use burn::store::{
    ApplyError, ApplyResult, BurnToPyTorchAdapter, FloatCastAdapter, KeyRemapper, ModuleAdapter, ModuleContext,
    ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore, bridge,
    burn_pack::Tensor as PackTensor,
};
use burn::tensor::{DType, Shape, TensorData};
use regex::Regex;

use crate::error::{Error, IoContext, Result};
use crate::models::{DenoisingVit, VitConfig};
use crate::nn::gelu::GeluKind;

/// Whose key names (and tensor layouts) a weights file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `bench/pytorch_ldae.py`'s `DenoisingVit`.
    Reference,
    /// facebookresearch/DiT's `DiT`.
    Dit,
    /// LTH14/mar's `MAR` (a MAR run; see `interop_mar`).
    Mar,
}

impl Layout {
    /// `reference` or `dit`.
    pub fn name(&self) -> &'static str {
        match self {
            Layout::Reference => "reference",
            Layout::Dit => "dit",
            Layout::Mar => "mar",
        }
    }

    /// Parse `reference`, `dit` or `mar`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "reference" => Ok(Layout::Reference),
            "dit" => Ok(Layout::Dit),
            "mar" => Ok(Layout::Mar),
            other => Err(Error::config("interop.layout", format!("`{other}`: expected `reference`, `dit` or `mar`"))),
        }
    }

    /// (ddmlab key prefix, PyTorch key prefix); `{n}` stands for a block index. Keys not listed
    /// are the same on both sides (`blocks.N.attn.qkv`, ...).
    fn renames(&self) -> &'static [(&'static str, &'static str)] {
        match self {
            Layout::Reference => &[
                ("patch_embed.proj.", "patch_embed."),
                ("t_embed.fc1.", "t1."),
                ("t_embed.fc2.", "t2."),
                ("y_embed.table.", "y_embed."),
                ("blocks.{n}.mlp.fc1.", "blocks.{n}.fc1."),
                ("blocks.{n}.mlp.fc2.", "blocks.{n}.fc2."),
                ("final_layer.ada_ln.", "final_ada."),
                ("final_layer.proj.", "final_proj."),
            ],
            Layout::Dit => &[
                ("patch_embed.proj.", "x_embedder.proj."),
                ("t_embed.fc1.", "t_embedder.mlp.0."),
                ("t_embed.fc2.", "t_embedder.mlp.2."),
                ("y_embed.table.", "y_embedder.embedding_table."),
                ("blocks.{n}.ada_ln.", "blocks.{n}.adaLN_modulation.1."),
                ("final_layer.ada_ln.", "final_layer.adaLN_modulation.1."),
                ("final_layer.proj.", "final_layer.linear."),
            ],
            // The class table (with the null class last) is split into `class_emb` and
            // `fake_latent` by `interop_mar`, not renamed.
            Layout::Mar => &[
                ("enc_pos", "encoder_pos_embed_learned"),
                ("enc_blocks.{n}.", "encoder_blocks.{n}."),
                ("enc_norm.", "encoder_norm."),
                ("dec_embed.", "decoder_embed."),
                ("dec_pos", "decoder_pos_embed_learned"),
                ("dec_blocks.{n}.", "decoder_blocks.{n}."),
                ("dec_norm.", "decoder_norm."),
                ("head_pos", "diffusion_pos_embed_learned"),
                ("head.input.", "diffloss.net.input_proj."),
                ("head.time.fc1.", "diffloss.net.time_embed.mlp.0."),
                ("head.time.fc2.", "diffloss.net.time_embed.mlp.2."),
                ("head.cond.", "diffloss.net.cond_embed."),
                ("head.blocks.{n}.in_ln.", "diffloss.net.res_blocks.{n}.in_ln."),
                ("head.blocks.{n}.fc1.", "diffloss.net.res_blocks.{n}.mlp.0."),
                ("head.blocks.{n}.fc2.", "diffloss.net.res_blocks.{n}.mlp.2."),
                ("head.blocks.{n}.ada.", "diffloss.net.res_blocks.{n}.adaLN_modulation.1."),
                ("head.final_ada.", "diffloss.net.final_layer.adaLN_modulation.1."),
                ("head.output.", "diffloss.net.final_layer.linear."),
            ],
        }
    }

    /// The PyTorch name of the fixed position table.
    fn position_key(&self) -> &'static str {
        match self {
            Layout::Reference => "pos",
            Layout::Dit | Layout::Mar => "pos_embed",
        }
    }

    /// Compiled renames in one direction: ddmlab -> PyTorch (`to_torch`) or back.
    pub(crate) fn patterns(&self, to_torch: bool) -> Vec<(Regex, String)> {
        self.renames()
            .iter()
            .map(|&(ours, theirs)| {
                let (from, to) = if to_torch { (ours, theirs) } else { (theirs, ours) };
                let pattern = format!("^{}", regex::escape(from).replace(r"\{n\}", r"(\d+)"));
                (Regex::new(&pattern).expect("valid pattern"), to.replace("{n}", "${1}"))
            })
            .collect()
    }

    /// A key renamed in one direction (for messages).
    fn rename(&self, key: &str, to_torch: bool) -> String {
        let mut key = key.to_string();
        for (re, to) in self.patterns(to_torch) {
            key = re.replace(&key, to.as_str()).into_owned();
        }
        key
    }

    /// Check that `config` can be written in (or read from) this layout.
    fn check(&self, config: &VitConfig) -> Result<()> {
        if *self == Layout::Mar {
            return Err(Error::config(
                "interop.layout",
                "the mar layout holds a MAR network; this run is a denoising ViT (use reference or dit)",
            ));
        }
        if config.conv_head > 0 {
            return Err(Error::config(
                "model.conv_head",
                "neither PyTorch layout (bench/pytorch_ldae.py's, DiT's) has a conv head",
            ));
        }
        if *self != Layout::Dit {
            return Ok(());
        }
        if config.long_skip {
            return Err(Error::config(
                "model.long_skip",
                "DiT's layout has no long skips (U-ViT's); the reference layout (bench/pytorch_ldae.py) has them",
            ));
        }
        let patch = config.patch_dim();
        if config.in_dim.unwrap_or(patch) != patch || config.out_dim.unwrap_or(patch) != patch {
            return Err(Error::config(
                "interop.layout",
                "DiT's layout holds a model over image patches (p p C in and out); this model's tokens are latents",
            ));
        }
        if config.cond_width != config.width {
            return Err(Error::config(
                "model.cond_width",
                format!("DiT conditions with a vector as wide as its tokens: set it to model.width = {}", config.width),
            ));
        }
        if config.num_classes == 0 {
            return Err(Error::config("model.num_classes", "DiT's layout is class-conditional: set the classes"));
        }
        if config.gelu != GeluKind::Tanh {
            return Err(Error::config("model.gelu", "DiT's MLPs use the tanh GELU: set gelu = \"tanh\""));
        }
        Ok(())
    }
}

/// The tensors of `model` under `layout`'s PyTorch names and layouts, as safetensors bytes (f32,
/// with `format = pt` metadata), ready for `load_state_dict(strict=True)` of the PyTorch model
/// built with the same sizes (DiT: `learn_sigma=False`).
pub fn export(model: &DenoisingVit, config: &VitConfig, layout: Layout) -> Result<Vec<u8>> {
    layout.check(config)?;
    let adapter = BurnToPyTorchAdapter.chain(TorchShapes { layout, config: config.clone(), to_torch: true });
    let tensors = model.collect(None, Some(Box::new(adapter)), true);
    let (tensors, _) = KeyRemapper::from_compiled_patterns(layout.patterns(true)).remap(tensors);
    let mut named: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(tensors.len() + 1);
    for t in tensors {
        let name = t.name.clone();
        let data = bridge::into_data(t).map_err(|e| Error::Other(format!("reading parameter {name}: {e}")))?;
        named.push((name, data.shape().to_vec(), f32_bytes(data)?));
    }
    let pos = model.pos_embed.clone().into_data();
    named.push((layout.position_key().to_string(), pos.shape().to_vec(), f32_bytes(pos)?));
    serialize(&named, layout)
}

/// `(name, shape, f32 little-endian bytes)` tensors as safetensors bytes with `format = pt` and
/// the layout's name in the metadata.
pub(crate) fn serialize(named: &[(String, Vec<usize>, Vec<u8>)], layout: Layout) -> Result<Vec<u8>> {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = named
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).expect("sizes match"),
            )
        })
        .collect();
    let meta = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        ("ddmlab_layout".to_string(), layout.name().to_string()),
    ]);
    safetensors::serialize(views, Some(meta)).map_err(|e| Error::Other(format!("serialising weights: {e}")))
}

pub(crate) fn f32_bytes(data: TensorData) -> Result<Vec<u8>> {
    let v: Vec<f32> = data.convert::<f32>().try_into_vec::<f32>().map_err(|e| Error::Other(format!("{e:?}")))?;
    Ok(v.iter().flat_map(|x| x.to_le_bytes()).collect())
}

/// Load the PyTorch weights file `path` (`.safetensors`, or `.pt` / `.pth` / `.bin` written by
/// `torch.save`) of `layout` into `model`, built from `config`. A file whose keys or shapes do
/// not match is one error listing the missing, unexpected and mis-shaped keys by their PyTorch
/// names.
pub fn import(mut model: DenoisingVit, config: &VitConfig, layout: Layout, path: &Path) -> Result<DenoisingVit> {
    layout.check(config)?;
    let (mut tensors, _) = KeyRemapper::from_compiled_patterns(layout.patterns(false)).remap(read_tensors(path)?);
    let position = tensors.iter().position(|t| t.name == layout.position_key());
    if let Some(i) = position {
        check_positions(&model, tensors.remove(i), path)?;
    }
    let adapter = FloatCastAdapter::to(DType::F32)
        .chain(TorchShapes { layout, config: config.clone(), to_torch: false })
        .chain(PyTorchToBurnAdapter);
    let result = model.apply(tensors, None, Some(Box::new(adapter)), true);
    report(&result, layout, path)?;
    Ok(model)
}

/// Every tensor of PyTorch weights file `path` (`.safetensors`, or a `torch.save` file) under
/// its own names.
pub(crate) fn read_tensors(path: &Path) -> Result<Vec<PackTensor>> {
    let read_error = |e: &dyn std::fmt::Display| Error::format(path, format!("not a PyTorch weights file ({e})"));
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "safetensors" => {
            let bytes = std::fs::read(path).at(path)?;
            let mut store = SafetensorsStore::from_bytes(Some(bytes));
            Ok(store.get_all_tensors().map_err(|e| read_error(&e))?.values().cloned().collect())
        }
        "pt" | "pth" | "bin" | "ckpt" => {
            std::fs::metadata(path).at(path)?;
            // The names as PyTorch wrote them: the layouts' renames read `adaLN_modulation.1`, which
            // burn's default renumbering of `nn.Sequential` gaps would turn into `.0`.
            let mut store = PytorchStore::from_file(path).map_indices_contiguous(false);
            Ok(store.get_all_tensors().map_err(|e| read_error(&e))?.values().cloned().collect())
        }
        _ => Err(Error::format(
            path,
            "unknown weights format: expected a .safetensors file or a torch.save file (.pt, .pth, .bin, .ckpt)",
        )),
    }
}

/// The file's position table must be ours (same grid, width and sine-cosine layout).
fn check_positions(model: &DenoisingVit, stored: PackTensor, path: &Path) -> Result<()> {
    let ours = model.pos_embed.clone().into_data();
    let name = stored.name.clone();
    let theirs = bridge::into_data(stored).map_err(|e| Error::format(path, format!("tensor {name}: {e}")))?;
    let dims = |s: &[usize]| s.iter().product::<usize>();
    if dims(theirs.shape()) != dims(ours.shape()) {
        return Err(Error::format(
            path,
            format!(
                "{name} has shape {:?}; this model's positions are {:?} (another image size, patch or width)",
                theirs.shape().to_vec(),
                ours.shape().to_vec()
            ),
        ));
    }
    let a: Vec<f32> = ours.convert::<f32>().try_into_vec::<f32>().expect("f32");
    let b: Vec<f32> =
        theirs.convert::<f32>().try_into_vec::<f32>().map_err(|e| Error::format(path, format!("{name}: {e:?}")))?;
    // NaN-propagating: a NaN in the file is a mismatch, not a value `max` skips.
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, |m, d| if m.is_nan() || d.is_nan() { f32::NAN } else { m.max(d) });
    if worst.is_nan() || worst >= 1e-4 {
        return Err(Error::format(
            path,
            format!(
                "{name} differs from the 2-D sine-cosine table of this model's grid by {worst:e} (a different grid or layout)"
            ),
        ));
    }
    Ok(())
}

/// Turn burn-store's account of an apply into one error naming every problem, or `Ok`.
pub(crate) fn report(result: &ApplyResult, layout: Layout, path: &Path) -> Result<()> {
    let torch = |k: &str| layout.rename(k, true);
    let missing: Vec<String> = result.missing.iter().map(|(k, _)| torch(k)).collect();
    let unexpected: Vec<String> = result.unused.iter().map(|k| torch(k)).collect();
    let wrong: Vec<String> = result
        .errors
        .iter()
        .map(|e| match e {
            ApplyError::ShapeMismatch { path, expected, found } => {
                format!("{} has shape {:?}, the model expects {:?}", torch(path), found.as_slice(), expected.as_slice())
            }
            other => other.to_string(),
        })
        .collect();
    if missing.is_empty() && unexpected.is_empty() && wrong.is_empty() {
        return Ok(());
    }
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("missing keys: {}", missing.join(", ")));
    }
    if !unexpected.is_empty() {
        parts.push(format!("unexpected keys: {}", unexpected.join(", ")));
    }
    if !wrong.is_empty() {
        parts.push(wrong.join("; "));
    }
    Err(Error::format(
        path,
        format!("the weights do not match the model ({} layout): {}", layout.name(), parts.join("; ")),
    ))
}

/// The reshapes between ddmlab's tensors and a layout's PyTorch ones, in PyTorch's `[out, in]`
/// linear orientation (so it runs after `BurnToPyTorchAdapter` on export and before
/// `PyTorchToBurnAdapter` on import). Only DiT needs any:
/// - the patch embedding: a linear map of `(py, px, c)`-ordered patch vectors `[W, p p C]` is
///   DiT's conv kernel `[W, C, p, p]`;
/// - the output layer of a `learn_sigma` checkpoint `[p p 2C, W]` (and its bias) keeps the rows
///   of the first `C` channels.
#[derive(Clone)]
struct TorchShapes {
    layout: Layout,
    config: VitConfig,
    to_torch: bool,
}

impl ModuleAdapter for TorchShapes {
    fn adapt(&self, tensor: PackTensor, _ctx: ModuleContext<'_>) -> PackTensor {
        if self.layout != Layout::Dit {
            return tensor;
        }
        let (p, c) = (self.config.patch, self.config.image.channels);
        let shape = tensor.shape.clone();
        let name = tensor.name.clone();
        if name == "patch_embed.proj.weight" {
            if self.to_torch && shape.len() == 2 {
                let w = shape[0];
                return bridge::map_data(tensor, name, DType::F32, Shape::new([w, c, p, p]), move |d| {
                    permute_patch(d, w, p, c, true)
                });
            }
            if !self.to_torch && shape.len() == 4 && shape[1] == c && shape[2] == p && shape[3] == p {
                let w = shape[0];
                return bridge::map_data(tensor, name, DType::F32, Shape::new([w, p * p * c]), move |d| {
                    permute_patch(d, w, p, c, false)
                });
            }
        }
        let sigma_rows = p * p * 2 * c;
        if !self.to_torch
            && (name == "final_layer.proj.weight" || name == "final_layer.proj.bias")
            && shape[0] == sigma_rows
        {
            let cols: usize = shape[1..].iter().product();
            let mut out = shape.clone();
            out[0] = p * p * c;
            return bridge::map_data(tensor, name, DType::F32, out, move |d| eps_rows(d, c, cols));
        }
        tensor
    }

    fn clone_box(&self) -> Box<dyn ModuleAdapter> {
        Box::new(self.clone())
    }
}

/// `[W, p p C]` (patch vectors `(py, px, c)`) <-> `[W, C, p, p]` (a conv kernel).
fn permute_patch(data: TensorData, w: usize, p: usize, c: usize, to_conv: bool) -> TensorData {
    let v: Vec<f32> = data.convert::<f32>().try_into_vec::<f32>().expect("f32 after the cast");
    let mut out = vec![0f32; v.len()];
    for o in 0..w {
        for py in 0..p {
            for px in 0..p {
                for ch in 0..c {
                    let linear = o * p * p * c + (py * p + px) * c + ch;
                    let conv = ((o * c + ch) * p + py) * p + px;
                    if to_conv {
                        out[conv] = v[linear];
                    } else {
                        out[linear] = v[conv];
                    }
                }
            }
        }
    }
    let shape = if to_conv { vec![w, c, p, p] } else { vec![w, p * p * c] };
    TensorData::new(out, shape)
}

/// The rows of a `learn_sigma` output `[p p 2C, cols]` whose channel is one of the first `C`
/// (rows are `(py, px, channel)` with the channel fastest), in order.
pub(crate) fn eps_rows(data: TensorData, c: usize, cols: usize) -> TensorData {
    let v: Vec<f32> = data.convert::<f32>().try_into_vec::<f32>().expect("f32 after the cast");
    let rows = v.len() / cols;
    let kept: Vec<f32> =
        (0..rows).filter(|r| r % (2 * c) < c).flat_map(|r| v[r * cols..(r + 1) * cols].to_vec()).collect();
    let shape = if cols == 1 { vec![rows / 2] } else { vec![rows / 2, cols] };
    TensorData::new(kept, shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renames_run_both_ways() {
        for layout in [Layout::Reference, Layout::Dit] {
            for key in [
                "patch_embed.proj.weight",
                "t_embed.fc1.bias",
                "y_embed.table.weight",
                "blocks.11.mlp.fc2.weight",
                "blocks.3.ada_ln.bias",
                "blocks.0.attn.qkv.weight",
                "final_layer.proj.weight",
            ] {
                let torch = layout.rename(key, true);
                assert_eq!(layout.rename(&torch, false), key, "{layout:?}: {key} -> {torch}");
            }
        }
        assert_eq!(Layout::Dit.rename("blocks.11.ada_ln.weight", true), "blocks.11.adaLN_modulation.1.weight");
        assert_eq!(Layout::Reference.rename("blocks.2.mlp.fc1.bias", true), "blocks.2.fc1.bias");
    }

    #[test]
    fn patch_kernel_permutation_is_inverted_and_places_channels_fastest() {
        let (w, p, c) = (3, 2, 2);
        let linear: Vec<f32> = (0..w * p * p * c).map(|i| i as f32).collect();
        let conv = permute_patch(TensorData::new(linear.clone(), [w, p * p * c]), w, p, c, true);
        let conv_v: Vec<f32> = conv.clone().try_into_vec::<f32>().unwrap();
        // conv[o=1, ch=1, py=0, px=1] is linear[o=1, (py=0, px=1, ch=1)] = 8 + 1*2 + 1 = 11.
        assert_eq!(conv_v[((c + 1) * p) * p + 1], 11.0);
        let back: Vec<f32> = permute_patch(conv, w, p, c, false).try_into_vec::<f32>().unwrap();
        assert_eq!(back, linear);
    }

    #[test]
    fn layouts_refuse_what_pytorch_has_no_weights_for() {
        let base =
            crate::recipes::parts::vit(crate::data::ImageShape { channels: 1, height: 8, width: 8 }, 4, 16, 2, 2);
        for layout in [Layout::Reference, Layout::Dit] {
            let conv = VitConfig { conv_head: 4, ..base.clone() };
            assert!(layout.check(&conv).unwrap_err().to_string().contains("model.conv_head"));
        }
        let long = VitConfig { long_skip: true, ..base.clone() };
        assert!(Layout::Dit.check(&long).unwrap_err().to_string().contains("model.long_skip"));
        assert!(Layout::Reference.check(&long).is_ok(), "the reference model has U-ViT's long skips");
        assert!(Layout::Reference.check(&base).is_ok());
    }

    #[test]
    fn learn_sigma_rows_keep_the_first_channels() {
        // p = 1, C = 2: rows (ch 0, 1, 2, 3) -> keep 0 and 1.
        let d = TensorData::new(vec![0f32, 1., 2., 3., 4., 5., 6., 7.], [4, 2]);
        let kept: Vec<f32> = eps_rows(d, 2, 2).try_into_vec::<f32>().unwrap();
        assert_eq!(kept, vec![0., 1., 2., 3.]);
        // p = 2, C = 1, a bias: rows (pix0: eps, sigma), (pix1: eps, sigma), ...
        let d = TensorData::new((0..8).map(|i| i as f32).collect::<Vec<_>>(), [8]);
        let kept: Vec<f32> = eps_rows(d, 1, 1).try_into_vec::<f32>().unwrap();
        assert_eq!(kept, vec![0., 2., 4., 6.]);
    }
}
