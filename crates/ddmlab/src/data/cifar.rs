//! Reader for the CIFAR-10 and CIFAR-100 binary formats.
//!
//! CIFAR-10 records are 1 label byte + 3072 pixel bytes (`[3, 32, 32]`, channel-major);
//! CIFAR-100 records carry a coarse and a fine label byte first, and the fine label is used.
//! A file whose length is not a whole number of records is reported as truncated.

use std::path::Path;

use super::{ImageSet, ImageShape};
use crate::error::{Error, IoContext, Result};

/// Which of the two CIFAR layouts a file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CifarKind {
    Cifar10,
    Cifar100,
}

impl CifarKind {
    fn label_bytes(self) -> usize {
        match self {
            CifarKind::Cifar10 => 1,
            CifarKind::Cifar100 => 2,
        }
    }

    fn num_classes(self) -> usize {
        match self {
            CifarKind::Cifar10 => 10,
            CifarKind::Cifar100 => 100,
        }
    }
}

const PIXELS: usize = 3 * 32 * 32;

/// The CIFAR-10 class names in label order.
pub const CIFAR10_CLASSES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

/// Read and concatenate CIFAR binary files (e.g. `data_batch_1.bin` .. `data_batch_5.bin`).
pub fn read_cifar(paths: &[&Path], kind: CifarKind) -> Result<ImageSet> {
    let record = kind.label_bytes() + PIXELS;
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for &path in paths {
        let bytes = std::fs::read(path).at(path)?;
        if bytes.is_empty() || bytes.len() % record != 0 {
            return Err(Error::format(
                path,
                format!(
                    "truncated or not a {kind:?} binary file: {} bytes is not a positive multiple of the {record}-byte record",
                    bytes.len()
                ),
            ));
        }
        for rec in bytes.chunks_exact(record) {
            let label = rec[kind.label_bytes() - 1] as u32;
            if label as usize >= kind.num_classes() {
                return Err(Error::format(
                    path,
                    format!("label {label} out of range, expected < {}", kind.num_classes()),
                ));
            }
            labels.push(label);
            images.extend_from_slice(&rec[kind.label_bytes()..]);
        }
    }
    let classes = match kind {
        CifarKind::Cifar10 => CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect(),
        CifarKind::Cifar100 => (0..100).map(|i| format!("class{i}")).collect(),
    };
    Ok(ImageSet { images, labels, shape: ImageShape { channels: 3, height: 32, width: 32 }, classes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cifar10_records_decode_label_and_pixels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.bin");
        let mut bytes = vec![7u8];
        bytes.extend((0..PIXELS).map(|i| (i % 251) as u8));
        bytes.push(2);
        bytes.extend(std::iter::repeat_n(9u8, PIXELS));
        std::fs::write(&path, &bytes).unwrap();
        let set = read_cifar(&[&path], CifarKind::Cifar10).unwrap();
        assert_eq!(set.labels, vec![7, 2]);
        assert_eq!(set.image(0)[300], (300 % 251) as u8);
        assert!(set.image(1).iter().all(|&v| v == 9));
    }

    #[test]
    fn truncated_cifar_file_names_the_record_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.bin");
        std::fs::write(&path, vec![0u8; 3000]).unwrap();
        let err = read_cifar(&[&path], CifarKind::Cifar10).unwrap_err().to_string();
        assert!(err.contains("b.bin") && err.contains("3073"), "{err}");
    }
}
