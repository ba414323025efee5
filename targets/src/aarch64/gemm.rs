//! GEMM micro-kernel `neon_gemm_f32_6x16` (see [`crate::gemm`]).

use super::math::{gelu, sigmoid, silu};
use crate::gemm::{Epilogue, MicroKernel, MR};
use crate::Activation;
use core::arch::aarch64::*;

/// NEON: 6 rows x up to 4 vectors of 4 columns. The 24 accumulators, 4 B vectors and the 6 A
/// values of a step (one q and one d register, used by lane) fit the 32 vector registers.
#[derive(Debug)]
pub(crate) struct NeonGemm6x16;

impl MicroKernel for NeonGemm6x16 {
    const NR: usize = 16;
    unsafe fn cvt_f16(src: *const u16, dst: *mut f32, n: usize) {
        // SAFETY: forwarded contract (MicroKernel::cvt_f16).
        unsafe { super::fp16::neon_cvt_f16_f32(src, dst, n) }
    }
    unsafe fn tile(
        kc: usize,
        a: *const f32,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
        mr: usize,
        nr: usize,
        accumulate: bool,
        ep: Option<&Epilogue>,
    ) {
        // SAFETY: forwarded contract (MicroKernel::tile); nr <= 16 selects the vector count.
        unsafe {
            match nr.div_ceil(4) {
                0 | 1 => neon_gemm_f32_6x16::<1>(kc, a, b, ldb, c, ldc, mr, nr, accumulate, ep),
                2 => neon_gemm_f32_6x16::<2>(kc, a, b, ldb, c, ldc, mr, nr, accumulate, ep),
                3 => neon_gemm_f32_6x16::<3>(kc, a, b, ldb, c, ldc, mr, nr, accumulate, ep),
                _ => neon_gemm_f32_6x16::<4>(kc, a, b, ldb, c, ldc, mr, nr, accumulate, ep),
            }
        }
    }
}

#[inline]
#[target_feature(enable = "neon")]
fn activate(v: float32x4_t, act: Activation) -> float32x4_t {
    match act {
        Activation::None => v,
        Activation::Relu => vmaxq_f32(v, vdupq_n_f32(0.0)),
        Activation::Clip { lo, hi } => vminq_f32(vmaxq_f32(v, vdupq_n_f32(lo)), vdupq_n_f32(hi)),
        Activation::Sigmoid => sigmoid(v),
        Activation::Gelu => gelu(v),
        Activation::Silu => silu(v),
    }
}

/// The first `lanes` floats at `p` (all four when `lanes >= 4`), zero in the other lanes.
///
/// # Safety
/// `p .. p + min(lanes, 4)` is readable.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn load_part(p: *const f32, lanes: usize) -> float32x4_t {
    // SAFETY: only lanes below `lanes` are read (caller's contract).
    unsafe {
        if lanes >= 4 {
            return vld1q_f32(p);
        }
        let mut v = vdupq_n_f32(0.0);
        if lanes > 0 {
            v = vld1q_lane_f32::<0>(p, v);
        }
        if lanes > 1 {
            v = vld1q_lane_f32::<1>(p.add(1), v);
        }
        if lanes > 2 {
            v = vld1q_lane_f32::<2>(p.add(2), v);
        }
        v
    }
}

/// Stores the first `lanes` lanes of `v` (all four when `lanes >= 4`) at `p`.
///
/// # Safety
/// `p .. p + min(lanes, 4)` is writable.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn store_part(p: *mut f32, v: float32x4_t, lanes: usize) {
    // SAFETY: only lanes below `lanes` are written (caller's contract).
    unsafe {
        if lanes >= 4 {
            vst1q_f32(p, v);
            return;
        }
        if lanes > 0 {
            vst1q_lane_f32::<0>(p, v);
        }
        if lanes > 1 {
            vst1q_lane_f32::<1>(p.add(1), v);
        }
        if lanes > 2 {
            vst1q_lane_f32::<2>(p.add(2), v);
        }
    }
}

