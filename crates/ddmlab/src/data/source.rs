//! Named data sets and where their files live.
//!
//! A data set is named by a short spec string, the form users type and configs store:
//! `fashion-mnist`, `mnist` (looked up under the data root, filled by `ddmlab data fetch`),
//! `cifar10:DIR`, `cifar100:DIR` (the binary versions), or `folder:DIR` (with `DIR/train/<class>/`
//! and `DIR/val/<class>/`, or `DIR/test/<class>/`).

use std::path::{Path, PathBuf};

use super::cifar::{CifarKind, read_cifar};
use super::folder::read_image_folder;
use super::idx::read_idx;
use super::{ImageSet, ImageShape};
use crate::error::{Error, Result};

/// The train or the test half of a data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

/// A data set the library can read; in configs, its name (`fashion-mnist`, `cifar10:DIR`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DataSource {
    FashionMnist,
    Mnist,
    Cifar10(PathBuf),
    Cifar100(PathBuf),
    /// An image folder; images are resized and center-cropped to the model's size on load.
    Folder(PathBuf),
}

/// The Fashion-MNIST class names in label order.
pub const FASHION_MNIST_CLASSES: [&str; 10] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

impl std::str::FromStr for DataSource {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let (name, arg) = match s.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (s, None),
        };
        let need_dir = |kind: &str| {
            arg.filter(|a| !a.is_empty())
                .map(PathBuf::from)
                .ok_or_else(|| Error::config("data", format!("`{kind}` needs a folder, e.g. `{kind}:/path/to/{kind}`")))
        };
        match name {
            "fashion-mnist" | "fashion_mnist" | "fmnist" => Ok(DataSource::FashionMnist),
            "mnist" => Ok(DataSource::Mnist),
            "cifar10" => Ok(DataSource::Cifar10(need_dir("cifar10")?)),
            "cifar100" => Ok(DataSource::Cifar100(need_dir("cifar100")?)),
            "folder" => Ok(DataSource::Folder(need_dir("folder")?)),
            _ => Err(Error::config(
                "data",
                format!(
                    "unknown data set `{s}`, expected fashion-mnist, mnist, cifar10:DIR, cifar100:DIR or folder:DIR"
                ),
            )),
        }
    }
}

impl TryFrom<String> for DataSource {
    type Error = Error;

    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<DataSource> for String {
    fn from(d: DataSource) -> String {
        d.to_string()
    }
}

impl std::fmt::Display for DataSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DataSource::FashionMnist => write!(f, "fashion-mnist"),
            DataSource::Mnist => write!(f, "mnist"),
            DataSource::Cifar10(p) => write!(f, "cifar10:{}", p.display()),
            DataSource::Cifar100(p) => write!(f, "cifar100:{}", p.display()),
            DataSource::Folder(p) => write!(f, "folder:{}", p.display()),
        }
    }
}

