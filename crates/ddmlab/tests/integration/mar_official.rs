//! ddmlab's MAR against LTH14/mar's own code on the same weights (issue 49, item 2), from
//! `tests/fixtures/mar-official/fixture.safetensors` (`bench/mar_official_fixtures.py`: the
//! official `MAR` at mar-fmnist's size, its Diffusion Loss head with the learned variance, no
//! PyTorch here). Both sides compute the weights from one rule ([`weight_values`]); ddmlab reads
//! them through its importer of the official state_dict (`import_mar`), so the names and layouts
//! are part of what is checked. Matched: the encoder's and decoder's outputs, the head's `2 C`
//! outputs, the loss's MSE and VLB terms per row and their mean, the gradient of that loss
//! reaching every official tensor, and one update of the official optimizer (its weight-decay
//! groups, clipping, AdamW).

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::{Module, ModuleMapper, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use ddmlab::diffusion::vlb::{VlbTables, vb_term};
use ddmlab::mar::objective::{MarDraws, MarObjective, head_schedule};
use ddmlab::models::mar::{Mar, MarConfig};
use ddmlab::optim::decay::DecayExempt;
use ddmlab::train::interop_mar::{export_mar, import_mar};
use ddmlab::train::step::{optimizer_of, update};
use safetensors::SafeTensors;

/// bench/mar_official_fixtures.py's SIZES.
fn config() -> MarConfig {
    MarConfig {
        token_dim: 2,
        seq_len: 64,
        buffer: 16,
        width: 128,
        enc_depth: 4,
        dec_depth: 4,
        heads: 4,
        mlp_ratio: 4.0,
        num_classes: 10,
        head_width: 256,
        head_depth: 3,
        causal: false,
        head_out: 4,
        head_affine_norm: true,
        learn_variance: true,
    }
}

fn fnv1a(name: &str) -> u64 {
    name.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01B3))
}

/// The fixture's weight rule: counter-based splitmix64 seeded by the FNV-1a hash of the official
/// name, `u` in [-1, 1); LayerNorm weights `1 + 0.1 u`, biases `0.05 u`, the rest
/// `u sqrt(3 / fan_in)` (computed in f64, then rounded to f32 as numpy does).
fn weight_values(name: &str, shape: &[usize]) -> Vec<f32> {
    let seed = fnv1a(name);
    let n: usize = shape.iter().product();
    (1..=n as u64)
        .map(|i| {
            let mut x = seed.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            x ^= x >> 31;
            let u = (x >> 11) as f64 * 2f64.powi(-53) * 2.0 - 1.0;
            let v = if shape.len() == 1 {
                if name.ends_with(".weight") { 1.0 + 0.1 * u } else { 0.05 * u }
            } else {
                u * (3.0 / shape[shape.len() - 1] as f64).sqrt()
            };
            v as f32
        })
        .collect()
}

struct Fixture(BTreeMap<String, (Vec<usize>, Vec<u8>, safetensors::Dtype)>);

impl Fixture {
    fn read() -> Fixture {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mar-official/fixture.safetensors");
        let bytes = std::fs::read(&path).unwrap();
        let file = SafeTensors::deserialize(&bytes).unwrap();
        Fixture(
            file.tensors().into_iter().map(|(n, v)| (n, (v.shape().to_vec(), v.data().to_vec(), v.dtype()))).collect(),
        )
    }

    fn f32(&self, name: &str) -> Vec<f32> {
        let (_, data, dtype) = self.0.get(name).unwrap_or_else(|| panic!("{name} missing from the fixture"));
        assert_eq!(*dtype, safetensors::Dtype::F32, "{name}");
        data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
    }

    fn i64(&self, name: &str) -> Vec<i64> {
        let (_, data, _) = &self.0[name];
        data.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect()
    }

    fn shape(&self, name: &str) -> Vec<usize> {
        self.0[name].0.clone()
    }
}

/// The official state_dict of the fixture's weights, written under the official names (those of
/// ddmlab's export) and imported.
fn official_model(device: &Device, dir: &Path) -> Mar {
    let config = config();
    let fresh = export_mar(&config.init(device), &config).unwrap();
    let file = SafeTensors::deserialize(&fresh).unwrap();
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let values = weight_values(&name, view.shape());
            (name, view.shape().to_vec(), values.iter().flat_map(|v| v.to_le_bytes()).collect())
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, s, b)| {
            (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap())
        })
        .collect();
    let path = dir.join("official.safetensors");
    std::fs::write(&path, safetensors::serialize(views, None).unwrap()).unwrap();
    import_mar(config.init(device), &config, &path).unwrap()
}

/// `max |got - want| / max |want|`, reported and bounded.
fn relative(what: &str, got: &[f32], want: &[f32], bound: f64) -> f64 {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().map(|v| v.abs() as f64).fold(0.0, f64::max).max(1e-12);
    let worst = got.iter().zip(want).map(|(a, b)| (*a as f64 - *b as f64).abs()).fold(0.0, f64::max) / scale;
    println!("{what}: largest difference {worst:.2e} of the largest value {scale:.3e}");
    assert!(worst < bound, "{what}: relative difference {worst:.2e} over {bound:.0e}");
    worst
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec().unwrap()
}

