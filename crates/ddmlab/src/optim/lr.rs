//! Learning-rate schedule: linear warm-up, then half-cycle cosine (MAE's `adjust_learning_rate`).
//!
//! `lr(s) = peak * s / W` for `s < W`; after that
//! `lr(s) = min + (peak - min) * (1 + cos(pi * (s - W) / (S - W))) / 2`.

/// The learning rate at step `step` of `total` (f64 throughout).
pub fn lr_at(step: usize, total: usize, warmup: usize, peak: f64, min: f64) -> f64 {
    if step < warmup {
        return peak * step as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1) as f64;
    let progress = ((step - warmup) as f64 / span).min(1.0);
    min + (peak - min) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lr_warms_up_linearly_then_follows_half_cosine() {
        assert_eq!(lr_at(0, 100, 10, 1.0, 0.0), 0.0);
        assert!((lr_at(5, 100, 10, 1.0, 0.0) - 0.5).abs() < 1e-15);
        assert!((lr_at(10, 100, 10, 1.0, 0.0) - 1.0).abs() < 1e-15);
        // Halfway through the cosine: exactly the midpoint.
        assert!((lr_at(55, 100, 10, 1.0, 0.2) - 0.6).abs() < 1e-12);
        assert!((lr_at(100, 100, 10, 1.0, 0.2) - 0.2).abs() < 1e-12);
    }
}
