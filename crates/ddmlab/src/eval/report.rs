//! `ddmlab probe`: the linear probe and kNN of a run's checkpoints beside the two baselines
//! (raw pixels, a randomly initialised encoder of the same architecture), as a table, a JSON
//! file and a curve over training steps.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::features::{Encoder, FeatureSpec, Features, Pool, encoder_features, pixel_features};
use super::knn::knn_top1;
use super::probe::{ProbeConfig, linear_probe};
use crate::atomic::write_atomic;
use crate::config::RunConfig;
use crate::data::{ImageSet, Split};
use crate::error::{Error, IoContext, Result};
use crate::models::mar::Mar;
use crate::store::checkpoint;
use crate::train::trainer_state;
use crate::train::{Observer, run_folder};
use crate::viz::plot::{Series, line_plot};

pub use crate::store::checkpoint::Checkpoints;

/// What `probe_run` does.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    pub data_root: PathBuf,
    pub checkpoints: Checkpoints,
    pub pools: Vec<Pool>,
    pub probe: ProbeConfig,
    /// Neighbours for kNN (0 = skip kNN).
    pub knn_k: usize,
    /// Also run kNN on flattened features (slow: `L * W` dimensions).
    pub knn_flat: bool,
    /// Probe raw pixels and a random-init encoder too.
    pub baselines: bool,
    /// Use the EMA weights (default) or the raw trained weights.
    pub ema: bool,
    /// Limit the train / test images used (0 = all).
    pub train_limit: usize,
    pub test_limit: usize,
    /// Feature-extraction batch size.
    pub batch_size: usize,
    /// The timestep the encoder is conditioned on (default: the config's `probe_t`).
    pub t: Option<usize>,
    /// Blocks read as the encoder (default: the model's `encoder_depth`).
    pub encoder_depth: Option<usize>,
    /// Noise the probe input at `t` as in training instead of reading the clean image.
    pub noisy: bool,
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeRow {
    /// `raw pixels`, `random-init encoder` or `l-DAE`.
    pub subject: String,
    /// Training step of the checkpoint (l-DAE rows).
    pub step: Option<usize>,
    /// Pooling label (`avg-pool`, `flattened`, `pixels`).
    pub pool: String,
    /// Linear-probe top-1 (%).
    pub linear: f64,
    /// kNN top-1 (%), when computed.
    pub knn: Option<f64>,
    /// The evaluation protocol the figures hold for (data counts, probe epochs and lr, kNN k):
    /// rows from different protocols are kept apart.
    #[serde(default)]
    pub protocol: String,
}

impl ProbeOptions {
    /// The protocol label of rows probed with these options on `train` / `test` images; the
    /// ablation settings appear only where they differ from the paper's protocol.
    pub fn protocol(&self, train: usize, test: usize) -> String {
        let mut s = format!(
            "{train} train / {test} test, probe {} epochs lr {}, kNN k={}",
            self.probe.epochs, self.probe.lr, self.knn_k
        );
        if let Some(t) = self.t {
            s += &format!(", t={t}");
        }
        if let Some(d) = self.encoder_depth {
            s += &format!(", encoder depth {d}");
        }
        if self.noisy {
            s += ", noisy input";
        }
        s
    }
}

fn evaluate(
    subject: &str,
    step: Option<usize>,
    pool: &str,
    train: &Features,
    test: &Features,
    sets: (&ImageSet, &ImageSet),
    opts: &ProbeOptions,
    knn: bool,
    device: &Device,
) -> ProbeRow {
    let (tr, te) = sets;
    let linear = linear_probe(train, &tr.labels, test, &te.labels, tr.num_classes(), &opts.probe, device).accuracy;
    let knn = (knn && opts.knn_k > 0)
        .then(|| knn_top1(train, &tr.labels, test, &te.labels, tr.num_classes(), opts.knn_k, 0.07, device));
    let protocol = opts.protocol(tr.len(), te.len());
    ProbeRow { subject: subject.into(), step, pool: pool.into(), linear, knn, protocol }
}

