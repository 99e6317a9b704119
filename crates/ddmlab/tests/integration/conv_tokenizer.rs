//! Claims about conv tokenizer training (`ddmlab tokenizer train`), on a synthetic
//! Fashion-MNIST-shaped data set (tests never download).

use burn::tensor::Device;
use ddmlab::recipes::tokenizer_preset;
use ddmlab::runs::tokenizer::{AeMetricLine, TokenizerTrainOptions, train_tokenizer};
use ddmlab::store::metrics;
use ddmlab::tokenizer::conv_config::TokenizerRunConfig;
use ddmlab::train::Silent;

use crate::common::{micro, write_synthetic_fashion_mnist};

fn tiny() -> TokenizerRunConfig {
    let mut c = tokenizer_preset("kl-tiny").unwrap().config;
    c.train_limit = 64;
    c.train.steps = 8;
    c.train.checkpoint_every = 4;
    c.train.log_every = 1;
    c.loss.disc_start = 3; // the adversarial terms (and their adaptive weight) are on for the resumed steps
    c
}

fn options(root: &std::path::Path, resume: bool, stop: Option<usize>) -> TokenizerTrainOptions {
    TokenizerTrainOptions { data_root: root.to_path_buf(), resume, stop_after_steps: stop, ..Default::default() }
}

fn losses(run: &std::path::Path) -> Vec<(usize, f64, f64, f64)> {
    metrics::read::<AeMetricLine>(&run.join("metrics.jsonl"))
        .unwrap()
        .iter()
        .map(|m| (m.step, m.stats.loss, m.stats.d_weight, m.stats.d_loss))
        .collect()
}

#[test]
fn resumed_tokenizer_training_reproduces_the_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    write_synthetic_fashion_mnist(tmp.path());
    let device = Device::flex();
    let run_a = tmp.path().join("a");
    train_tokenizer(tiny(), &run_a, &options(tmp.path(), false, None), &device, &mut Silent).unwrap();

    // Killed between checkpoints: stopped at step 6, rolled back to the step-4 checkpoint.
    let run_b = tmp.path().join("b");
    train_tokenizer(tiny(), &run_b, &options(tmp.path(), false, Some(6)), &device, &mut Silent).unwrap();
    std::fs::remove_dir_all(run_b.join("checkpoints/step-000006")).unwrap();
    std::fs::write(run_b.join("checkpoints/latest"), "step-000004").unwrap();
    let summary = train_tokenizer(tiny(), &run_b, &options(tmp.path(), true, None), &device, &mut Silent).unwrap();
    assert_eq!(summary.step, 8);

    let (a, b) = (losses(&run_a), losses(&run_b));
    assert_eq!(a.iter().map(|l| l.0).collect::<Vec<_>>(), (1..=8).collect::<Vec<_>>());
    assert_eq!(b.iter().map(|l| l.0).collect::<Vec<_>>(), (1..=8).collect::<Vec<_>>(), "each step logged once");
    assert!(a[4..].iter().all(|l| l.2 > 0.0 && l.3 > 0.0), "the discriminator is on after step 3: {a:?}");
    for (x, y) in a.iter().zip(&b) {
        // The autoencoder, discriminator, both optimisers, the posterior noise and the batches
        // must all come back: any one of them wrong moves these by far more than 1e-4.
        for (u, v) in [(x.1, y.1), (x.2, y.2), (x.3, y.3)] {
            assert!((u - v).abs() <= 1e-4 * u.abs().max(1.0), "step {}: uninterrupted {u} vs resumed {v}", x.0);
        }
    }
    // Each checkpoint was evaluated once, in both runs, with the same numbers.
    let recon = |run: &std::path::Path| ddmlab::runs::tokenizer::read_recon(run).unwrap();
    let (ra, rb) = (recon(&run_a), recon(&run_b));
    assert_eq!(ra.iter().map(|r| r.step).collect::<Vec<_>>(), vec![4, 8]);
    assert_eq!(rb.iter().map(|r| r.step).collect::<Vec<_>>(), vec![4, 8]);
    assert!((ra[1].mse - rb[1].mse).abs() < 1e-4 * ra[1].mse, "{} vs {}", ra[1].mse, rb[1].mse);
    assert!(run_a.join("recon-step-000008.png").exists());

    // A finished 4-step run trained on to 8 steps is the 8-step run.
    let run_c = tmp.path().join("c");
    let mut short = tiny();
    short.train.steps = 4;
    train_tokenizer(short.clone(), &run_c, &options(tmp.path(), false, None), &device, &mut Silent).unwrap();
    let on = TokenizerTrainOptions { extend_to: Some(8), ..options(tmp.path(), true, None) };
    assert_eq!(train_tokenizer(short.clone(), &run_c, &on, &device, &mut Silent).unwrap().step, 8);
    for (x, y) in a.iter().zip(&losses(&run_c)) {
        assert!((x.1 - y.1).abs() <= 1e-4 * x.1.abs().max(1.0), "step {}: 8-step run {} vs extended {}", x.0, x.1, y.1);
    }
    assert_eq!(losses(&run_c).len(), 8);
    let saved = std::fs::read_to_string(run_c.join("checkpoints/step-000008/config.toml")).unwrap();
    assert!(saved.contains("steps = 8"), "the extended run's checkpoint records its new length: {saved}");
    let fewer = TokenizerTrainOptions { extend_to: Some(6), ..options(tmp.path(), true, None) };
    let err = train_tokenizer(short, &run_c, &fewer, &device, &mut Silent).unwrap_err().to_string();
    assert!(err.contains("train.steps") && err.contains("not fewer"), "{err}");
}

