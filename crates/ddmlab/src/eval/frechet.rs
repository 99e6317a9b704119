//! The statistics of generation metrics on feature sets: mean and covariance (`Stats`), the
//! Fréchet distance (FID, Heusel et al.) and KID (Binkowski et al.), all in f64.
//!
//! - FID `= |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))`, the covariances with the
//!   `N - 1` denominator (as numpy's `cov`). The trace of the matrix square root is computed
//!   as `sum_i sqrt(lambda_i)` over the eigenvalues of the symmetric `S_a^(1/2) S_b S_a^(1/2)`
//!   (same eigenvalues as `S_a S_b`), all in f64.
//! - KID: the unbiased MMD^2 with the kernel `k(x, y) = (x.y / d + 1)^3`, averaged over random
//!   subsets (torch-fidelity / clean-fid: 100 subsets of 1000).

use nalgebra::{DMatrix, DVector};
use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;

/// Mean and covariance of a feature set.
#[derive(Debug, Clone)]
pub struct Stats {
    pub mu: DVector<f64>,
    pub sigma: DMatrix<f64>,
    pub n: usize,
}

impl Stats {
    /// Statistics of `[N, d]` row-major features (`N >= 2`), in f64: the covariance summed
    /// over chunks of rows by the multi-threaded GEMM (60k Inception features never sit in
    /// memory as one f64 matrix).
    pub fn of(features: &[f32], dim: usize) -> Stats {
        const ROWS: usize = 2048;
        let n = features.len() / dim;
        let mut mu = vec![0f64; dim];
        for row in features.chunks_exact(dim) {
            for (m, &v) in mu.iter_mut().zip(row) {
                *m += v as f64;
            }
        }
        mu.iter_mut().for_each(|m| *m /= n.max(1) as f64);
        let mut sigma = vec![0f64; dim * dim];
        for rows in features.chunks(ROWS * dim) {
            let r = rows.len() / dim;
            // The chunk centred and transposed, [d, r]: its Gram matrix is X_c^T X_c of the chunk.
            let mut t = vec![0f64; dim * r];
            for (i, row) in rows.chunks_exact(dim).enumerate() {
                for (j, &v) in row.iter().enumerate() {
                    t[j * r + i] = v as f64 - mu[j];
                }
            }
            for (acc, v) in sigma.iter_mut().zip(gram_f64(&t, &t, r)) {
                *acc += v;
            }
        }
        let denominator = (n.max(2) - 1) as f64;
        // Symmetric, so the row-major sum reads the same column-major.
        let sigma = DMatrix::from_vec(dim, dim, sigma) / denominator;
        Stats { mu: DVector::from_vec(mu), sigma, n }
    }
}

/// The symmetric square root of a positive semi-definite matrix (negative eigenvalues, which
/// are rounding, clipped at 0).
pub fn psd_sqrt(a: &DMatrix<f64>) -> DMatrix<f64> {
    let (values, vectors) = symmetric_eigen(a);
    let mut scaled = vectors.clone();
    for (j, &l) in values.iter().enumerate() {
        scaled.column_mut(j).scale_mut(l.max(0.0).sqrt());
    }
    matmul_f64(&scaled, &vectors.transpose())
}

/// Eigenvalues and eigenvectors (columns) of a symmetric matrix, by faer's multi-threaded
/// divide-and-conquer solver (2048^2: ~5x nalgebra's single-threaded QR iteration); nalgebra's
/// solver answers in the rare case faer's reports no convergence.
fn symmetric_eigen(a: &DMatrix<f64>) -> (Vec<f64>, DMatrix<f64>) {
    let n = a.nrows();
    let view = faer::MatRef::from_column_major_slice(a.as_slice(), n, a.ncols());
    match view.self_adjoint_eigen(faer::Side::Lower) {
        Ok(eig) => {
            let values = eig.S().column_vector().iter().copied().collect();
            let u = eig.U();
            (values, DMatrix::from_fn(n, n, |i, j| u[(i, j)]))
        }
        Err(_) => {
            let eig = a.clone().symmetric_eigen();
            (eig.eigenvalues.iter().copied().collect(), eig.eigenvectors)
        }
    }
}

/// Eigenvalues of a symmetric matrix (faer, with nalgebra as the fallback, as [`symmetric_eigen`]).
fn symmetric_eigenvalues(a: &DMatrix<f64>) -> Vec<f64> {
    let view = faer::MatRef::from_column_major_slice(a.as_slice(), a.nrows(), a.ncols());
    match view.self_adjoint_eigenvalues(faer::Side::Lower) {
        Ok(values) => values,
        Err(_) => a.clone().symmetric_eigenvalues().iter().copied().collect(),
    }
}