/// Replaces every parameter by its gradient (zeros where none reached it).
struct GradsOf<'a>(&'a burn::tensor::Gradients);

impl ModuleMapper for GradsOf<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let value = param.val();
        let grad = value.grad(self.0).unwrap_or_else(|| value.zeros_like().inner());
        Param::from_tensor(grad)
    }
}

#[test]
fn ddmlab_matches_the_official_mar_on_the_same_weights() {
    let fx = Fixture::read();
    let tmp = tempfile::tempdir().unwrap();
    let device = Device::flex().autodiff();
    let model = official_model(&device, tmp.path());
    let [b, l, c] = <[usize; 3]>::try_from(fx.shape("tokens")).unwrap();
    let tokens = Tensor::<3>::from_data(TensorData::new(fx.f32("tokens"), [b, l, c]), &device);
    let labels: Vec<usize> = fx.i64("labels").iter().map(|&y| y as usize).collect();
    let mask: Vec<Vec<bool>> = fx.f32("mask").chunks(l).map(|row| row.iter().map(|&m| m > 0.5).collect()).collect();

    // The encoder and the decoder.
    let encoder = model.encode_visible(tokens.clone(), &mask, &labels);
    relative("encoder output", &host(encoder.clone()), &fx.f32("encoder"), 1e-4);
    let z = model.decode(encoder, &mask);
    relative("decoder output z", &host(z), &fx.f32("decoder"), 1e-4);

    // The head and the loss's terms, on ddmlab's rows (image-major, 4 repeats of the masked
    // tokens in sequence order: the fixture's order).
    let t: Vec<usize> = fx.i64("t").iter().map(|&s| s as usize).collect();
    let n = t.len();
    let schedule = head_schedule();
    let gamma: Vec<f32> = t.iter().map(|&s| schedule.gamma(s) as f32).collect();
    let sigma: Vec<f32> = t.iter().map(|&s| schedule.sigma(s) as f32).collect();
    let eps = Tensor::<2>::from_data(TensorData::new(fx.f32("noise"), [n, c]), &device);
    let rows = model.noised_rows(tokens.clone(), &mask, &[], &labels, &t, &gamma, &sigma, eps.clone());
    relative("head output (eps, variance)", &host(rows.out.clone()), &fx.f32("head_out"), 1e-4);
    let eps_hat = rows.out.clone().narrow(1, 0, c);
    let mse = (eps_hat.clone() - eps).square().mean_dim(1).reshape([n]);
    relative("MSE term per row", &host(mse), &fx.f32("mse"), 1e-4);
    let tables = VlbTables::new(&schedule);
    let vb = vb_term(&tables, rows.x0, rows.x_t, eps_hat, rows.out.narrow(1, c, c), &t);
    relative("VLB term per row", &host(vb), &fx.f32("vb"), 1e-4);

    // The objective's loss (mse + vb, averaged) and its gradient under the official names.
    let objective = MarObjective { vlb: Some(tables), ..MarObjective::paper(l, c, 10) };
    let draws = MarDraws {
        order: vec![(0..l).collect(); b],
        mask,
        labels,
        t,
        eps: fx.f32("noise"),
        tok_noise: Vec::new(),
        tokens: Vec::new(),
    };
    let loss = objective.loss(&model, tokens, &draws, None, &device);
    relative("loss", &host(loss.clone()), &fx.f32("loss"), 1e-5);
    let grads = loss.backward();
    let grad_model = model.clone().map(&mut GradsOf(&grads));
    let exported = export_mar(&grad_model, &config()).unwrap();
    let file = SafeTensors::deserialize(&exported).unwrap();
    let (mut worst, mut worst_name) = (0.0f64, String::new());
    let mut seen = 0;
    for (name, view) in file.tensors() {
        let got: Vec<f32> = view.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        let norm = got.iter().map(|&g| (g as f64).powi(2)).sum::<f64>().sqrt();
        let want_norm = fx.f32(&format!("grad_norm.{name}"))[0] as f64;
        let rel = (norm - want_norm).abs() / want_norm.max(1e-12);
        assert!(rel < 1e-3, "{name}: gradient norm {norm:.6e} vs the official {want_norm:.6e}");
        let picks: Vec<f32> = (0..8).map(|i| got[i * got.len() / 8]).collect();
        let want = fx.f32(&format!("grad.{name}"));
        let scale = want_norm / (got.len() as f64).sqrt(); // the tensor's rms gradient
        for (a, w) in picks.iter().zip(&want) {
            let d = (*a as f64 - *w as f64).abs() / scale.max(1e-12);
            if d > worst {
                (worst, worst_name) = (d, name.clone());
            }
        }
        if rel > worst {
            (worst, worst_name) = (rel, name.clone());
        }
        seen += 1;
    }
    println!(
        "gradients of {seen} official tensors: largest difference {worst:.2e} (of the norm or the rms), {worst_name}"
    );
    assert!(worst < 1e-3, "gradient of {worst_name} off by {worst:.2e}");
    assert_eq!(seen, fx.0.keys().filter(|k| k.starts_with("grad_norm.")).count(), "every official tensor");

    // One optimizer update as ddmlab's trainer makes it (`train::step::update`) with the
    // official settings: AdamW (0.9, 0.95), weight decay 0.02 with LTH14/mar's exemptions
    // (`train.decay_exempt = norms-biases-head`), global-norm clip 3, lr 1e-3. Compared as the
    // update `new - old` of the sampled entries, in units of lr (Adam's first step moves each
    // weight by about lr). Entries whose gradient is rounding noise are left out: Adam's first
    // step is `lr g / (|g| + eps)`, whatever the sign of that noise (the attention's key bias,
    // whose gradient is zero in exact arithmetic: softmax ignores a logit shift).
    let mut run = ddmlab::recipes::preset("mar-fmnist").unwrap().config;
    run.train.weight_decay = 0.02;
    run.train.decay_exempt = DecayExempt::NormsBiasesHead;
    (run.train.grad_clip, run.train.beta1, run.train.beta2, run.train.adam_eps) = (3.0, 0.9, 0.95, 1e-8);
    let lr = 1e-3;
    let mut optim = optimizer_of(&run);
    let stepped = update(model.clone(), &mut optim, GradientsParams::from_grads(grads, &model), lr, &run.train);
    let exported = export_mar(&stepped, &config()).unwrap();
    let file = SafeTensors::deserialize(&exported).unwrap();
    let (mut worst, mut worst_name) = (0.0f64, String::new());
    for (name, view) in file.tensors() {
        let new: Vec<f32> = view.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        let old = weight_values(&name, view.shape());
        let want = fx.f32(&format!("step.{name}"));
        let (grad, norm) = (fx.f32(&format!("grad.{name}")), fx.f32(&format!("grad_norm.{name}"))[0] as f64);
        let rms = norm / (new.len() as f64).sqrt();
        for (i, w) in want.iter().enumerate().filter(|(i, _)| (grad[*i] as f64).abs() > 1e-4 * rms) {
            let k = i * new.len() / 8;
            let d = ((new[k] - old[k]) as f64 - (*w - old[k]) as f64).abs() / lr;
            if d > worst {
                (worst, worst_name) = (d, name.clone());
            }
        }
    }
    println!("one AdamW update: largest difference {worst:.2e} lr, {worst_name}");
    assert!(worst < 1e-4, "the update of {worst_name} differs by {worst:.2e} lr");
}