#[test]
fn a_corrupt_tokenizer_checkpoint_is_one_error_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    write_synthetic_fashion_mnist(tmp.path());
    let device = Device::flex();
    let run = tmp.path().join("r");
    train_tokenizer(tiny(), &run, &options(tmp.path(), false, Some(4)), &device, &mut Silent).unwrap();
    for file in ["ae.bpk", "disc-optim.bpk"] {
        let path = run.join("checkpoints/step-000004").join(file);
        let original = std::fs::read(&path).unwrap();
        std::fs::write(&path, &original[..original.len() / 3]).unwrap();
        let err = train_tokenizer(tiny(), &run, &options(tmp.path(), true, None), &device, &mut Silent)
            .unwrap_err()
            .to_string();
        assert!(err.contains(file) && !err.contains('\n'), "{file}: {err}");
        std::fs::write(&path, original).unwrap();
    }
    // A fresh start over a run with checkpoints is refused rather than overwriting it.
    let err = train_tokenizer(tiny(), &run, &options(tmp.path(), false, None), &device, &mut Silent).unwrap_err();
    assert!(err.to_string().contains("--resume"), "{err}");
}

#[test]
fn invalid_tokenizer_settings_are_named() {
    let c = tiny();
    for (set, field) in [
        ("loss.kl_weight=-1", "loss.kl_weight"),
        ("model.groups=3", "model.groups"),
        ("loss.disc_layers=5", "loss.disc_layers"),
        ("train.eval_images=1", "train.eval_images"),
    ] {
        let err = c.with_override(set).unwrap().validate().unwrap_err().to_string();
        assert!(err.contains(field), "{set}: {err}");
    }
    let err = c.with_override("loss.colour=1").unwrap_err().to_string();
    assert!(err.contains("colour"), "{err}");
}

/// A tiny denoising run on the conv VAE of `tiny()` (16 x 16 images, stride 2, 2 x 2 cells:
/// 16 tokens of d = 8, each covering 4 x 4 pixels).
fn conv_vae_run_config() -> ddmlab::config::RunConfig {
    use ddmlab::data::ImageShape;
    use ddmlab::tokenizer::{LatentScale, TokenizerSpec};
    let mut c = micro(ddmlab::recipes::preset("ldae-tiny").unwrap().config, 2);
    c.resize = true;
    c.model.image = ImageShape { channels: 1, height: 16, width: 16 };
    let spec = TokenizerSpec::ConvVae { cells: 2, scale: LatentScale::Unit, config: Box::new(tiny()) };
    c.model.patch = spec.patch();
    c.denoise = ddmlab::recipes::parts::ddpm(spec);
    c.denoise.class_dropout = 0.0;
    c
}

fn path_of(run: &std::path::Path, config: &ddmlab::config::RunConfig) -> std::path::PathBuf {
    ddmlab::train::run_folder::tokenizer_path(run, config)
}

