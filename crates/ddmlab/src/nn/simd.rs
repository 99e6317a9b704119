//! CPU dispatch for the hand-written kernels (`gelu`, `fused`): the same Rust code compiled a
//! second time for AVX2 + FMA, chosen at run time when the CPU has them (8 f32 lanes instead of
//! SSE's 4), so that one binary runs on any x86-64 and is fast on the machines that can be.

/// Whether the CPU has AVX2 and FMA (the vectorised twins of the CPU kernels run then).
pub(crate) fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Runs `$body` (an expression) compiled for AVX2 + FMA when `$avx2` (from [`has_avx2`]) is
/// true, plainly otherwise: the same code, vectorised 8-wide instead of 4. The body's callees
/// must be `#[inline(always)]` to be compiled into the AVX2 twin.
macro_rules! with_avx2 {
    ($avx2:expr, $body:expr) => {{
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        fn fast<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller checked that the CPU has AVX2 and FMA.
        let result = if $avx2 { unsafe { fast(|| $body) } } else { $body };
        #[cfg(not(target_arch = "x86_64"))]
        let result = {
            let _ = $avx2;
            $body
        };
        result
    }};
}
pub(crate) use with_avx2;
