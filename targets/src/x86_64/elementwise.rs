//! Vectorized element-wise kernels: unary functions and softmax rows.

use super::math::*;
use crate::UnaryOp;
use core::arch::x86_64::*;

/// Whether [`avx512_unary_f32`] / [`avx2_unary_f32`] vectorize `op` (others use the reference).
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

macro_rules! unary_impl {
    ($name:ident, $feat:literal, $V:ty, $W:literal, $set1:ident, $add:ident, $sub:ident,
     $mul:ident, $min:ident, $max:ident, $fmadd:ident, $load:ident, $store:ident,
     $exp:ident, $erf:ident, $sigmoid:ident, $gelu:ident, $tanh:ident) => {
        /// `out[i] = op(x[i])` for `i < min(len)`; `op` must satisfy [`vectorized`]. When `x` is
        /// `None` the function runs in place on `out`. The tail is computed by the reference.
        #[target_feature(enable = $feat)]
        pub(crate) fn $name(op: UnaryOp, x: Option<&[f32]>, out: &mut [f32]) {
            #[inline]
            #[target_feature(enable = $feat)]
            fn f(op: UnaryOp, v: $V) -> $V {
                let zero = $set1(0.0);
                // The clamps put the constant first: `max`/`min` return their second operand
                // when either is NaN, so NaN propagates as in the reference.
                match op {
                    UnaryOp::Relu => $max(zero, v),
                    UnaryOp::Clip { lo, hi } => $min($set1(hi), $max($set1(lo), v)),
                    UnaryOp::Sigmoid => $sigmoid(v),
                    // Below -20 the value is below 1e-80: clamping keeps -inf from making NaN.
                    UnaryOp::Gelu => $gelu($max($set1(-20.0), v)),
                    UnaryOp::Erf => $erf(v),
                    UnaryOp::Exp => $exp(v),
                    UnaryOp::Silu => {
                        let c = $max($set1(-120.0), v);
                        $mul(c, $sigmoid(c))
                    }
                    UnaryOp::Tanh => $tanh(v),
                    UnaryOp::Neg => $sub(zero, v),
                    UnaryOp::Abs => $max(v, $sub(zero, v)),
                    UnaryOp::Affine { k, c } => $fmadd(v, $set1(k), $set1(c)),
                    UnaryOp::LeakyRelu { alpha } => {
                        $add($max(zero, v), $mul($set1(alpha), $min(zero, v)))
                    }
                    UnaryOp::HardSigmoid { alpha, beta } => {
                        $min($set1(1.0), $max(zero, $fmadd(v, $set1(alpha), $set1(beta))))
                    }
                    UnaryOp::HardSwish => $mul(
                        v,
                        $min(
                            $set1(1.0),
                            $max(zero, $fmadd(v, $set1(1.0 / 6.0), $set1(0.5))),
                        ),
                    ),
                    _ => v,
                }
            }
            let n = match x {
                Some(x) => x.len().min(out.len()),
                None => out.len(),
            };
            let body = n - n % $W;
            let mut i = 0;
            while i < body {
                // SAFETY: i + W <= n <= the lengths of `x` and `out`.
                unsafe {
                    let src = match x {
                        Some(x) => x.as_ptr().add(i),
                        None => out.as_ptr().add(i),
                    };
                    let v = $load(src);
                    $store(out.as_mut_ptr().add(i), f(op, v));
                }
                i += $W;
            }
            let tail = &mut out[body..n];
            match x {
                Some(x) => crate::generic::activation::unary_f32(op, &x[body..n], tail),
                None => crate::generic::activation::unary_inplace_f32(op, tail),
            }
        }
    };
}

unary_impl!(
    avx512_unary_f32,
    "avx512f",
    __m512,
    16,
    _mm512_set1_ps,
    _mm512_add_ps,
    _mm512_sub_ps,
    _mm512_mul_ps,
    _mm512_min_ps,
    _mm512_max_ps,
    _mm512_fmadd_ps,
    _mm512_loadu_ps,
    _mm512_storeu_ps,
    exp512,
    erf512,
    sigmoid512,
    gelu512,
    tanh512
);
unary_impl!(
    avx2_unary_f32,
    "avx2,fma",
    __m256,
    8,
    _mm256_set1_ps,
    _mm256_add_ps,
    _mm256_sub_ps,
    _mm256_mul_ps,
    _mm256_min_ps,
    _mm256_max_ps,
    _mm256_fmadd_ps,
    _mm256_loadu_ps,
    _mm256_storeu_ps,
    exp256,
    erf256,
    sigmoid256,
    gelu256,
    tanh256
);

/// Softmax (or log-softmax) over contiguous rows of `axis` values (`inner == 1`).
#[target_feature(enable = "avx512f")]
pub(crate) fn avx512_softmax_rows(axis: usize, log: bool, x: &[f32], out: &mut [f32]) {
    for (xr, or) in x.chunks_exact(axis).zip(out.chunks_exact_mut(axis)) {
        let body = axis - axis % 16;
        // SAFETY: every access below is at i + 16 <= body <= axis, within both rows.
        unsafe {
            let mut mv = _mm512_set1_ps(f32::NEG_INFINITY);
            let mut i = 0;
            while i < body {
                mv = _mm512_max_ps(mv, _mm512_loadu_ps(xr.as_ptr().add(i)));
                i += 16;
            }
            let mut m = _mm512_reduce_max_ps(mv);
            for &v in &xr[body..] {
                m = m.max(v);
            }
            let mvec = _mm512_set1_ps(m);
            let mut sv = _mm512_setzero_ps();
            i = 0;
            while i < body {
                let e = exp512(_mm512_sub_ps(_mm512_loadu_ps(xr.as_ptr().add(i)), mvec));
                if !log {
                    _mm512_storeu_ps(or.as_mut_ptr().add(i), e);
                }
                sv = _mm512_add_ps(sv, e);
                i += 16;
            }
            let mut s = _mm512_reduce_add_ps(sv);
            for j in body..axis {
                let e = crate::generic::math::exp(xr[j] - m);
                if !log {
                    or[j] = e;
                }
                s += e;
            }
            if log {
                let ls = crate::generic::math::ln(s) + m;
                let lv = _mm512_set1_ps(ls);
                i = 0;
                while i < body {
                    let v = _mm512_sub_ps(_mm512_loadu_ps(xr.as_ptr().add(i)), lv);
                    _mm512_storeu_ps(or.as_mut_ptr().add(i), v);
                    i += 16;
                }
                for j in body..axis {
                    or[j] = xr[j] - ls;
                }
            } else {
                let r = 1.0 / s;
                let rv = _mm512_set1_ps(r);
                i = 0;
                while i < body {
                    let p = or.as_mut_ptr().add(i);
                    _mm512_storeu_ps(p, _mm512_mul_ps(_mm512_loadu_ps(p), rv));
                    i += 16;
                }
                for v in &mut or[body..] {
                    *v *= r;
                }
            }
        }
    }
}