fn encoder_rows(
    subject: &str,
    step: Option<usize>,
    encoder: &Encoder<'_>,
    sets: (&ImageSet, &ImageSet),
    opts: &ProbeOptions,
    device: &Device,
) -> Vec<ProbeRow> {
    let train = encoder_features(encoder, sets.0, &opts.pools, opts.batch_size, device);
    let test = encoder_features(&encoder.reseeded(0x7E57), sets.1, &opts.pools, opts.batch_size, device);
    opts.pools
        .iter()
        .zip(train.iter().zip(&test))
        .map(|(pool, (tr, te))| {
            evaluate(subject, step, pool.label(), tr, te, sets, opts, *pool == Pool::Avg || opts.knn_flat, device)
        })
        .collect()
}

/// Probe a run; merges the new rows into the run's `probe.json` (a row replaces the one of the
/// same subject, step, pooling and protocol; others are kept), and rewrites `probe.md` and
/// `probe.png` from the merged rows. Returns the merged rows.
pub fn probe_run(run: &Path, opts: &ProbeOptions, device: &Device, obs: &mut dyn Observer) -> Result<Vec<ProbeRow>> {
    let chosen = checkpoint::select(run, &opts.checkpoints)?;
    let (config, _) = trainer_state::read_meta(&chosen[0].1)?;
    let limit = |s: ImageSet, n: usize| if n > 0 { s.truncate(n) } else { s };
    let all_train = RunConfig { train_limit: 0, ..config.clone() };
    let train = limit(run_folder::load_split(&all_train, &opts.data_root, Split::Train)?, opts.train_limit);
    let test = limit(run_folder::load_split(&config, &opts.data_root, Split::Test)?, opts.test_limit);
    obs.message(&format!("probing on {} train / {} test images of {}", train.len(), test.len(), config.data));
    let sets = (&train, &test);
    let tokenizer = run_folder::load_tokenizer(run, &config)?.bind(config.model.image, device);
    // Settings are checked before anything is computed.
    let mar = config.mar_network();
    let spec = match &mar {
        Some(net) => {
            let depth = opts.encoder_depth.unwrap_or(net.enc_depth);
            if depth == 0 || depth > net.enc_depth {
                return Err(Error::config("probe.encoder_depth", format!("{depth} must be in 1..={}", net.enc_depth)));
            }
            if opts.t.is_some() || opts.noisy {
                return Err(Error::config(
                    "probe.t",
                    "a MAR / MAE encoder reads clean tokens: no probe timestep or noise",
                ));
            }
            None
        }
        None => Some(feature_spec_of(&config, opts, tokenizer.as_ref())?),
    };
    let mut rows = Vec::new();
    if opts.baselines {
        let (ptr, pte) = (pixel_features(&train), pixel_features(&test));
        rows.push(evaluate("raw pixels", None, "pixels", &ptr, &pte, sets, opts, true, device));
        obs.message(&format_row(rows.last().expect("pushed")));
    }
    let label = &config.preset;
    let subject = if opts.ema { format!("{label} (EMA)") } else { label.to_string() };
    let mut probe = |subject: &str, step: Option<usize>, encoder: &Encoder<'_>| {
        for r in encoder_rows(subject, step, encoder, sets, opts, device) {
            obs.message(&format_row(&r));
            rows.push(r);
        }
    };
    if let (Some(net), None) = (mar, spec) {
        // A MAR / MAE run: its encoder on the tokenizer's latent, nothing masked.
        let depth = opts.encoder_depth.unwrap_or(net.enc_depth);
        let (tokenizer, null_class) = (tokenizer.as_ref(), net.num_classes);
        if opts.baselines {
            let model: Mar = crate::nn::init::seeded(device, config.train.seed, |device| net.init(device));
            probe("random-init encoder", None, &Encoder::Mar { model: &model, tokenizer, depth, null_class });
        }
        for (step, ckpt) in &chosen {
            let model: Mar = trainer_state::load_weights(ckpt, run_folder::weights_file(opts.ema), &config, device)?;
            probe(&subject, Some(*step), &Encoder::Mar { model: &model, tokenizer, depth, null_class });
        }
    } else if let Some(spec) = spec {
        if opts.baselines {
            let random = crate::nn::init::seeded(device, config.train.seed, |device| config.network().init(device));
            probe("random-init encoder", None, &Encoder::Vit(&random, spec));
        }
        for (step, ckpt) in &chosen {
            let model = run_folder::load_model(ckpt, &config, opts.ema, device)?;
            probe(&subject, Some(*step), &Encoder::Vit(&model, spec));
        }
    }
    let protocol = opts.protocol(train.len(), test.len());
    let steps: Vec<String> = chosen.iter().map(|(s, _)| s.to_string()).collect();
    let detail = format!("probe, steps {}: {protocol}", steps.join(","));
    crate::store::provenance::record(run, &crate::store::provenance::Provenance::now("probe", detail, device))?;
    let merged = merge_rows(read_rows(&run.join("probe.json"))?, rows);
    let json = serde_json::to_string_pretty(&merged).expect("serialises");
    write_atomic(&run.join("probe.json"), json.as_bytes())?;
    write_atomic(&run.join("probe.md"), format_table(&merged, &config).as_bytes())?;
    let current: Vec<ProbeRow> = merged.iter().filter(|r| r.protocol == protocol).cloned().collect();
    plot_probe(&run.join("probe.png"), &current)?;
    Ok(merged)
}

