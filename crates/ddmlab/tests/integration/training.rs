//! Claims about the training loop, on a synthetic Fashion-MNIST-shaped data set written to a
//! temporary data root (tests never download).

use burn::tensor::Device;
use ddmlab::config::RunConfig;
use ddmlab::data::loader::BatchPlan;
use ddmlab::recipes::preset;
use ddmlab::runs::pretrain;
use ddmlab::store::{checkpoint, metrics};
use ddmlab::train::trainer_state;
use ddmlab::train::{Silent, Trainer, run_folder};

use crate::common::{micro, micro_mar, options, write_synthetic_fashion_mnist};

/// A very small l-DAE config.
fn micro_config(steps: usize) -> RunConfig {
    micro(preset("ldae-tiny").unwrap().config, steps)
}

#[test]
fn resumed_run_reproduces_the_uninterrupted_loss_trajectory() {
    let tmp = tempfile::tempdir().unwrap();
    write_synthetic_fashion_mnist(tmp.path());
    let device = Device::flex();
    let config = micro_config(8);

    let whole =
        pretrain(config.clone(), &tmp.path().join("a"), &options(tmp.path(), false, None), &device, &mut Silent)
            .unwrap();
    assert_eq!(whole.losses.len(), 8);

    // The "killed" run: stops after step 5; its last checkpoint is step 5 (stop) but we roll back
    // to step 3 to mimic a kill between checkpoints.
    let run_b = tmp.path().join("b");
    pretrain(config.clone(), &run_b, &options(tmp.path(), false, Some(5)), &device, &mut Silent).unwrap();
    std::fs::remove_dir_all(run_b.join("checkpoints/step-000005")).unwrap();
    std::fs::write(run_b.join("checkpoints/latest"), "step-000003").unwrap();
    let resumed = pretrain(config, &run_b, &options(tmp.path(), true, None), &device, &mut Silent).unwrap();

    assert_eq!(resumed.losses.len(), 5, "steps 4..8 run again");
    // Exactly equal (issue 11, defect b: biases frozen in a fresh run but trained after a resume
    // made the trajectories drift by 1e-5 relative).
    assert_eq!(whole.losses[3..], resumed.losses[..], "uninterrupted vs resumed");
    // The metrics file holds each step once, as if never interrupted.
    let steps: Vec<usize> =
        metrics::read::<metrics::MetricLine>(&run_b.join("metrics.jsonl")).unwrap().iter().map(|m| m.step).collect();
    assert_eq!(steps, (1..=8).collect::<Vec<_>>());
    assert!(run_b.join("loss.png").exists());
}

/// Every weight of the network is trained: each parameter receives a gradient from the loss
/// (a parameter without one stays at its initial value, silently).
#[test]
fn every_parameter_of_the_presets_receives_a_gradient() {
    struct Missing<'a>(&'a burn::optim::GradientsParams, Vec<String>, usize);
    impl burn::module::ModuleVisitor for Missing<'_> {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<burn::tensor::Tensor<D>>) {
            self.2 += 1;
            if self.0.get::<D>(param.id).is_none() {
                self.1.push(format!("#{} {:?}", self.2, param.shape()));
            }
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    write_synthetic_fashion_mnist(tmp.path());
    let device = Device::flex();
    for name in ["ldae-tiny", "dit-tiny", "ladder-t2-vae-d4"] {
        let run = tmp.path().join(name);
        let config = micro(preset(name).unwrap().config, 1);
        pretrain(config, &run, &options(tmp.path(), false, None), &device, &mut Silent).unwrap();
        let config = ddmlab::train::run_folder::read_config(&run).unwrap();
        let set = ddmlab::runs::pretrain::load_train_set(&config, tmp.path()).unwrap();
        let fit = ddmlab::runs::FitOptions { data_root: tmp.path(), stop_after_minutes: None };
        let tokenizer =
            ddmlab::runs::load_or_fit_tokenizer(&run, &config, &set, fit, &device, &mut Silent).unwrap().unwrap();
        let plan = BatchPlan { seed: 0, batch_size: 8, augment: config.train.augment };
        let trainer = Trainer::new(config, &tokenizer, &device).unwrap();
        let (_, grads) = trainer.gradients(&plan.make(&set, 0));
        let mut missing = Missing(&grads, Vec::new(), 0);
        burn::module::Module::visit(&trainer.model, &mut missing);
        assert!(missing.1.is_empty(), "{name}: parameters without a gradient: {:?}", missing.1);
    }
}