/// The paper presets `mar-b` / `mar-l` / `mar-h` have the sizes of the official `mar_base` /
/// `mar_large` / `mar_huge` as main_mar.py trains them (the names and shapes of their
/// state_dicts, `paper_keys.json`): width, token width, tokens and buffer, encoder and decoder
/// depth, MLP width, classes, the head's width, depth, `2 C` outputs and affine norms. (The
/// whole mar_base state_dict, 0.8 GB, imports into `mar-b`: the command is in RESULTS.md.)
#[test]
fn the_paper_presets_have_the_official_constructors_sizes() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mar-official/paper_keys.json");
    let all: BTreeMap<String, BTreeMap<String, Vec<usize>>> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for (official, preset) in [("mar_base", "mar-b"), ("mar_large", "mar-l"), ("mar_huge", "mar-h")] {
        let keys = &all[official];
        let shape = |k: &str| keys.get(k).unwrap_or_else(|| panic!("{official}: no {k}")).clone();
        let count = |prefix: &str| {
            let blocks: std::collections::BTreeSet<&str> =
                keys.keys().filter_map(|k| k.strip_prefix(prefix)?.split('.').next()).collect();
            blocks.len()
        };
        let ours = ddmlab::recipes::preset(preset).unwrap().config.mar_network().unwrap();
        let theirs = MarConfig {
            token_dim: shape("z_proj.weight")[1],
            seq_len: shape("diffusion_pos_embed_learned")[1],
            buffer: shape("encoder_pos_embed_learned")[1] - shape("diffusion_pos_embed_learned")[1],
            width: shape("z_proj.weight")[0],
            enc_depth: count("encoder_blocks."),
            dec_depth: count("decoder_blocks."),
            heads: ours.heads, // not in a state_dict
            mlp_ratio: shape("encoder_blocks.0.mlp.fc1.weight")[0] as f64 / shape("z_proj.weight")[0] as f64,
            num_classes: shape("class_emb.weight")[0],
            head_width: shape("diffloss.net.input_proj.weight")[0],
            head_depth: count("diffloss.net.res_blocks."),
            causal: false,
            head_out: shape("diffloss.net.final_layer.linear.weight")[0],
            head_affine_norm: keys.contains_key("diffloss.net.res_blocks.0.in_ln.weight"),
            learn_variance: shape("diffloss.net.final_layer.linear.weight")[0] == 2 * shape("z_proj.weight")[1],
        };
        assert_eq!(ours, theirs, "{preset} vs the official {official}");
        assert_eq!(shape("mask_token"), [1, 1, ours.width]);
        assert_eq!(shape("fake_latent"), [1, ours.width]);
    }
}