/// What the encoder of a run with `config` and its bound `tokenizer` reads under `opts`.
pub fn feature_spec_of<'a>(
    config: &RunConfig,
    opts: &ProbeOptions,
    tokenizer: &'a dyn crate::tokenizer::Tokenizer,
) -> Result<FeatureSpec<'a>> {
    let d = &config.denoise;
    let t = opts.t.unwrap_or(d.probe_t);
    if t >= d.timesteps {
        return Err(Error::config("probe.t", format!("{t} must be below the run's {} timesteps", d.timesteps)));
    }
    let depth = opts.encoder_depth.unwrap_or(config.model.encoder_depth);
    if depth == 0 || depth > config.model.depth {
        return Err(Error::config("probe.encoder_depth", format!("{depth} must be in 1..={}", config.model.depth)));
    }
    let tables = d.noise.tables(d.timesteps);
    Ok(FeatureSpec {
        tokenizer,
        input: d.input,
        noise_space: d.noise_space,
        t,
        noise: opts.noisy.then(|| (tables.gamma[t], tables.sigma[t])),
        depth,
        seed: config.train.seed,
    })
}

/// The rows of an existing `probe.json` (none if the file does not exist).
pub fn read_rows(path: &Path) -> Result<Vec<ProbeRow>> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            Error::format(path, format!("not a probe result list ({e}); move it away to start a new one"))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).at(path),
    }
}

/// `old` with every row that `new` re-measures replaced, sorted: baselines first, then by
/// subject, step and pooling.
pub fn merge_rows(old: Vec<ProbeRow>, new: Vec<ProbeRow>) -> Vec<ProbeRow> {
    let key = |r: &ProbeRow| (r.subject.clone(), r.step, r.pool.clone(), r.protocol.clone());
    let mut rows: Vec<ProbeRow> = old.into_iter().filter(|o| !new.iter().any(|n| key(n) == key(o))).collect();
    rows.extend(new);
    rows.sort_by(|a, b| {
        (a.step.is_some(), &a.protocol, &a.subject, a.step, &a.pool).cmp(&(
            b.step.is_some(),
            &b.protocol,
            &b.subject,
            b.step,
            &b.pool,
        ))
    });
    rows
}

/// One row as a line of text.
pub fn format_row(r: &ProbeRow) -> String {
    let step = r.step.map(|s| format!(" step {s}")).unwrap_or_default();
    let knn = r.knn.map(|k| format!("{k:.2}")).unwrap_or_else(|| "-".into());
    format!("{}{step} [{}]: linear {:.2}%  kNN {knn}%", r.subject, r.pool, r.linear)
}

