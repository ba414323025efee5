//! int8 GEMM micro-kernels (see [`crate::qgemm`]): `neondot_qgemm_s8s8_8x12` (`sdot`,
//! FEAT_DotProd: Cortex-A55/A76/A78, Orin) and `neon_qgemm_s8s8_8x4` (`smull` + `sadalp`,
//! base Advanced SIMD: Cortex-A53/A72). Both read the activations XORed with `0x80` (the
//! driver's repack), i.e. as `s8 = x − 128`, and the driver folds `128 × Σ w` into each row's
//! start value.

use crate::qgemm::{requant_t, QMicroKernel, TileDst, TileOut, MR};
use core::arch::aarch64::*;

/// 16 bytes at `p` when `lanes ≥ 4` columns are readable, else the first `4 × lanes` bytes and
/// zeros.
///
/// # Safety
/// `p .. p + 4 × min(lanes, 4)` is readable.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn load_cols(p: *const u8, lanes: usize) -> int8x16_t {
    // SAFETY: only 4 × min(lanes, 4) bytes are read (caller's contract).
    unsafe {
        if lanes >= 4 {
            return vld1q_s8(p as *const i8);
        }
        let mut tmp = [0i8; 16];
        core::ptr::copy_nonoverlapping(p as *const i8, tmp.as_mut_ptr(), 4 * lanes);
        vld1q_s8(tmp.as_ptr())
    }
}

/// `acc[i] += Σ_t a[4i + t] × b[4L + t]` (`sdot acc.4s, a.16b, b.4b[L]`). The intrinsic
/// (`vdotq_laneq_s32`) is not stable yet, so this is the one instruction as inline assembly.
#[inline]
#[target_feature(enable = "neon,dotprod")]
fn sdot_lane<const L: i32>(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    // SAFETY: a register-only instruction of FEAT_DotProd, which the target feature (and the
    // caller's kernel token) guarantee; L is a lane index 0..=3 at every call.
    unsafe {
        core::arch::asm!(
            "sdot {acc:v}.4s, {a:v}.16b, {b:v}.4b[{l}]",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            l = const L,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    acc
}

/// `q8::requantize` on 4 lanes: `i64` products (`smull`), rounding, arithmetic shift
/// (`sshl` by `−t`), the zero point, a saturating narrow to `i32` (which cannot move a value
/// across the `[lo, hi]` clamp), then the clamp.
#[inline]
#[target_feature(enable = "neon")]
pub(crate) fn requant4(acc: int32x4_t, mult: i32, shift: i8, zp: u8, lo: u8, hi: u8) -> int32x4_t {
    let t = requant_t(shift) as i64;
    let m = vdupq_n_s32(mult);
    let rnd = vdupq_n_s64(1i64 << (t - 1));
    let sh = vdupq_n_s64(-t);
    let zp = vdupq_n_s64(zp as i64);
    let one = |p: int64x2_t| vqmovn_s64(vaddq_s64(vshlq_s64(vaddq_s64(p, rnd), sh), zp));
    let l = one(vmull_s32(vget_low_s32(acc), vget_low_s32(m)));
    let h = one(vmull_high_s32(acc, m));
    let y = vcombine_s32(l, h);
    vminq_s32(vmaxq_s32(y, vdupq_n_s32(lo as i32)), vdupq_n_s32(hi as i32))
}

/// The epilogue of 4 columns of row `r` starting at column `j` (`lanes ≤ 4` of them valid):
/// requantized or converted and scaled, then stored through the tile's strides.
///
/// # Safety
/// `dst`'s tile contract; `r < mr`, `j + lanes ≤ nr`.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn store4(acc: int32x4_t, r: usize, j: usize, lanes: usize, dst: &TileDst) {
    let at = r * dst.rs + j * dst.cs;
    // SAFETY: elements (r, j + l), l < lanes, are inside the tile (caller's contract).
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
                let y = requant4(acc, mult[r], shift[r], zp, lo, hi);
                let b = vmovn_u16(vcombine_u16(
                    vmovn_u32(vreinterpretq_u32_s32(y)),
                    vdup_n_u16(0),
                ));
                let mut tmp = [0u8; 8];
                vst1_u8(tmp.as_mut_ptr(), b);
                if dst.cs == 1 {
                    core::ptr::copy_nonoverlapping(tmp.as_ptr(), out.add(at), lanes);
                } else {
                    for (l, &v) in tmp.iter().enumerate().take(lanes) {
                        *out.add(at + l * dst.cs) = v;
                    }
                }
            }
            TileOut::F32 { out, scale } => {
                let y = vmulq_f32(vcvtq_f32_s32(acc), vdupq_n_f32(scale[r]));
                if lanes == 4 && dst.cs == 1 {
                    vst1q_f32(out.add(at), y);
                } else {
                    let mut tmp = [0f32; 4];
                    vst1q_f32(tmp.as_mut_ptr(), y);
                    for (l, &v) in tmp.iter().enumerate().take(lanes) {
                        *out.add(at + l * dst.cs) = v;
                    }
                }
            }
        }
    }
}

/// NEON dot product: 8 rows × up to 3 vectors of 4 columns; 24 accumulators, the weights of
/// a quad in two registers used by lane.
#[derive(Debug)]
pub(crate) struct NeonDotQgemm8x12;

