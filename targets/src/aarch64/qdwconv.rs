//! `neon_qdwconv2d_u8s8`: [`crate::q8::qdwconv2d`] (depthwise int8 convolution) for
//! horizontal strides 1 and 2, any kernel size and dilation, 8 outputs of a row per step.
//!
//! As the AVX-512 kernel (`x86_64/qdwconv.rs`): each input row a tap reads is copied into a
//! stack buffer with the zero point on both sides, so a padded position contributes
//! `w × (zp − zp) = 0` and every tap is one unmasked load (`ld1` of 8 bytes; `ld2` of 16 for
//! stride 2, whose first register holds the even columns). `x − zp` fits 16 bits and `smlal`
//! accumulates the products in exact 32-bit lanes; the requantization is the GEMM's
//! (`requant4`), so the result equals the reference bit for bit.

use super::qgemm::requant4;
use crate::q8::Requant;
use crate::Conv2dGeom;
use core::arch::aarch64::*;

/// Longest padded row the stack buffer holds.
const ROW_MAX: usize = 4096;

/// The padded row length `g` needs: every tap's reads of every 8-column group.
fn row_len(g: &Conv2dGeom) -> usize {
    let groups = g.w_out.div_ceil(8);
    (groups * 8 - 1) * g.stride_w + (g.kw - 1) * g.dil_w + 1 + 16
}

/// Whether [`neon_qdwconv2d_u8s8`] handles `g` (depthwise, horizontal stride 1 or 2, rows
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
#[target_feature(enable = "neon")]
pub(crate) fn neon_qdwconv2d_u8s8(
    g: &Conv2dGeom,
    x: &[u8],
    x_zp: u8,
    w: &[i8],
    rq: &Requant<'_>,
    out: &mut [u8],
) {
    let (in_plane, out_plane, taps) = (g.h_in * g.w_in, g.h_out * g.w_out, g.kh * g.kw);
    let len = row_len(g).max(g.pad_left + g.w_in);
    let zpv = vdupq_n_s16(x_zp as i16);
    // The padded copy of the input row a tap row reads.
    let mut row = [x_zp; ROW_MAX];
    // The output row's accumulators.
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
                    row[..len].fill(x_zp);
                    row[g.pad_left..g.pad_left + g.w_in]
                        .copy_from_slice(&xp[iy as usize * g.w_in..][..g.w_in]);
                    for gi in 0..groups {
                        // SAFETY: groups × 8 ≤ row_len(g) ≤ ROW_MAX accumulators; every load
                        // ends at p + 16 ≤ row_len(g) ≤ ROW_MAX (see row_len).
                        unsafe {
                            let sp = sums.as_mut_ptr().add(gi * 8);
                            let mut lo = vld1q_s32(sp);
                            let mut hi = vld1q_s32(sp.add(4));
                            for tx in 0..g.kw {
                                let p = gi * 8 * g.stride_w + tx * g.dil_w;
                                let v = if g.stride_w == 1 {
                                    vld1_u8(row.as_ptr().add(p))
                                } else {
                                    vld2_u8(row.as_ptr().add(p)).0
                                };
                                let d = vsubq_s16(vreinterpretq_s16_u16(vmovl_u8(v)), zpv);
                                let wv = vdup_n_s16(wc[ty * g.kw + tx] as i16);
                                lo = vmlal_s16(lo, vget_low_s16(d), wv);
                                hi = vmlal_s16(hi, vget_high_s16(d), wv);
                            }
                            vst1q_s32(sp, lo);
                            vst1q_s32(sp.add(4), hi);
                        }
                    }
                }
                for (ox0, chunk) in orow.chunks_mut(4).enumerate() {
                    // SAFETY: the row's accumulators cover groups × 8 ≥ w_out values.
                    let a = unsafe { vld1q_s32(sums.as_ptr().add(4 * ox0)) };
                    let y = requant4(a, rq.multiplier[c], rq.shift[c], rq.out_zp, rq.lo, rq.hi);
                    let mut lanes = [0i32; 4];
                    // SAFETY: `lanes` holds 4 values.
                    unsafe { vst1q_s32(lanes.as_mut_ptr(), y) };
                    for (o, &l) in chunk.iter_mut().zip(&lanes) {
                        *o = l as u8;
                    }
                }
            }
        }
    }
}
