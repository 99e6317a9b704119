//! Claims about `deconstruct` running a declared study: it trains and measures every planned
//! run; run again it redoes nothing that is finished, and a killed (partly trained) run resumes
//! from its checkpoint; an edited study is refused in the old folder, naming both versions; the
//! report has one verdict table per budget with every claim and the commit that made the runs;
//! a corrupt tokenizer of a run is one error naming the file.

use std::path::Path;
use std::time::SystemTime;

use burn::tensor::Device;
use ddmlab::deconstruct::{DeconstructOptions, deconstruct};
use ddmlab::runs::{PretrainOptions, pretrain};
use ddmlab::store::checkpoint;
use ddmlab::study::verdicts::run_dir;
use ddmlab::study::{Stamp, Study};
use ddmlab::train::Silent;

use crate::common::{inception_weights, write_synthetic_fashion_mnist};

/// Table 1's rows on patch PCA (its conv-VAE rows train a conv tokenizer first), tiny.
const STUDY: &str = r#"
name = "tiny-ladder"
about = "Table 1 on patch PCA, a tiny network"
runner = "ladder"
budgets = [3, 4]
seeds = [0, 1]
overrides = ["model.width=32", "model.cond_width=8", "model.depth=2", "model.encoder_depth=1", "model.heads=2",
             "model.freq_dim=32", "denoise.tokenizer.samples=500", "train.batch_size=8"]
protocol = { probe_epochs = 2, knn_k = 3 }

[[arm]]
name = "ladder-t1-dit"
budgets = [3]

[[arm]]
name = "ladder-t1-uncond"
budgets = [3]

[[arm]]
name = "ladder-t1-gamma2"
budgets = [3]

[[claim]]
id = "i"
text = "on patch PCA, removing class conditioning raises the probe"
paper = "57.5 -> 62.5"
a = { arm = "ladder-t1-uncond", metric = { kind = "probe" } }
b = { arm = "ladder-t1-dit", metric = { kind = "probe" } }
test = { kind = "greater" }
budgets = [3, 4]

[[claim]]
id = "g"
text = "depth 1 beats depth 2"
paper = "-"
a = { arm = "ladder-t1-gamma2", metric = { kind = "probe", depth = 1 } }
b = { arm = "ladder-t1-gamma2", metric = { kind = "probe", depth = 2 } }
test = { kind = "equivalent", margin = 1.0 }
budgets = [3]

[[table]]
title = "Table 1"
rows = [{ arm = "ladder-t1-dit", row = "DiT", paper_probe = 57.5 }, { arm = "ladder-t1-gamma2", row = "gamma2", paper_probe = 63.4 }]
"#;

fn options(root: &Path, out: &Path, study: &str) -> DeconstructOptions {
    DeconstructOptions {
        study: Study::from_toml(study, Path::new("tiny.toml")).unwrap(),
        out: out.to_path_buf(),
        data_root: root.to_path_buf(),
        inception: None,
        stop_after_minutes: None,
        report_only: false,
    }
}

fn modified(path: &Path) -> SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

