//! Scalar math: activations and unary functions.

use crate::{Activation, UnaryOp};

/// Applies a fused epilogue activation to one value.
#[inline]
pub fn activate(x: f32, act: Activation) -> f32 {
    todo!()
}

/// Applies `op` to one value.
#[inline]
pub fn unary(x: f32, op: UnaryOp) -> f32 {
    todo!()
}

/// `out[i] = op(x[i])`. `x.len() == out.len()`.
pub fn unary_f32(op: UnaryOp, x: &[f32], out: &mut [f32]) {
    todo!()
}

/// In place: `x[i] = act(x[i])`.
pub fn activate_inplace_f32(act: Activation, x: &mut [f32]) {
    todo!()
}

/// Error function, |error| <= 1.5e-7 absolute (Abramowitz–Stegun 7.1.26 is NOT enough; use a
/// rational/series form accurate to fp32 rounding).
pub fn erf(x: f32) -> f32 {
    todo!()
}
