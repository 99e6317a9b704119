//! The command line: bad input gives one readable line and a non-zero exit, never a panic;
//! the subcommands run end to end on a small synthetic data set.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::str::FromStr;

mod common;
use common::{logged_losses, write_data};

fn ddmlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ddmlab")).args(args).output().expect("runs")
}

/// Assert a clean failure whose message mentions every `needle`.
fn fails_with(out: Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure, got success; stderr: {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"), "panic: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "`{n}` missing from: {stderr}");
    }
}

/// An image grid of `side`-pixel images (at any integer scale, tiles 2 pixels apart) holding at
/// least `n` tiles, whose tiles are not blank.
fn assert_grid(path: &Path, side: u32, n: usize) {
    let img = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgb8();
    let (w, h) = img.dimensions();
    let tile = (side..=w.min(h))
        .step_by(side as usize)
        .find(|t| (w - 2) % (t + 2) == 0 && (h - 2) % (t + 2) == 0)
        .unwrap_or_else(|| panic!("{}: {w} x {h} is no grid of {side}-pixel tiles", path.display()));
    let (cols, rows) = ((w - 2) / (tile + 2), (h - 2) / (tile + 2));
    assert!((cols * rows) as usize >= n, "{}: {cols} x {rows} tiles for {n} images", path.display());
    let flat = |c: u32, r: u32| {
        let at = |x: u32, y: u32| img.get_pixel(2 + c * (tile + 2) + x, 2 + r * (tile + 2) + y).0;
        let first = at(0, 0);
        (0..tile).all(|y| (0..tile).all(|x| at(x, y) == first))
    };
    assert!((0..rows).any(|r| (0..cols).any(|c| !flat(c, r))), "{}: every tile is one flat colour", path.display());
}

/// A plot: the 900 x 540 canvas with something drawn on it.
fn assert_plot(path: &Path) {
    let img = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgb8();
    assert_eq!(img.dimensions(), (900, 540), "{}", path.display());
    let inked = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
    assert!(inked > 2000, "{}: {inked} pixels drawn", path.display());
}

const MICRO: [&str; 14] = [
    "--set",
    "model.width=32",
    "--set",
    "model.cond_width=8",
    "--set",
    "model.depth=2",
    "--set",
    "model.encoder_depth=1",
    "--set",
    "model.heads=2",
    "--set",
    "denoise.tokenizer.samples=500",
    "--batch-size",
    "8",
];

/// The data root the README's test command fetches into (`ddmlab data fetch`): `DDMLAB_DATA`,
/// else `data/` at the workspace root, as the library's integration tests read it.
fn fetched_data() -> std::path::PathBuf {
    std::env::var_os("DDMLAB_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data"))
}

#[test]
fn invalid_config_values_name_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("r");
    let out = out.to_str().unwrap();
    fails_with(ddmlab(&["pretrain", "--out", out, "--blr=-1"]), &["train.blr"]);
    fails_with(ddmlab(&["pretrain", "--out", out, "--set", "model.heads=5"]), &["model.heads", "192"]);
    fails_with(ddmlab(&["pretrain", "--out", out, "--set", "model.nonsense=3"]), &["nonsense"]);
    fails_with(ddmlab(&["pretrain", "--out", out, "--set", "train.batch_size=lots"]), &["train.batch_size"]);
    fails_with(ddmlab(&["pretrain", "--out", out, "--preset", "ldae-huge"]), &["unknown preset", "ldae-tiny"]);
    fails_with(ddmlab(&["pretrain", "--out", out, "--data", "svhn"]), &["unknown data set"]);
    fails_with(ddmlab(&["--threads", "0", "presets"]), &["--threads"]);
    fails_with(ddmlab(&["deconstruct", "--study", "nonesuch", "--out", out]), &["nonesuch", "ladder"]);
    let ladder = ["deconstruct", "--study", "ladder", "--out", out];
    fails_with(ddmlab(&[&ladder[..], &["--task", "train:600"]].concat()), &["`train:600`", "train:<budget>:<i>"]);
    fails_with(ddmlab(&[&ladder[..], &["--task", "report"]].concat()), &["holds no runs of study `ladder`"]);
    fails_with(ddmlab(&[&ladder[..], &["--slurm", "--dry-run", "--time", "3"]].concat()), &["--time 3", "5 minutes"]);
    fails_with(ddmlab(&[&ladder[..], &["--slurm", "--sbatch", "mem=8G", "--dry-run"]].concat()), &["`mem=8G`"]);
}

#[test]
fn a_corrupt_config_file_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("bad.toml");
    std::fs::write(&cfg, "preset = \"x\"\n[model\n").unwrap();
    fails_with(ddmlab(&["pretrain", "--out", "unused", "--config", cfg.to_str().unwrap()]), &["bad.toml"]);
}

#[test]
fn missing_data_and_unwritable_run_folders_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("r");
    let empty = tmp.path().join("nodata");
    let args = ["pretrain", "--out", out.to_str().unwrap(), "--data-dir", empty.to_str().unwrap(), "--steps", "1"];
    fails_with(ddmlab(&args), &["train-images-idx3-ubyte", "ddmlab data fetch"]);
    let args = ["pretrain", "--out", "/proc/ddmlab-run", "--steps", "1"];
    fails_with(ddmlab(&args), &["/proc/ddmlab-run"]);
    fails_with(ddmlab(&["probe", "--run", tmp.path().to_str().unwrap()]), &["no checkpoint"]);
}

