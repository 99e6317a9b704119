//! Claims about fine-tuning (`runs::finetune`): the encoder starts from the pretrained run's EMA
//! weights (or a fresh initialisation), layer-wise decay reaches its step, the classifier learns
//! the synthetic classes, a stopped run resumed is the uninterrupted one, and a MAR / MAE
//! encoder fine-tunes the same way.

use burn::tensor::Device;
use ddmlab::config::FinetuneInit;
use ddmlab::eval::top1::read_rows;
use ddmlab::recipes::preset;
use ddmlab::runs::finetune::{FinetuneOptions, finetune};
use ddmlab::runs::pretrain;
use ddmlab::store::{checkpoint, metrics};
use ddmlab::train::Silent;

use crate::common::{micro, micro_mar, options, write_synthetic_fashion_mnist};

fn losses(run: &std::path::Path) -> Vec<(usize, f64)> {
    metrics::read::<metrics::MetricLine>(&run.join("metrics.jsonl")).unwrap().iter().map(|m| (m.step, m.loss)).collect()
}

/// The patch-embedding weights of a checkpoint's file, flattened.
fn embedding(ckpt: &std::path::Path, file: &str, finetuned: bool) -> Vec<f32> {
    let config = ddmlab::train::run_folder::read_config(ckpt.parent().unwrap().parent().unwrap()).unwrap();
    let device = Device::flex();
    let w = if finetuned {
        let m: ddmlab::models::finetune::Finetuned =
            ddmlab::train::trainer_state::load_weights(ckpt, file, &config, &device).unwrap();
        m.encoder.patch_embed.proj.weight.val()
    } else {
        let m: ddmlab::models::DenoisingVit =
            ddmlab::train::trainer_state::load_weights(ckpt, file, &config, &device).unwrap();
        m.patch_embed.proj.weight.val()
    };
    w.into_data().try_into_vec().unwrap()
}