/// `a b` for column-major matrices by the multi-threaded f64 GEMM (nalgebra's product is
/// single-threaded: two 2048^3 products per FID).
fn matmul_f64(a: &DMatrix<f64>, b: &DMatrix<f64>) -> DMatrix<f64> {
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    assert_eq!(b.nrows(), k, "inner dimensions");
    let mut out = DMatrix::<f64>::zeros(m, n);
    // Column-major: row stride 1, column stride = rows.
    let (mi, ki) = (m as isize, k as isize);
    gemm_f64(m, n, k, (out.as_mut_slice(), mi, 1), (a.as_slice(), mi, 1), (b.as_slice(), ki, 1));
    out
}

/// The trace of the square root of `a b` for symmetric positive semi-definite `a`, `b`, given
/// `sqrt_a`: the eigenvalues of the symmetric `sqrt_a b sqrt_a`, which has those of `a b`.
fn trace_sqrt_product_with_root(sqrt_a: &DMatrix<f64>, b: &DMatrix<f64>) -> f64 {
    let m = matmul_f64(&matmul_f64(sqrt_a, b), sqrt_a);
    let m = (&m + m.transpose()) * 0.5;
    symmetric_eigenvalues(&m).iter().map(|&l| l.max(0.0).sqrt()).sum()
}

/// The Fréchet distance between two Gaussians.
pub fn frechet_distance(a: &Stats, b: &Stats) -> f64 {
    frechet_distance_to(a, &ReferenceStats::new(b.clone()))
}

/// A reference's statistics with the square root of its covariance computed once: the FID of
/// every sample set scored against it (every point of `gen-eval`) then costs one symmetric
/// eigenvalue problem instead of two full eigendecompositions.
#[derive(Debug, Clone)]
pub struct ReferenceStats {
    pub stats: Stats,
    sigma_root: DMatrix<f64>,
}

impl ReferenceStats {
    pub fn new(stats: Stats) -> Self {
        let sigma_root = psd_sqrt(&stats.sigma);
        ReferenceStats { stats, sigma_root }
    }
}

/// The Fréchet distance of `a` to a reference (symmetric in the two Gaussians).
pub fn frechet_distance_to(a: &Stats, reference: &ReferenceStats) -> f64 {
    let b = &reference.stats;
    let diff = &a.mu - &b.mu;
    diff.dot(&diff) + a.sigma.trace() + b.sigma.trace()
        - 2.0 * trace_sqrt_product_with_root(&reference.sigma_root, &a.sigma)
}