/// Synthetic data in `root` and a 4-step micro `ldae-tiny` run in `root/run` (with `extra`
/// flags); returns the run folder.
fn pretrain_tiny(root: &Path, extra: &[&str]) -> std::path::PathBuf {
    write_data(root);
    let run = root.join("run");
    let (data, run_s) = (root.to_str().unwrap(), run.to_str().unwrap());
    let mut args = vec!["pretrain", "--preset", "ldae-tiny", "--out", run_s, "--data-dir", data, "--steps", "4"];
    args.extend(MICRO);
    args.extend(extra);
    let out = ddmlab(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    run
}

#[test]
fn pretrain_probe_denoise_and_pca_run_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let run = pretrain_tiny(tmp.path(), &[]);
    let (data, run_s) = (tmp.path().to_str().unwrap(), run.to_str().unwrap());
    assert!(run.join("checkpoints/step-000004/ema.bpk").exists());

    let out = ddmlab(&["probe", "--run", run_s, "--data-dir", data, "--epochs", "2", "--knn-k", "3"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("raw pixels") && stdout.contains("random-init encoder") && stdout.contains("ldae-tiny (EMA)"),
        "{stdout}"
    );
    assert_plot(&run.join("probe.png"));
    let probe: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("probe.json")).unwrap()).unwrap();
    let rows = probe.as_array().unwrap_or_else(|| panic!("probe.json: {probe}"));
    assert!(rows.len() >= 3, "raw pixels, random init and the model: {probe}");
    for r in rows {
        let acc = r["linear"].as_f64().unwrap_or_else(|| panic!("no linear accuracy in {r}"));
        assert!((0.0..=100.0).contains(&acc), "{r}");
    }

    // The probe ablations: rows of their own protocol beside the default ones; bad depths named.
    let args = ["probe", "--run", run_s, "--data-dir", data, "--epochs", "2", "--knn-k", "3", "--no-baselines"];
    let out = ddmlab(&[&args[..], &["--encoder-depth", "2", "--t", "50", "--noisy"]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = std::fs::read_to_string(run.join("probe.md")).unwrap();
    assert!(table.contains("t=50, encoder depth 2, noisy input") && table.contains("kNN k=3 |"), "{table}");
    fails_with(ddmlab(&[&args[..], &["--encoder-depth", "3"]].concat()), &["--encoder-depth", "1..=2"]);
    fails_with(ddmlab(&[&args[..], &["--t", "1000"]].concat()), &["--t", "below"]);

    let out = ddmlab(&["denoise", "--run", run_s, "--data-dir", data, "--n", "4"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_grid(&run.join("denoise.png"), 28, 4);

    fails_with(ddmlab(&["sample", "--run", run_s]), &["needs a generator", "image on patch PCA"]);

    let png = tmp.path().join("pca.png");
    let out = ddmlab(&["pca", "--run", run_s, "--out", png.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_grid(&png, 4, 1);

    // A resumed run keeps its saved config: a flag that would change it is refused, named.
    fails_with(
        ddmlab(&["pretrain", "--out", run_s, "--data-dir", data, "--resume", "--set", "train.seed=12345"]),
        &["train.seed", "12345", "config.toml"],
    );
    // The flags the run was started with describe its saved config: accepted.
    let start = ["pretrain", "--preset", "ldae-tiny", "--out", run_s, "--data-dir", data, "--steps", "4", "--resume"];
    let out = ddmlab(&[&start[..], &MICRO].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Resuming a finished run is a no-op that reports the final step.
    let out = ddmlab(&["pretrain", "--out", run_s, "--data-dir", data, "--resume"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("already finished at step 4/4") && !stdout.contains("NaN"), "{stdout}");
}

/// Steps derived from `--epochs` are resolved once and saved; resuming with the same `--epochs`
/// is the same config, and another `--epochs` is refused.
#[test]
fn a_run_sized_in_epochs_resumes_with_its_own_flags_only() {
    let tmp = tempfile::tempdir().unwrap();
    let run = pretrain_tiny(tmp.path(), &["--epochs", "0.5"]);
    let (data, run_s) = (tmp.path().to_str().unwrap(), run.to_str().unwrap());
    let again = |epochs: &str| {
        let args = ["pretrain", "--preset", "ldae-tiny", "--out", run_s, "--data-dir", data, "--epochs", epochs];
        ddmlab(&[&args[..], &MICRO, &["--resume"]].concat())
    };
    let out = again("0.5");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    fails_with(again("2"), &["train.epochs", "config.toml"]);
}

/// A resumed CPU run stays on the CPU: burn loads optimizer state on its default device, which a
/// build with a GPU feature made the GPU (on CI's lavapipe: Vulkan loaded, the loader's errors on
/// stderr, seconds of device probing). glibc's `LD_DEBUG=libs` lists every library the process
/// initialises. Only a GPU build can load Vulkan: `.ci/run` runs this test again in its
/// `--features wgpu` build.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn a_resumed_cpu_run_initialises_no_gpu() {
    let tmp = tempfile::tempdir().unwrap();
    let run = pretrain_tiny(tmp.path(), &["--set", "train.checkpoint_every=2"]);
    let (data, run_s) = (tmp.path().to_str().unwrap(), run.to_str().unwrap());
    std::fs::remove_dir_all(run.join("checkpoints/step-000004")).unwrap();
    std::fs::write(run.join("checkpoints/latest"), "step-000002").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ddmlab"))
        .args(["pretrain", "--out", run_s, "--data-dir", data, "--resume"])
        .env("LD_DEBUG", "libs")
        .env_remove("BURN_DEVICE")
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("step 4/4"), "{stderr}");
    assert!(stderr.contains("calling init"), "LD_DEBUG=libs printed nothing: the check would be blind");
    assert!(!stderr.contains("libvulkan"), "the resumed CPU run loaded Vulkan");
}

#[test]
fn train_a_mar_sample_it_and_reject_bad_mar_settings() {
    let tmp = tempfile::tempdir().unwrap();
    write_data(tmp.path());
    let data = tmp.path().to_str().unwrap();
    let run = tmp.path().join("mar");
    let run_s = run.to_str().unwrap();
    let mut args = vec!["train", "--preset", "mar-tiny", "--out", run_s, "--data-dir", data, "--steps", "2"];
    args.extend(["--set", "model.width=32", "--set", "model.heads=2", "--set", "mar.head_width=32"]);
    args.extend(["--batch-size", "8"]);
    let out = ddmlab(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let grid = tmp.path().join("mar.png");
    let npz = tmp.path().join("mar.npz");
    let sample = |extra: &[&str]| {
        let mut a = vec!["sample", "--run", run_s, "--steps", "4", "--n", "6", "--cfg", "2"];
        a.extend(["--out", grid.to_str().unwrap(), "--npz", npz.to_str().unwrap()]);
        a.extend(extra);
        ddmlab(&a)
    };
    let out = sample(&["--mar-steps", "8", "--temperature", "0.9"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("MAR K 8") && stdout.contains("temperature 0.9"), "{stdout}");
    assert_grid(&grid, 28, 6);
    // --n 6 over 10 class rows rounds up to one image per class.
    let batch = ddmlab::eval::npz::read_samples(&npz, 0).unwrap();
    assert_eq!(batch.labels, Some((0..10).collect()));
    // K beyond the 49 tokens, K = 0, a non-positive temperature: one clear error each.
    fails_with(sample(&["--mar-steps", "50"]), &["--mar-steps", "K = 50", "1..=49"]);
    fails_with(sample(&["--mar-steps", "0"]), &["--mar-steps", "K = 0"]);
    fails_with(sample(&["--temperature", "0"]), &["--temperature"]);
    // Export takes LTH14/mar's layout for a MAR run; imported into a fresh run of the same preset
    // and exported again, every tensor comes back bit for bit.
    let exported = tmp.path().join("mar.safetensors");
    let exported_s = exported.to_str().unwrap();
    fails_with(ddmlab(&["export", "--run", run_s, "-o", exported_s]), &["MAR run", "--layout mar"]);
    let out = ddmlab(&["export", "--run", run_s, "--layout", "mar", "-o", exported_s]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let imported = tmp.path().join("mar-imported");
    let mut import = vec!["import", exported_s, "--layout", "mar", "--preset", "mar-tiny", "--data-dir", data];
    import.extend(["--out", imported.to_str().unwrap()]);
    import.extend(["--set", "model.width=32", "--set", "model.heads=2", "--set", "mar.head_width=32"]);
    let out = ddmlab(&import);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let again = tmp.path().join("again.safetensors");
    let args = ["export", "--run", imported.to_str().unwrap(), "--layout", "mar", "-o", again.to_str().unwrap()];
    let out = ddmlab(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (first, second) = (std::fs::read(&exported).unwrap(), std::fs::read(&again).unwrap());
    let (first, second) = (
        safetensors::SafeTensors::deserialize(&first).unwrap(),
        safetensors::SafeTensors::deserialize(&second).unwrap(),
    );
    assert!(first.names().contains(&"diffloss.net.res_blocks.0.mlp.0.weight"), "{:?}", first.names());
    assert_eq!(first.len(), second.len());
    for (name, view) in first.tensors() {
        assert!(second.tensor(&name).unwrap().data() == view.data(), "{name} differs after import and export");
    }
    // The run's tokens as a file (the official MAR's latent cache) and back to images.
    let cache = tmp.path().join("tokens.safetensors");
    let args = ["tokenizer", "encode", "--run", run_s, "--data-dir", data, "--limit", "5", "--out"];
    let out = ddmlab(&[&args[..], &[cache.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let decoded = tmp.path().join("decoded.npz");
    let args = ["tokenizer", "decode", "--run", run_s, "--tokens", cache.to_str().unwrap(), "--npz"];
    let out = ddmlab(&[&args[..], &[decoded.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(ddmlab::eval::npz::read_samples(&decoded, 0).unwrap().images.len(), 5);
    fails_with(ddmlab(&["tokenizer", "encode", "--run", run_s, "--split", "val", "--out", "x"]), &["--split", "val"]);
    // Commands that read denoising-ViT runs name the MAR checkpoint instead of misreading it.
    fails_with(ddmlab(&["denoise", "--run", run_s, "--data-dir", data]), &["MAR checkpoint"]);
    // The learned variance (mar.learn_variance): trains, samples with it, and exports the
    // official head's 2 C output rows.
    let lv = tmp.path().join("mar-lv");
    let lv_s = lv.to_str().unwrap();
    let mut args = vec!["train", "--preset", "mar-tiny", "--out", lv_s, "--data-dir", data, "--steps", "2"];
    args.extend(["--set", "model.width=32", "--set", "model.heads=2", "--set", "mar.head_width=32"]);
    args.extend(["--batch-size", "8", "--set", "mar.learn_variance=true"]);
    let out = ddmlab(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let args =
        ["sample", "--run", lv_s, "--steps", "4", "--n", "2", "--mar-steps", "4", "--out", grid.to_str().unwrap()];
    let out = ddmlab(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = ddmlab(&[&args[..], &["--posterior-variance"]].concat());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("posterior variance"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fails_with(sample(&["--posterior-variance"]), &["--posterior-variance", "mar.learn_variance"]);
    let out = ddmlab(&["export", "--run", lv_s, "--layout", "mar", "-o", exported_s]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::read(&exported).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let head = file.tensor("diffloss.net.final_layer.linear.weight").unwrap();
    assert_eq!(head.shape()[0], 2 * 16, "eps and variance rows of the 16-channel tokens");

    // gen-eval on a MAR run sweeps K x temperature (the head's DDPM steps from --steps), with
    // the temperature curve; a K the model cannot take fails before anything is sampled.
    let weights = ddmlab::data::fetch::inception_path(&fetched_data());
    assert!(weights.exists(), "{}: run `ddmlab data fetch inception` first", weights.display());
    let w = weights.to_str().unwrap();
    let mut args = vec!["gen-eval", "--run", run_s, "--data-dir", data, "--weights", w, "--n", "4"];
    args.extend(["--batch-size", "4", "--steps", "3", "--mar-steps", "4,8", "--temperature", "0.9,1.1"]);
    let out = ddmlab(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows = ddmlab::eval::gen_eval::read_rows(&run.join("fid.json")).unwrap();
    let labels: Vec<String> = rows.iter().map(|r| r.sampler.to_string()).collect();
    assert_eq!(labels, ["mar-4-head3-tau0.9", "mar-4-head3-tau1.1", "mar-8-head3-tau0.9", "mar-8-head3-tau1.1"]);
    assert!(rows.iter().all(|r| r.fid.is_finite() && r.temperature.is_some()), "{rows:?}");
    assert_plot(&run.join("fid-temperature.png"));
    assert_plot(&run.join("fid-steps.png"));
    // --resume skips the points already in fid.json (their rows stay as they were) and
    // measures only the new one.
    let mut args = vec!["gen-eval", "--run", run_s, "--data-dir", data, "--weights", w, "--n", "4", "--resume"];
    args.extend([
        "--batch-size",
        "4",
        "--steps",
        "3",
        "--mar-steps",
        "4,8",
        "--temperature",
        "0.9,1.1",
        "--cfg",
        "1,2",
    ]);
    let out = ddmlab(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).matches("skipped").count(),
        4,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let resumed = ddmlab::eval::gen_eval::read_rows(&run.join("fid.json")).unwrap();
    assert_eq!(resumed.len(), 8);
    assert_eq!(resumed.iter().filter(|r| r.cfg == 1.0).cloned().collect::<Vec<_>>(), rows);
    fails_with(ddmlab(&["gen-eval", "--run", run_s, "--weights", w, "--mar-steps", "50"]), &["--mar-steps", "K = 50"]);

    // The training step of a MAR preset is benchmarked through the same command as the others.
    let out = ddmlab(&["bench", "--preset", "mar-tiny", "--steps", "1", "--batch-size", "4", "--repeats", "2"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("MAR train step"));
    fails_with(ddmlab(&["bench", "--preset", "mar-tiny", "--sample"]), &["--sample", "s/image"]);
    // The GEMM microbenchmark: its figure in GFLOP/s, a zero size refused.
    let out = ddmlab(&["bench", "--gemm", "16", "--steps", "2", "--repeats", "3"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("GFLOP/s (min") && stdout.contains("over 3 runs"), "{stdout}");
    fails_with(ddmlab(&["bench", "--gemm", "0"]), &["--gemm", "0"]);
}

/// MAE on the MAR backbone (l-DAE's Table 4 baseline): trains from its preset and is probed
/// like a denoising ViT (its encoder, nothing masked); probe settings it cannot take are named.
#[test]
fn train_the_mae_baseline_and_probe_its_encoder() {
    let tmp = tempfile::tempdir().unwrap();
    write_data(tmp.path());
    let data = tmp.path().to_str().unwrap();
    let run = tmp.path().join("mae");
    let run_s = run.to_str().unwrap();
    let mut args = vec!["train", "--preset", "mae-fmnist", "--out", run_s, "--data-dir", data, "--steps", "2"];
    args.extend(["--set", "model.width=32", "--set", "model.heads=2", "--set", "mar.head_width=32"]);
    args.extend(["--batch-size", "8"]);
    let out = ddmlab(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = ddmlab(&["probe", "--run", run_s, "--data-dir", data, "--epochs", "2", "--knn-k", "3", "--pool", "avg"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows = ddmlab::eval::report::read_rows(&run.join("probe.json")).unwrap();
    let subjects: Vec<&str> = rows.iter().map(|r| r.subject.as_str()).collect();
    assert!(subjects.contains(&"mae-fmnist (EMA)") && subjects.contains(&"random-init encoder"), "{subjects:?}");
    assert!(rows.iter().all(|r| r.linear.is_finite()), "{rows:?}");
    let table = std::fs::read_to_string(run.join("probe.md")).unwrap();
    assert!(table.contains("nothing masked") && !table.contains("t = 10"), "{table}");
    fails_with(ddmlab(&["probe", "--run", run_s, "--data-dir", data, "--t", "5"]), &["--t", "clean tokens"]);
    fails_with(
        ddmlab(&["probe", "--run", run_s, "--data-dir", data, "--encoder-depth", "9"]),
        &["--encoder-depth", "1..=4"],
    );
}

#[test]
fn train_a_dit_sample_it_and_reject_bad_generation_requests() {
    let tmp = tempfile::tempdir().unwrap();
    write_data(tmp.path());
    let data = tmp.path().to_str().unwrap();
    let run = tmp.path().join("dit");
    let run_s = run.to_str().unwrap();
    let mut args = vec!["train", "--preset", "dit-tiny", "--out", run_s, "--data-dir", data, "--steps", "3"];
    args.extend(["--set", "model.width=32", "--set", "model.cond_width=32", "--set", "model.depth=2"]);
    args.extend(["--set", "model.encoder_depth=1", "--set", "model.heads=2", "--batch-size", "8"]);
    let out = ddmlab(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let grid = tmp.path().join("grid.png");
    let folder = tmp.path().join("samples");
    let npz = tmp.path().join("samples.npz");
    let out = ddmlab(&[
        "sample",
        "--run",
        run_s,
        "--steps",
        "3",
        "--n",
        "10",
        "--cfg",
        "2",
        "--out",
        grid.to_str().unwrap(),
        "--folder",
        folder.to_str().unwrap(),
        "--npz",
        npz.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_grid(&grid, 28, 6);
    assert_eq!(std::fs::read_dir(&folder).unwrap().count(), 10);
    // The .npz batch holds the PNGs' pixels, with one label per image (classes 0..9, one each).
    let batch = ddmlab::eval::npz::read_samples(&npz, 0).unwrap();
    assert_eq!(batch.labels, Some((0..10).collect()));
    let png = ddmlab::eval::fid::read_image_dir(&folder, 0).unwrap();
    assert_eq!(batch.images, png);

    // gen-eval: every step count x scale, against N test images and the whole training split
    // (the synthetic one here), with its table and both curves.
    let weights = ddmlab::data::fetch::inception_path(&fetched_data());
    assert!(weights.exists(), "{}: run `ddmlab data fetch inception` first", weights.display());
    let w = weights.to_str().unwrap();
    let args = ["gen-eval", "--run", run_s, "--data-dir", data, "--weights", w, "--n", "4", "--batch-size", "4"];
    let mut args = args.to_vec();
    args.extend(["--cfg", "1,2", "--sampler", "ddim", "--steps", "2,3", "--full-train"]);
    let out = ddmlab(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows = ddmlab::eval::gen_eval::read_rows(&run.join("fid.json")).unwrap();
    assert_eq!(rows.len(), 2 * 2 * 2, "{rows:?}");
    let refs: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.reference.as_str()).collect();
    let n_train =
        ddmlab::eval::fid::FidSource::from_str("fashion-mnist:train").unwrap().images(tmp.path(), 0).unwrap().len();
    let full = format!("fashion-mnist:train ({n_train})");
    assert_eq!(refs.into_iter().collect::<Vec<_>>(), vec!["fashion-mnist:test", full.as_str()]);
    assert!(rows.iter().all(|r| r.fid.is_finite() && r.fid > 0.0 && r.precision.is_some()), "{rows:?}");
    assert_plot(&run.join("fid-cfg.png"));
    assert_plot(&run.join("fid-steps.png"));
    fails_with(ddmlab(&["gen-eval", "--run", run_s, "--weights", w, "--steps", "0"]), &["--steps", "at least 1"]);

    fails_with(ddmlab(&["sample", "--run", run_s, "--class", "12"]), &["class", "0..=9"]);
    // MAR's sampling settings on a DiT run: named, not ignored.
    fails_with(ddmlab(&["sample", "--run", run_s, "--mar-steps", "8"]), &["--mar-steps", "MAR sampling settings"]);
    fails_with(ddmlab(&["gen-eval", "--run", run_s, "--temperature", "0.9"]), &["--temperature", "MAR sampling"]);
    fails_with(
        ddmlab(&["sample", "--run", run_s, "--sampler", "plms"]),
        &["--sampler", "plms", "possible values: ddim, ddpm, euler, heun, dpm2m"],
    );
    // The ODE solvers sample from the same run.
    for sampler in ["euler", "heun", "dpm2m"] {
        let grid = tmp.path().join(format!("{sampler}.png"));
        let args = ["sample", "--run", run_s, "--sampler", sampler, "--steps", "3", "--n", "10", "--out"];
        let out = ddmlab(&[&args[..], &[grid.to_str().unwrap()]].concat());
        assert!(out.status.success(), "{sampler}: {}", String::from_utf8_lossy(&out.stderr));
        assert_grid(&grid, 28, 6);
    }
    fails_with(ddmlab(&["sample", "--run", run_s, "--ckpt", "77"]), &["no checkpoint at step 77"]);
    // The denoising figure works for any objective: a DiT's eps prediction implies x0_hat.
    let out = ddmlab(&["denoise", "--run", run_s, "--data-dir", data, "--n", "2", "--t", "100,900"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_grid(&run.join("denoise.png"), 28, 4);
    fails_with(ddmlab(&["denoise", "--run", run_s, "--data-dir", data, "--t", "5000"]), &["--t", "below 1000"]);
    let missing = tmp.path().join("absent");
    fails_with(ddmlab(&["fid", missing.to_str().unwrap(), "fashion-mnist:test"]), &["absent", "neither a folder"]);
    let weights = tmp.path().join("none.safetensors");
    let args = ["fid", folder.to_str().unwrap(), "fashion-mnist:test", "--weights", weights.to_str().unwrap()];
    fails_with(ddmlab(&args), &["none.safetensors", "data fetch inception"]);
}

/// FID between two pytorch-fid statistics files (written by numpy) needs no network and gives
/// scipy's value; a file that is neither statistics nor samples is named.
#[test]
fn fid_of_numpy_statistics_files_equals_scipys() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ddmlab/tests/fixtures/npz");
    let (a, b) = (fixtures.join("stats-a.npz"), fixtures.join("stats-b.npz"));
    let out = ddmlab(&["fid", a.to_str().unwrap(), b.to_str().unwrap(), "--weights", "/nonexistent"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures.join("reference.json")).unwrap()).unwrap();
    let want = format!("FID {:.4}", reference["fid_a_b"].as_f64().unwrap());
    assert!(stdout.contains(&want), "{stdout} (expected {want})");
    fails_with(ddmlab(&["fid", a.to_str().unwrap(), b.to_str().unwrap(), "--kid"]), &["KID", "statistics"]);
    let other = fixtures.join("no-sigma.npz");
    fails_with(ddmlab(&["fid", other.to_str().unwrap(), b.to_str().unwrap()]), &["no-sigma.npz", "mu", "arr_0"]);
    fails_with(ddmlab(&["fid", a.to_str().unwrap(), "out.png", "--save-stats"]), &["out.png", ".npz"]);
}

#[test]
fn a_latent_space_dit_trains_samples_and_probes() {
    let tmp = tempfile::tempdir().unwrap();
    write_data(tmp.path());
    let data = tmp.path().to_str().unwrap();
    let run = tmp.path().join("pca-dit");
    let run_s = run.to_str().unwrap();
    let mut args = vec!["train", "--preset", "dit-fmnist-pca", "--out", run_s, "--data-dir", data, "--steps", "2"];
    args.extend(["--set", "model.width=32", "--set", "model.cond_width=32", "--set", "model.depth=2"]);
    args.extend(["--set", "model.encoder_depth=1", "--set", "model.heads=2", "--batch-size", "8"]);
    args.extend(["--set", "denoise.tokenizer.samples=500"]);
    let out = ddmlab(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(run.join("pca.safetensors").exists());
    let grid = tmp.path().join("grid.png");
    let out = ddmlab(&["sample", "--run", run_s, "--steps", "2", "--n", "10", "--out", grid.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_grid(&grid, 28, 10);
    let out = ddmlab(&["probe", "--run", run_s, "--data-dir", data, "--epochs", "2", "--knn-k", "3", "--no-baselines"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("dit-fmnist-pca (EMA)"));
}

#[test]
fn a_conv_tokenizer_trains_evaluates_and_rejects_bad_settings() {
    let tmp = tempfile::tempdir().unwrap();
    write_data(tmp.path());
    let data = tmp.path().to_str().unwrap();
    let run = tmp.path().join("kl");
    let run_s = run.to_str().unwrap();
    let out = ddmlab(&["tokenizer", "train", "--preset", "kl-tiny", "--out", run_s, "--data-dir", data]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("PSNR"));
    let recon = std::fs::read_to_string(run.join("recon.md")).unwrap();
    assert!(recon.contains("PSNR") && recon.lines().any(|l| l.starts_with("| 8 ")), "{recon}");
    assert_grid(&run.join("recon-step-000008.png"), 16, 2);
    let out = ddmlab(&["tokenizer", "eval", "--run", run_s, "--data-dir", data, "--pca-dim", "4"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("patch PCA p=4 d=4"));
    assert!(run.join("recon-pca-d4.md").exists());
    // An evaluation on another image count has tables of its own: the training-time rows stay.
    let rows = std::fs::read_to_string(run.join("recon.json")).unwrap();
    let out = ddmlab(&["tokenizer", "eval", "--run", run_s, "--data-dir", data, "--n", "12", "--pca-dim", "4"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("reconstruction of 12 test images"));
    assert!(run.join("recon-n12.md").exists() && run.join("recon-pca-d4-n12.md").exists());
    assert_eq!(std::fs::read_to_string(run.join("recon.json")).unwrap(), rows, "recon.json holds 16-image rows");

    let other = tmp.path().join("other");
    let other_s = other.to_str().unwrap();
    fails_with(ddmlab(&["tokenizer", "train", "--preset", "kl-huge", "--out", other_s]), &["preset", "kl-tiny"]);
    fails_with(
        ddmlab(&["tokenizer", "train", "--preset", "kl-tiny", "--out", other_s, "--set", "loss.disc_weight=-1"]),
        &["loss.disc_weight"],
    );
    fails_with(
        ddmlab(&["tokenizer", "train", "--preset", "kl-tiny", "--out", run_s, "--data-dir", data]),
        &["--resume"],
    );
    // A resumed run keeps its saved config: a flag that would change it is refused, named.
    fails_with(
        ddmlab(&["tokenizer", "train", "--out", run_s, "--data-dir", data, "--resume", "--set", "loss.kl_weight=0.5"]),
        &["loss.kl_weight", "0.5", "config.toml"],
    );
    fails_with(ddmlab(&["tokenizer", "eval", "--run", other_s, "--data-dir", data]), &["no checkpoint"]);
    fails_with(ddmlab(&["tokenizer", "eval", "--run", run_s, "--data-dir", data, "--pca-dim", "99"]), &["latent_dim"]);
}

#[test]
fn a_dit_trains_and_samples_in_the_conv_vae_latent() {
    let tmp = tempfile::tempdir().unwrap();
    write_data(tmp.path());
    let data = tmp.path().to_str().unwrap();
    let run = tmp.path().join("kl-dit");
    let run_s = run.to_str().unwrap();
    let mut args = vec!["train", "--preset", "dit-fmnist-kl", "--out", run_s, "--data-dir", data, "--steps", "2"];
    args.extend(["--set", "model.width=32", "--set", "model.cond_width=32", "--set", "model.depth=2"]);
    args.extend(["--set", "model.encoder_depth=1", "--set", "model.heads=2", "--batch-size", "8"]);
    // A conv VAE small enough for a test, trained by the run first.
    for s in [
        "denoise.tokenizer.config.model.channels=8",
        "denoise.tokenizer.config.model.groups=4",
        "denoise.tokenizer.config.train.steps=2",
        "denoise.tokenizer.config.train.batch_size=4",
        "denoise.tokenizer.config.train.eval_images=4",
        "denoise.tokenizer.config.perceptual.steps=2",
        "denoise.tokenizer.config.loss.disc_start=1",
    ] {
        args.extend(["--set", s]);
    }
    let out = ddmlab(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(run.join("conv-vae.safetensors").exists() && run.join("conv-vae/recon.md").exists());
    let grid = tmp.path().join("grid.png");
    let out = ddmlab(&["sample", "--run", run_s, "--steps", "2", "--n", "10", "--out", grid.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_grid(&grid, 32, 10);
}

/// `--device` names what this build offers; a GPU device left out of the build names the flag
/// that builds it; a GPU device without any driver (the Vulkan loader and EGL pointed at nothing)
/// is one error naming the package to install, before any work.
#[test]
fn a_device_without_a_driver_or_a_feature_is_one_clear_error() {
    fails_with(ddmlab(&["bench", "--preset", "ldae-tiny", "--device", "tpu"]), &["--device", "tpu", "flex"]);
    #[cfg(not(feature = "wgpu"))]
    fails_with(
        ddmlab(&["bench", "--preset", "ldae-tiny", "--device", "wgpu"]),
        &["--device", "`wgpu` is not in this build", "cargo build --release --features wgpu"],
    );
    #[cfg(feature = "wgpu")]
    {
        let out = Command::new(env!("CARGO_BIN_EXE_ddmlab"))
            .args(["bench", "--preset", "ldae-tiny", "--steps", "1", "--batch-size", "2", "--device", "wgpu"])
            .env("VK_ICD_FILENAMES", "/nonexistent/icd.json")
            .env("VK_DRIVER_FILES", "/nonexistent/icd.json")
            .env("__EGL_VENDOR_LIBRARY_FILENAMES", "/nonexistent/egl.json")
            .output()
            .expect("runs");
        fails_with(out, &["--device wgpu", "no usable device", "mesa-vulkan-drivers"]);
    }
}

/// Run `args` + `--out A` to its end; start `args` + `--out B`, kill it with SIGKILL as soon as
/// `B/watch` exists (a checkpoint's `latest` pointer: the kill lands wherever the run is then,
/// mid-step or mid-write), and continue it with `resume` + `--out B --resume`. Returns `(A, B)`.
fn uninterrupted_and_killed(root: &Path, args: &[&str], resume: &[&str], watch: &str) -> (PathBuf, PathBuf) {
    let (a, b) = (root.join("uninterrupted"), root.join("killed"));
    let with_out = |base: &[&str], out: &Path, more: &[&str]| {
        let mut v: Vec<String> = base.iter().map(|s| s.to_string()).collect();
        v.extend(["--out".to_string(), out.to_str().unwrap().to_string()]);
        v.extend(more.iter().map(|s| s.to_string()));
        v
    };
    let out = Command::new(env!("CARGO_BIN_EXE_ddmlab")).args(with_out(args, &a, &[])).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut child = Command::new(env!("CARGO_BIN_EXE_ddmlab"))
        .args(with_out(args, &b, &[]))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !b.join(watch).exists() {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before {watch} appeared");
        assert!(started.elapsed().as_secs() < 300, "no {watch} after 300 s");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed before the end of the run: {status}");
    let out = Command::new(env!("CARGO_BIN_EXE_ddmlab")).args(with_out(resume, &b, &["--resume"])).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (a, b)
}

/// Assert that weights file `file` holds the same tensors, bit for bit, in both folders.
fn same_weights(a: &Path, b: &Path, file: &str) {
    let read = |d: &Path| {
        let reader = burn_pack::Reader::from_file(d.join(file)).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        let names: Vec<String> = reader.tensor_names().into_iter().map(String::from).collect();
        names.into_iter().map(|n| (reader.tensor_data(&n).unwrap(), n)).collect::<Vec<_>>()
    };
    let (ta, tb) = (read(a), read(b));
    assert!(!ta.is_empty(), "{file}: no tensors");
    assert_eq!(ta.len(), tb.len(), "{file}: tensor count");
    for ((x, name), (y, _)) in ta.iter().zip(&tb) {
        if name.ends_with("running_mean") || name.ends_with("running_var") {
            // The PatchGAN's batch-norm running statistics differ between two uninterrupted
            // runs too (by ~1%): every forward of every data-parallel shard (the generator's
            // pass, real, fake) updates the one shared `RunningState` in thread order. The
            // discriminator only ever runs in training mode (batch statistics), so they reach no
            // loss and no output; the weights beside them must match exactly.
            continue;
        } else {
            assert!(x == y, "{file}: tensor {name} differs between the uninterrupted and the killed + resumed run");
        }
    }
}

/// The pretraining stage of the run driver: a run killed with SIGKILL and resumed ends with the
/// weights, EMA and loss curve of the uninterrupted run, bit for bit (every loss after the
/// resume also checks the optimizer state).
#[test]
fn a_pretraining_run_killed_and_resumed_is_the_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    write_data(tmp.path());
    let data = tmp.path().to_str().unwrap();
    let mut args = vec!["pretrain", "--preset", "ldae-tiny", "--data-dir", data, "--steps", "120"];
    args.extend(MICRO);
    args.extend(["--set", "train.checkpoint_every=7", "--set", "train.log_every=1"]);
    let resume = ["pretrain", "--data-dir", data];
    let (a, b) = uninterrupted_and_killed(tmp.path(), &args, &resume, "checkpoints/latest");
    for file in ["model.bpk", "ema.bpk"] {
        same_weights(&a, &b, &format!("checkpoints/step-000120/{file}"));
    }
    let (la, lb) = (logged_losses(&a.join("metrics.jsonl")), logged_losses(&b.join("metrics.jsonl")));
    assert_eq!(la.len(), 120);
    assert_eq!(la, lb, "each step logged once, with the uninterrupted loss");
}

/// The conv tokenizer's two stages of the run driver, each killed with SIGKILL and resumed: the
/// perceptual classifier (killed after its first checkpoint) and the autoencoder with its
/// discriminator (killed after its first checkpoint) end as the uninterrupted run, bit for bit.
#[test]
fn a_conv_tokenizer_killed_in_either_stage_and_resumed_is_the_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    write_data(tmp.path());
    let data = tmp.path().to_str().unwrap();
    let args = [
        "tokenizer",
        "train",
        "--preset",
        "kl-tiny",
        "--data-dir",
        data,
        "--set",
        "perceptual.steps=250",
        "--set",
        "train.steps=60",
        "--set",
        "train.checkpoint_every=20",
        "--set",
        "train.log_every=1",
    ];
    let resume = ["tokenizer", "train", "--data-dir", data];
    for (stage, watch) in [("perceptual", "perceptual/checkpoints/latest"), ("autoencoder", "checkpoints/latest")] {
        let root = tmp.path().join(stage);
        let (a, b) = uninterrupted_and_killed(&root, &args, &resume, watch);
        for file in ["perceptual.bpk", "checkpoints/step-000060/ae.bpk", "checkpoints/step-000060/disc.bpk"] {
            same_weights(&a, &b, file);
        }
        assert_eq!(
            logged_losses(&a.join("perceptual-metrics.jsonl")),
            logged_losses(&b.join("perceptual-metrics.jsonl"))
        );
        let (la, lb) = (logged_losses(&a.join("metrics.jsonl")), logged_losses(&b.join("metrics.jsonl")));
        assert_eq!(la.len(), 60);
        assert_eq!(la, lb, "{stage}: each step logged once, with the uninterrupted loss");
    }
}
