//! Vectorized element-wise kernels: unary functions and softmax rows.

use super::math::{erf, exp, gelu, sigmoid, silu, tanh};
use crate::UnaryOp;
use core::arch::aarch64::*;

/// Whether [`neon_unary_f32`] vectorizes `op` (others use the reference); the same list as the
/// x86-64 kernels.
pub(crate) fn vectorized(op: UnaryOp) -> bool {
    matches!(
        op,
        UnaryOp::Identity
            | UnaryOp::Relu
            | UnaryOp::Clip { .. }
            | UnaryOp::Sigmoid
            | UnaryOp::Gelu
            | UnaryOp::Erf
            | UnaryOp::Exp
            | UnaryOp::Silu
            | UnaryOp::Tanh
            | UnaryOp::Neg
            | UnaryOp::Abs
            | UnaryOp::Affine { .. }
            | UnaryOp::LeakyRelu { .. }
            | UnaryOp::HardSigmoid { .. }
            | UnaryOp::HardSwish
    )
}

/// `out[i] = op(x[i])` for `i < min(len)`; `op` must satisfy [`vectorized`]. When `x` is `None`
/// the function runs in place on `out`. The tail (fewer than 4 values) is computed by the
/// reference.
///
/// The clamps propagate NaN as the reference does; `Affine`, `LeakyRelu` and `HardSigmoid`
/// round as the reference (no fused multiply-add), so they match it exactly.
#[target_feature(enable = "neon")]
pub(crate) fn neon_unary_f32(op: UnaryOp, x: Option<&[f32]>, out: &mut [f32]) {
    let zero = vdupq_n_f32(0.0);
    let one = vdupq_n_f32(1.0);
    // One loop per op (the closures are monomorphised): the dispatch stays outside the loop.
    // The closures inherit this function's target features.
    match op {
        UnaryOp::Relu => map(op, x, out, |v| vmaxq_f32(v, zero)),
        UnaryOp::Clip { lo, hi } => {
            let (lo, hi) = (vdupq_n_f32(lo), vdupq_n_f32(hi));
            map(op, x, out, |v| vminq_f32(vmaxq_f32(v, lo), hi))
        }
        UnaryOp::Sigmoid => map(op, x, out, |v| sigmoid(v)),
        UnaryOp::Gelu => map(op, x, out, |v| gelu(v)),
        UnaryOp::Erf => map(op, x, out, |v| erf(v)),
        UnaryOp::Exp => map(op, x, out, |v| exp(v)),
        UnaryOp::Silu => map(op, x, out, |v| silu(v)),
        UnaryOp::Tanh => map(op, x, out, |v| tanh(v)),
        UnaryOp::Neg => map(op, x, out, |v| vnegq_f32(v)),
        UnaryOp::Abs => map(op, x, out, |v| vabsq_f32(v)),
        UnaryOp::Affine { k, c } => {
            let (k, c) = (vdupq_n_f32(k), vdupq_n_f32(c));
            map(op, x, out, |v| vaddq_f32(vmulq_f32(v, k), c))
        }
        UnaryOp::LeakyRelu { alpha } => {
            let alpha = vdupq_n_f32(alpha);
            map(op, x, out, |v| {
                vbslq_f32(vcgeq_f32(v, zero), v, vmulq_f32(v, alpha))
            })
        }
        UnaryOp::HardSigmoid { alpha, beta } => {
            let (alpha, beta) = (vdupq_n_f32(alpha), vdupq_n_f32(beta));
            map(op, x, out, |v| {
                vminq_f32(vmaxq_f32(vaddq_f32(vmulq_f32(v, alpha), beta), zero), one)
            })
        }
        UnaryOp::HardSwish => {
            let (sixth, half) = (vdupq_n_f32(1.0 / 6.0), vdupq_n_f32(0.5));
            map(op, x, out, |v| {
                vmulq_f32(
                    v,
                    vminq_f32(vmaxq_f32(vfmaq_f32(half, v, sixth), zero), one),
                )
            })
        }
        _ => map(op, x, out, |v| v),
    }
}