/// KID: mean and standard deviation over `subsets` random subsets of `subset_size` (capped at
/// the smaller set) of the unbiased MMD^2 with the cubic polynomial kernel.
pub fn kid(a: &[f32], b: &[f32], dim: usize, subsets: usize, subset_size: usize, seed: u64) -> (f64, f64) {
    let (na, nb) = (a.len() / dim, b.len() / dim);
    let m = subset_size.min(na).min(nb);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let rows = |x: &[f32], picked: Vec<usize>| -> Vec<f64> {
        picked.iter().flat_map(|i| x[i * dim..(i + 1) * dim].iter().map(|&v| v as f64)).collect()
    };
    let mut values = Vec::with_capacity(subsets);
    for _ in 0..subsets {
        let xa = rows(a, sample(&mut rng, na, m).into_vec());
        let xb = rows(b, sample(&mut rng, nb, m).into_vec());
        // Sums of k(x, y) = (x.y / d + 1)^3 over all pairs, and over the diagonal.
        let kernel_sums = |p: &[f64], q: &[f64]| {
            let gram = gram_f64(p, q, dim);
            let k = |v: f64| (v / dim as f64 + 1.0).powi(3);
            (gram.iter().map(|&v| k(v)).sum::<f64>(), (0..m).map(|i| k(gram[i * m + i])).sum::<f64>())
        };
        let ((saa, daa), (sbb, dbb), (sab, _)) = (kernel_sums(&xa, &xa), kernel_sums(&xb, &xb), kernel_sums(&xa, &xb));
        let mf = m as f64;
        values.push((saa - daa + sbb - dbb) / (mf * (mf - 1.0)) - 2.0 * sab / (mf * mf));
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
    (mean, var.sqrt())
}

/// `p q^T` for row-major `[m, dim]` and `[n, dim]` matrices: `[m, n]` row-major, by the
/// multi-threaded f64 GEMM (KID's kernel matrices are 1000 x 1000 over 2048 features, 300 per
/// evaluation).
fn gram_f64(p: &[f64], q: &[f64], dim: usize) -> Vec<f64> {
    let (m, n) = (p.len() / dim, q.len() / dim);
    assert!(p.len() == m * dim && q.len() == n * dim, "rows of {dim} values");
    let mut out = vec![0.0f64; m * n];
    // `out` row-major [m, n]; `p` row-major [m, dim]; `q` read as its transpose [dim, n].
    let (ni, di) = (n as isize, dim as isize);
    gemm_f64(m, n, dim, (&mut out, 1, ni), (p, 1, di), (q, di, 1));
    out
}

/// `dst = lhs rhs` for `[m, k] x [k, n]` f64 matrices given as (values, column stride, row
/// stride), by the multi-threaded GEMM.
fn gemm_f64(
    m: usize,
    n: usize,
    k: usize,
    dst: (&mut [f64], isize, isize),
    lhs: (&[f64], isize, isize),
    rhs: (&[f64], isize, isize),
) {
    if m == 0 || n == 0 {
        return;
    }
    let last = |rows: usize, cols: usize, cs: isize, rs: isize| {
        (rows.max(1) - 1) as isize * rs + (cols.max(1) - 1) as isize * cs
    };
    assert!(last(m, n, dst.1, dst.2) < dst.0.len() as isize, "dst holds m x n");
    assert!(last(m, k, lhs.1, lhs.2) < lhs.0.len() as isize, "lhs holds m x k");
    assert!(last(k, n, rhs.1, rhs.2) < rhs.0.len() as isize, "rhs holds k x n");
    // SAFETY: every index the strides reach is in bounds (checked above); `dst` is borrowed
    // mutably, so it aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.0.as_mut_ptr(),
            dst.1,
            dst.2,
            false,
            lhs.0.as_ptr(),
            lhs.1,
            lhs.2,
            rhs.0.as_ptr(),
            rhs.1,
            rhs.2,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(0),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gaussian_features(n: usize, dim: usize, shift: f32, seed: u64) -> Vec<f32> {
        use rand_distr::{Distribution, StandardNormal};
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n * dim).map(|_| Distribution::<f32>::sample(&StandardNormal, &mut rng) + shift).collect()
    }

    #[test]
    fn frechet_distance_of_diagonal_gaussians_matches_the_closed_form() {
        // N(mu_a, diag(s_a)) vs N(mu_b, diag(s_b)): |mu_a - mu_b|^2 + sum (sqrt s_a - sqrt s_b)^2.
        let a = Stats {
            mu: DVector::from_vec(vec![0.0, 1.0, 2.0]),
            sigma: DMatrix::from_diagonal(&DVector::from_vec(vec![1.0, 4.0, 9.0])),
            n: 0,
        };
        let b = Stats {
            mu: DVector::from_vec(vec![1.0, 1.0, 0.0]),
            sigma: DMatrix::from_diagonal(&DVector::from_vec(vec![4.0, 4.0, 1.0])),
            n: 0,
        };
        let want = (1.0 + 0.0 + 4.0) + (1.0 + 0.0 + 4.0);
        assert!((frechet_distance(&a, &b) - want).abs() < 1e-9, "{}", frechet_distance(&a, &b));
        assert!(frechet_distance(&a, &a).abs() < 1e-9);
    }

    #[test]
    fn distance_to_a_prepared_reference_equals_the_plain_distance_both_ways() {
        use nalgebra::{DMatrix, DVector};
        let gaussian = |seed: u64| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let x = DMatrix::from_fn(40, 6, |_, _| {
                rand_distr::Distribution::<f64>::sample(&rand_distr::StandardNormal, &mut rng)
            });
            Stats { mu: DVector::from_fn(6, |i, _| i as f64 * 0.1 * seed as f64), sigma: x.tr_mul(&x) / 39.0, n: 40 }
        };
        let (a, b) = (gaussian(1), gaussian(2));
        let plain = frechet_distance(&a, &b);
        assert!(plain > 0.1, "{plain}");
        assert!((frechet_distance_to(&a, &ReferenceStats::new(b.clone())) - plain).abs() < 1e-9);
        assert!((frechet_distance_to(&b, &ReferenceStats::new(a.clone())) - plain).abs() < 1e-9);
    }

    #[test]
    fn frechet_distance_of_a_rotated_covariance_matches_the_commuting_case() {
        // With a random rotation R, S_b = R S_a R^T: FID(a, b) = 2 tr S_a - 2 tr (S_a^1/2 S_b S_a^1/2)^1/2.
        // For S_a = I: tr(S_a + S_b - 2 S_b^1/2) = sum (1 + l_i - 2 sqrt l_i) with l_i = eig(S_b).
        let n = 6;
        let feats = gaussian_features(50, n, 0.0, 3);
        let s_b = Stats::of(&feats, n);
        let a = Stats { mu: s_b.mu.clone(), sigma: DMatrix::identity(n, n), n: 0 };
        let want: f64 = s_b.sigma.clone().symmetric_eigenvalues().iter().map(|l| 1.0 + l - 2.0 * l.sqrt()).sum();
        assert!((frechet_distance(&a, &s_b) - want).abs() < 1e-9);
        // Symmetric in its arguments.
        assert!((frechet_distance(&a, &s_b) - frechet_distance(&s_b, &a)).abs() < 1e-9);
    }

    #[test]
    fn covariance_uses_the_unbiased_denominator() {
        let s = Stats::of(&[1.0, 2.0, 3.0, 6.0], 2); // rows (1, 2), (3, 6)
        assert_eq!(s.mu.as_slice(), &[2.0, 4.0]);
        assert_eq!(s.sigma.as_slice(), &[2.0, 4.0, 4.0, 8.0]);
    }

    /// The chunked GEMM covariance against the definition, over several chunks of rows, with a
    /// non-symmetric-looking layout check (feature j's variance grows with j).
    #[test]
    fn chunked_covariance_matches_the_definition() {
        let (n, dim) = (5000, 5);
        let x: Vec<f32> =
            gaussian_features(n, dim, 0.2, 9).iter().enumerate().map(|(i, v)| v * (1 + i % dim) as f32).collect();
        let s = Stats::of(&x, dim);
        let mean = |j: usize| (0..n).map(|i| x[i * dim + j] as f64).sum::<f64>() / n as f64;
        for j in 0..dim {
            assert!((s.mu[j] - mean(j)).abs() < 1e-12);
            for l in 0..dim {
                let c =
                    (0..n).map(|i| (x[i * dim + j] as f64 - mean(j)) * (x[i * dim + l] as f64 - mean(l))).sum::<f64>()
                        / (n - 1) as f64;
                assert!(
                    (s.sigma[(j, l)] - c).abs() < 1e-10 * c.abs().max(1.0),
                    "({j}, {l}): {} vs {c}",
                    s.sigma[(j, l)]
                );
            }
        }
        assert!(s.sigma[(4, 4)] > 10.0 * s.sigma[(0, 0)]);
    }

    #[test]
    fn gemm_products_match_nalgebras() {
        let a = DMatrix::from_fn(7, 5, |i, j| (i as f64 - 2.0 * j as f64).sin());
        let b = DMatrix::from_fn(5, 3, |i, j| (i * 3 + j) as f64 * 0.1 - 0.4);
        assert!((matmul_f64(&a, &b) - &a * &b).abs().max() < 1e-12);
        let spd = &a.transpose() * &a;
        let root = psd_sqrt(&spd);
        assert!((&root * &root - &spd).abs().max() < 1e-9);
    }

    /// The GEMM path against the definition: with one subset of the whole sets the estimate
    /// is deterministic (the unbiased MMD^2 does not depend on the order of the rows).
    #[test]
    fn kid_equals_the_unbiased_polynomial_mmd_computed_pair_by_pair() {
        let dim = 24;
        let (n, a, b) = (60, gaussian_features(60, 24, 0.0, 5), gaussian_features(60, 24, 0.3, 6));
        let k = |x: &[f32], i: usize, y: &[f32], j: usize| {
            let dot: f64 = (0..dim).map(|l| x[i * dim + l] as f64 * y[j * dim + l] as f64).sum();
            (dot / dim as f64 + 1.0).powi(3)
        };
        let (mut saa, mut sbb, mut sab) = (0.0, 0.0, 0.0);
        for i in 0..n {
            for j in 0..n {
                if i != j {
                    saa += k(&a, i, &a, j);
                    sbb += k(&b, i, &b, j);
                }
                sab += k(&a, i, &b, j);
            }
        }
        let nf = n as f64;
        let want = (saa + sbb) / (nf * (nf - 1.0)) - 2.0 * sab / (nf * nf);
        let (got, std) = kid(&a, &b, dim, 1, n, 0);
        assert!((got - want).abs() <= 1e-12 * want.abs().max(1.0), "{got} vs {want}");
        assert_eq!(std, 0.0);
    }

    #[test]
    fn kid_is_near_zero_for_one_distribution_and_grows_with_a_shift() {
        let dim = 16;
        let a = gaussian_features(400, dim, 0.0, 1);
        let b = gaussian_features(400, dim, 0.0, 2);
        let c = gaussian_features(400, dim, 0.5, 3);
        let (same, _) = kid(&a, &b, dim, 20, 200, 0);
        let (shifted, _) = kid(&a, &c, dim, 20, 200, 0);
        assert!(same.abs() < 0.05, "KID of one distribution {same}");
        assert!(shifted > 10.0 * same.abs().max(0.01), "KID with a shift {shifted} vs {same}");
    }
}
