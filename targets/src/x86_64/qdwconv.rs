//! `avx512_qdwconv2d_u8s8` and `avx2_qdwconv2d_u8s8`: [`crate::q8::qdwconv2d`] (depthwise
//! int8 convolution) for horizontal strides 1 and 2, any kernel size and dilation, 16 (8)
//! outputs of a row per vector.
//!
//! Each input row a tap reads is first copied into a stack buffer with the zero point on both
//! sides, so every tap is one unmasked 16-byte load (two for stride 2, whose even lanes one
//! permute keeps) and a padded position contributes `w × (zp − zp) = 0`, as in the
//! reference. Products and sums are exact `i32`; the requantization is the GEMM's
//! (`requant512`), so the result equals the reference bit for bit.

use super::qgemm::{requant256, requant512};
use crate::q8::Requant;
use crate::Conv2dGeom;
use core::arch::x86_64::*;

/// Longest padded row the stack buffer holds.
const ROW_MAX: usize = 4096;

/// The padded row length `g` needs: every tap's reads of every output vector (the last one
/// reads whole 16-lane groups).
fn row_len(g: &Conv2dGeom) -> usize {
    // The 16-lane groups cover the 8-lane ones of the AVX2 kernel.
    let vecs = g.w_out.div_ceil(16);
    (vecs * 16 - 1) * g.stride_w + (g.kw - 1) * g.dil_w + 1 + 16
}

/// Whether [`avx512_qdwconv2d_u8s8`] handles `g` (depthwise, horizontal stride 1 or 2, rows
/// that fit the buffer) and the operands are long enough; the rest goes to the reference.
pub(crate) fn handles(g: &Conv2dGeom, x: usize, w: usize, rq: &Requant<'_>, out: usize) -> bool {
    let c = g.c_out;
    g.groups == c
        && g.c_in == c
        && (g.stride_w == 1 || g.stride_w == 2)
        && g.kh * g.kw > 0
        && g.w_out > 0
        && row_len(g).max(g.pad_left + g.w_in) <= ROW_MAX
        && x >= g.n * c * g.h_in * g.w_in
        && w >= c * g.kh * g.kw
        && out >= g.n * c * g.h_out * g.w_out
        && rq.bias.len() >= c
        && rq.multiplier.len() >= c
        && rq.shift.len() >= c
        && rq.lo <= rq.hi
}

/// See the module documentation. `handles(g, ..)` holds.
#[target_feature(enable = "avx512f")]
pub(crate) fn avx512_qdwconv2d_u8s8(
    g: &Conv2dGeom,
    x: &[u8],
    x_zp: u8,
    w: &[i8],
    rq: &Requant<'_>,
    out: &mut [u8],
) {
    let (in_plane, out_plane, taps) = (g.h_in * g.w_in, g.h_out * g.w_out, g.kh * g.kw);
    let len = row_len(g).max(g.pad_left + g.w_in);
    let zpv = _mm512_set1_epi32(x_zp as i32);
    let evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    // The padded copy of the input row a tap row reads.
    let mut rows = [x_zp; ROW_MAX];
    // The row's accumulators, 16 columns per group.
    let mut sums = [0i32; ROW_MAX];
    for b in 0..g.n {
        for c in 0..g.c_out {
            let xp = &x[(b * g.c_in + c) * in_plane..][..in_plane];
            let op = &mut out[(b * g.c_out + c) * out_plane..][..out_plane];
            let wc = &w[c * taps..][..taps];
            for oy in 0..g.h_out {
                let orow = &mut op[oy * g.w_out..][..g.w_out];
                let groups = g.w_out.div_ceil(16);
                for gi in 0..groups {
                    sums[gi * 16..gi * 16 + 16].fill(rq.bias[c]);
                }
                for ty in 0..g.kh {
                    let iy = (oy * g.stride_h + ty * g.dil_h) as isize - g.pad_top as isize;
                    if iy < 0 || iy >= g.h_in as isize {
                        continue;
                    }
                    rows[..len].fill(x_zp);
                    rows[g.pad_left..g.pad_left + g.w_in]
                        .copy_from_slice(&xp[iy as usize * g.w_in..][..g.w_in]);
                    for gi in 0..groups {
                        // SAFETY: groups × 16 ≤ row_len(g) ≤ ROW_MAX values.
                        let mut a = unsafe {
                            _mm512_loadu_si512(sums.as_ptr().add(gi * 16) as *const __m512i)
                        };
                        for tx in 0..g.kw {
                            let p = gi * 16 * g.stride_w + tx * g.dil_w;
                            let wv = _mm512_set1_epi32(wc[ty * g.kw + tx] as i32);
                            // SAFETY: p + 16 × stride ≤ row_len(g) ≤ len ≤ ROW_MAX.
                            let xv = unsafe {
                                if g.stride_w == 1 {
                                    let v = _mm_loadu_si128(rows.as_ptr().add(p) as *const __m128i);
                                    _mm512_cvtepu8_epi32(v)
                                } else {
                                    let lo =
                                        _mm_loadu_si128(rows.as_ptr().add(p) as *const __m128i);
                                    let hi = _mm_loadu_si128(
                                        rows.as_ptr().add(p + 16) as *const __m128i
                                    );
                                    _mm512_permutex2var_epi32(
                                        _mm512_cvtepu8_epi32(lo),
                                        evens,
                                        _mm512_cvtepu8_epi32(hi),
                                    )
                                }
                            };
                            let d = _mm512_sub_epi32(xv, zpv);
                            a = _mm512_add_epi32(a, _mm512_mullo_epi32(d, wv));
                        }
                        // SAFETY: as the load above.
                        unsafe {
                            _mm512_storeu_si512(sums.as_mut_ptr().add(gi * 16) as *mut __m512i, a)
                        };
                    }
                }
                let mut ox0 = 0;
                while ox0 < g.w_out {
                    let lanes = (g.w_out - ox0).min(16);
                    let mask = if lanes == 16 {
                        0xffff
                    } else {
                        (1u16 << lanes) - 1
                    };
                    // SAFETY: sums holds the row's groups; lanes ox0 .. ox0 + lanes of the
                    // output row exist and masked lanes are not written.
                    unsafe {
                        let a = _mm512_loadu_si512(sums.as_ptr().add(ox0) as *const __m512i);
                        let y =
                            requant512(a, rq.multiplier[c], rq.shift[c], rq.out_zp, rq.lo, rq.hi);
                        _mm512_mask_cvtepi32_storeu_epi8(
                            orow.as_mut_ptr().add(ox0) as *mut i8,
                            mask,
                            y,
                        );
                    }
                    ox0 += 16;
                }
            }
        }
    }
}

