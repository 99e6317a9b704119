//! Weighted k-nearest-neighbour classification on frozen features (the DINO protocol):
//! cosine similarity on L2-normalised features, the `k` nearest training images vote with
//! weight `exp(s / T)`.

use burn::tensor::{Device, Tensor, TensorData};

use super::features::Features;

fn normalized(f: &Features) -> Vec<f32> {
    f.data
        .chunks_exact(f.dim)
        .flat_map(|row| {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            row.iter().map(move |v| v / norm)
        })
        .collect()
}

/// Top-1 accuracy (%) of a `k`-NN classifier with temperature `temperature`.
pub fn knn_top1(
    train: &Features,
    train_labels: &[u32],
    test: &Features,
    test_labels: &[u32],
    classes: usize,
    k: usize,
    temperature: f64,
    device: &Device,
) -> f64 {
    let bank = Tensor::<2>::from_data(TensorData::new(normalized(train), [train.len(), train.dim]), device).transpose(); // [D, N]
    let queries = normalized(test);
    let k = k.min(train.len()).max(1);
    let chunk = 256;
    let mut correct = 0usize;
    for (c, rows) in queries.chunks(chunk * test.dim).enumerate() {
        let m = rows.len() / test.dim;
        let q = Tensor::<2>::from_data(TensorData::new(rows.to_vec(), [m, test.dim]), device);
        let (sims, idx) = q.matmul(bank.clone()).topk_with_indices(k, 1); // [m, k]
        let sims: Vec<f32> = sims.into_data().try_into_vec().expect("f32");
        let idx: Vec<i64> = idx.into_data().convert::<i64>().try_into_vec().expect("indices");
        for r in 0..m {
            let mut votes = vec![0f64; classes];
            for j in 0..k {
                votes[train_labels[idx[r * k + j] as usize] as usize] += (sims[r * k + j] as f64 / temperature).exp();
            }
            let pred = votes.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i).unwrap_or(0);
            correct += (pred == test_labels[c * chunk + r] as usize) as usize;
        }
    }
    100.0 * correct as f64 / test_labels.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knn_finds_the_nearest_cluster() {
        let train = Features { data: vec![1.0, 0.0, 0.9, 0.1, 0.0, 1.0, 0.1, 0.9], dim: 2 };
        let test = Features { data: vec![0.95, 0.05, 0.05, 0.95], dim: 2 };
        let acc = knn_top1(&train, &[0, 0, 1, 1], &test, &[0, 1], 2, 2, 0.07, &Device::flex());
        assert_eq!(acc, 100.0);
    }
}