#[test]
fn a_run_folder_with_checkpoints_is_not_overwritten_without_resume() {
    let tmp = tempfile::tempdir().unwrap();
    write_synthetic_fashion_mnist(tmp.path());
    let run = tmp.path().join("r");
    pretrain(micro_config(3), &run, &options(tmp.path(), false, None), &Device::flex(), &mut Silent).unwrap();
    let err =
        pretrain(micro_config(3), &run, &options(tmp.path(), false, None), &Device::flex(), &mut Silent).unwrap_err();
    assert!(err.to_string().contains("--resume"), "{err}");
    assert_eq!(checkpoint::list(&run).unwrap().len(), 1);
}

#[test]
fn training_lowers_the_loss() {
    let tmp = tempfile::tempdir().unwrap();
    write_synthetic_fashion_mnist(tmp.path());
    let mut config = micro_config(40);
    config.train.checkpoint_every = 40;
    config.train.blr = 4e-3;
    let s = pretrain(config, &tmp.path().join("r"), &options(tmp.path(), false, None), &Device::flex(), &mut Silent)
        .unwrap();
    let first: f64 = s.losses[..5].iter().sum::<f64>() / 5.0;
    let last: f64 = s.losses[35..].iter().sum::<f64>() / 5.0;
    assert!(last < 0.85 * first, "loss went from {first} to {last}");
}

#[test]
fn a_diverging_run_stops_naming_the_step_and_last_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    write_synthetic_fashion_mnist(tmp.path());
    let mut config = micro_config(30);
    config.train.blr = 1e30;
    config.train.warmup_frac = 0.0;
    let err = pretrain(config, &tmp.path().join("r"), &options(tmp.path(), false, None), &Device::flex(), &mut Silent)
        .unwrap_err()
        .to_string();
    assert!(err.contains("diverged") && err.contains("at step") && err.contains("last good checkpoint"), "{err}");
}

/// Records the largest gradient difference between two gradient sets, relative to the largest
/// gradient of each parameter.
struct GradDiff<'a> {
    a: &'a burn::optim::GradientsParams,
    b: &'a burn::optim::GradientsParams,
    worst: f32,
    params: usize,
}

impl burn::module::ModuleVisitor for GradDiff<'_> {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<burn::tensor::Tensor<D>>) {
        let (a, b) = match (self.a.get::<D>(param.id), self.b.get::<D>(param.id)) {
            (Some(a), Some(b)) => (a, b),
            (None, None) => return, // not on the loss's path (e.g. the encoder-only head)
            (a, b) => {
                panic!("parameter {} has a gradient in one set only ({} / {})", param.id, a.is_some(), b.is_some())
            }
        };
        let scale = a.clone().abs().max().into_scalar::<f32>().max(1e-12);
        let diff = (a - b).abs().max().into_scalar::<f32>();
        self.worst = self.worst.max(diff / scale);
        self.params += 1;
    }
}

#[test]
fn sharded_gradients_equal_the_single_pass_gradients() {
    use burn::module::Module;
    use ddmlab::data::loader::Batch;
    use ddmlab::data::{ImageSet, ImageShape};
    use ddmlab::tokenizer::PatchPca;

    let config = micro_config(1);
    let shape = ImageShape { channels: 1, height: 28, width: 28 };
    let n = 13; // an odd batch: shards of unequal size
    let images: Vec<u8> = (0..n * 28 * 28).map(|i| ((i * 37 + i / 28 * 11) % 256) as u8).collect();
    let set = ImageSet { images, labels: vec![0; n], shape, classes: vec!["x".into()] };
    let pca = PatchPca::fit(&set, config.model.patch, 2000, 0).unwrap();
    let batch = Batch {
        step: 5,
        images: set.images.iter().map(|&p| p as f32 / 127.5 - 1.0).collect(),
        labels: set.labels.clone(),
        indices: (0..n).collect(),
    };
    let fitted = ddmlab::tokenizer::FittedTokenizer::Pca { pca, latent_dim: 4, unit: false };
    let mut trainer = ddmlab::train::Trainer::new(config, &fitted, &Device::flex()).unwrap();
    trainer.shards = 1;
    let (loss_1, grads_1) = trainer.gradients(&batch);
    trainer.shards = 3;
    let (loss_3, grads_3) = trainer.gradients(&batch);
    assert!((loss_1 - loss_3).abs() <= 1e-5 * loss_1.abs(), "loss {loss_1} vs {loss_3}");
    let mut diff = GradDiff { a: &grads_1, b: &grads_3, worst: 0.0, params: 0 };
    trainer.model.visit(&mut diff);
    assert!(diff.params > 10, "visited {} parameters", diff.params);
    assert!(diff.worst < 1e-4, "largest relative gradient difference {}", diff.worst);
}

