//! Tokenizer files: named f64 tensors (or one byte tensor of serialised weights) plus string metadata in one safetensors file, written
//! atomically. Every fitted tokenizer is saved through these two functions, so a truncated or
//! foreign file is one error naming the file, the tensor and what was expected.

use std::collections::HashMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::atomic::write_atomic;
use crate::error::{Error, IoContext, Result};

/// One tensor to save: name, shape and values.
pub struct Named<'a> {
    pub name: &'a str,
    pub shape: Vec<usize>,
    pub values: &'a [f64],
}

/// Write `tensors` (as F64) and `meta` to `path` atomically.
pub fn save(path: &Path, tensors: &[Named<'_>], meta: &[(&str, String)]) -> Result<()> {
    let bytes: Vec<Vec<u8>> = tensors.iter().map(|t| t.values.iter().flat_map(|x| x.to_le_bytes()).collect()).collect();
    let views: Vec<(&str, TensorView<'_>)> = tensors
        .iter()
        .zip(&bytes)
        .map(|(t, b)| (t.name, TensorView::new(Dtype::F64, t.shape.clone(), b).expect("sizes match")))
        .collect();
    write(path, views, meta)
}

/// Serialise `views` with `meta` and write them to `path` atomically.
fn write(path: &Path, views: Vec<(&str, TensorView<'_>)>, meta: &[(&str, String)]) -> Result<()> {
    let meta: HashMap<String, String> = meta.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let out = safetensors::serialize(views, Some(meta)).map_err(|e| Error::format(path, e.to_string()))?;
    write_atomic(path, &out)
}

/// Write one byte tensor `name` (a network's serialised weights) and `meta` to `path`
/// atomically.
pub fn save_bytes(path: &Path, name: &str, bytes: &[u8], meta: &[(&str, String)]) -> Result<()> {
    let view = TensorView::new(Dtype::U8, vec![bytes.len()], bytes).expect("sizes match");
    write(path, vec![(name, view)], meta)
}

/// A loaded tokenizer file.
pub struct Loaded {
    path: std::path::PathBuf,
    raw: Vec<u8>,
    meta: HashMap<String, String>,
}

impl Loaded {
    /// Read `path`; a file that is not safetensors is an error naming it.
    pub fn read(path: &Path) -> Result<Self> {
        let raw = std::fs::read(path).at(path)?;
        let (_, header) = SafeTensors::read_metadata(&raw)
            .map_err(|e| Error::format(path, format!("not a safetensors tokenizer file ({e})")))?;
        let meta = header.metadata().clone().unwrap_or_default();
        SafeTensors::deserialize(&raw)
            .map_err(|e| Error::format(path, format!("not a safetensors tokenizer file ({e})")))?;
        Ok(Loaded { path: path.to_path_buf(), raw, meta })
    }

    /// An error about this file.
    pub fn bad(&self, msg: impl Into<String>) -> Error {
        Error::format(&self.path, msg)
    }

    /// Metadata `key` as a string.
    pub fn text(&self, key: &str) -> Result<&str> {
        self.meta.get(key).map(String::as_str).ok_or_else(|| self.bad(format!("metadata `{key}` missing")))
    }

    /// Metadata `key` parsed.
    pub fn number<T: std::str::FromStr>(&self, key: &str) -> Result<T> {
        let text = self.text(key)?;
        text.parse().map_err(|_| self.bad(format!("metadata `{key}` = `{text}` is not a number")))
    }

    /// Tensor `name` as stored.
    fn view(&self, name: &str) -> Result<TensorView<'_>> {
        let st = SafeTensors::deserialize(&self.raw).map_err(|e| self.bad(e.to_string()))?;
        st.tensor(name).map_err(|e| self.bad(format!("tensor `{name}`: {e}")))
    }

    /// Byte tensor `name`.
    pub fn bytes(&self, name: &str) -> Result<Vec<u8>> {
        let t = self.view(name)?;
        if t.dtype() != Dtype::U8 {
            return Err(self.bad(format!("tensor `{name}` is {:?}, expected U8 bytes", t.dtype())));
        }
        Ok(t.data().to_vec())
    }

    /// Tensor `name`, which must be F64 with `len` values.
    pub fn tensor(&self, name: &str, len: usize) -> Result<Vec<f64>> {
        let t = self.view(name)?;
        if t.dtype() != Dtype::F64 || t.shape().iter().product::<usize>() != len {
            return Err(self.bad(format!(
                "tensor `{name}` is {:?} {:?}, expected F64 with {len} values",
                t.dtype(),
                t.shape()
            )));
        }
        let values: Vec<f64> =
            t.data().chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes"))).collect();
        if values.iter().any(|v| !v.is_finite()) {
            return Err(self.bad(format!("tensor `{name}` holds non-finite values")));
        }
        Ok(values)
    }
}