#[test]
fn a_study_runs_every_planned_run_and_a_rerun_redoes_only_what_is_unfinished() {
    let tmp = tempfile::tempdir().unwrap();
    write_synthetic_fashion_mnist(tmp.path());
    let out = tmp.path().join("ladder");
    let opts = options(tmp.path(), &out, STUDY);
    let device = Device::flex();
    let stamp = Stamp { study: "tiny-ladder".into(), hash: opts.study.hash().unwrap() };
    // A run "killed" after its checkpoint at step 2 of 3, before the study first runs.
    stamp.check_folder(&out).unwrap();
    let killed = run_dir(&out, 3, "ladder-t1-gamma2", 0);
    stamp.write(&killed).unwrap();
    let config = opts.study.config("ladder-t1-gamma2", 3, 0).unwrap();
    let early = PretrainOptions {
        data_root: tmp.path().to_path_buf(),
        resume: false,
        stop_after_steps: Some(2),
        stop_after_minutes: None,
        init_from: None,
        extend_to: None,
        sample_grids: true,
    };
    pretrain(config, &killed, &early, &device, &mut Silent).unwrap();
    let before = std::fs::read_to_string(killed.join("metrics.jsonl")).unwrap();

    deconstruct(&opts, &device, &mut Silent).unwrap();
    let after = std::fs::read_to_string(killed.join("metrics.jsonl")).unwrap();
    assert!(
        after.starts_with(&before) && after.lines().count() == before.lines().count() + 1,
        "resumed at step 2:\n{before}\n{after}"
    );
    // Budget 3: three arms x two seeds; budget 4: only the claim's two arms.
    for (budget, arm, present) in
        [(3, "ladder-t1-gamma2", true), (4, "ladder-t1-uncond", true), (4, "ladder-t1-gamma2", false)]
    {
        for seed in [0, 1] {
            assert_eq!(run_dir(&out, budget, arm, seed).join("probe.json").exists(), present, "{budget} {arm} {seed}");
        }
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    for needle in ["### 3 steps", "### 4 steps", "of 2 claims", "of 1 claims", "(i)", "(g)", "57.5", "n=2"] {
        assert!(report.contains(needle), "`{needle}` missing:\n{report}");
    }
    let made_by = format!(
        "Made by: {} (sources {})",
        ddmlab::store::provenance::commit_label(),
        ddmlab::store::provenance::SRC_HASH
    );
    assert_eq!(report.matches(&made_by).count(), 2, "each budget's commits:\n{report}");
    let provenance = ddmlab::store::provenance::read(&killed).unwrap();
    let stages: Vec<&str> = provenance.iter().map(|p| p.stage.as_str()).collect();
    assert!(stages.contains(&"train") && stages.contains(&"probe") && stages.contains(&"tokenizer"), "{stages:?}");
    assert!(out.join("tokenizers").read_dir().unwrap().count() == 1, "one PCA shared by every arm");

    // Run again: nothing is retrained or re-probed, and a missing probe is measured again.
    let done = run_dir(&out, 3, "ladder-t1-uncond", 1);
    let ckpt = checkpoint::latest(&done).unwrap().unwrap();
    let steps: Vec<usize> = checkpoint::list(&done).unwrap().iter().map(|c| c.0).collect();
    assert_eq!(steps, vec![3], "a finished run keeps only its last checkpoint");
    let stamps = (modified(&ckpt.join("model.bpk")), modified(&done.join("probe.json")));
    std::fs::remove_file(killed.join("probe.json")).unwrap();
    deconstruct(&opts, &device, &mut Silent).unwrap();
    assert_eq!((modified(&ckpt.join("model.bpk")), modified(&done.join("probe.json"))), stamps, "reused");
    assert!(killed.join("probe.json").exists(), "a missing probe is measured again");

    // The study edited (a third seed) is another version: refused in this folder, both named.
    let edited = STUDY.replace("seeds = [0, 1]", "seeds = [0, 1, 2]");
    let err = deconstruct(&options(tmp.path(), &out, &edited), &device, &mut Silent).unwrap_err().to_string();
    let new_hash = Study::from_toml(&edited, Path::new("e")).unwrap().hash().unwrap();
    assert!(err.contains(&stamp.hash) && err.contains(&new_hash) && err.contains("tiny-ladder"), "{err}");

    // A run folder of another version is never read into the report.
    let foreign = run_dir(&out, 4, "ladder-t1-dit", 1);
    Stamp { study: "tiny-ladder".into(), hash: "0000000000000000".into() }.write(&foreign).unwrap();
    deconstruct(&DeconstructOptions { report_only: true, ..opts.clone() }, &device, &mut Silent).unwrap();
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("another study version were left out"), "{report}");

    // A run whose results are all there is done even without its checkpoints.
    std::fs::remove_dir_all(done.join("checkpoints")).unwrap();
    Stamp { study: "tiny-ladder".into(), hash: stamp.hash.clone() }.write(&foreign).unwrap();
    deconstruct(&opts, &device, &mut Silent).unwrap();
    assert!(!done.join("checkpoints").exists(), "not retrained");

    // A corrupt tokenizer of an unfinished run is one error naming the file.
    std::fs::remove_dir_all(killed.join("checkpoints")).unwrap();
    std::fs::remove_file(killed.join("probe.json")).unwrap();
    std::fs::write(killed.join("pca.safetensors"), b"garbage").unwrap();
    let err = deconstruct(&opts, &device, &mut Silent).unwrap_err().to_string();
    assert!(err.contains("pca.safetensors") && err.contains("not a safetensors"), "{err}");
}

