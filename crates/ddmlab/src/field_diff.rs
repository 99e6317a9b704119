//! What differs between two configs, field by field. A resumed run keeps the config it was
//! started with (every checkpoint holds it, and the batches, learning rates and noise draws of
//! the steps still to come are functions of it); flags that would change it are refused, each
//! differing field named, rather than silently ignored.

use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};

/// One field whose value differs: its dotted key (`train.steps`) and its value in each config,
/// in TOML syntax (`absent` where a config leaves the field out).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldChange {
    pub key: String,
    pub saved: String,
    pub requested: String,
}

/// The fields whose values differ between `saved` and `requested`, in key order. Tables are
/// compared key by key; any other value (arrays included) whole.
pub fn changed_fields<T: Serialize>(saved: &T, requested: &T) -> Vec<FieldChange> {
    let a = toml::Value::try_from(saved).expect("config serialises");
    let b = toml::Value::try_from(requested).expect("config serialises");
    let mut out = Vec::new();
    walk("", Some(&a), Some(&b), &mut out);
    out
}

fn walk(key: &str, a: Option<&toml::Value>, b: Option<&toml::Value>, out: &mut Vec<FieldChange>) {
    match (a, b) {
        (Some(toml::Value::Table(ta)), Some(toml::Value::Table(tb))) => {
            let mut keys: Vec<&String> = ta.keys().chain(tb.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let sub = if key.is_empty() { k.clone() } else { format!("{key}.{k}") };
                walk(&sub, ta.get(k), tb.get(k), out);
            }
        }
        (a, b) if a != b => {
            let show = |v: Option<&toml::Value>| v.map_or_else(|| "absent".to_string(), |v| v.to_string());
            out.push(FieldChange { key: key.to_string(), saved: show(a), requested: show(b) });
        }
        _ => {}
    }
}

/// `Ok` when the flags of a `--resume` describe the config the run in `run` was started with;
/// otherwise one error naming every field they would change, with both values.
pub fn refuse_changes_on_resume<T: Serialize>(run: &Path, saved: &T, requested: &T) -> Result<()> {
    let changes = changed_fields(saved, requested);
    if changes.is_empty() {
        return Ok(());
    }
    let list: Vec<String> =
        changes.iter().map(|c| format!("{} = {} (saved) but {} (these flags)", c.key, c.saved, c.requested)).collect();
    Err(Error::config(
        "pretrain.resume",
        format!(
            "{} continues with the config it was started with ({}), and these flags would change it: {}; \
             resume with the run's own settings (--out and --resume are enough), or start a new run in another folder",
            run.display(),
            run.join("config.toml").display(),
            list.join("; ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipes::preset;

    #[test]
    fn a_changed_field_is_named_with_both_values_and_an_unchanged_config_passes() {
        let saved = preset("ldae-tiny").unwrap().config;
        assert!(changed_fields(&saved, &saved).is_empty());
        let requested = saved.with_override("train.steps=123").unwrap().with_override("model.depth=5").unwrap();
        let changes = changed_fields(&saved, &requested);
        let keys: Vec<&str> = changes.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, ["model.depth", "train.steps"]);
        assert_eq!(changes[1].saved, saved.train.steps.to_string());
        assert_eq!(changes[1].requested, "123");
        let err = refuse_changes_on_resume(Path::new("runs/x"), &saved, &requested).unwrap_err().to_string();
        assert!(err.contains("train.steps") && err.contains("123") && err.contains("runs/x"), "{err}");
        assert!(refuse_changes_on_resume(Path::new("runs/x"), &saved, &saved).is_ok());
    }

    #[test]
    fn a_field_one_config_leaves_out_is_a_change() {
        let saved = preset("ldae-tiny").unwrap().config;
        let mut requested = saved.clone();
        requested.resize = !saved.resize;
        let changes = changed_fields(&saved, &requested);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].key, "resize");
        assert!(changes[0].saved == "absent" || changes[0].requested == "absent", "{changes:?}");
    }
}