#[test]
fn a_run_trains_its_conv_vae_once_and_uses_it_as_a_unit_variance_tokenizer() {
    use burn::tensor::{Tensor, TensorData};
    use ddmlab::runs::pretrain;
    use ddmlab::train::run_folder;
    let tmp = tempfile::tempdir().unwrap();
    write_synthetic_fashion_mnist(tmp.path());
    let device = Device::flex();
    let config = conv_vae_run_config();
    config.validate().unwrap();
    assert_eq!((config.model.patch, config.denoise.tokenizer.latent_dim(1), config.model.tokens()), (4, 8, 16));
    let run = tmp.path().join("run");
    let opts = crate::common::options(tmp.path(), false, None);
    pretrain(config.clone(), &run, &opts, &device, &mut Silent).unwrap();
    assert!(run.join("conv-vae/checkpoints/latest").exists(), "the conv VAE trained in its own folder");
    let report: ddmlab::tokenizer::FitReport =
        serde_json::from_str(&std::fs::read_to_string(run.join("tokenizer-fit.json")).unwrap()).unwrap();
    assert_eq!((report.kind.as_str(), report.latent_dim, report.curve.len()), ("conv-vae", 8, 2));

    let fitted = run_folder::load_tokenizer(&run, &config).unwrap();
    let tok = fitted.bind(config.model.image, &device);
    let set = run_folder::load_split(&config, tmp.path(), ddmlab::data::Split::Train).unwrap();
    let x = Tensor::<4>::from_data(
        TensorData::new(set.images.iter().map(|&v| ddmlab::data::to_unit(v)).collect::<Vec<_>>(), [64, 1, 16, 16]),
        &device,
    );
    let noise = Tensor::<3>::random([64, 16, 8], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
    let z = tok.encode_sample(x.clone(), noise);
    assert_eq!(z.dims(), [64, 16, 8]);
    let values: Vec<f32> = z.clone().into_data().try_into_vec().unwrap();
    let m = values.iter().map(|&v| v as f64).sum::<f64>() / values.len() as f64;
    let std = (values.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / values.len() as f64).sqrt();
    assert!((std - 1.0).abs() < 0.1, "unit scale: the training latents' std is {std}");
    assert_ne!(values, tok.encode(x).into_data().try_into_vec::<f32>().unwrap(), "a VAE samples");
    assert_eq!(tok.decode(z).dims(), [64, 1, 16, 16]);
    // On the training (autodiff) device the frozen tokenizer adds nothing to the graph: a tracked
    // weight shared by the data-parallel shards would merge their graphs (and deadlock burn).
    struct Tracked(usize);
    impl burn::module::ModuleVisitor for Tracked {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            self.0 += param.val().is_require_grad() as usize;
        }
    }
    let ddmlab::tokenizer::FittedTokenizer::ConvVae(vae) = &fitted else { panic!("a conv VAE") };
    let bound = vae.bind(&device.clone().autodiff(), &path_of(&run, &config)).unwrap();
    let mut tracked = Tracked(0);
    burn::module::Module::visit(&bound.ae, &mut tracked);
    assert_eq!(tracked.0, 0, "the tokenizer's weights are constants on the training device");

    // A second run naming the same tokenizer file loads it; a corrupt file is one error naming it.
    let path = run_folder::tokenizer_path(&run, &config);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = run_folder::load_tokenizer(&run, &config).unwrap_err().to_string();
    assert!(err.contains("conv-vae.safetensors") && !err.contains('\n'), "{err}");
    std::fs::write(&path, &bytes).unwrap();
    // A config asking for another conv VAE does not silently take this one.
    let mut other = config.clone();
    if let ddmlab::tokenizer::TokenizerSpec::ConvVae { config, .. } = &mut other.denoise.tokenizer {
        config.loss.perceptual_weight = 0.0;
    }
    let err = run_folder::load_tokenizer(&run, &other).unwrap_err().to_string();
    assert!(err.contains("another config") && err.contains("loss.perceptual_weight = "), "the field named: {err}");

    // `--tokenizer-from`: a run with 1 x 1 cells per token (64 tokens of d = 2) adopts this conv
    // VAE from the run folder or from a bare tokenizer folder (as `deconstruct` keeps them); it
    // reads the same latent, grouped otherwise, so decoding the encoding gives the same images.
    let mut single = config.clone();
    if let ddmlab::tokenizer::TokenizerSpec::ConvVae { cells, .. } = &mut single.denoise.tokenizer {
        *cells = 1;
    }
    single.model.patch = single.denoise.tokenizer.patch();
    single.validate().unwrap();
    let bare = tmp.path().join("tokenizers/kl");
    std::fs::create_dir_all(&bare).unwrap();
    std::fs::copy(&path, bare.join("conv-vae.safetensors")).unwrap();
    let x = Tensor::<4>::from_data(
        TensorData::new(
            set.images[..4 * 256].iter().map(|&v| ddmlab::data::to_unit(v)).collect::<Vec<_>>(),
            [4, 1, 16, 16],
        ),
        &device,
    );
    let images = |t: &dyn ddmlab::tokenizer::Tokenizer, x: Tensor<4>| -> Vec<f32> {
        t.decode(t.encode(x)).into_data().try_into_vec().unwrap()
    };
    for (i, from) in [&run, &bare].into_iter().enumerate() {
        let to = tmp.path().join(format!("single-{i}"));
        run_folder::adopt_tokenizer(from, &to, &single).unwrap();
        let t = run_folder::load_tokenizer(&to, &single).unwrap().bind(single.model.image, &device);
        assert_eq!(t.encode(x.clone()).dims(), [4, 64, 2]);
        assert_eq!(images(&*t, x.clone()), images(&*tok, x.clone()), "from {}", from.display());
        let err = run_folder::adopt_tokenizer(from, &tmp.path().join("other"), &other).unwrap_err().to_string();
        assert!(err.contains("pretrain.tokenizer_from") || err.contains("another config"), "{err}");
        assert!(!tmp.path().join("other").exists(), "nothing written on error");
    }
}