/// The rows as a Markdown table; a protocol column appears when the rows hold more than one.
pub fn format_table(rows: &[ProbeRow], config: &RunConfig) -> String {
    let mut protocols: Vec<&str> = rows.iter().map(|r| r.protocol.as_str()).collect();
    protocols.sort_unstable();
    protocols.dedup();
    let one = protocols.len() <= 1;
    let features = match &config.mar {
        Some(_) => "MAR / MAE encoder features of the clean tokens, nothing masked".to_string(),
        None => format!("features at t = {}", config.denoise.probe_t),
    };
    let mut s = format!(
        "Linear probe and kNN top-1 on {} ({features}; BN without affine -> linear){}\n\n",
        config.data,
        if one { protocols.first().map(|p| format!("; {p}")).unwrap_or_default() } else { String::new() }
    );
    s += if one {
        "| features | step | pooling | linear probe top-1 | kNN top-1 |\n|---|---|---|---|---|\n"
    } else {
        "| features | step | pooling | linear probe top-1 | kNN top-1 | protocol |\n|---|---|---|---|---|---|\n"
    };
    for r in rows {
        s += &format!(
            "| {} | {} | {} | {:.2} | {} |",
            r.subject,
            r.step.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
            r.pool,
            r.linear,
            r.knn.map(|k| format!("{k:.2}")).unwrap_or_else(|| "-".into())
        );
        if !one {
            s += &format!(" {} |", r.protocol);
        }
        s += "\n";
    }
    s
}

/// Probe accuracy over training steps, with the baselines as flat lines.
pub fn plot_probe(path: &Path, rows: &[ProbeRow]) -> Result<()> {
    let steps: Vec<usize> = rows.iter().filter_map(|r| r.step).collect();
    let (lo, hi) = (steps.iter().copied().min().unwrap_or(0) as f64, steps.iter().copied().max().unwrap_or(1) as f64);
    let mut series = Vec::new();
    let mut keys: Vec<(String, String)> = Vec::new();
    for r in rows {
        let key = (r.subject.clone(), r.pool.clone());
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    for (subject, pool) in keys {
        let sel: Vec<&ProbeRow> = rows.iter().filter(|r| r.subject == subject && r.pool == pool).collect();
        let pts = |f: &dyn Fn(&ProbeRow) -> Option<f64>| -> Vec<(f64, f64)> {
            match sel[0].step {
                Some(_) => sel.iter().filter_map(|r| Some((r.step? as f64, f(r)?))).collect(),
                None => f(sel[0]).map(|v| vec![(lo, v), (hi.max(lo + 1.0), v)]).unwrap_or_default(),
            }
        };
        series.push(Series { name: format!("{subject} [{pool}] linear"), points: pts(&|r| Some(r.linear)) });
        let knn = pts(&|r| r.knn);
        if !knn.is_empty() {
            series.push(Series { name: format!("{subject} [{pool}] kNN"), points: knn });
        }
    }
    line_plot(path, "Linear probe / kNN top-1 over pretraining", "pretraining step", "top-1 (%)", &series, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(subject: &str, step: Option<usize>, linear: f64, protocol: &str) -> ProbeRow {
        ProbeRow {
            subject: subject.into(),
            step,
            pool: "avg-pool".into(),
            linear,
            knn: None,
            protocol: protocol.into(),
        }
    }

    #[test]
    fn merging_replaces_remeasured_rows_and_keeps_the_others() {
        let old =
            vec![row("l-DAE", Some(100), 70.0, "p"), row("l-DAE", Some(200), 75.0, "p"), row("raw", None, 80.0, "p")];
        let new = vec![row("l-DAE", Some(200), 76.0, "p"), row("l-DAE", Some(200), 60.0, "q")];
        let merged = merge_rows(old, new);
        let linear: Vec<f64> = merged.iter().map(|r| r.linear).collect();
        // baselines first; protocol "p" rows by step; the other protocol's row kept apart.
        assert_eq!(linear, vec![80.0, 70.0, 76.0, 60.0]);
    }

    #[test]
    fn a_corrupt_results_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("probe.json");
        std::fs::write(&path, "{ not json").unwrap();
        let err = read_rows(&path).unwrap_err().to_string();
        assert!(err.contains("probe.json") && err.contains("not a probe result list"), "{err}");
        assert!(read_rows(&dir.path().join("absent.json")).unwrap().is_empty());
    }
}
