//! Scalar math: activations and unary functions.
//!
//! NaN inputs give NaN for every function except [`UnaryOp::PowConst`] with exponent 0
//! (`x^0 = 1`, as `pow`). Clamps (`Relu`, `Clip`, `HardSigmoid`, `HardSwish`) propagate NaN
//! instead of snapping it to a bound. `Sigmoid`, `Softplus`, `Gelu` and `Silu` are evaluated in
//! forms that neither overflow nor cancel for large `|x|`, and take their limits at `±inf`
//! (`gelu(-inf) = silu(-inf) = -0`). The transcendental functions come from [`super::math`];
//! see there for their error bounds.

use super::math;
use crate::{Activation, UnaryOp};

/// `1/sqrt(2)`.
const FRAC_1_SQRT_2: f32 = core::f32::consts::FRAC_1_SQRT_2;

/// `max(x, 0)`; NaN stays NaN, `relu(-0) = 0`.
#[inline]
fn relu(x: f32) -> f32 {
    if x > 0.0 || x.is_nan() {
        x
    } else {
        0.0
    }
}

/// `min(max(x, lo), hi)` propagating NaN (when `lo > hi` the result is `hi`, as the formula).
#[inline]
fn clip(x: f32, lo: f32, hi: f32) -> f32 {
    let v = if x < lo { lo } else { x };
    if v > hi {
        hi
    } else {
        v
    }
}

/// Logistic sigmoid, relative error < 3 ulp; never forms `inf/inf`.
#[inline]
pub fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + math::exp(-x))
    } else {
        let e = math::exp(x);
        e / (1.0 + e)
    }
}

/// Exact GELU `0.5 x (1 + erf(x / sqrt 2))`. For `x / sqrt 2 < -0.875` the same value is computed
/// as `0.5 x erfc(-x / sqrt 2)`, which avoids the cancellation in `1 + erf`, with the Gaussian
/// factor `e^(-x^2/2)` formed from `x` itself (not from the rounded `x / sqrt 2`), so the tail
/// keeps a relative error below 8 ulp (measured 5.5) down to the subnormal range.
#[inline]
pub fn gelu(x: f32) -> f32 {
    let z = x * FRAC_1_SQRT_2;
    if z < -0.875 {
        if z < -10.2 {
            // The result is below 2^-149; keep the sign of the limit and avoid -inf * 0.
            return -0.0;
        }
        // e^(-x^2/2) without the rounding of x^2: h keeps the top 12 bits of x, so h*h is
        // exact and -x^2/2 = -h^2/2 + (h - x)(h + x)/2.
        let h = f32::from_bits(x.to_bits() & 0xffff_f000);
        let gauss = math::exp(-0.5 * (h * h)) * math::exp(0.5 * ((h - x) * (h + x)));
        (0.5 * x * math::erfc_scaled(-z)) * gauss
    } else {
        0.5 * x * (1.0 + math::erf(z))
    }
}

/// `x * sigmoid(x)`, with `silu(-inf) = -0`.
#[inline]
fn silu(x: f32) -> f32 {
    if x < -80.0 {
        if x < -150.0 {
            // |x| e^x < 2^-150: the result rounds to -0 (also the limit at -inf).
            return -0.0;
        }
        // sigmoid(x) = e^x here (1 + e^x rounds to 1) and is subnormal below -87.3: form
        // x e^x from e^x 2^64 so that only the final product rounds into the subnormals.
        const TWO_M64: f32 = 5.421_011e-20; // 2^-64
        return (x * math::exp_scaled(x, 64)) * TWO_M64;
    }
    x * sigmoid(x)
}

/// `ln(1 + e^x)` without overflow: `max(x, 0) + ln(1 + e^-|x|)`.
#[inline]
fn softplus(x: f32) -> f32 {
    if x > 0.0 {
        x + math::ln_1p(math::exp(-x))
    } else {
        math::ln_1p(math::exp(x))
    }
}

/// ONNX `Sign`: `-1, 0, +1`; NaN stays NaN; `sign(±0) = 0`.
#[inline]
fn sign(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else if x == 0.0 {
        0.0
    } else {
        x
    }
}

/// `x^p` for a constant exponent. Small integer and half exponents take exact shortcuts that
/// agree with [`math::powf`] (`x^2 = x*x`, `x^-1 = 1/x`, `x^0.5 = sqrt x` with `(-0)^0.5 = +0`
/// and `(-inf)^0.5 = +inf`); `x^3` is `x*x*x` (two roundings: error < 2 ulp).
#[inline]
pub fn pow_const(x: f32, p: f32) -> f32 {
    if p == 1.0 {
        x
    } else if p == 2.0 {
        x * x
    } else if p == 3.0 {
        x * x * x
    } else if p == 0.5 {
        if x == f32::NEG_INFINITY {
            f32::INFINITY
        } else {
            // `+ 0.0` turns sqrt(-0) = -0 into the +0 that pow gives.
            math::sqrt(x) + 0.0
        }
    } else if p == -1.0 {
        1.0 / x
    } else {
        math::powf(x, p)
    }
}

