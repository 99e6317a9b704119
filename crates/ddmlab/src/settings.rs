//! What every typed config shares (a run's `RunConfig`, a conv tokenizer's
//! `TokenizerRunConfig`, a study): one `KEY=VALUE` override applied through the config's TOML
//! form, the check of one field, serde's skip predicate for counts whose 0 means "off".

use serde::Serialize;

use crate::error::{Error, Result};

/// serde's `skip_serializing_if` for a count whose 0 means "off", so that configs written before
/// the field existed keep their text.
/// `#[serde(skip_serializing_if)]` of a field at its type's default.
pub fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// `#[serde(skip_serializing_if)]` of a setting on by default.
pub fn is_true(v: &bool) -> bool {
    *v
}

/// `#[serde(default)]` of a setting on by default.
pub fn yes() -> bool {
    true
}

pub fn is_zero(v: &usize) -> bool {
    *v == 0
}

/// `Ok` when `ok`, else the config error naming `field`.
pub fn check(ok: bool, field: &str, msg: impl Into<String>) -> Result<()> {
    if ok { Ok(()) } else { Err(Error::config(field, msg)) }
}

/// `config` with one `KEY=VALUE` assignment applied (`train.steps=300`, `model.width=96`):
/// the value is read as TOML (a bare word as a string) and the key must name an existing field.
pub fn with_override<T: Serialize + serde::de::DeserializeOwned>(config: &T, assignment: &str) -> Result<T> {
    let invalid = |msg: String| Error::config("override", msg);
    let (key, raw) =
        assignment.split_once('=').ok_or_else(|| invalid(format!("`{assignment}`, expected KEY=VALUE")))?;
    let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let mut tree = toml::Value::try_from(config).expect("config serialises");
    let mut node = &mut tree;
    let parts: Vec<&str> = key.trim().split('.').collect();
    let no_field =
        |part: &str| invalid(format!("`{key}`: no field `{part}` (see a run's config.toml for the field names)"));
    // A field left out of the TOML at its default value (`resize`, `model.gelu`) is still a
    // field: a missing last key is inserted, and the configs' `deny_unknown_fields` rejects a
    // name that is not one.
    let mut absent = None;
    for (i, part) in parts.iter().enumerate() {
        let table = node
            .as_table_mut()
            .ok_or_else(|| invalid(format!("`{key}`: `{}` is not a section", parts[..i].join("."))))?;
        let last = i + 1 == parts.len();
        if !table.contains_key(*part) {
            if !last {
                return Err(no_field(part));
            }
            absent = Some(*part);
        }
        if last {
            table.insert(part.to_string(), value.clone());
            break;
        }
        node = table.get_mut(*part).expect("checked");
    }
    tree.try_into::<T>().map_err(|e| match absent {
        Some(part) if e.message().contains("unknown field") => no_field(part),
        _ => invalid(format!("`{assignment}`: {}", e.message())),
    })
}