/// A network other than the denoising ViT: one linear map from pixels to a number.
#[derive(burn::module::Module, Debug)]
struct PixelRegressor {
    lin: burn::nn::Linear,
}

impl ddmlab::train::Network for PixelRegressor {
    fn build(config: &ddmlab::config::RunConfig, device: &Device) -> Self {
        PixelRegressor { lin: burn::nn::LinearConfig::new(config.model.image.numel(), 1).init(device) }
    }
}

/// Its objective: predict 1 for every image (no random draws).
struct PredictOne;

impl ddmlab::train::Objective<PixelRegressor> for PredictOne {
    type Draws = ();

    fn draw(&self, _seed: u64, _step: usize, _labels: &[u32]) {}

    fn slice(&self, _: &(), _lo: usize, _hi: usize) {}

    fn loss(&self, model: &PixelRegressor, x0: burn::tensor::Tensor<4>, _: &()) -> burn::tensor::Tensor<1> {
        let [b, c, h, w] = x0.dims();
        (model.lin.forward(x0.reshape([b, c * h * w])) - 1.0).square().mean()
    }
}

#[test]
fn the_trainer_and_checkpoints_take_any_network_and_objective() {
    use ddmlab::data::loader::Batch;
    use ddmlab::store::CheckpointState;
    use ddmlab::train::trainer_state::{restore_with, save};

    let config = micro_config(4);
    let device = Device::flex();
    let mut trainer = ddmlab::train::Trainer::with_objective(config, &device, |_, _| PredictOne);
    let batch = |step| Batch {
        step,
        images: (0..8 * 784).map(|i| ((i * 31 + step) % 200) as f32 / 100.0 - 1.0).collect(),
        labels: vec![0; 8],
        indices: (0..8).collect(),
    };
    let losses: Vec<f64> = (0..4).map(|s| trainer.step(&batch(s), 1e-3).unwrap()).collect();
    assert!(losses[3] < losses[0], "{losses:?}");
    let tmp = tempfile::tempdir().unwrap();
    let state = CheckpointState { step: 4, total_steps: 4, elapsed_s: 0.0 };
    let ckpt = save(tmp.path(), &trainer, &state).unwrap();
    let (mut back, restored) = restore_with(&ckpt, &device, |_, _| PredictOne).unwrap();
    assert_eq!(restored, state);
    let (a, b) = (trainer.step(&batch(4), 1e-3).unwrap(), back.step(&batch(4), 1e-3).unwrap());
    assert!((a - b).abs() <= 1e-6 * a.abs().max(1.0), "continued {a} vs restored {b}");
}

#[test]
fn a_fresh_start_drops_the_metrics_of_an_attempt_that_left_no_checkpoint() {
    // Regression: a run folder copied without its checkpoints (or killed before the first one)
    // kept its old metric lines, and the new run appended the same steps again.
    let tmp = tempfile::tempdir().unwrap();
    write_synthetic_fashion_mnist(tmp.path());
    let run = tmp.path().join("r");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(
        run.join("metrics.jsonl"),
        "{\"step\":1,\"loss\":9.0,\"lr\":0.0,\"img_per_s\":1.0,\"elapsed_s\":1.0}\n",
    )
    .unwrap();
    pretrain(micro_config(2), &run, &options(tmp.path(), false, None), &Device::flex(), &mut Silent).unwrap();
    let lines = metrics::read::<metrics::MetricLine>(&run.join("metrics.jsonl")).unwrap();
    assert_eq!(lines.iter().map(|m| m.step).collect::<Vec<_>>(), vec![1, 2]);
    assert!(lines[0].loss != 9.0);
}