/// Applies a fused epilogue activation to one value.
#[inline]
pub fn activate(x: f32, act: Activation) -> f32 {
    match act {
        Activation::None => x,
        Activation::Relu => relu(x),
        Activation::Clip { lo, hi } => clip(x, lo, hi),
        Activation::Sigmoid => sigmoid(x),
        Activation::Gelu => gelu(x),
        Activation::Silu => silu(x),
    }
}

/// Applies `op` to one value.
#[inline]
pub fn unary(x: f32, op: UnaryOp) -> f32 {
    match op {
        UnaryOp::Identity => x,
        UnaryOp::Relu => relu(x),
        UnaryOp::Clip { lo, hi } => clip(x, lo, hi),
        UnaryOp::Sigmoid => sigmoid(x),
        UnaryOp::Gelu => gelu(x),
        UnaryOp::Erf => math::erf(x),
        UnaryOp::Exp => math::exp(x),
        UnaryOp::Log => math::ln(x),
        UnaryOp::Neg => -x,
        UnaryOp::Sign => sign(x),
        UnaryOp::Reciprocal => 1.0 / x,
        UnaryOp::Abs => x.abs(),
        UnaryOp::Sqrt => math::sqrt(x),
        UnaryOp::Tanh => math::tanh(x),
        UnaryOp::Floor => math::floor(x),
        UnaryOp::Ceil => math::ceil(x),
        UnaryOp::Round => math::round_ties_even(x),
        UnaryOp::LeakyRelu { alpha } => {
            if x >= 0.0 {
                x
            } else {
                alpha * x
            }
        }
        UnaryOp::HardSigmoid { alpha, beta } => clip(alpha * x + beta, 0.0, 1.0),
        UnaryOp::HardSwish => x * clip(x / 6.0 + 0.5, 0.0, 1.0),
        UnaryOp::Softplus => softplus(x),
        UnaryOp::Silu => silu(x),
        UnaryOp::PowConst { exp } => pow_const(x, exp),
        UnaryOp::Affine { k, c } => x * k + c,
    }
}

/// `out[i] = op(x[i])`. `x.len() == out.len()`.
pub fn unary_f32(op: UnaryOp, x: &[f32], out: &mut [f32]) {
    // One loop per op (the closure is monomorphised), so the dispatch is outside the loop.
    fn map(x: &[f32], out: &mut [f32], f: impl Fn(f32) -> f32) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = f(v);
        }
    }
    match op {
        UnaryOp::Identity => out.copy_from_slice(&x[..out.len()]),
        UnaryOp::Relu => map(x, out, relu),
        UnaryOp::Clip { lo, hi } => map(x, out, |v| clip(v, lo, hi)),
        UnaryOp::Neg => map(x, out, |v| -v),
        UnaryOp::Abs => map(x, out, f32::abs),
        UnaryOp::Affine { k, c } => map(x, out, |v| v * k + c),
        UnaryOp::PowConst { exp: 2.0 } => map(x, out, |v| v * v),
        _ => map(x, out, |v| unary(v, op)),
    }
}

/// In place form of [`unary_f32`]: `x[i] = op(x[i])`. Works through a small stack buffer so
/// every op shares [`unary_f32`]'s code.
pub fn unary_inplace_f32(op: UnaryOp, x: &mut [f32]) {
    let mut tmp = [0f32; 256];
    for chunk in x.chunks_mut(256) {
        let t = &mut tmp[..chunk.len()];
        t.copy_from_slice(chunk);
        unary_f32(op, t, chunk);
    }
}

/// In place: `x[i] = act(x[i])`.
pub fn activate_inplace_f32(act: Activation, x: &mut [f32]) {
    fn map(x: &mut [f32], f: impl Fn(f32) -> f32) {
        for v in x.iter_mut() {
            *v = f(*v);
        }
    }
    match act {
        Activation::None => {}
        Activation::Relu => map(x, relu),
        Activation::Clip { lo, hi } => map(x, |v| clip(v, lo, hi)),
        Activation::Sigmoid => map(x, sigmoid),
        Activation::Gelu => map(x, gelu),
        Activation::Silu => map(x, silu),
    }
}

/// Error function, |error| <= 1.5e-7 absolute (Abramowitz–Stegun 7.1.26 is NOT enough; use a
/// rational/series form accurate to fp32 rounding).
///
/// Implemented by [`math::erf`]: absolute error < 8e-8 (measured 6.95e-8).
pub fn erf(x: f32) -> f32 {
    math::erf(x)
}
