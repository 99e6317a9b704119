//! Reader for image folders with one sub-folder per class (the ImageNet `train/` layout).
//!
//! Class names are the sub-folder names in sorted order; every PNG or JPEG inside is decoded
//! with the `image` crate, converted to grey or RGB, resized so that its shorter side equals
//! the target size, and center-cropped to a square: the usual evaluation transform. Files with
//! other extensions are skipped; a file that fails to decode is an error naming it.

use std::path::{Path, PathBuf};

use super::transform::resize_center_crop;
use super::{ImageSet, ImageShape};
use crate::error::{Error, IoContext, Result};

/// Read `root/<class>/<image>` into a set of `channels x size x size` images.
pub fn read_image_folder(root: &Path, channels: usize, size: usize) -> Result<ImageSet> {
    if channels != 1 && channels != 3 {
        return Err(Error::config("channels", format!("{channels} is not supported, expected 1 or 3")));
    }
    let mut classes: Vec<PathBuf> =
        std::fs::read_dir(root).at(root)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect();
    classes.sort();
    if classes.is_empty() {
        return Err(Error::format(root, "no class sub-folders, expected root/<class>/<image>.png|jpg"));
    }
    let shape = ImageShape { channels, height: size, width: size };
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for (label, dir) in classes.iter().enumerate() {
        let mut files: Vec<PathBuf> =
            std::fs::read_dir(dir).at(dir)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| is_image(p)).collect();
        files.sort();
        for file in files {
            let img = image::open(&file).map_err(|e| Error::format(&file, format!("cannot decode image ({e})")))?;
            images.extend(resize_center_crop(&img, channels, size));
            labels.push(label as u32);
        }
    }
    if labels.is_empty() {
        return Err(Error::format(root, "class folders hold no .png/.jpg/.jpeg image"));
    }
    let classes =
        classes.iter().map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()).collect();
    Ok(ImageSet { images, labels, shape, classes })
}

fn is_image(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref(),
        Some("png" | "jpg" | "jpeg")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_reader_labels_by_sorted_subfolder_and_resizes() {
        let dir = tempfile::tempdir().unwrap();
        for (class, value) in [("b_cat", 200u8), ("a_dog", 50u8)] {
            std::fs::create_dir(dir.path().join(class)).unwrap();
            let img = image::RgbImage::from_pixel(20, 12, image::Rgb([value, value, value]));
            img.save(dir.path().join(class).join("x.png")).unwrap();
        }
        let set = read_image_folder(dir.path(), 1, 8).unwrap();
        assert_eq!(set.classes, vec!["a_dog", "b_cat"]);
        assert_eq!(set.labels, vec![0, 1]);
        assert_eq!(set.shape, ImageShape { channels: 1, height: 8, width: 8 });
        assert!(set.image(0).iter().all(|&v| v == 50));
        assert!(set.image(1).iter().all(|&v| v == 200));
    }

    #[test]
    fn corrupt_image_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("c")).unwrap();
        std::fs::write(dir.path().join("c").join("bad.png"), b"not a png").unwrap();
        let err = read_image_folder(dir.path(), 3, 8).unwrap_err().to_string();
        assert!(err.contains("bad.png") && err.contains("cannot decode"), "{err}");
    }
}