/// MAR trains through the same loop: its first loss is the noise variance (the head's zero
/// init), and a killed run resumes to exactly the uninterrupted trajectory (issue 12); the same
/// for the causal variants and the L2 baseline.
#[test]
fn a_mar_run_trains_and_resumes_exactly() {
    use ddmlab::config::{MarLoss, MarVariant};
    let tmp = tempfile::tempdir().unwrap();
    write_synthetic_fashion_mnist(tmp.path());
    let device = Device::flex();
    for (variant, loss, codebook) in [
        (MarVariant::Mar, MarLoss::Diffusion, 0),
        (MarVariant::ArRandom, MarLoss::Diffusion, 0),
        (MarVariant::ArRaster, MarLoss::L2, 0),
        (MarVariant::Mar, MarLoss::CrossEntropy, 8),
    ] {
        let mut config = micro_mar(6);
        let mar = config.mar.as_mut().unwrap();
        (mar.variant, mar.loss, mar.codebook) = (variant, loss, codebook);
        config.validate().unwrap();
        let name = format!("{}-{}", variant.name(), loss.name());
        let whole = pretrain(
            config.clone(),
            &tmp.path().join(format!("{name}-a")),
            &options(tmp.path(), false, None),
            &device,
            &mut Silent,
        )
        .unwrap();
        assert_eq!(whole.losses.len(), 6);
        assert!(whole.losses.iter().all(|l| l.is_finite()), "{name}: {:?}", whole.losses);
        if loss == MarLoss::Diffusion {
            assert!((whole.losses[0] - 1.0).abs() < 0.05, "{name}: first loss {} vs noise variance 1", whole.losses[0]);
        }

        let run_b = tmp.path().join(format!("{name}-b"));
        pretrain(config.clone(), &run_b, &options(tmp.path(), false, Some(3)), &device, &mut Silent).unwrap();
        let resumed = pretrain(config.clone(), &run_b, &options(tmp.path(), true, None), &device, &mut Silent).unwrap();
        assert_eq!(whole.losses[3..], resumed.losses[..], "{name}: uninterrupted vs resumed");
        // The run folder's config carries the section, so the run is a MAR run when read back.
        let saved = std::fs::read_to_string(run_b.join("config.toml")).unwrap();
        assert!(saved.contains("[mar]") && saved.contains(variant.name()), "{saved}");
        if codebook > 0 {
            // The codebook is fitted once, saved with its report, and read back on resume.
            let book = ddmlab::mar::codebook::load_run_codebook(&run_b, &config).unwrap().unwrap();
            assert_eq!(book.size(), codebook);
            assert!(run_b.join("codebook-fit.json").exists());
            // A fresh cross-entropy head is uniform over the codes: its first loss is ln K.
            assert!((whole.losses[0] - (codebook as f64).ln()).abs() < 1e-3, "{name}: {}", whole.losses[0]);
        }
    }
}

/// A finished run trained on (`extend_to`, the MAR study's second budget) is the longer run of
/// the same warm-up: loss for loss the 8-step run whose warm-up is the 4-step run's, and its
/// saved config says so. A cosine schedule, whose every step depends on the total, is refused
/// naming the field, and so is a shorter total.
#[test]
fn a_finished_run_trained_on_is_the_longer_run_with_its_warm_up() {
    let tmp = tempfile::tempdir().unwrap();
    write_synthetic_fashion_mnist(tmp.path());
    let device = Device::flex();
    let mut config = micro_mar(4);
    config.train.min_lr_frac = 1.0;
    config.train.warmup_frac = 0.5; // 2 of 4 steps; 4 of 8 for a fresh 8-step run
    let run = tmp.path().join("on");
    let first = pretrain(config.clone(), &run, &options(tmp.path(), false, None), &device, &mut Silent).unwrap();
    let on = ddmlab::runs::PretrainOptions { extend_to: Some(8), ..options(tmp.path(), true, None) };
    let more = pretrain(config.clone(), &run, &on, &device, &mut Silent).unwrap();
    assert_eq!((more.step, more.total_steps, more.losses.len()), (8, 8, 4));

    let mut longer = config.clone();
    (longer.train.steps, longer.train.warmup_steps) = (8, 2);
    let whole =
        pretrain(longer, &tmp.path().join("whole"), &options(tmp.path(), false, None), &device, &mut Silent).unwrap();
    assert_eq!(whole.losses[..4], first.losses[..], "the same warm-up: the same first steps");
    assert_eq!(whole.losses[4..], more.losses[..], "trained on vs the longer run");
    let saved = run_folder::read_config(&run).unwrap();
    assert_eq!((saved.train.steps, saved.train.warmup_steps), (8, 2));
    // Resuming the extended run reads its schedule back (a later resume is a no-op).
    let again = pretrain(config.clone(), &run, &options(tmp.path(), true, None), &device, &mut Silent).unwrap();
    assert_eq!((again.step, again.losses.len()), (8, 0));
    // A fresh 8-step run of warm-up fraction 0.5 warms up for 4 steps: another trajectory.
    let mut frac = config.clone();
    frac.train.steps = 8;
    let fresh =
        pretrain(frac, &tmp.path().join("frac"), &options(tmp.path(), false, None), &device, &mut Silent).unwrap();
    assert_ne!(fresh.losses[2..4], whole.losses[2..4]);

    let fewer = ddmlab::runs::PretrainOptions { extend_to: Some(6), ..options(tmp.path(), true, None) };
    let err = pretrain(config.clone(), &run, &fewer, &device, &mut Silent).unwrap_err().to_string();
    assert!(err.contains("train.steps") && err.contains("not fewer"), "{err}");
    let mut cosine = config;
    cosine.train.min_lr_frac = 0.1;
    let run_c = tmp.path().join("cosine");
    pretrain(cosine.clone(), &run_c, &options(tmp.path(), false, None), &device, &mut Silent).unwrap();
    let err = pretrain(cosine, &run_c, &on, &device, &mut Silent).unwrap_err().to_string();
    assert!(err.contains("train.min_lr_frac") && err.contains("constant after warm-up"), "{err}");
}

