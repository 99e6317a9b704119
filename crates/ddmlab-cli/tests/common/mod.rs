//! What the command-line tests share: a small synthetic data set in Fashion-MNIST's files, and
//! the losses a run logged.

use std::path::Path;

/// A Fashion-MNIST-shaped synthetic set (40 train, 20 test) under `root/fashion-mnist/`.
pub fn write_data(root: &Path) {
    let dir = root.join("fashion-mnist");
    std::fs::create_dir_all(&dir).unwrap();
    for (prefix, n) in [("train", 40usize), ("t10k", 20)] {
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        let images: Vec<u8> =
            (0..n * 784).map(|j| if (j % 784) / 28 / 3 == (j / 784) % 10 { 220 } else { (j % 31) as u8 }).collect();
        let idx = |dims: &[usize], data: &[u8]| {
            let mut out = vec![0, 0, 8, dims.len() as u8];
            dims.iter().for_each(|d| out.extend((*d as u32).to_be_bytes()));
            out.extend_from_slice(data);
            out
        };
        std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), idx(&[n, 28, 28], &images)).unwrap();
        std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), idx(&[n], &labels)).unwrap();
    }
}

/// The `loss` of every line of a metrics file.
pub fn logged_losses(path: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["step"].as_u64().unwrap(), v["loss"].as_f64().unwrap())
        })
        .collect()
}
