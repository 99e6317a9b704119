//! The library names a bad option by its field (`sample.cfg`, `mar_sampling.steps`); the user
//! set it with a flag. Errors are printed with the flag.

/// The flag that sets each option field the library names in its errors.
const FLAGS: &[(&str, &str)] = &[
    ("checkpoint", "--ckpt"),
    ("denoise_grid.run", "--run"),
    ("denoise_grid.t", "--t"),
    ("gen_eval.cfgs", "--cfg"),
    ("gen_eval.mar.head_steps", "--steps"),
    ("gen_eval.mar.temperatures", "--temperature"),
    ("gen_eval.steps", "--steps"),
    ("interop.layout", "--layout"),
    ("mar_sampling.cfg", "--cfg"),
    ("mar_sampling.head_steps", "--steps"),
    ("mar_sampling.run", "--run"),
    ("mar_sampling.steps", "--mar-steps"),
    ("mar_sampling.temperature", "--temperature"),
    ("override", "--set"),
    ("pretrain.init_from", "--init-from"),
    ("pretrain.resume", "--resume"),
    ("pretrain.tokenizer_from", "--tokenizer-from"),
    ("probe.encoder_depth", "--encoder-depth"),
    ("probe.t", "--t"),
    ("sample.cfg", "--cfg"),
    ("sample.labels", "--class"),
    ("sample.n", "--n"),
    ("sample.run", "--run"),
    ("sample.steps", "--steps"),
];

/// `line` with every library option field in an "invalid value for" replaced by its flag.
pub fn with_flags(line: &str) -> String {
    let mut out = line.to_string();
    for (field, flag) in FLAGS {
        out = out.replace(&format!("invalid value for `{field}`"), &format!("invalid value for `{flag}`"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_fields_become_flags_and_config_fields_stay() {
        let e = ddmlab::Error::config("mar_sampling.steps", "K = 0");
        assert_eq!(with_flags(&e.to_string()), "invalid value for `--mar-steps`: K = 0");
        let e = ddmlab::Error::config("model.width", "must be divisible by 4");
        assert_eq!(with_flags(&e.to_string()), e.to_string());
        // One name, one flag: no field is listed twice.
        let fields: std::collections::BTreeSet<_> = FLAGS.iter().map(|f| f.0).collect();
        assert_eq!(fields.len(), FLAGS.len());
    }
}
