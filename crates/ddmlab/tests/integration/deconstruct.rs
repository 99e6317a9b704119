//! Claims about `deconstruct`: it trains, probes and tabulates every rung of a table for every
//! seed; run again it redoes nothing that is finished, and a killed (partly trained) rung
//! resumes from its checkpoint; a corrupt tokenizer of a rung is one error naming the file.

use std::path::Path;
use std::time::SystemTime;

use burn::tensor::Device;
use ddmlab::deconstruct::{DeconstructOptions, deconstruct, run_dir, rung_config};
use ddmlab::eval::ProbeConfig;
use ddmlab::models::ladder::{self, Table};
use ddmlab::train::{PretrainOptions, Silent, checkpoint, pretrain};

use crate::common::write_synthetic_fashion_mnist;

fn options(root: &Path, out: &Path) -> DeconstructOptions {
    let set = |s: &str| s.to_string();
    DeconstructOptions {
        tables: vec![Table::One],
        // Table 1's rows on patch PCA (its conv-VAE rows train a conv tokenizer first).
        rungs: ["ladder-t1-dit", "ladder-t1-uncond", "ladder-t1-gamma2"].map(String::from).to_vec(),
        out: out.to_path_buf(),
        data_root: root.to_path_buf(),
        steps: 3,
        seeds: vec![0, 1],
        probe: ProbeConfig { epochs: 2, warmup_epochs: 1, batch_size: 16, ..Default::default() },
        knn_k: 3,
        fid_n: 8,
        inception: None,
        stop_after_minutes: None,
        sweeps: false,
        overrides: vec![
            set("model.width=32"),
            set("model.cond_width=8"),
            set("model.depth=2"),
            set("model.encoder_depth=1"),
            set("model.heads=2"),
            set("model.freq_dim=32"),
            set("denoise.tokenizer.samples=500"),
            set("train.batch_size=8"),
        ],
    }
}

fn modified(path: &Path) -> SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

#[test]
fn a_table_runs_every_rung_and_seed_and_a_rerun_redoes_only_what_is_unfinished() {
    let tmp = tempfile::tempdir().unwrap();
    write_synthetic_fashion_mnist(tmp.path());
    let out = tmp.path().join("ladder");
    let opts = options(tmp.path(), &out);
    let device = Device::flex();
    // A rung "killed" after its checkpoint at step 2 of 3, before the table first runs.
    let killed = run_dir(&out, "ladder-t1-gamma2", 0);
    let rung = ladder::rungs().into_iter().find(|r| r.name == "ladder-t1-gamma2").unwrap();
    let config = rung_config(&rung, &opts, 0).unwrap();
    let early = PretrainOptions {
        data_root: tmp.path().to_path_buf(),
        resume: false,
        stop_after_steps: Some(2),
        stop_after_minutes: None,
        init_from: None,
    };
    pretrain(config, &killed, &early, &device, &mut Silent).unwrap();
    let before = std::fs::read_to_string(killed.join("metrics.jsonl")).unwrap();

    deconstruct(&opts, &device, &mut Silent).unwrap();
    let after = std::fs::read_to_string(killed.join("metrics.jsonl")).unwrap();
    assert!(
        after.starts_with(&before) && after.lines().count() == before.lines().count() + 1,
        "resumed at step 2:\n{before}\n{after}"
    );
    let table = std::fs::read_to_string(out.join("table-1.md")).unwrap();
    for rung in ["ladder-t1-dit", "ladder-t1-uncond", "ladder-t1-gamma2"] {
        let line = table.lines().find(|l| l.contains(rung)).unwrap_or_else(|| panic!("{rung} missing:\n{table}"));
        assert!(line.contains(" ± "), "two seeds measured: {line}");
    }
    assert!(out.join("table-1.png").exists() && out.join("verdicts.md").exists());
    assert!(out.join("tokenizers").read_dir().unwrap().count() == 1, "one PCA shared by the three rungs");

    // Run again: nothing is retrained or re-probed.
    let done = run_dir(&out, "ladder-t1-uncond", 1);
    let ckpt = checkpoint::latest(&done).unwrap().unwrap();
    let steps: Vec<usize> = checkpoint::list(&done).unwrap().iter().map(|c| c.0).collect();
    assert_eq!(steps, vec![3], "a finished run keeps only its last checkpoint");
    let stamps = (modified(&ckpt.join("model.bpk")), modified(&done.join("probe.json")));
    std::fs::remove_file(killed.join("probe.json")).unwrap();
    deconstruct(&opts, &device, &mut Silent).unwrap();
    assert_eq!(
        (modified(&ckpt.join("model.bpk")), modified(&done.join("probe.json"))),
        stamps,
        "a finished rung is reused"
    );
    assert!(killed.join("probe.json").exists(), "a missing probe is measured again");

    // Another plan in the same folder is refused.
    let err = deconstruct(&DeconstructOptions { steps: 5, ..opts.clone() }, &device, &mut Silent).unwrap_err();
    assert!(err.to_string().contains("3 steps"), "{err}");

    // A rung whose results are all there is done even without its checkpoints (a results-only
    // copy of the folder, as kept in the repository, resumes).
    std::fs::remove_dir_all(done.join("checkpoints")).unwrap();
    deconstruct(&opts, &device, &mut Silent).unwrap();
    assert!(!done.join("checkpoints").exists(), "not retrained");

    // A corrupt tokenizer of an unfinished rung is one error naming the file.
    std::fs::remove_dir_all(killed.join("checkpoints")).unwrap();
    std::fs::remove_file(killed.join("probe.json")).unwrap();
    std::fs::write(killed.join("pca.safetensors"), b"garbage").unwrap();
    let err = deconstruct(&opts, &device, &mut Silent).unwrap_err().to_string();
    assert!(err.contains("pca.safetensors") && err.contains("not a safetensors"), "{err}");
}