#[test]
fn a_kept_tokenizer_is_adopted_once_with_the_commit_that_made_it_and_a_foreign_one_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = options(tmp.path(), &tmp.path().join("study"), STUDY);
    let key = opts.study.plan().unwrap()[0].config.denoise.tokenizer.fit_key(
        &ddmlab::data::DataSource::FashionMnist,
        ddmlab::data::ImageShape { channels: 1, height: 28, width: 28 },
    );
    let kept = tmp.path().join("kept").join(&key);
    std::fs::create_dir_all(&kept).unwrap();
    std::fs::write(kept.join("pca.safetensors"), b"weights").unwrap();
    let commit = "0123456789abcdef0123456789abcdef01234567";
    assert!(ddmlab::deconstruct::reuse_tokenizer(&opts.out, &opts.study, &kept, commit).unwrap());
    let adopted = opts.out.join("tokenizers").join(&key);
    assert_eq!(std::fs::read(adopted.join("pca.safetensors")).unwrap(), b"weights");
    let records = ddmlab::store::provenance::read(&adopted).unwrap();
    assert_eq!((records.len(), records[0].commit.as_str()), (1, commit));
    assert!(!ddmlab::deconstruct::reuse_tokenizer(&opts.out, &opts.study, &kept, commit).unwrap(), "once only");
    let other = tmp.path().join("kept").join("fashion_mnist-1x28x28-pca-p4-n9-s0");
    std::fs::create_dir_all(&other).unwrap();
    let err = ddmlab::deconstruct::reuse_tokenizer(&opts.out, &opts.study, &other, commit).unwrap_err().to_string();
    assert!(err.contains("not a tokenizer of study `tiny-ladder`"), "{err}");
}

/// A MAR arm beside a patch-PCA DiT at 1.5x its steps, budgets that train the runs on.
const PRESETS_STUDY: &str = r#"
name = "tiny-presets"
about = "a tiny MAR beside a patch-PCA DiT, trained on"
runner = "presets"
budgets = [2, 4]
seeds = [0, 1]
extend = true
overrides = ["train.batch_size=8", "train.log_every=1", "model.heads=2"]
protocol = { probe_epochs = 2, knn_k = 3, mar = { steps = 4, head_steps = 5, temperature = 1.0 }, rfid = 8 }

[[arm]]
name = "mar"
preset = "mar-tiny"
set = ["model.width=32", "model.cond_width=32", "model.depth=2", "model.encoder_depth=1"]

[[arm]]
name = "pca-dit"
preset = "ladder-t1-dit"
set = ["model.width=32", "model.cond_width=8", "model.depth=2", "model.encoder_depth=1", "model.freq_dim=32",
       "denoise.tokenizer.samples=500", "train.min_lr_frac=1.0"]
step_scale = 1.5

[[claim]]
id = "m"
text = "MAR beats the DiT"
paper = "-"
a = { arm = "pca-dit", metric = { kind = "fid", n = 8 } }
b = { arm = "mar", metric = { kind = "fid", n = 8 } }
test = { kind = "greater" }
budgets = [2, 4]