/// Vector `v` of a row of `(NV - 1) * 4 + tail` values at `row`: whole for `v < NV - 1`, its
/// first `tail` lanes for the last one, so nothing past the row's end is read.
///
/// # Safety
/// The row's values are readable.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn load_vec<const NV: usize>(row: *const f32, v: usize, tail: usize) -> float32x4_t {
    // SAFETY: caller's contract; lanes past the row's end are not read.
    unsafe {
        if v + 1 < NV {
            vld1q_f32(row.add(v * 4))
        } else {
            load_part(row.add(v * 4), tail)
        }
    }
}

/// Like [`load_vec`], storing.
///
/// # Safety
/// The row's values are writable.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn store_vec<const NV: usize>(row: *mut f32, v: usize, tail: usize, x: float32x4_t) {
    // SAFETY: caller's contract; lanes past the row's end are not written.
    unsafe {
        if v + 1 < NV {
            vst1q_f32(row.add(v * 4), x)
        } else {
            store_part(row.add(v * 4), x, tail)
        }
    }
}

/// One `mr x nr` tile with `NV = ceil(nr / 4)` vectors per row (see [`MicroKernel::tile`]).
///
/// # Safety
/// The [`MicroKernel::tile`] contract, with `(NV - 1) * 4 < nr <= NV * 4` (or `nr = 0`,
/// `NV = 1`).
#[target_feature(enable = "neon")]
unsafe fn neon_gemm_f32_6x16<const NV: usize>(
    kc: usize,
    a: *const f32,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    mr: usize,
    nr: usize,
    accumulate: bool,
    ep: Option<&Epilogue>,
) {
    let tail = nr - (NV - 1) * 4;
    let mut acc = [[vdupq_n_f32(0.0); NV]; MR];
    // SAFETY: (whole body) pointer ranges are the MicroKernel::tile contract: A steps hold MR
    // values (read as 4 + 2), B and C rows and the column bias are read and written through
    // load_vec/store_vec, which stop at column nr; the row bias holds MR values.
    unsafe {
        if accumulate {
            for i in 0..MR {
                if i < mr {
                    for v in 0..NV {
                        acc[i][v] = load_vec::<NV>(c.add(i * ldc), v, tail);
                    }
                }
            }
        }
        for p in 0..kc {
            let bp = b.add(p * ldb);
            let mut bv = [vdupq_n_f32(0.0); NV];
            for v in 0..NV {
                bv[v] = load_vec::<NV>(bp, v, tail);
            }
            let ap = a.add(p * MR);
            let a03 = vld1q_f32(ap);
            let a45 = vld1_f32(ap.add(4));
            for v in 0..NV {
                acc[0][v] = vfmaq_laneq_f32::<0>(acc[0][v], bv[v], a03);
                acc[1][v] = vfmaq_laneq_f32::<1>(acc[1][v], bv[v], a03);
                acc[2][v] = vfmaq_laneq_f32::<2>(acc[2][v], bv[v], a03);
                acc[3][v] = vfmaq_laneq_f32::<3>(acc[3][v], bv[v], a03);
                acc[4][v] = vfmaq_lane_f32::<0>(acc[4][v], bv[v], a45);
                acc[5][v] = vfmaq_lane_f32::<1>(acc[5][v], bv[v], a45);
            }
        }
        if let Some(ep) = ep {
            if ep.alpha != 1.0 {
                let al = vdupq_n_f32(ep.alpha);
                for row in acc.iter_mut() {
                    for x in row.iter_mut() {
                        *x = vmulq_f32(*x, al);
                    }
                }
            }
            if !ep.bias_row.is_null() {
                for i in 0..MR {
                    let bi = vdupq_n_f32(*ep.bias_row.add(i));
                    for v in 0..NV {
                        acc[i][v] = vaddq_f32(acc[i][v], bi);
                    }
                }
            }
            if !ep.bias_col.is_null() {
                for v in 0..NV {
                    let bc = load_vec::<NV>(ep.bias_col, v, tail);
                    for row in acc.iter_mut() {
                        row[v] = vaddq_f32(row[v], bc);
                    }
                }
            }
            if ep.act != Activation::None {
                for row in acc.iter_mut() {
                    for x in row.iter_mut() {
                        *x = activate(*x, ep.act);
                    }
                }
            }
        }
        for i in 0..MR {
            if i < mr {
                for v in 0..NV {
                    store_vec::<NV>(c.add(i * ldc), v, tail, acc[i][v]);
                }
            }
        }
    }
}