/// As [`avx512_qdwconv2d_u8s8`], 8 outputs per vector (stride 2 keeps the even bytes of a
/// 16-byte load with one `pshufb`). `handles(g, ..)` holds.
#[target_feature(enable = "avx2")]
pub(crate) fn avx2_qdwconv2d_u8s8(
    g: &Conv2dGeom,
    x: &[u8],
    x_zp: u8,
    w: &[i8],
    rq: &Requant<'_>,
    out: &mut [u8],
) {
    let (in_plane, out_plane, taps) = (g.h_in * g.w_in, g.h_out * g.w_out, g.kh * g.kw);
    let len = row_len(g).max(g.pad_left + g.w_in);
    let zpv = _mm256_set1_epi32(x_zp as i32);
    let evens = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, -1, -1, -1, -1, -1, -1, -1, -1);
    let pick = _mm256_setr_epi8(
        0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12, -1, -1, -1, -1,
        -1, -1, -1, -1, -1, -1, -1, -1,
    );
    let halves = _mm256_setr_epi32(0, 4, 0, 0, 0, 0, 0, 0);
    let mut rows = [x_zp; ROW_MAX];
    let mut sums = [0i32; ROW_MAX];
    let groups = g.w_out.div_ceil(8);
    for b in 0..g.n {
        for c in 0..g.c_out {
            let xp = &x[(b * g.c_in + c) * in_plane..][..in_plane];
            let op = &mut out[(b * g.c_out + c) * out_plane..][..out_plane];
            let wc = &w[c * taps..][..taps];
            for oy in 0..g.h_out {
                let orow = &mut op[oy * g.w_out..][..g.w_out];
                sums[..groups * 8].fill(rq.bias[c]);
                for ty in 0..g.kh {
                    let iy = (oy * g.stride_h + ty * g.dil_h) as isize - g.pad_top as isize;
                    if iy < 0 || iy >= g.h_in as isize {
                        continue;
                    }
                    rows[..len].fill(x_zp);
                    rows[g.pad_left..g.pad_left + g.w_in]
                        .copy_from_slice(&xp[iy as usize * g.w_in..][..g.w_in]);
                    for gi in 0..groups {
                        // SAFETY: groups × 8 ≤ row_len(g) ≤ ROW_MAX accumulators; every load
                        // ends at p + 16 ≤ row_len(g) ≤ ROW_MAX.
                        unsafe {
                            let sp = sums.as_mut_ptr().add(gi * 8) as *mut __m256i;
                            let mut a = _mm256_loadu_si256(sp);
                            for tx in 0..g.kw {
                                let p = gi * 8 * g.stride_w + tx * g.dil_w;
                                let v = if g.stride_w == 1 {
                                    _mm_loadl_epi64(rows.as_ptr().add(p) as *const __m128i)
                                } else {
                                    let v = _mm_loadu_si128(rows.as_ptr().add(p) as *const __m128i);
                                    _mm_shuffle_epi8(v, evens)
                                };
                                let d = _mm256_sub_epi32(_mm256_cvtepu8_epi32(v), zpv);
                                let wv = _mm256_set1_epi32(wc[ty * g.kw + tx] as i32);
                                a = _mm256_add_epi32(a, _mm256_mullo_epi32(d, wv));
                            }
                            _mm256_storeu_si256(sp, a);
                        }
                    }
                }
                for (gi, chunk) in orow.chunks_mut(8).enumerate() {
                    let mut bytes = [0u8; 32];
                    // SAFETY: the row's accumulators cover groups × 8 ≥ w_out values; `bytes`
                    // holds 32.
                    unsafe {
                        let a = _mm256_loadu_si256(sums.as_ptr().add(gi * 8) as *const __m256i);
                        let y =
                            requant256(a, rq.multiplier[c], rq.shift[c], rq.out_zp, rq.lo, rq.hi);
                        let y = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(y, pick), halves);
                        _mm256_storeu_si256(bytes.as_mut_ptr() as *mut __m256i, y);
                    }
                    chunk.copy_from_slice(&bytes[..chunk.len()]);
                }
            }
        }
    }
}