[[table]]
title = "generators"
rows = [{ arm = "mar", row = "MAR", paper_fid = 1.55 }, { arm = "pca-dit", row = "DiT", paper_fid = 2.27 }]
"#;

/// A `presets` study: each arm's preset with its overrides and step scale, its FID by the
/// protocol's MAR sampling (DDIM-50 for the DiT), the learned tokenizer's rFID beside it, and
/// the later budget trained on from the earlier run: loss for loss the planned longer run.
#[test]
fn a_presets_study_trains_its_runs_on_and_measures_fid_by_the_declared_sampler() {
    let tmp = tempfile::tempdir().unwrap();
    write_synthetic_fashion_mnist(tmp.path());
    let out = tmp.path().join("presets");
    let opts = DeconstructOptions { inception: Some(inception_weights()), ..options(tmp.path(), &out, PRESETS_STUDY) };
    let device = Device::flex();
    deconstruct(&opts, &device, &mut Silent).unwrap();

    for (arm, sampler, steps) in [("mar", "mar-4-head5-tau1", [2, 4]), ("pca-dit", "ddim-50", [3, 6])] {
        for (budget, steps) in [2, 4].into_iter().zip(steps) {
            for seed in [0, 1] {
                let dir = run_dir(&out, budget, arm, seed);
                let rows = ddmlab::eval::gen_eval::read_rows(&dir.join("fid.json")).unwrap();
                assert_eq!(rows.len(), 1, "{}", dir.display());
                assert_eq!((rows[0].sampler.to_string().as_str(), rows[0].step, rows[0].n), (sampler, steps, 8));
                assert!(!dir.join("probe.json").exists(), "no probe that no claim names");
            }
        }
    }
    // The later budget continued the earlier run: its first steps are the earlier run's, and
    // all its losses are those of the planned longer run trained from scratch.
    let losses = |run: &Path| -> Vec<f64> {
        ddmlab::store::metrics::read::<ddmlab::store::metrics::MetricLine>(&run.join("metrics.jsonl"))
            .unwrap()
            .iter()
            .map(|m| m.loss)
            .collect()
    };
    let on = run_dir(&out, 4, "mar", 1);
    assert_eq!(losses(&on)[..2], losses(&run_dir(&out, 2, "mar", 1))[..]);
    let fresh = tmp.path().join("fresh");
    let config = opts.study.config("mar", 4, 1).unwrap();
    assert!(config.train.warmup_steps > 0 || config.train.warmup_frac == 0.0, "{:?}", config.train);
    let early = PretrainOptions {
        data_root: tmp.path().to_path_buf(),
        resume: false,
        stop_after_steps: None,
        stop_after_minutes: None,
        init_from: None,
        extend_to: None,
        sample_grids: true,
    };
    let whole = pretrain(config, &fresh, &early, &device, &mut Silent).unwrap();
    assert_eq!(whole.losses, losses(&on), "trained on vs the planned 4-step run");
    let stages: Vec<String> = ddmlab::store::provenance::read(&on).unwrap().iter().map(|p| p.detail.clone()).collect();
    assert!(stages.iter().any(|d| d.contains("..2")) && stages.iter().any(|d| d.contains("2..4")), "{stages:?}");

    // The PCA's rFID once, beside the DiT's FID; none for MAR's pixel patches.
    let tokenizers: Vec<_> = out.join("tokenizers").read_dir().unwrap().collect();
    assert_eq!(tokenizers.len(), 2, "{tokenizers:?}");
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    for needle in [
        "### 2 steps",
        "### 4 steps",
        "K = 4 generation steps",
        "trains the runs of the budget before on",
        "tokenizer rFID-8",
    ] {
        assert!(report.contains(needle), "`{needle}` missing:\n{report}");
    }
    let dit_row = report.lines().find(|l| l.starts_with("| DiT |")).unwrap();
    let mar_row = report.lines().find(|l| l.starts_with("| MAR |")).unwrap();
    assert!(dit_row.trim_end().ends_with(" |") && !dit_row.ends_with("| - |"), "{dit_row}");
    // The DiT's FIDs (at its 3 and 6 steps) are read at the study's budgets 2 and 4.
    assert!(dit_row.contains("(n=2)"), "{dit_row}");
    assert_eq!(report.matches("`pca-dit` FID-8: ").count(), 2, "{report}");
    assert!(!report.contains("`pca-dit` FID-8: -"), "{report}");
    assert!(mar_row.ends_with("| - |"), "{mar_row}");

    // Run again: nothing is redone.
    let fid = run_dir(&out, 4, "pca-dit", 0).join("fid.json");
    let stamp = modified(&fid);
    deconstruct(&opts, &device, &mut Silent).unwrap();
    assert_eq!(modified(&fid), stamp);
}

