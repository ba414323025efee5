//! int8 GEMM micro-kernels (see [`crate::qgemm`]): `avx512vnni_qgemm_u8s8_8x48` (`vpdpbusd`)
//! and `avx2_qgemm_u8s8_8x8` (widened to 16 bits, `vpmaddwd`).

use crate::qgemm::{requant_t, QMicroKernel, TileDst, TileOut, MR};
use core::arch::x86_64::*;

/// AVX-512 VNNI: 8 rows × up to 3 vectors of 16 columns; 24 accumulators in registers, the
/// weights as embedded 32-bit broadcasts.
#[derive(Debug)]
pub(crate) struct Avx512VnniQgemm8x48;

impl QMicroKernel for Avx512VnniQgemm8x48 {
    const NR: usize = 48;
    const XOR: u8 = 0;
    unsafe fn tile(
        k4: usize,
        w: *const i8,
        x: *const u8,
        ldx: usize,
        init: &[i32; MR],
        dst: &TileDst,
    ) {
        // SAFETY: forwarded contract (QMicroKernel::tile); nr ≤ 48 selects the vector count.
        unsafe {
            match dst.nr.div_ceil(16) {
                0 | 1 => avx512vnni_qgemm_u8s8_8x48::<1>(k4, w, x, ldx, init, dst),
                2 => avx512vnni_qgemm_u8s8_8x48::<2>(k4, w, x, ldx, init, dst),
                _ => avx512vnni_qgemm_u8s8_8x48::<3>(k4, w, x, ldx, init, dst),
            }
        }
    }
}

#[target_feature(enable = "avx512f,avx512vnni")]
unsafe fn avx512vnni_qgemm_u8s8_8x48<const NV: usize>(
    k4: usize,
    w: *const i8,
    x: *const u8,
    ldx: usize,
    init: &[i32; MR],
    dst: &TileDst,
) {
    let tail = dst.nr - (NV - 1) * 16;
    let mut masks = [0xffffu16; NV];
    masks[NV - 1] = if tail >= 16 {
        0xffff
    } else {
        (1u16 << tail) - 1
    };
    let mut acc = [[_mm512_setzero_si512(); NV]; MR];
    for (row, &c) in acc.iter_mut().zip(init) {
        *row = [_mm512_set1_epi32(c); NV];
    }
    // SAFETY: (whole body) the reads stay in the panel (32 bytes per quad) and in columns
    // < nr of each quad row of the scratch (masked lanes are not read): the tile contract.
    unsafe {
        for q in 0..k4 / 4 {
            let xp = x.add(q * ldx) as *const i32;
            let mut xv = [_mm512_setzero_si512(); NV];
            for v in 0..NV {
                xv[v] = _mm512_maskz_loadu_epi32(masks[v], xp.add(v * 16));
            }
            let wp = w.add(q * 32) as *const i32;
            for r in 0..MR {
                let wr = _mm512_set1_epi32(wp.add(r).read_unaligned());
                for v in 0..NV {
                    acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], xv[v], wr);
                }
            }
        }
        store512::<NV>(&acc, &masks, dst);
    }
}

/// `q8::requantize` on 16 lanes: the `i64` product, rounding and arithmetic shift on the even
/// and the odd lanes separately (`vpmuldq` reads the low half of each 64-bit lane), then the
/// zero point and the clamp, still in 64 bits.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn requant512(acc: __m512i, mult: i32, shift: i8, zp: u8, lo: u8, hi: u8) -> __m512i {
    let t = requant_t(shift);
    let m = _mm512_set1_epi64(mult as i64);
    let rnd = _mm512_set1_epi64(1i64 << (t - 1));
    let cnt = _mm_cvtsi32_si128(t as i32);
    let (zp, lo, hi) = (
        _mm512_set1_epi64(zp as i64),
        _mm512_set1_epi64(lo as i64),
        _mm512_set1_epi64(hi as i64),
    );
    let one = |v: __m512i| {
        let p = _mm512_sra_epi64(_mm512_add_epi64(_mm512_mul_epi32(v, m), rnd), cnt);
        _mm512_min_epi64(_mm512_max_epi64(_mm512_add_epi64(p, zp), lo), hi)
    };
    let even = one(acc);
    let odd = one(_mm512_srli_epi64::<32>(acc));
    // Both are in [0, 255]: the odd results go to the high halves.
    _mm512_or_si512(even, _mm512_slli_epi64::<32>(odd))
}