/// A run writes TensorBoard events beside its metrics: each metrics line's numbers as scalars at
/// its step (the gradient norm among them, the unclipped norm of the line's last step), a generator's sample grid at each regular checkpoint as an image, and a resumed run
/// a second file that starts at the step it resumed from.
#[test]
fn a_run_writes_tensorboard_scalars_and_sample_grids_and_a_resume_starts_a_new_file() {
    use ddmlab::store::tensorboard::{event_files, read_events};
    let tmp = tempfile::tempdir().unwrap();
    write_synthetic_fashion_mnist(tmp.path());
    let device = Device::flex();
    let config = micro(preset("dit-tiny").unwrap().config, 6);
    let run = tmp.path().join("dit");
    pretrain(config.clone(), &run, &options(tmp.path(), false, Some(4)), &device, &mut Silent).unwrap();
    pretrain(config, &run, &options(tmp.path(), true, None), &device, &mut Silent).unwrap();

    let files = event_files(&run).unwrap();
    assert_eq!(files.len(), 2, "{files:?}");
    let (first, second) = (read_events(&files[0]).unwrap(), read_events(&files[1]).unwrap());
    assert_eq!(first[0].file_version.as_deref(), Some("brain.Event:2"));
    assert!(first.iter().all(|e| e.session_log.is_none()), "a fresh run starts at step 0");
    assert_eq!((second[1].step, second[1].session_log.as_ref().map(|l| l.status)), (4, Some(1)));
    let scalars = |events: &[ddmlab::store::tensorboard::Event], tag: &str| -> Vec<(i64, f32)> {
        events
            .iter()
            .flat_map(|e| e.summary.iter().flat_map(move |s| s.value.iter().map(move |v| (e.step, v))))
            .filter(|(_, v)| v.tag == tag)
            .filter_map(|(step, v)| v.simple_value.map(|x| (step, x)))
            .collect()
    };
    let all: Vec<ddmlab::store::tensorboard::Event> = first.iter().chain(&second).cloned().collect();
    let lines = metrics::read::<metrics::MetricLine>(&run.join("metrics.jsonl")).unwrap();
    let loss: Vec<(i64, f32)> = lines.iter().map(|m| (m.step as i64, m.loss as f32)).collect();
    assert_eq!(scalars(&all, "train/loss"), loss);
    assert_eq!(scalars(&all, "train/lr").len(), 6);
    let norms: Vec<(i64, f32)> = lines.iter().map(|m| (m.step as i64, m.grad_norm.unwrap() as f32)).collect();
    assert_eq!(scalars(&all, "train/grad_norm"), norms, "every line's gradient norm");
    // The first step's norm, measured apart: a fresh trainer's gradient of batch 0, unclipped.
    let config = run_folder::read_config(&run).unwrap();
    let set = ddmlab::runs::pretrain::load_train_set(&config, tmp.path()).unwrap();
    let fit = ddmlab::runs::FitOptions { data_root: tmp.path(), stop_after_minutes: None };
    let tokenizer =
        ddmlab::runs::load_or_fit_tokenizer(&run, &config, &set, fit, &device, &mut Silent).unwrap().unwrap();
    let plan =
        BatchPlan { seed: config.train.seed, batch_size: config.train.batch_size, augment: config.train.augment };
    let trainer = Trainer::new(config, &tokenizer, &device).unwrap();
    let (_, grads) = trainer.gradients(&plan.make(&set, 0));
    let norm = ddmlab::optim::clip::global_norm(&trainer.model, &grads);
    let logged = lines[0].grad_norm.unwrap();
    assert!(norm > 0.0 && (logged - norm).abs() <= 1e-9 * norm, "step 1: logged {logged}, measured {norm}");
    let images: Vec<(i64, i32)> = all
        .iter()
        .flat_map(|e| e.summary.iter().flat_map(move |s| s.value.iter().map(move |v| (e.step, v))))
        .filter_map(|(step, v)| v.image.as_ref().filter(|_| v.tag == "samples").map(|i| (step, i.width)))
        .collect();
    // Regular checkpoints at 3 and 6 (the stop at 4 draws none); 10 classes in a row.
    assert_eq!(images.iter().map(|i| i.0).collect::<Vec<_>>(), vec![3, 6]);
    assert!(run.join("samples-step-000006.png").exists() && !run.join("samples-step-000004.png").exists());
    assert!(images[0].1 > 10 * 28, "one image per class: width {}", images[0].1);
}

