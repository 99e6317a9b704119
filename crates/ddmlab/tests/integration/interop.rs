//! Claims about weights exchanged with PyTorch (`train::interop`), against files PyTorch wrote
//! (`bench/interop_fixtures.py`, checked in under `tests/fixtures/interop`):
//! - a state_dict of the reference PyTorch model imports, and ddmlab's network then gives
//!   PyTorch's output; exporting it again gives PyTorch's state_dict back, key for key and bit
//!   for bit (so `load_state_dict(strict=True)` takes ddmlab's export and reproduces the output);
//! - a checkpoint with the layout of facebookresearch/DiT (conv patch embedding, learn_sigma
//!   output, tanh GELU, `torch.save` pickle) imports and gives DiT's eps output;
//! - a file whose keys or shapes do not match is one error listing them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use ddmlab::data::ImageShape;
use ddmlab::models::VitConfig;
use ddmlab::nn::gelu::GeluKind;
use ddmlab::nn::patchify::{patchify, unpatchify};
use ddmlab::train::interop::{Layout, export, import};
use safetensors::SafeTensors;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/interop").join(name)
}

/// bench/interop_fixtures.py's REFERENCE.
fn reference_config() -> VitConfig {
    VitConfig {
        image: ImageShape { channels: 2, height: 8, width: 8 },
        patch: 2,
        width: 32,
        depth: 3,
        encoder_depth: 2,
        heads: 4,
        mlp_ratio: 4.0,
        cond_width: 16,
        freq_dim: 32,
        num_classes: 3,
        gelu: GeluKind::Erf,
        in_dim: None,
        out_dim: None,
        long_skip: false,
        conv_head: 0,
    }
}

/// bench/interop_fixtures.py's DIT (DiT's own sizes: conditioning as wide as the tokens, 256
/// timestep frequencies, tanh GELU).
fn dit_config() -> VitConfig {
    VitConfig {
        image: ImageShape { channels: 2, height: 8, width: 8 },
        depth: 2,
        encoder_depth: 1,
        cond_width: 32,
        freq_dim: 256,
        gelu: GeluKind::Tanh,
        ..reference_config()
    }
}

struct Io {
    x: Tensor<4>,
    t: Vec<usize>,
    y: Vec<usize>,
    out: Vec<f32>,
    out_shape: Vec<usize>,
}

type Archive = npyz::npz::NpzArchive<std::io::BufReader<std::fs::File>>;

/// Array `key` of an npz archive: shape and values.
fn array<T: npyz::Deserialize>(npz: &mut Archive, key: &str) -> (Vec<usize>, Vec<T>) {
    let file = npz.by_name(key).unwrap().unwrap_or_else(|| panic!("{key} missing"));
    let shape = file.shape().iter().map(|&d| d as usize).collect();
    (shape, file.into_vec().unwrap())
}

fn read_io(name: &str, device: &Device) -> Io {
    let mut npz = npyz::npz::NpzArchive::open(fixture(name)).unwrap();
    let (shape, x) = array::<f32>(&mut npz, "x");
    let (_, t) = array::<i64>(&mut npz, "t");
    let (_, y) = array::<i64>(&mut npz, "y");
    let (out_shape, out) = array::<f32>(&mut npz, "out");
    Io {
        x: Tensor::from_data(TensorData::new(x, [shape[0], shape[1], shape[2], shape[3]]), device),
        t: t.iter().map(|&v| v as usize).collect(),
        y: y.iter().map(|&v| v as usize).collect(),
        out,
        out_shape,
    }
}