#[test]
fn a_finetuned_encoder_starts_from_its_pretraining_learns_the_classes_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    write_synthetic_fashion_mnist(tmp.path());
    let device = Device::flex();
    let source = tmp.path().join("pre");
    pretrain(
        micro(preset("ldae-tiny").unwrap().config, 6),
        &source,
        &options(tmp.path(), false, None),
        &device,
        &mut Silent,
    )
    .unwrap();
    let opts = |init, resume, stop| FinetuneOptions {
        source: source.clone(),
        init,
        data_root: tmp.path().to_path_buf(),
        overrides: [
            "train.batch_size=16",
            "train.blr=0.1",
            "train.epochs=40",
            "train.checkpoint_every=40",
            "train.log_every=1",
            "train.augment={ kind = \"none\" }",
        ]
        .map(String::from)
        .to_vec(),
        seed: 0,
        resume,
        stop_after_minutes: stop,
    };
    let run = tmp.path().join("ft");
    let summary = finetune(&run, &opts(FinetuneInit::Pretrained, false, None), &device, &mut Silent).unwrap();
    assert_eq!(summary.step, 160, "40 epochs of 4 batches");
    // Step 0 is the pretrained EMA encoder, weight for weight.
    let pre = checkpoint::latest(&source).unwrap().unwrap();
    let start = run.join("checkpoints/step-000000");
    assert_eq!(embedding(&start, "model.bpk", true), embedding(&pre, "ema.bpk", false));
    // It learns the synthetic classes (each a bright band at its own rows): far above chance.
    let rows = read_rows(&run).unwrap();
    assert_eq!(rows.iter().map(|r| r.step).collect::<Vec<_>>(), [40, 80, 120, 160]);
    let last = rows.last().unwrap();
    assert!(last.top1 >= 60.0 && last.n == 32, "test top-1 {} on {} images", last.top1, last.n);
    let l = losses(&run);
    assert!(l[l.len() - 5..].iter().map(|x| x.1).sum::<f64>() < l[..5].iter().map(|x| x.1).sum::<f64>() * 0.7, "{l:?}");

    // Layer-wise decay reaches the step: the embeddings (layer 0) trained at 0.75^3 of the rate
    // moved; at a decay of 1e-6 (a rate 1e-18 of the head's) they stay where they started.
    let gap = |a: &[f32], b: &[f32]| a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    let end = checkpoint::latest(&run).unwrap().unwrap();
    assert!(gap(&embedding(&start, "model.bpk", true), &embedding(&end, "model.bpk", true)) > 1e-3);
    let frozen = tmp.path().join("ft-frozen");
    let mut o = opts(FinetuneInit::Pretrained, false, None);
    o.overrides.extend(["train.epochs=2".to_string(), "finetune.layer_decay=0.000001".to_string()]);
    finetune(&frozen, &o, &device, &mut Silent).unwrap();
    let (a, b) = (
        embedding(&frozen.join("checkpoints/step-000000"), "model.bpk", true),
        embedding(&checkpoint::latest(&frozen).unwrap().unwrap(), "model.bpk", true),
    );
    assert!(gap(&a, &b) < 1e-9, "the embeddings moved by {}", gap(&a, &b));

    // Random init: another encoder at step 0.
    let random = tmp.path().join("ft-random");
    let mut short = opts(FinetuneInit::Random, false, None);
    short.overrides.push("train.epochs=1".into());
    finetune(&random, &short, &device, &mut Silent).unwrap();
    assert_ne!(
        embedding(&checkpoint::latest(&random).unwrap().unwrap(), "model.bpk", true)[..8],
        embedding(&pre, "ema.bpk", false)[..8]
    );

    // Stopped after its first checkpoint (a step limit through the driver) and resumed: the
    // uninterrupted run, loss for loss.
    let stopped = tmp.path().join("ft-stopped");
    let config = ddmlab::train::run_folder::read_config(&run).unwrap();
    ddmlab::train::run_folder::adopt_tokenizer(&source, &stopped, &config).unwrap();
    let early = ddmlab::runs::PretrainOptions { stop_after_steps: Some(50), ..options(tmp.path(), false, None) };
    pretrain(config, &stopped, &early, &device, &mut Silent).unwrap();
    finetune(&stopped, &opts(FinetuneInit::Pretrained, true, None), &device, &mut Silent).unwrap();
    assert_eq!(losses(&stopped), l, "resumed at step 50");
    assert_eq!(read_rows(&stopped).unwrap(), rows);

    // A MAR / MAE run's encoder fine-tunes the same way (read as its probe reads it): step 0 is
    // its EMA encoder.
    let mar = tmp.path().join("mar");
    pretrain(micro_mar(2), &mar, &options(tmp.path(), false, None), &device, &mut Silent).unwrap();
    let ft_mar = tmp.path().join("ft-mar");
    let mut o = FinetuneOptions { source: mar.clone(), ..opts(FinetuneInit::Pretrained, false, None) };
    o.overrides.push("train.epochs=2".into());
    finetune(&ft_mar, &o, &device, &mut Silent).unwrap();
    let z_proj = |ckpt: &std::path::Path, file: &str, finetuned: bool| -> Vec<f32> {
        let config = ddmlab::train::run_folder::read_config(ckpt.parent().unwrap().parent().unwrap()).unwrap();
        let device = Device::flex();
        let w = if finetuned {
            let m: ddmlab::models::finetune::Finetuned<ddmlab::models::mar::Mar> =
                ddmlab::train::trainer_state::load_weights(ckpt, file, &config, &device).unwrap();
            m.encoder.z_proj.weight.val()
        } else {
            let m: ddmlab::models::mar::Mar =
                ddmlab::train::trainer_state::load_weights(ckpt, file, &config, &device).unwrap();
            m.z_proj.weight.val()
        };
        w.into_data().try_into_vec().unwrap()
    };
    let mar_ckpt = checkpoint::latest(&mar).unwrap().unwrap();
    assert_eq!(z_proj(&ft_mar.join("checkpoints/step-000000"), "model.bpk", true), z_proj(&mar_ckpt, "ema.bpk", false));
    assert_eq!(read_rows(&ft_mar).unwrap().last().unwrap().step, 8);
}