/// `--tokenizer-from`: a run starts with another run's fitted tokenizer (byte for byte, loss
/// for loss the same as fitting its own); a run naming another tokenizer is one clear error.
#[test]
fn a_run_adopts_another_runs_fitted_tokenizer_only_when_it_names_the_same_one() {
    let tmp = tempfile::tempdir().unwrap();
    write_synthetic_fashion_mnist(tmp.path());
    let device = Device::flex();
    let config = micro_config(2);
    let run_a = tmp.path().join("a");
    let a = pretrain(config.clone(), &run_a, &options(tmp.path(), false, None), &device, &mut Silent).unwrap();
    let run_b = tmp.path().join("b");
    run_folder::adopt_tokenizer(&run_a, &run_b, &config).unwrap();
    let file = |run: &std::path::Path| std::fs::read(run_folder::tokenizer_path(run, &config)).unwrap();
    assert_eq!(file(&run_a), file(&run_b));
    assert!(run_folder::fit_report_path(&run_b).exists());
    let b = pretrain(config.clone(), &run_b, &options(tmp.path(), false, None), &device, &mut Silent).unwrap();
    assert_eq!(a.losses, b.losses);

    let mut other = config.clone();
    if let ddmlab::tokenizer::TokenizerSpec::Pca { latent_dim, .. } = &mut other.denoise.tokenizer {
        *latent_dim += 1;
    } else {
        panic!("ldae-tiny is a PCA run");
    }
    let e = run_folder::adopt_tokenizer(&run_a, &tmp.path().join("c"), &other).unwrap_err().to_string();
    assert!(e.contains("pretrain.tokenizer_from") && e.contains("PCA"), "{e}");
    assert!(!tmp.path().join("c").exists(), "nothing written on error");
    // A source run without its tokenizer file is an error naming the file.
    std::fs::remove_file(run_folder::tokenizer_path(&run_a, &config)).unwrap();
    let e = run_folder::adopt_tokenizer(&run_a, &tmp.path().join("d"), &config).unwrap_err().to_string();
    assert!(e.contains("pca"), "{e}");
}

