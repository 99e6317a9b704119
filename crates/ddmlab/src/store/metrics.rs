//! Run metrics as JSON lines (`metrics.jsonl`): one object per logged step.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};

/// One logged point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricLine {
    pub step: usize,
    /// Mean training loss since the previous line.
    pub loss: f64,
    pub lr: f64,
    pub img_per_s: f64,
    pub elapsed_s: f64,
    /// The global L2 norm of the gradient (before any clipping) at the line's last step, where
    /// the stage measures it (pretraining does, at each line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grad_norm: Option<f64>,
}

/// A metrics line of any kind of run: it knows its step.
pub trait Stepped: Serialize + serde::de::DeserializeOwned {
    fn step(&self) -> usize;
}

impl Stepped for MetricLine {
    fn step(&self) -> usize {
        self.step
    }
}

/// Append one line.
pub fn append<T: Serialize>(path: &Path, line: &T) -> Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).at(path)?;
    writeln!(f, "{}", serde_json::to_string(line).expect("metric serialises")).at(path)
}

/// Read every line. A torn last line (no newline after it: a kill while writing) is skipped;
/// any other line that does not parse is an error naming the file and the line.
pub fn read<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path).at(path)?;
    let count = text.lines().count();
    let mut out = Vec::with_capacity(count);
    for (i, line) in text.lines().enumerate() {
        match serde_json::from_str(line) {
            Ok(m) => out.push(m),
            Err(_) if i + 1 == count && !text.ends_with('\n') => {}
            Err(e) => return Err(Error::format(path, format!("line {}: not a metrics line ({e})", i + 1))),
        }
    }
    Ok(out)
}

/// Keep only the lines up to `step` (a resumed run rewrites what came after its checkpoint).
pub fn truncate_after<T: Stepped>(path: &Path, step: usize) -> Result<()> {
    let kept: Vec<T> = read::<T>(path)?.into_iter().filter(|m| m.step() <= step).collect();
    let text: String = kept.iter().map(|m| serde_json::to_string(m).expect("serialises") + "\n").collect();
    crate::atomic::write_atomic(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncating_keeps_every_number_bit_for_bit() {
        // Regression: without serde_json's float_roundtrip, 0.9629848301410675 read back as
        // ...676, so a resumed run's metrics differed from the uninterrupted run's.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let lines: Vec<MetricLine> = [0.9629848301410675, 0.1 + 0.2, 1e-300, 123456.789012345]
            .iter()
            .enumerate()
            .map(|(i, &loss)| MetricLine {
                step: i + 1,
                loss,
                lr: loss / 3.0,
                img_per_s: 1.0 / loss,
                elapsed_s: loss * 7.0,
                grad_norm: (i % 2 == 0).then_some(loss * 11.0),
            })
            .collect();
        for l in &lines {
            append(&path, l).unwrap();
        }
        truncate_after::<MetricLine>(&path, 3).unwrap();
        assert_eq!(read::<MetricLine>(&path).unwrap(), lines[..3].to_vec());
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_any_other_bad_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let good = r#"{"step":1,"loss":0.5,"lr":0.1,"img_per_s":10.0,"elapsed_s":1.0}"#;
        std::fs::write(&path, format!("{good}\n{{\"step\":2,\"lo")).unwrap();
        assert_eq!(read::<MetricLine>(&path).unwrap().len(), 1, "torn by a kill");
        std::fs::write(&path, format!("{good}\nnot json\n{good}\n")).unwrap();
        let err = read::<MetricLine>(&path).unwrap_err().to_string();
        assert!(err.contains("metrics.jsonl") && err.contains("line 2"), "{err}");
        // A complete last line that does not parse is not a torn write.
        std::fs::write(&path, format!("{good}\n{{\"step\":2}}\n")).unwrap();
        assert!(read::<MetricLine>(&path).unwrap_err().to_string().contains("line 2"));
    }
}
