//! `avx512_quantize_u8`, `avx512_dequantize_u8` and their AVX2 twins:
//! [`crate::q8::quantize_u8`] and [`crate::q8::dequantize_u8`] 16 (8) values per vector, with
//! the reference's single IEEE operations (a true division, not a reciprocal product; round
//! half even; NaN to the zero point), so every bit matches.

use core::arch::x86_64::*;

/// `out[i] = quantize_one(x[i], scale, zp)` for `i < min(x.len(), out.len())`.
#[target_feature(enable = "avx512f")]
pub(crate) fn avx512_quantize_u8(x: &[f32], scale: f32, zp: u8, out: &mut [u8]) {
    let len = x.len().min(out.len());
    let s = _mm512_set1_ps(scale);
    let (lo, hi) = (_mm512_set1_ps(-512.0), _mm512_set1_ps(512.0));
    let zpv = _mm512_set1_epi32(zp as i32);
    let (b0, b255) = (_mm512_setzero_si512(), _mm512_set1_epi32(255));
    let mut i = 0;
    while i < len {
        let lanes = (len - i).min(16);
        let mask = if lanes == 16 {
            0xffff
        } else {
            (1u16 << lanes) - 1
        };
        // SAFETY: lanes i .. i + lanes are in both slices; masked lanes are not touched.
        unsafe {
            let v = _mm512_div_ps(_mm512_maskz_loadu_ps(mask, x.as_ptr().add(i)), s);
            let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
            let r = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
            let r = _mm512_min_ps(_mm512_max_ps(r, lo), hi);
            let q = _mm512_add_epi32(_mm512_cvttps_epi32(r), zpv);
            let q = _mm512_min_epi32(_mm512_max_epi32(q, b0), b255);
            let q = _mm512_mask_blend_epi32(nan, q, zpv);
            _mm512_mask_cvtepi32_storeu_epi8(out.as_mut_ptr().add(i) as *mut i8, mask, q);
        }
        i += lanes;
    }
}

/// `out[i] = dequantize_one(q[i], scale, zp)` for `i < min(q.len(), out.len())`.
#[target_feature(enable = "avx512f")]
pub(crate) fn avx512_dequantize_u8(q: &[u8], scale: f32, zp: u8, out: &mut [f32]) {
    let len = q.len().min(out.len());
    let s = _mm512_set1_ps(scale);
    let zpv = _mm512_set1_epi32(zp as i32);
    let mut i = 0;
    while i < len {
        let lanes = (len - i).min(16);
        let mut bytes = [0u8; 16];
        bytes[..lanes].copy_from_slice(&q[i..i + lanes]);
        let mask = if lanes == 16 {
            0xffff
        } else {
            (1u16 << lanes) - 1
        };
        // SAFETY: `bytes` holds 16 bytes; lanes i .. i + lanes of `out` exist and masked
        // lanes are not written.
        unsafe {
            let b = _mm_loadu_si128(bytes.as_ptr() as *const __m128i);
            let v = _mm512_sub_epi32(_mm512_cvtepu8_epi32(b), zpv);
            let f = _mm512_mul_ps(_mm512_cvtepi32_ps(v), s);
            _mm512_mask_storeu_ps(out.as_mut_ptr().add(i), mask, f);
        }
        i += lanes;
    }
}

/// As [`avx512_quantize_u8`], 8 values per vector.
#[target_feature(enable = "avx2")]
pub(crate) fn avx2_quantize_u8(x: &[f32], scale: f32, zp: u8, out: &mut [u8]) {
    let len = x.len().min(out.len());
    let s = _mm256_set1_ps(scale);
    let (lo, hi) = (_mm256_set1_ps(-512.0), _mm256_set1_ps(512.0));
    let zpv = _mm256_set1_epi32(zp as i32);
    let (b0, b255) = (_mm256_setzero_si256(), _mm256_set1_epi32(255));
    // Byte 0 of each 32-bit lane to the low 4 bytes of each 128-bit half, then both halves'
    // dwords together.
    let pick = _mm256_setr_epi8(
        0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12, -1, -1, -1, -1,
        -1, -1, -1, -1, -1, -1, -1, -1,
    );
    let halves = _mm256_setr_epi32(0, 4, 0, 0, 0, 0, 0, 0);
    let mut i = 0;
    while i + 8 <= len {
        // SAFETY: values i .. i + 8 exist in both slices.
        unsafe {
            let v = _mm256_div_ps(_mm256_loadu_ps(x.as_ptr().add(i)), s);
            let ok = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_ORD_Q>(v, v));
            let r = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
            let r = _mm256_min_ps(_mm256_max_ps(r, lo), hi);
            let q = _mm256_add_epi32(_mm256_cvttps_epi32(r), zpv);
            let q = _mm256_min_epi32(_mm256_max_epi32(q, b0), b255);
            let q = _mm256_blendv_epi8(zpv, q, ok);
            let b = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(q, pick), halves);
            _mm_storel_epi64(
                out.as_mut_ptr().add(i) as *mut __m128i,
                _mm256_castsi256_si128(b),
            );
        }
        i += 8;
    }
    crate::q8::quantize_u8(&x[i..len], scale, zp, &mut out[i..len]);
}

/// As [`avx512_dequantize_u8`], 8 values per vector.
#[target_feature(enable = "avx2")]
pub(crate) fn avx2_dequantize_u8(q: &[u8], scale: f32, zp: u8, out: &mut [f32]) {
    let len = q.len().min(out.len());
    let s = _mm256_set1_ps(scale);
    let zpv = _mm256_set1_epi32(zp as i32);
    let mut i = 0;
    while i + 8 <= len {
        // SAFETY: values i .. i + 8 exist in both slices.
        unsafe {
            let b = _mm_loadl_epi64(q.as_ptr().add(i) as *const __m128i);
            let v = _mm256_sub_epi32(_mm256_cvtepu8_epi32(b), zpv);
            let f = _mm256_mul_ps(_mm256_cvtepi32_ps(v), s);
            _mm256_storeu_ps(out.as_mut_ptr().add(i), f);
        }
        i += 8;
    }
    crate::q8::dequantize_u8(&q[i..len], scale, zp, &mut out[i..len]);
}