impl QMicroKernel for NeonDotQgemm8x12 {
    const NR: usize = 12;
    const XOR: u8 = 0x80;
    unsafe fn tile(
        k4: usize,
        w: *const i8,
        x: *const u8,
        ldx: usize,
        init: &[i32; MR],
        dst: &TileDst,
    ) {
        // SAFETY: forwarded contract (QMicroKernel::tile); nr ≤ 12 selects the vector count.
        unsafe {
            match dst.nr.div_ceil(4) {
                0 | 1 => neondot_qgemm_s8s8_8x12::<1>(k4, w, x, ldx, init, dst),
                2 => neondot_qgemm_s8s8_8x12::<2>(k4, w, x, ldx, init, dst),
                _ => neondot_qgemm_s8s8_8x12::<3>(k4, w, x, ldx, init, dst),
            }
        }
    }
}

#[target_feature(enable = "neon,dotprod")]
unsafe fn neondot_qgemm_s8s8_8x12<const NV: usize>(
    k4: usize,
    w: *const i8,
    x: *const u8,
    ldx: usize,
    init: &[i32; MR],
    dst: &TileDst,
) {
    let tail = dst.nr - (NV - 1) * 4;
    let mut acc = [[vdupq_n_s32(0); NV]; MR];
    for (row, &c) in acc.iter_mut().zip(init) {
        *row = [vdupq_n_s32(c); NV];
    }
    // SAFETY: (whole body) reads stay in the panel (32 bytes per quad) and in columns < nr
    // of each quad row of the scratch: the tile contract.
    unsafe {
        for q in 0..k4 / 4 {
            let xp = x.add(q * ldx);
            let mut xv = [vdupq_n_s8(0); NV];
            for (v, xv) in xv.iter_mut().enumerate() {
                *xv = if v + 1 < NV {
                    vld1q_s8(xp.add(16 * v) as *const i8)
                } else {
                    load_cols(xp.add(16 * v), tail)
                };
            }
            let w0 = vld1q_s8(w.add(q * 32));
            let w1 = vld1q_s8(w.add(q * 32 + 16));
            for v in 0..NV {
                acc[0][v] = sdot_lane::<0>(acc[0][v], xv[v], w0);
                acc[1][v] = sdot_lane::<1>(acc[1][v], xv[v], w0);
                acc[2][v] = sdot_lane::<2>(acc[2][v], xv[v], w0);
                acc[3][v] = sdot_lane::<3>(acc[3][v], xv[v], w0);
                acc[4][v] = sdot_lane::<0>(acc[4][v], xv[v], w1);
                acc[5][v] = sdot_lane::<1>(acc[5][v], xv[v], w1);
                acc[6][v] = sdot_lane::<2>(acc[6][v], xv[v], w1);
                acc[7][v] = sdot_lane::<3>(acc[7][v], xv[v], w1);
            }
        }
        for (r, row) in acc.iter().enumerate().take(dst.mr) {
            for (v, a) in row.iter().enumerate() {
                store4(*a, r, 4 * v, (dst.nr - 4 * v).min(4), dst);
            }
        }
    }
}

/// Base NEON: 8 rows × 4 columns. Each `s8 × s8` product fits 16 bits (`smull`); `sadalp`
/// adds neighbour pairs into 32-bit lanes (two per column, one register for columns 0–1 and
/// one for 2–3), and one `addp` per row finishes the sums.
#[derive(Debug)]
pub(crate) struct NeonQgemm8x4;

impl QMicroKernel for NeonQgemm8x4 {
    const NR: usize = 4;
    const XOR: u8 = 0x80;
    unsafe fn tile(
        k4: usize,
        w: *const i8,
        x: *const u8,
        ldx: usize,
        init: &[i32; MR],
        dst: &TileDst,
    ) {
        // SAFETY: forwarded contract.
        unsafe { neon_qgemm_s8s8_8x4(k4, w, x, ldx, init, dst) }
    }
}

#[target_feature(enable = "neon")]
unsafe fn neon_qgemm_s8s8_8x4(
    k4: usize,
    w: *const i8,
    x: *const u8,
    ldx: usize,
    init: &[i32; MR],
    dst: &TileDst,
) {
    let mut lo = [vdupq_n_s32(0); MR];
    let mut hi = [vdupq_n_s32(0); MR];
    // SAFETY: (whole body) reads stay in the panel and in columns < nr of each quad row of
    // the scratch: the tile contract.
    unsafe {
        for q in 0..k4 / 4 {
            let xv = load_cols(x.add(q * ldx), dst.nr);
            let (xl, xh) = (vget_low_s8(xv), vget_high_s8(xv));
            let wp = w.add(q * 32) as *const i32;
            for r in 0..MR {
                let wr = vreinterpret_s8_s32(vdup_n_s32(wp.add(r).read_unaligned()));
                lo[r] = vpadalq_s16(lo[r], vmull_s8(xl, wr));
                hi[r] = vpadalq_s16(hi[r], vmull_s8(xh, wr));
            }
        }
        for r in 0..dst.mr {
            let s = vaddq_s32(vpaddq_s32(lo[r], hi[r]), vdupq_n_s32(init[r]));
            store4(s, r, 0, dst.nr, dst);
        }
    }
}