/// `out[i] = f(x[i])` four lanes at a time (in place when `x` is `None`); the tail by the
/// reference `op`.
#[inline]
#[target_feature(enable = "neon")]
fn map(op: UnaryOp, x: Option<&[f32]>, out: &mut [f32], f: impl Fn(float32x4_t) -> float32x4_t) {
    let n = match x {
        Some(x) => x.len().min(out.len()),
        None => out.len(),
    };
    let dst = out.as_mut_ptr();
    let src = match x {
        Some(x) => x.as_ptr(),
        None => dst.cast_const(),
    };
    let mut i = 0;
    // Four independent vectors per step keep in-order cores (Cortex-A53/A55) busy through
    // the latency of the exp/erf chains.
    while i + 16 <= n {
        // SAFETY: i + 16 <= n <= the lengths of `x` and `out`; in place, each vector is read
        // before it is written.
        unsafe {
            let v0 = f(vld1q_f32(src.add(i)));
            let v1 = f(vld1q_f32(src.add(i + 4)));
            let v2 = f(vld1q_f32(src.add(i + 8)));
            let v3 = f(vld1q_f32(src.add(i + 12)));
            vst1q_f32(dst.add(i), v0);
            vst1q_f32(dst.add(i + 4), v1);
            vst1q_f32(dst.add(i + 8), v2);
            vst1q_f32(dst.add(i + 12), v3);
        }
        i += 16;
    }
    while i + 4 <= n {
        // SAFETY: i + 4 <= n, as above.
        unsafe { vst1q_f32(dst.add(i), f(vld1q_f32(src.add(i)))) };
        i += 4;
    }
    let tail = &mut out[i..n];
    match x {
        Some(x) => crate::generic::activation::unary_f32(op, &x[i..n], tail),
        None => crate::generic::activation::unary_inplace_f32(op, tail),
    }
}

/// Softmax (or log-softmax) over contiguous rows of `axis` values (`inner == 1`), as
/// [`crate::generic::norm::softmax_f32`] up to the order of the sum (NaN propagates through
/// the maximum).
#[target_feature(enable = "neon")]
pub(crate) fn neon_softmax_rows(axis: usize, log: bool, x: &[f32], out: &mut [f32]) {
    for (xr, or) in x.chunks_exact(axis).zip(out.chunks_exact_mut(axis)) {
        let body = axis - axis % 4;
        let xp = xr.as_ptr();
        // SAFETY: every vector access below is at i + 4 <= body <= axis, within both rows.
        unsafe {
            let mut mv = vdupq_n_f32(f32::NEG_INFINITY);
            let mut i = 0;
            while i < body {
                mv = vmaxq_f32(mv, vld1q_f32(xp.add(i)));
                i += 4;
            }
            let mut m = vmaxvq_f32(mv);
            for &v in &xr[body..] {
                if v > m || v.is_nan() {
                    m = v;
                }
            }
            let mvec = vdupq_n_f32(m);
            let mut sv = vdupq_n_f32(0.0);
            i = 0;
            while i < body {
                let e = exp(vsubq_f32(vld1q_f32(xp.add(i)), mvec));
                if !log {
                    vst1q_f32(or.as_mut_ptr().add(i), e);
                }
                sv = vaddq_f32(sv, e);
                i += 4;
            }
            let mut s = vaddvq_f32(sv);
            for j in body..axis {
                let e = crate::generic::math::exp(xr[j] - m);
                if !log {
                    or[j] = e;
                }
                s += e;
            }
            if log {
                let ls = crate::generic::math::ln(s);
                let lv = vdupq_n_f32(ls);
                i = 0;
                while i < body {
                    let v = vsubq_f32(vsubq_f32(vld1q_f32(xp.add(i)), mvec), lv);
                    vst1q_f32(or.as_mut_ptr().add(i), v);
                    i += 4;
                }
                for j in body..axis {
                    or[j] = (xr[j] - m) - ls;
                }
            } else {
                let r = vdupq_n_f32(1.0 / s);
                i = 0;
                while i < body {
                    let p = or.as_mut_ptr().add(i);
                    vst1q_f32(p, vmulq_f32(vld1q_f32(p), r));
                    i += 4;
                }
                for v in &mut or[body..] {
                    *v *= 1.0 / s;
                }
            }
        }
    }
}