/// Table 4's kind of claim, tiny: an encoder fine-tuned from its pretraining against the same
/// network fine-tuned from a fresh initialisation.
const FINETUNE_STUDY: &str = r#"
name = "tiny-finetune"
about = "fine-tuning from pretraining vs from random init"
runner = "presets"
budgets = [4]
seeds = [0, 1]
overrides = ["model.width=32", "model.cond_width=8", "model.depth=2", "model.encoder_depth=1", "model.heads=2",
             "denoise.tokenizer.samples=500", "train.batch_size=8"]
protocol = { probe_epochs = 2, knn_k = 3, finetune_epochs = 1.0 }

[[arm]]
name = "ldae"
preset = "ldae-tiny"

[[claim]]
id = "t4"
text = "fine-tuning from l-DAE pretraining beats fine-tuning from random init"
paper = "Table 4"
a = { arm = "ldae", metric = { kind = "finetune", random = true } }
b = { arm = "ldae", metric = { kind = "finetune" } }
test = { kind = "greater" }
budgets = [4]

[[table]]
title = "Table 4"
rows = [{ arm = "ldae", row = "l-DAE", paper_probe = 66.6, paper_finetune = 83.7 }]
"#;

/// A fine-tuning metric: each run fine-tuned into `RUN/finetune/` (from its weights) and
/// `RUN/finetune-random/`, the claim decided on their test top-1, nothing redone on a rerun.
#[test]
fn a_study_fine_tunes_its_runs_from_their_pretraining_and_from_random_init() {
    let tmp = tempfile::tempdir().unwrap();
    write_synthetic_fashion_mnist(tmp.path());
    let out = tmp.path().join("ft");
    let opts = options(tmp.path(), &out, FINETUNE_STUDY);
    let device = Device::flex();
    deconstruct(&opts, &device, &mut Silent).unwrap();
    for seed in [0, 1] {
        let dir = run_dir(&out, 4, "ldae", seed);
        for folder in ["finetune", "finetune-random"] {
            let top1 = ddmlab::eval::top1::final_top1(&dir.join(folder)).unwrap();
            assert!(top1.is_some_and(|t| (0.0..=100.0).contains(&t)), "{folder} {seed}: {top1:?}");
            let config = ddmlab::train::run_folder::read_config(&dir.join(folder)).unwrap();
            let section = config.finetune.unwrap();
            assert_eq!(
                (section.from, config.train.seed),
                (std::path::absolute(&dir).unwrap().display().to_string(), seed)
            );
            assert_eq!(checkpoint::list(&dir.join(folder)).unwrap().len(), 1, "pruned to its last checkpoint");
        }
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    for needle in ["(t4)", "fine-tune from random init", "n=2", "| paper fine-tune |", "| 83.7 |"] {
        assert!(report.contains(needle), "`{needle}` missing:\n{report}");
    }
    let rows = run_dir(&out, 4, "ldae", 1).join("finetune/finetune.json");
    let stamp = modified(&rows);
    deconstruct(&opts, &device, &mut Silent).unwrap();
    assert_eq!(modified(&rows), stamp, "a finished fine-tuning is not redone");
}