/// The network's output as an image `[B, out_channels, H, W]`, values.
fn run(model: &ddmlab::models::DenoisingVit, config: &VitConfig, io: &Io) -> Vec<f32> {
    let ImageShape { channels, height, width } = config.image;
    let tokens = patchify(io.x.clone(), config.patch);
    let out = model.forward(tokens, &io.t, Some(&io.y));
    unpatchify(out, config.patch, channels, height, width).into_data().try_to_vec::<f32>().unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn tensors_of(bytes: &[u8]) -> BTreeMap<String, (Vec<usize>, Vec<u8>)> {
    let st = SafeTensors::deserialize(bytes).unwrap();
    st.tensors().into_iter().map(|(k, v)| (k, (v.shape().to_vec(), v.data().to_vec()))).collect()
}

/// The state_dict `weights` of the reference model of `config` imports, gives PyTorch's output
/// on the inputs of `io`, and exports back key for key and bit for bit.
fn reference_round_trip(config: &VitConfig, weights: &str, io: &str) {
    let device = Device::flex();
    let model = import(config.init(&device), config, Layout::Reference, &fixture(weights)).unwrap();
    let io = read_io(io, &device);
    assert_eq!(io.out_shape, vec![3, 2, 8, 8]);
    let ours = run(&model, config, &io);
    let diff = max_abs_diff(&ours, &io.out);
    let scale = io.out.iter().map(|v| v.abs()).fold(0.0, f32::max);
    assert!(scale > 0.1, "a fixture whose output is ~0 would test nothing ({scale})");
    println!("{weights}: max |ddmlab - PyTorch| = {diff:e} (outputs up to {scale})");
    assert!(diff < 1e-5, "max |ddmlab - PyTorch| = {diff:e} (outputs up to {scale})");

    let exported = export(&model, config, Layout::Reference).unwrap();
    let ours = tensors_of(&exported);
    let theirs = tensors_of(&std::fs::read(fixture(weights)).unwrap());
    assert_eq!(ours.keys().collect::<Vec<_>>(), theirs.keys().collect::<Vec<_>>(), "the same keys as PyTorch's");
    for (key, (shape, data)) in &theirs {
        let (our_shape, our_data) = &ours[key];
        assert_eq!(our_shape, shape, "{key}");
        if key == "pos" {
            let a: Vec<f32> = data.chunks(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
            let b: Vec<f32> = our_data.chunks(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
            assert!(max_abs_diff(&a, &b) < 1e-6, "pos");
        } else {
            assert!(our_data == data, "{key}: exported values differ from PyTorch's");
        }
    }
}

#[test]
fn reference_state_dict_imports_to_pytorchs_outputs_and_exports_back_bit_for_bit() {
    reference_round_trip(&reference_config(), "reference.safetensors", "reference_io.npz");
}

/// U-ViT's long skips (5 blocks: two in, a middle, two out; the encoder ends after block 2):
/// each out block reads its mirror in block's output through its own linear, as PyTorch's
/// model does; a pairing off by one or reversed would miss PyTorch's output by O(1).
#[test]
fn long_skips_import_to_pytorchs_outputs_and_export_back_bit_for_bit() {
    let config = VitConfig { depth: 5, long_skip: true, ..reference_config() };
    reference_round_trip(&config, "reference_skip.safetensors", "reference_skip_io.npz");
    let keys = tensors_of(&std::fs::read(fixture("reference_skip.safetensors")).unwrap());
    assert!(keys.contains_key("skips.1.weight") && !keys.contains_key("skips.2.weight"), "two skip layers");
}

#[test]
fn dit_checkpoint_layout_imports_to_dits_eps_output() {
    let device = Device::flex();
    let config = dit_config();
    let model = import(config.init(&device), &config, Layout::Dit, &fixture("dit.pt")).unwrap();
    let io = read_io("dit_io.npz", &device);
    assert_eq!(io.out_shape, vec![3, 4, 8, 8], "learn_sigma: 2C output channels");
    // DiT's first C channels are eps; the rest, the variance interpolation, is dropped.
    let per_image = 4 * 64;
    let eps: Vec<f32> = io.out.chunks(per_image).flat_map(|img| img[..2 * 64].to_vec()).collect();
    let ours = run(&model, &config, &io);
    let diff = max_abs_diff(&ours, &eps);
    let scale = eps.iter().map(|v| v.abs()).fold(0.0, f32::max);
    assert!(scale > 0.1, "a fixture whose output is ~0 would test nothing ({scale})");
    // DiT computes its timestep features in f32, ddmlab in f64 (measured: 2.2e-6 apart at the end).
    println!("DiT layout: max |ddmlab - DiT| = {diff:e} (outputs up to {scale})");
    assert!(diff < 1e-5, "max |ddmlab - DiT| = {diff:e} (outputs up to {scale})");
    // With the erf GELU the same weights give another model: the setting matters.
    let mut erf = model;
    for block in erf.blocks.iter_mut() {
        block.mlp.tanh_gelu = false;
    }
    assert!(max_abs_diff(&run(&erf, &config, &io), &eps) > 10.0 * diff.max(1e-6));
}

#[test]
fn mismatched_keys_are_one_error_listing_them() {
    let device = Device::flex();
    let config = reference_config();
    let model = import(config.init(&device), &config, Layout::Reference, &fixture("reference.safetensors")).unwrap();
    let bytes = export(&model, &config, Layout::Reference).unwrap();
    let mut tensors = tensors_of(&bytes);
    let dropped = tensors.remove("blocks.1.fc1.weight").unwrap();
    tensors.insert("blocks.1.fc9.weight".into(), dropped);
    let (shape, data) = tensors["t1.bias"].clone();
    tensors.insert("t1.bias".into(), (vec![shape[0] / 2], data[..data.len() / 2].to_vec()));
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(k, (s, d))| {
            (k.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d).unwrap())
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edited.safetensors");
    std::fs::write(&path, safetensors::serialize(views, None).unwrap()).unwrap();
    let err = import(config.init(&device), &config, Layout::Reference, &path).unwrap_err().to_string();
    assert!(err.contains("edited.safetensors"), "{err}");
    assert!(err.contains("missing keys: blocks.1.fc1.weight"), "{err}");
    assert!(err.contains("unexpected keys: blocks.1.fc9.weight"), "{err}");
    assert!(err.contains("t1.bias has shape [8]"), "{err}");

    // Not a weights file at all, and a file of the other layout.
    std::fs::write(&path, b"not safetensors").unwrap();
    let err = import(config.init(&device), &config, Layout::Reference, &path).unwrap_err().to_string();
    assert!(err.contains("not a PyTorch weights file"), "{err}");
    let dit = dit_config();
    let err = import(dit.init(&device), &dit, Layout::Dit, &fixture("reference.safetensors")).unwrap_err().to_string();
    assert!(err.contains("missing keys") && err.contains("x_embedder.proj.weight"), "{err}");
}

#[test]
fn dit_layout_rejects_a_model_it_cannot_hold() {
    let device = Device::flex();
    let config = reference_config(); // cond_width 16 != width 32, erf GELU
    let err = import(config.init(&device), &config, Layout::Dit, &fixture("dit.pt")).unwrap_err().to_string();
    assert!(err.contains("model.cond_width"), "{err}");
}

/// A trained run exported in DiT's layout starts a new run (`ddmlab import`): checkpoint 0 of
/// the new run holds the same network, model and EMA, and gives the same outputs.
#[test]
fn an_exported_run_starts_a_new_run_with_the_same_network() {
    use ddmlab::runs::pretrain;
    use ddmlab::store::checkpoint;
    use ddmlab::train::interop::Layout;
    use ddmlab::train::{Silent, run_folder};
    let tmp = tempfile::tempdir().unwrap();
    crate::common::write_synthetic_fashion_mnist(tmp.path());
    let mut config = crate::common::micro(ddmlab::recipes::preset("dit-tiny").unwrap().config, 4);
    config.model.gelu = GeluKind::Tanh;
    config.model.cond_width = config.model.width;
    config.model.freq_dim = 256;
    let device = Device::flex();
    let first = tmp.path().join("first");
    pretrain(config.clone(), &first, &crate::common::options(tmp.path(), false, None), &device, &mut Silent).unwrap();
    let ckpt = checkpoint::latest(&first).unwrap().unwrap();
    let trained = run_folder::load_model(&ckpt, &config, true, &device).unwrap();
    let file = tmp.path().join("dit.safetensors");
    std::fs::write(&file, export(&trained, &config.network(), Layout::Dit).unwrap()).unwrap();

    let second = tmp.path().join("second");
    let mut opts = crate::common::options(tmp.path(), false, Some(0));
    opts.init_from = Some((file, Layout::Dit));
    pretrain(config.clone(), &second, &opts, &device, &mut Silent).unwrap();
    let ckpt0 = checkpoint::latest(&second).unwrap().unwrap();
    assert!(ckpt0.ends_with("step-000000"), "{ckpt0:?}");
    let x = Tensor::<4>::random([2, 1, 28, 28], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
    let tokens = patchify(x, config.model.patch);
    let out = |m: &ddmlab::models::DenoisingVit| -> Vec<f32> {
        m.forward(tokens.clone(), &[5, 700], Some(&[1, 10])).into_data().try_to_vec::<f32>().unwrap()
    };
    let expected = out(&trained);
    assert!(expected.iter().any(|v| v.abs() > 1e-3), "a trained output, not the zero init");
    for ema in [true, false] {
        let imported = run_folder::load_model(&ckpt0, &config, ema, &device).unwrap();
        assert_eq!(out(&imported), expected, "ema={ema}");
    }
}
