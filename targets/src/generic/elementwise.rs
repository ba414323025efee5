//! Broadcasting element-wise kernels.
//!
//! Shapes are given as the output dims (rank <= [`crate::MAX_RANK`]) plus one stride per dim for
//! every operand, in elements; a broadcast dim has stride 0. Outputs are contiguous.

use super::math;
use super::strided::{map2, map2_inplace, map3};
use crate::{BinaryOp, CompareOp};

/// `max(a, b)` propagating NaN (numpy `maximum`); `max(-0, +0) = +0`.
#[inline]
fn max_nan(a: f32, b: f32) -> f32 {
    if a > b {
        a
    } else if b > a {
        b
    } else if a.is_nan() || b.is_nan() {
        f32::NAN
    } else if a.is_sign_negative() {
        b
    } else {
        a
    }
}

/// `min(a, b)` propagating NaN (numpy `minimum`); `min(-0, +0) = -0`.
#[inline]
fn min_nan(a: f32, b: f32) -> f32 {
    if a < b {
        a
    } else if b < a {
        b
    } else if a.is_nan() || b.is_nan() {
        f32::NAN
    } else if a.is_sign_negative() {
        a
    } else {
        b
    }
}

/// Applies one binary op to two values.
#[inline]
pub fn binary(a: f32, b: f32, op: BinaryOp) -> f32 {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Pow => math::powf(a, b),
        BinaryOp::Max => max_nan(a, b),
        BinaryOp::Min => min_nan(a, b),
    }
}

/// `out[idx] = a[idx . a_strides] op b[idx . b_strides]` over `dims`.
pub fn binary_f32(
    op: BinaryOp,
    dims: &[usize],
    a: &[f32],
    a_strides: &[usize],
    b: &[f32],
    b_strides: &[usize],
    out: &mut [f32],
) {
    // Dispatch outside the loop so that every op gets its own (vectorisable) loop.
    match op {
        BinaryOp::Add => map2(dims, a, a_strides, b, b_strides, out, |x, y| x + y),
        BinaryOp::Sub => map2(dims, a, a_strides, b, b_strides, out, |x, y| x - y),
        BinaryOp::Mul => map2(dims, a, a_strides, b, b_strides, out, |x, y| x * y),
        BinaryOp::Div => map2(dims, a, a_strides, b, b_strides, out, |x, y| x / y),
        BinaryOp::Pow => map2(dims, a, a_strides, b, b_strides, out, math::powf),
        BinaryOp::Max => map2(dims, a, a_strides, b, b_strides, out, max_nan),
        BinaryOp::Min => map2(dims, a, a_strides, b, b_strides, out, min_nan),
    }
}

/// In place: `a[i] = a[i] op b[idx . b_strides]`, where `a` is the contiguous output of shape
/// `dims` (the in-place form of [`binary_f32`] when operand `a` has the output's layout).
pub fn binary_inplace_f32(
    op: BinaryOp,
    dims: &[usize],
    a: &mut [f32],
    b: &[f32],
    b_strides: &[usize],
) {
    match op {
        BinaryOp::Add => map2_inplace(dims, a, b, b_strides, |x, y| x + y),
        BinaryOp::Sub => map2_inplace(dims, a, b, b_strides, |x, y| x - y),
        BinaryOp::Mul => map2_inplace(dims, a, b, b_strides, |x, y| x * y),
        BinaryOp::Div => map2_inplace(dims, a, b, b_strides, |x, y| x / y),
        BinaryOp::Pow => map2_inplace(dims, a, b, b_strides, math::powf),
        BinaryOp::Max => map2_inplace(dims, a, b, b_strides, max_nan),
        BinaryOp::Min => map2_inplace(dims, a, b, b_strides, min_nan),
    }
}

/// In place form of [`channel_affine_f32`].
pub fn channel_affine_inplace_f32(
    outer: usize,
    channels: usize,
    inner: usize,
    x: &mut [f32],
    scale: &[f32],
    bias: &[f32],
) {
    if inner == 0 || channels == 0 {
        return;
    }
    for (i, plane) in x[..outer * channels * inner]
        .chunks_exact_mut(inner)
        .enumerate()
    {
        let c = i % channels;
        let (s, b) = (scale[c], bias[c]);
        for v in plane.iter_mut() {
            *v = *v * s + b;
        }
    }
}

/// Comparison with broadcasting; writes 1 for true, 0 for false.
pub fn compare_f32(
    op: CompareOp,
    dims: &[usize],
    a: &[f32],
    a_strides: &[usize],
    b: &[f32],
    b_strides: &[usize],
    out: &mut [u8],
) {
    // Comparisons with NaN are false (IEEE), so `Equal` is false for NaN == NaN.
    match op {
        CompareOp::Equal => map2(dims, a, a_strides, b, b_strides, out, |x, y| (x == y) as u8),
        CompareOp::Less => map2(dims, a, a_strides, b, b_strides, out, |x, y| (x < y) as u8),
        CompareOp::LessOrEqual => {
            map2(dims, a, a_strides, b, b_strides, out, |x, y| (x <= y) as u8)
        }
        CompareOp::Greater => map2(dims, a, a_strides, b, b_strides, out, |x, y| (x > y) as u8),
        CompareOp::GreaterOrEqual => {
            map2(dims, a, a_strides, b, b_strides, out, |x, y| (x >= y) as u8)
        }
    }
}

/// `out = cond ? x : y` with broadcasting (`cond` is bool as u8, non-zero = true).
pub fn where_select<T: Copy>(
    dims: &[usize],
    cond: &[u8],
    c_strides: &[usize],
    x: &[T],
    x_strides: &[usize],
    y: &[T],
    y_strides: &[usize],
    out: &mut [T],
) {
    map3(
        dims,
        cond,
        c_strides,
        x,
        x_strides,
        y,
        y_strides,
        out,
        |c, a, b| if c != 0 { a } else { b },
    );
}

/// Boolean logic with broadcasting on u8 bools: `kind` 0 = and, 1 = or, 2 = xor (any other
/// value is treated as xor).
pub fn logic_u8(
    kind: u8,
    dims: &[usize],
    a: &[u8],
    a_strides: &[usize],
    b: &[u8],
    b_strides: &[usize],
    out: &mut [u8],
) {
    // Any non-zero byte is true; the result is 0 or 1.
    match kind {
        0 => map2(dims, a, a_strides, b, b_strides, out, |x, y| {
            (x != 0 && y != 0) as u8
        }),
        1 => map2(dims, a, a_strides, b, b_strides, out, |x, y| {
            (x != 0 || y != 0) as u8
        }),
        _ => map2(dims, a, a_strides, b, b_strides, out, |x, y| {
            ((x != 0) != (y != 0)) as u8
        }),
    }
}

/// `y = x * scale[c] + bias[c]` over `[outer, c, inner]` (BatchNorm in inference form).
pub fn channel_affine_f32(
    outer: usize,
    channels: usize,
    inner: usize,
    x: &[f32],
    scale: &[f32],
    bias: &[f32],
    out: &mut [f32],
) {
    if inner == 0 {
        return;
    }
    let plane = channels * inner;
    for o in 0..outer {
        for c in 0..channels {
            let (s, b) = (scale[c], bias[c]);
            let base = o * plane + c * inner;
            for (y, &v) in out[base..base + inner]
                .iter_mut()
                .zip(&x[base..base + inner])
            {
                *y = v * s + b;
            }
        }
    }
}