impl DataSource {
    /// The folder name under the data root for the fetchable sets.
    pub fn fetch_name(&self) -> Option<&'static str> {
        match self {
            DataSource::FashionMnist => Some("fashion-mnist"),
            DataSource::Mnist => Some("mnist"),
            _ => None,
        }
    }

    /// The image shape of the set, given the size requested for resizable folders.
    pub fn native_shape(&self) -> Option<ImageShape> {
        match self {
            DataSource::FashionMnist | DataSource::Mnist => Some(ImageShape { channels: 1, height: 28, width: 28 }),
            DataSource::Cifar10(_) | DataSource::Cifar100(_) => Some(ImageShape { channels: 3, height: 32, width: 32 }),
            DataSource::Folder(_) => None,
        }
    }

    /// Load one split. `root` is the data root for named sets; `shape` is the model's input
    /// shape: fixed-size sets must match it exactly, folders are resized to it.
    pub fn load(&self, root: &Path, split: Split, shape: ImageShape) -> Result<ImageSet> {
        self.load_as(root, split, shape, false)
    }

    /// [`DataSource::load`], resizing fixed-size sets to `shape` (bilinear) when `resize` is
    /// set and the channels agree.
    pub fn load_as(&self, root: &Path, split: Split, shape: ImageShape, resize: bool) -> Result<ImageSet> {
        let set = match self {
            DataSource::FashionMnist | DataSource::Mnist => {
                let name = self.fetch_name().expect("named set");
                let prefix = match split {
                    Split::Train => "train",
                    Split::Test => "t10k",
                };
                let dir = root.join(name);
                let images = find_idx(&dir, &format!("{prefix}-images-idx3-ubyte"), name)?;
                let labels = find_idx(&dir, &format!("{prefix}-labels-idx1-ubyte"), name)?;
                let classes = match self {
                    DataSource::FashionMnist => FASHION_MNIST_CLASSES.iter().map(|s| s.to_string()).collect(),
                    _ => (0..10).map(|d| d.to_string()).collect(),
                };
                idx_pair(&images, &labels, classes)?
            }
            DataSource::Cifar10(dir) => {
                let files: Vec<PathBuf> = match split {
                    Split::Train => (1..=5).map(|i| dir.join(format!("data_batch_{i}.bin"))).collect(),
                    Split::Test => vec![dir.join("test_batch.bin")],
                };
                read_cifar(&files.iter().map(|p| p.as_path()).collect::<Vec<_>>(), CifarKind::Cifar10)?
            }
            DataSource::Cifar100(dir) => {
                let file = dir.join(match split {
                    Split::Train => "train.bin",
                    Split::Test => "test.bin",
                });
                read_cifar(&[&file], CifarKind::Cifar100)?
            }
            DataSource::Folder(dir) => {
                let sub = match split {
                    Split::Train => dir.join("train"),
                    Split::Test => {
                        ["val", "test"].iter().map(|s| dir.join(s)).find(|p| p.is_dir()).unwrap_or(dir.join("val"))
                    }
                };
                read_image_folder(&sub, shape.channels, shape.height)?
            }
        };
        let set =
            if resize && set.shape != shape && set.shape.channels == shape.channels { set.resized(shape) } else { set };
        if set.shape != shape {
            return Err(Error::config(
                "image_size",
                format!("data set {self} has {} images but the model expects {shape}", set.shape),
            ));
        }
        Ok(set)
    }
}

/// `dir/stem` or `dir/stem.gz`, whichever exists.
fn find_idx(dir: &Path, stem: &str, name: &str) -> Result<PathBuf> {
    for candidate in [dir.join(stem), dir.join(format!("{stem}.gz"))] {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(Error::format(
        dir.join(stem),
        format!(
            "missing (also tried .gz); run `ddmlab data fetch {name} --dir {}`",
            dir.parent().unwrap_or(dir).display()
        ),
    ))
}

/// Read an image IDX file and its label IDX file and check they agree.
pub fn idx_pair(images: &Path, labels: &Path, classes: Vec<String>) -> Result<ImageSet> {
    let img = read_idx(images)?;
    let lab = read_idx(labels)?;
    if img.dims.len() != 3 {
        return Err(Error::format(images, format!("expected 3 dimensions [N, H, W], header has {:?}", img.dims)));
    }
    if img.dims.contains(&0) {
        return Err(Error::format(
            images,
            format!("header dims {:?} hold no image, expected [N, H, W] all positive", img.dims),
        ));
    }
    if lab.dims.len() != 1 {
        return Err(Error::format(labels, format!("expected 1 dimension [N], header has {:?}", lab.dims)));
    }
    if lab.dims[0] != img.dims[0] {
        return Err(Error::format(
            labels,
            format!("{} labels but {} holds {} images", lab.dims[0], images.display(), img.dims[0]),
        ));
    }
    if let Some(&bad) = lab.data.iter().find(|&&l| l as usize >= classes.len()) {
        return Err(Error::format(labels, format!("label {bad} out of range, expected < {}", classes.len())));
    }
    Ok(ImageSet {
        images: img.data,
        labels: lab.data.iter().map(|&l| l as u32).collect(),
        shape: ImageShape { channels: 1, height: img.dims[1], width: img.dims[2] },
        classes,
    })
}
