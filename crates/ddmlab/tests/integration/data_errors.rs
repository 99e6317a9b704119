//! Bad data files give one readable error naming the file and what was expected.

use std::path::Path;

use ddmlab::data::idx::encode_idx;
use ddmlab::data::{DataSource, ImageShape, Split};

const FMNIST: ImageShape = ImageShape { channels: 1, height: 28, width: 28 };

fn write_set(root: &Path, images: Vec<u8>, labels: Vec<u8>, dims: &[usize]) {
    let dir = root.join("fashion-mnist");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("train-images-idx3-ubyte"), encode_idx(dims, &images)).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), encode_idx(&[labels.len()], &labels)).unwrap();
}

fn load_err(root: &Path) -> String {
    DataSource::FashionMnist.load(root, Split::Train, FMNIST).unwrap_err().to_string()
}

#[test]
fn missing_data_set_says_how_to_fetch_it() {
    let tmp = tempfile::tempdir().unwrap();
    let err = load_err(tmp.path());
    assert!(err.contains("train-images-idx3-ubyte") && err.contains("ddmlab data fetch fashion-mnist"), "{err}");
}

#[test]
fn truncated_image_file_is_reported_with_counts() {
    let tmp = tempfile::tempdir().unwrap();
    write_set(tmp.path(), vec![0; 2 * 784], vec![0, 1], &[2, 28, 28]);
    let path = tmp.path().join("fashion-mnist/train-images-idx3-ubyte");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
    let err = load_err(tmp.path());
    assert!(err.contains("train-images-idx3-ubyte") && err.contains("truncated"), "{err}");
}

#[test]
fn corrupt_gzip_file_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("fashion-mnist");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("train-images-idx3-ubyte.gz"), [0x1f, 0x8b, 8, 0, 1, 2, 3]).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), encode_idx(&[1], &[0])).unwrap();
    let err = load_err(tmp.path());
    assert!(err.contains("train-images-idx3-ubyte.gz") && err.contains("gzip"), "{err}");
}

#[test]
fn label_count_mismatch_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    write_set(tmp.path(), vec![0; 3 * 784], vec![0, 1], &[3, 28, 28]);
    let err = load_err(tmp.path());
    assert!(err.contains("2 labels") && err.contains("3 images"), "{err}");
}

#[test]
fn label_out_of_range_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    write_set(tmp.path(), vec![0; 784], vec![12], &[1, 28, 28]);
    let err = load_err(tmp.path());
    assert!(err.contains("label 12 out of range"), "{err}");
}

#[test]
fn wrong_image_size_names_both_shapes() {
    let tmp = tempfile::tempdir().unwrap();
    write_set(tmp.path(), vec![0; 2 * 32 * 32], vec![0, 1], &[2, 32, 32]);
    let err = load_err(tmp.path());
    assert!(err.contains("1x32x32") && err.contains("1x28x28") && err.contains("image_size"), "{err}");
}

#[test]
fn unknown_data_set_lists_the_known_ones() {
    let err = "imagenet21k".parse::<DataSource>().unwrap_err().to_string();
    assert!(err.contains("fashion-mnist") && err.contains("folder:DIR"), "{err}");
}

/// An image file whose header has a zero dimension ([2, 0, 28]) with no pixels is a
/// consistent IDX file, and was accepted as a set of empty images (zero-sized chunks for
/// every later reader of the set).
#[test]
fn image_file_with_a_zero_dimension_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    write_set(tmp.path(), vec![], vec![0, 1], &[2, 0, 28]);
    let err = DataSource::FashionMnist.load_as(tmp.path(), Split::Train, FMNIST, true).unwrap_err().to_string();
    assert!(err.contains("train-images-idx3-ubyte") && err.contains("[2, 0, 28]"), "{err}");
}