#[test]
fn a_conv_vae_that_does_not_tile_the_image_is_named() {
    let mut c = conv_vae_run_config();
    if let ddmlab::tokenizer::TokenizerSpec::ConvVae { cells, .. } = &mut c.denoise.tokenizer {
        *cells = 3;
    }
    let err = c.validate().unwrap_err().to_string();
    assert!(err.contains("denoise.tokenizer.cells"), "{err}");
    let mut c = conv_vae_run_config();
    c.model.image.height = 20;
    let err = c.validate().unwrap_err().to_string();
    assert!(err.contains("denoise.tokenizer.config.model.image"), "{err}");
}

/// The perceptual classifier's stage (minutes on real data) stops at the time limit with a
/// checkpoint, refuses to be overwritten without --resume, and resumed gives the classifier of
/// an uninterrupted stage: the autoencoder's losses, whose perceptual term reads the classifier,
/// come out the same.
#[test]
fn the_perceptual_stage_stops_at_the_time_limit_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    write_synthetic_fashion_mnist(tmp.path());
    let device = Device::flex();
    let mut config = tiny();
    config.train.steps = 2;
    config.train.checkpoint_every = 2;
    config.perceptual.steps = 5;
    config.perceptual.batch_size = 8;
    let run_a = tmp.path().join("a");
    train_tokenizer(config.clone(), &run_a, &options(tmp.path(), false, None), &device, &mut Silent).unwrap();

    let run_b = tmp.path().join("b");
    let out_of_time = TokenizerTrainOptions { stop_after_minutes: Some(0.0), ..options(tmp.path(), false, None) };
    let summary = train_tokenizer(config.clone(), &run_b, &out_of_time, &device, &mut Silent).unwrap();
    assert_eq!(summary.step, 0, "no autoencoder step before the classifier is done");
    assert!(!run_b.join("perceptual.bpk").exists());
    assert!(run_b.join("perceptual/checkpoints/step-000001/net.bpk").exists(), "stopped after one step, saved");
    let err = train_tokenizer(config.clone(), &run_b, &options(tmp.path(), false, None), &device, &mut Silent)
        .unwrap_err()
        .to_string();
    assert!(err.contains("--resume"), "{err}");

    let summary = train_tokenizer(config, &run_b, &options(tmp.path(), true, None), &device, &mut Silent).unwrap();
    assert_eq!(summary.step, 2);
    assert!(run_b.join("perceptual.bpk").exists() && !run_b.join("perceptual").exists(), "the stage's checkpoints go");
    let (a, b) = (losses(&run_a), losses(&run_b));
    assert_eq!(a.len(), 2);
    for (x, y) in a.iter().zip(&b) {
        assert!((x.1 - y.1).abs() <= 1e-6 * x.1.abs(), "step {}: uninterrupted {} vs resumed {}", x.0, x.1, y.1);
    }
}