/// MAR sampling runs its chunks side by side (one per CPU worker): the images are the same, in
/// the same order, as one chunk after another.
#[test]
fn mar_samples_do_not_depend_on_the_thread_count() {
    use ddmlab::mar::{MarSampling, sample_mar_images};
    let tmp = tempfile::tempdir().unwrap();
    write_synthetic_fashion_mnist(tmp.path());
    let device = Device::flex();
    let run = tmp.path().join("mar");
    pretrain(micro_mar(2), &run, &options(tmp.path(), false, None), &device, &mut Silent).unwrap();
    let ckpt = checkpoint::resolve(Some(&run), "latest").unwrap();
    let (config, _) = trainer_state::read_meta(&ckpt).unwrap();
    let tokenizer = run_folder::load_tokenizer(&run, &config).unwrap().bind(config.model.image, &device);
    let model: ddmlab::models::mar::Mar =
        trainer_state::load_weights(&ckpt, run_folder::weights_file(true), &config, &device).unwrap();
    let sampling = MarSampling { steps: 4, head_steps: 5, temperature: 1.0, cfg: 1.5 };
    let labels = [0, 1, 2, 3, 4];
    let draw = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            sample_mar_images(
                &model,
                None,
                &config,
                tokenizer.as_ref(),
                &sampling,
                &labels,
                5,
                (7, 2),
                &device,
                &mut |_| {},
            )
            .unwrap()
        })
    };
    let serial = draw(1);
    assert_eq!(serial.len(), 5);
    assert_eq!(serial, draw(3));
}

/// A time budget only chooses the step count: the run it makes is the run with that many steps
/// (the throwaway trainer that times the step must not draw from the run's seeds or touch its
/// folder), and the count is saved in the run's config so that `--resume` keeps it.
#[test]
fn a_time_budget_run_is_the_run_of_its_resolved_step_count() {
    let tmp = tempfile::tempdir().unwrap();
    write_synthetic_fashion_mnist(tmp.path());
    let device = Device::flex();
    let mut budgeted = micro_config(0);
    budgeted.train.time_budget_min = 0.003;
    let a = tmp.path().join("budget");
    let by_time = pretrain(budgeted, &a, &options(tmp.path(), false, None), &device, &mut Silent).unwrap();
    let saved = run_folder::read_config(&a).unwrap();
    assert!(saved.train.steps >= 1, "the resolved count is saved");
    assert_eq!(by_time.losses.len(), saved.train.steps);

    let mut fixed = saved;
    fixed.train.time_budget_min = 0.0;
    let by_steps =
        pretrain(fixed, &tmp.path().join("steps"), &options(tmp.path(), false, None), &device, &mut Silent).unwrap();
    assert_eq!(by_time.losses, by_steps.losses);
}

