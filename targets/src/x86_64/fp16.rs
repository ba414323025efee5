//! fp16 -> f32 conversion for weight tiles: `avx512_cvt_f16_f32` (`vcvtph2ps zmm`, AVX-512F)
//! and `f16c_cvt_f16_f32` (`vcvtph2ps ymm`, F16C, part of the AVX2 set). Scalar twin:
//! [`crate::fp16::f16_to_f32`].

use crate::fp16::blocks;
use core::arch::x86_64::*;

/// Converts `n` binary16 values at `src` to f32 at `dst`, 16 per instruction.
///
/// # Safety
/// The CPU has AVX-512F; `src` holds `n` readable values, `dst` `n` writable ones.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn avx512_cvt_f16_f32(src: *const u16, dst: *mut f32, n: usize) {
    // SAFETY: `blocks` hands over 16 readable and writable values at a time (caller's
    // contract); unaligned loads and stores.
    unsafe {
        blocks::<16>(src, dst, n, |s, d| {
            let h = _mm256_loadu_si256(s.cast::<__m256i>());
            _mm512_storeu_ps(d, _mm512_cvtph_ps(h));
        })
    }
}

/// Converts `n` binary16 values at `src` to f32 at `dst`, 8 per instruction.
///
/// # Safety
/// The CPU has AVX2, FMA and F16C (every CPU the AVX2 set runs on: `Isa` checks all three);
/// `src` holds `n` readable values, `dst` `n` writable ones.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn f16c_cvt_f16_f32(src: *const u16, dst: *mut f32, n: usize) {
    // SAFETY: `blocks` hands over 8 readable and writable values at a time (caller's
    // contract); unaligned loads and stores.
    unsafe {
        blocks::<8>(src, dst, n, |s, d| {
            let h = _mm_loadu_si128(s.cast::<__m128i>());
            _mm256_storeu_ps(d, _mm256_cvtph_ps(h));
        })
    }
}