/// The epilogue: each row's vectors requantized (or converted and scaled) and stored, with
/// byte-narrowing masked stores when columns are contiguous.
///
/// # Safety
/// `dst`'s tile contract; `masks` select columns `< nr`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn store512<const NV: usize>(acc: &[[__m512i; NV]; MR], masks: &[u16; NV], dst: &TileDst) {
    for (r, row) in acc.iter().enumerate().take(dst.mr) {
        for v in 0..NV {
            let lanes = (dst.nr - v * 16).min(16);
            let at = r * dst.rs + v * 16 * dst.cs;
            let mut tmp = [0i32; 16];
            // SAFETY: (r, 16v + l) for l < lanes is inside the tile (caller's contract).
            unsafe {
                match dst.out {
                    TileOut::U8 {
                        out,
                        mult,
                        shift,
                        zp,
                        lo,
                        hi,
                    } => {
                        let y = requant512(row[v], mult[r], shift[r], zp, lo, hi);
                        if dst.cs == 1 {
                            _mm512_mask_cvtepi32_storeu_epi8(out.add(at) as *mut i8, masks[v], y);
                        } else {
                            _mm512_storeu_si512(tmp.as_mut_ptr() as *mut __m512i, y);
                            for (l, &b) in tmp.iter().enumerate().take(lanes) {
                                *out.add(at + l * dst.cs) = b as u8;
                            }
                        }
                    }
                    TileOut::F32 { out, scale } => {
                        let y = _mm512_mul_ps(_mm512_cvtepi32_ps(row[v]), _mm512_set1_ps(scale[r]));
                        if dst.cs == 1 {
                            _mm512_mask_storeu_ps(out.add(at), masks[v], y);
                        } else {
                            let mut f = [0f32; 16];
                            _mm512_storeu_ps(f.as_mut_ptr(), y);
                            for (l, &b) in f.iter().enumerate().take(lanes) {
                                *out.add(at + l * dst.cs) = b;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `q8::requantize` on 8 lanes, as [`requant512`]; AVX2 has neither a 64-bit arithmetic
/// shift nor 64-bit min/max, so the shift is `((p ^ s) >> t) ^ s` with `s` the sign mask
/// (a floor division either way) and the clamp compares and blends.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn requant256(acc: __m256i, mult: i32, shift: i8, zp: u8, lo: u8, hi: u8) -> __m256i {
    let t = requant_t(shift);
    let m = _mm256_set1_epi64x(mult as i64);
    let rnd = _mm256_set1_epi64x(1i64 << (t - 1));
    let cnt = _mm_cvtsi32_si128(t as i32);
    let zero = _mm256_setzero_si256();
    let (zp, lo, hi) = (
        _mm256_set1_epi64x(zp as i64),
        _mm256_set1_epi64x(lo as i64),
        _mm256_set1_epi64x(hi as i64),
    );
    let one = |v: __m256i| {
        let p = _mm256_add_epi64(_mm256_mul_epi32(v, m), rnd);
        let s = _mm256_cmpgt_epi64(zero, p);
        let p = _mm256_xor_si256(_mm256_srl_epi64(_mm256_xor_si256(p, s), cnt), s);
        let p = _mm256_add_epi64(p, zp);
        let p = _mm256_blendv_epi8(p, lo, _mm256_cmpgt_epi64(lo, p));
        _mm256_blendv_epi8(p, hi, _mm256_cmpgt_epi64(p, hi))
    };
    let even = one(acc);
    let odd = one(_mm256_srli_epi64::<32>(acc));
    _mm256_or_si256(even, _mm256_slli_epi64::<32>(odd))
}

/// AVX2 without VNNI: 8 rows × 8 columns. `vpmaddubsw` would saturate (`2 × 255 × 127 >
/// 32767`), so each 4-byte lane is split into its even and odd bytes widened to 16 bits
/// (activations zero-extended, weights sign-extended) and summed exactly by two `vpmaddwd`.
#[derive(Debug)]
pub(crate) struct Avx2Qgemm8x8;

impl QMicroKernel for Avx2Qgemm8x8 {
    const NR: usize = 8;
    const XOR: u8 = 0;
    unsafe fn tile(
        k4: usize,
        w: *const i8,
        x: *const u8,
        ldx: usize,
        init: &[i32; MR],
        dst: &TileDst,
    ) {
        // SAFETY: forwarded contract.
        unsafe { avx2_qgemm_u8s8_8x8(k4, w, x, ldx, init, dst) }
    }
}

#[target_feature(enable = "avx2")]
unsafe fn avx2_qgemm_u8s8_8x8(
    k4: usize,
    w: *const i8,
    x: *const u8,
    ldx: usize,
    init: &[i32; MR],
    dst: &TileDst,
) {
    let full = dst.nr == 8;
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(dst.nr as i32), lanes);
    let low = _mm256_set1_epi16(0x00ff);
    let mut acc = [_mm256_setzero_si256(); MR];
    for (a, &c) in acc.iter_mut().zip(init) {
        *a = _mm256_set1_epi32(c);
    }
    // SAFETY: (whole body) reads stay in the panel and in columns < nr of each quad row of
    // the scratch (a partial tile loads with a mask): the tile contract.
    unsafe {
        for q in 0..k4 / 4 {
            let xp = x.add(q * ldx);
            let xv = if full {
                _mm256_loadu_si256(xp as *const __m256i)
            } else {
                _mm256_maskload_epi32(xp as *const i32, mask)
            };
            let xe = _mm256_and_si256(xv, low);
            let xo = _mm256_srli_epi16::<8>(xv);
            let wp = w.add(q * 32) as *const i32;
            for (r, a) in acc.iter_mut().enumerate() {
                let wv = _mm256_set1_epi32(wp.add(r).read_unaligned());
                let we = _mm256_srai_epi16::<8>(_mm256_slli_epi16::<8>(wv));
                let wo = _mm256_srai_epi16::<8>(wv);
                let s = _mm256_add_epi32(_mm256_madd_epi16(xe, we), _mm256_madd_epi16(xo, wo));
                *a = _mm256_add_epi32(*a, s);
            }
        }
        for (r, a) in acc.iter().enumerate().take(dst.mr) {
            let at = r * dst.rs;
            match dst.out {
                TileOut::U8 {
                    out,
                    mult,
                    shift,
                    zp,
                    lo,
                    hi,
                } => {
                    let y = requant256(*a, mult[r], shift[r], zp, lo, hi);
                    // Byte 0 of each 32-bit lane to the low 4 bytes of each 128-bit half.
                    let pick = _mm256_setr_epi8(
                        0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12,
                        -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                    );
                    let b = _mm256_shuffle_epi8(y, pick);
                    let b =
                        _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 0, 0, 0, 0, 0, 0));
                    let mut tmp = [0u8; 32];
                    _mm256_storeu_si256(tmp.as_mut_ptr() as *mut __m256i, b);
                    if dst.cs == 1 {
                        core::ptr::copy_nonoverlapping(tmp.as_ptr(), out.add(at), dst.nr);
                    } else {
                        for (l, &v) in tmp.iter().enumerate().take(dst.nr) {
                            *out.add(at + l * dst.cs) = v;
                        }
                    }
                }
                TileOut::F32 { out, scale } => {
                    let y = _mm256_mul_ps(_mm256_cvtepi32_ps(*a), _mm256_set1_ps(scale[r]));
                    if dst.cs == 1 && full {
                        _mm256_storeu_ps(out.add(at), y);
                    } else if dst.cs == 1 {
                        _mm256_maskstore_ps(out.add(at), mask, y);
                    } else {
                        let mut tmp = [0f32; 8];
                        _mm256_storeu_ps(tmp.as_mut_ptr(), y);
                        for (l, &v) in tmp.iter().enumerate().take(dst.nr) {
                            *out.add(at + l * dst.cs) = v;
                        }
                    }
                }
            }
        }
    }
}