/// `train.cache_latents`: a latent DiT and a MAR on a stochastic tokenizer (a patch VAE) train
/// from the training set's posterior encoded once, loss for loss the runs that encode each batch
/// up to float rounding (the cache keeps `std` as `sample(e = 1) - mean` and samples
/// `mean + std e`, where the tokenizer computes `s (mu + sigma e)`); a resumed run reads its
/// cache back, a cache that says otherwise changes the losses (it is what training reads), and
/// a corrupt one is one error naming the file.
#[test]
fn a_run_trained_from_cached_latents_is_the_run_that_encodes_each_batch() {
    use ddmlab::runs::token_cache::{cache_path, read_posterior, write_posterior};
    let tmp = tempfile::tempdir().unwrap();
    write_synthetic_fashion_mnist(tmp.path());
    let device = Device::flex();
    let vae_dit = micro(preset("ladder-t2-vae-d4").unwrap().config, 6);
    let mut vae_mar = micro_mar(6);
    vae_mar.denoise.tokenizer = vae_dit.denoise.tokenizer.clone();
    vae_mar.model.patch = vae_dit.model.patch;
    vae_mar.validate().unwrap();
    for (name, config) in [("dit", vae_dit), ("mar", vae_mar)] {
        let logged = |run: &std::path::Path| -> Vec<f64> {
            metrics::read::<metrics::MetricLine>(&run.join("metrics.jsonl")).unwrap().iter().map(|m| m.loss).collect()
        };
        let plain = tmp.path().join(format!("{name}-plain"));
        pretrain(config.clone(), &plain, &options(tmp.path(), false, None), &device, &mut Silent).unwrap();
        let mut cached_config = config.clone();
        cached_config.train.cache_latents = true;
        let cached = tmp.path().join(format!("{name}-cached"));
        pretrain(cached_config.clone(), &cached, &options(tmp.path(), false, Some(3)), &device, &mut Silent).unwrap();
        let file = cache_path(&cached);
        let written = std::fs::metadata(&file).unwrap().modified().unwrap();
        pretrain(cached_config.clone(), &cached, &options(tmp.path(), true, None), &device, &mut Silent).unwrap();
        assert_eq!(std::fs::metadata(&file).unwrap().modified().unwrap(), written, "{name}: the resume read it back");
        let (a, b) = (logged(&plain), logged(&cached));
        assert_eq!(a.len(), 6);
        let worst = a.iter().zip(&b).map(|(x, y)| ((x - y) / x).abs()).fold(0.0, f64::max);
        assert!(worst < 1e-6, "{name}: cached losses {b:?} vs encoded {a:?} (relative {worst:e})");
        eprintln!("{name}: cached vs encoded losses over 6 steps, largest relative difference {worst:e}");

        // The cache's sample against the tokenizer's own, on the same images and noise.
        let set = ddmlab::runs::pretrain::load_train_set(&config, tmp.path()).unwrap();
        let fit = ddmlab::runs::FitOptions { data_root: tmp.path(), stop_after_minutes: None };
        let fitted =
            ddmlab::runs::load_or_fit_tokenizer(&cached, &config, &set, fit, &device, &mut Silent).unwrap().unwrap();
        let tokenizer = fitted.bind(config.model.image, &device);
        let (l, d) = (config.model.tokens(), tokenizer.latent_dim());
        let cache = read_posterior(&file, set.len(), (l, d)).unwrap();
        let idx: Vec<usize> = (0..16).map(|i| (i * 5) % set.len()).collect();
        let pixels: Vec<f32> = idx.iter().flat_map(|&i| set.image_f32(i)).collect();
        let noise: Vec<f32> = (0..16 * l * d).map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 2.0).collect();
        let x = burn::tensor::Tensor::<4>::from_data(burn::tensor::TensorData::new(pixels, [16, 1, 28, 28]), &device);
        let e = burn::tensor::Tensor::<3>::from_data(burn::tensor::TensorData::new(noise.clone(), [16, l, d]), &device);
        let direct: Vec<f32> = tokenizer.encode_sample(x, e).into_data().convert::<f32>().try_into_vec().unwrap();
        let from_cache = cache.sample(&idx, Some(&noise));
        let scale = direct.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let gap = direct.iter().zip(&from_cache).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(tokenizer.stochastic() && gap <= 1e-6 * scale, "{name}: cached sample off by {gap} (scale {scale})");
        eprintln!("{name}: the cache's posterior sample is the tokenizer's to {gap:e} (largest token {scale})");

        // A cache whose means are shifted is what the run trains on: other losses.
        let n = ddmlab::runs::pretrain::load_train_set(&config, tmp.path()).unwrap().len();
        let tokens = (cached_config.model.tokens(), cached_config.denoise.tokenizer.latent_dim(1));
        let mut shifted = read_posterior(&file, n, tokens).unwrap();
        shifted.mean.iter_mut().for_each(|m| *m += 3.0);
        let other = tmp.path().join(format!("{name}-shifted"));
        std::fs::create_dir_all(&other).unwrap();
        write_posterior(&cache_path(&other), &shifted).unwrap();
        pretrain(cached_config.clone(), &other, &options(tmp.path(), false, None), &device, &mut Silent).unwrap();
        // (The first loss is the same: the network's last layer starts at zero, its output too.)
        let moved = logged(&other).iter().zip(&a).map(|(x, y)| ((x - y) / y).abs()).fold(0.0, f64::max);
        eprintln!("{name}: a cache with shifted means moves the losses by {moved:e} (relative)");
        assert!(moved > 1e-4, "{name}: the shifted cache was not read ({:?} vs {a:?})", logged(&other));

        let corrupt = tmp.path().join(format!("{name}-corrupt"));
        std::fs::create_dir_all(&corrupt).unwrap();
        std::fs::write(cache_path(&corrupt), b"not a cache").unwrap();
        let err = pretrain(cached_config, &corrupt, &options(tmp.path(), false, None), &device, &mut Silent)
            .unwrap_err()
            .to_string();
        assert!(err.contains("latents-train.safetensors") && err.contains("`mean`, `std`"), "{err}");
    }
    // Refused where it cannot hold: augmented images, a run that encodes nothing.
    let mut flip = micro(preset("ladder-t2-vae-d4").unwrap().config, 6);
    flip.train.cache_latents = true;
    flip.train.augment = ddmlab::data::transform::Augment::Flip;
    assert!(flip.validate().unwrap_err().to_string().contains("train.augment = none"));
    let mut pixels = micro(preset("dit-tiny").unwrap().config, 6);
    pixels.train.cache_latents = true;
    assert!(pixels.validate().unwrap_err().to_string().contains("no latent to cache"));
}
