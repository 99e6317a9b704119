//! Claims about the numpy exchange formats: files written by numpy (`bench/npz_fixtures.py`)
//! read back to numpy's values, ddmlab's files read back to its own, and FID from numpy-written
//! statistics equals pytorch-fid's (scipy) value on them.

use std::path::{Path, PathBuf};

use ddmlab::data::RawImage;
use ddmlab::eval::frechet::frechet_distance;
use ddmlab::eval::npz::{SampleBatch, read_samples, read_stats, write_samples, write_stats};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/npz").join(name)
}

fn reference() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("reference.json")).unwrap()).unwrap()
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

#[test]
fn numpy_statistics_read_exactly_and_score_as_scipy_does() {
    let r = reference();
    let a = read_stats(&fixture("stats-a.npz")).unwrap();
    assert_eq!(a.mu.as_slice(), &floats(&r["mu_a"])[..]);
    let sigma: Vec<f64> = (0..6).flat_map(|i| (0..6).map(move |j| (i, j))).map(|(i, j)| a.sigma[(i, j)]).collect();
    assert_eq!(sigma, floats(&r["sigma_a"]));
    let b = read_stats(&fixture("stats-b.npz")).unwrap();
    let (ours, scipy) = (frechet_distance(&a, &b), r["fid_a_b"].as_f64().unwrap());
    assert!((ours - scipy).abs() < 1e-9 * scipy, "ours {ours} vs scipy {scipy}");
    // float32 and deflate-compressed (np.savez_compressed) read too, to float32 precision.
    let a32 = read_stats(&fixture("stats-a-f32.npz")).unwrap();
    for (x, y) in a32.mu.iter().zip(a.mu.iter()) {
        assert_eq!(*x, *y as f32 as f64);
    }
}

#[test]
fn statistics_written_by_ddmlab_read_back_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let a = read_stats(&fixture("stats-a.npz")).unwrap();
    let path = tmp.path().join("out.npz");
    write_stats(&path, &a).unwrap();
    let back = read_stats(&path).unwrap();
    assert_eq!(back.mu, a.mu);
    assert_eq!(back.sigma, a.sigma);
    // The same entries, data bytes and header size as numpy wrote for the same arrays (the
    // header dicts differ only in how a shape tuple is spaced).
    let payload = |entries: Vec<(String, Vec<u8>)>| -> Vec<(String, usize, Vec<u8>)> {
        entries
            .into_iter()
            .map(|(name, b)| {
                let end = b.iter().position(|&c| c == b'\n').unwrap() + 1;
                (name, end, b[end..].to_vec())
            })
            .collect()
    };
    assert_eq!(payload(npz_entries(&path)), payload(npz_entries(&fixture("stats-a.npz"))));
}

/// The `.npy` entries of an archive (names and bytes), as numpy would read them.
fn npz_entries(path: &Path) -> Vec<(String, Vec<u8>)> {
    use std::io::Read;
    let mut zip = npyz::zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut out: Vec<(String, Vec<u8>)> = (0..zip.len())
        .map(|i| {
            let mut e = zip.by_index(i).unwrap();
            let mut b = Vec::new();
            e.read_to_end(&mut b).unwrap();
            (e.name().to_string(), b)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn numpy_sample_batches_read_as_chw_images_with_labels() {
    let r = reference();
    let batch = read_samples(&fixture("samples-rgb.npz"), 0).unwrap();
    let hwc: Vec<u8> = floats(&r["rgb"]).iter().map(|&v| v as u8).collect();
    let [n, h, w, c] =
        <[usize; 4]>::try_from(floats(&r["rgb_shape"]).iter().map(|&v| v as usize).collect::<Vec<_>>()).unwrap();
    assert_eq!(batch.images.len(), n);
    for (k, img) in batch.images.iter().enumerate() {
        assert_eq!((img.channels, img.height, img.width), (c, h, w));
        for ch in 0..c {
            for p in 0..h * w {
                assert_eq!(img.pixels[ch * h * w + p], hwc[k * h * w * c + p * c + ch]);
            }
        }
    }
    assert_eq!(batch.labels, Some(vec![2, 0, 7]));
    let grey = read_samples(&fixture("samples-grey.npz"), 1).unwrap();
    assert_eq!(grey.images.len(), 1, "limit 1");
    assert_eq!(grey.images[0].channels, 1);
    let want: Vec<u8> = floats(&r["grey"]).iter().take(6).map(|&v| v as u8).collect();
    assert_eq!(grey.images[0].pixels, want);
    assert_eq!(grey.labels, None);
}

#[test]
fn sample_batches_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let images: Vec<RawImage> = (0..3)
        .map(|k| RawImage { channels: 3, height: 2, width: 4, pixels: (0..24).map(|p| (p * 10 + k) as u8).collect() })
        .collect();
    let batch = SampleBatch { images, labels: Some(vec![1, 5, 9]) };
    let path = tmp.path().join("s.npz");
    write_samples(&path, &batch).unwrap();
    assert_eq!(read_samples(&path, 0).unwrap(), batch);
}

#[test]
fn bad_files_are_one_clear_error_naming_the_file_and_array() {
    let tmp = tempfile::tempdir().unwrap();
    let msg = |r: ddmlab::error::Result<_>| -> String {
        match r {
            Ok(()) => panic!("accepted"),
            Err(e) => e.to_string(),
        }
    };
    let e = msg(read_stats(&fixture("no-sigma.npz")).map(|_| ()));
    assert!(e.contains("no-sigma.npz") && e.contains("`sigma`") && e.contains("[\"mu\"]"), "{e}");
    let e = msg(read_stats(&fixture("samples-rgb.npz")).map(|_| ()));
    assert!(e.contains("no `mu`"), "{e}");
    let e = msg(read_samples(&fixture("samples-float.npz"), 0).map(|_| ()));
    assert!(e.contains("arr_0") && e.contains("uint8") && e.contains("<f4"), "{e}");
    let e = msg(read_samples(&fixture("stats-a.npz"), 0).map(|_| ()));
    assert!(e.contains("no `arr_0`"), "{e}");
    // Not a zip; a zip truncated in the middle of an array.
    let junk = tmp.path().join("junk.npz");
    std::fs::write(&junk, b"definitely not a zip archive").unwrap();
    let e = msg(read_stats(&junk).map(|_| ()));
    assert!(e.contains("junk.npz") && e.contains("not an .npz"), "{e}");
    let raw = std::fs::read(fixture("samples-rgb.npz")).unwrap();
    let cut = tmp.path().join("cut.npz");
    std::fs::write(&cut, &raw[..raw.len() / 2]).unwrap();
    let e = msg(read_samples(&cut, 0).map(|_| ()));
    assert!(e.contains("cut.npz"), "{e}");
    // Wrong shapes.
    let odd = SampleBatch {
        images: vec![
            RawImage { channels: 1, height: 2, width: 2, pixels: vec![0; 4] },
            RawImage { channels: 1, height: 3, width: 2, pixels: vec![0; 6] },
        ],
        labels: None,
    };
    let e = msg(write_samples(&tmp.path().join("odd.npz"), &odd));
    assert!(e.contains("different sizes"), "{e}");
    let missing = tmp.path().join("missing.npz");
    let e = msg(read_samples(&missing, 0).map(|_| ()));
    assert!(e.contains("missing.npz"), "{e}");
}
