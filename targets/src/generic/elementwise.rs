//! Broadcasting element-wise kernels.
//!
//! Shapes are given as the output dims (rank <= [`crate::MAX_RANK`]) plus one stride per dim for
//! every operand, in elements; a broadcast dim has stride 0. Outputs are contiguous.

use crate::{BinaryOp, CompareOp};

/// Applies one binary op to two values.
#[inline]
pub fn binary(a: f32, b: f32, op: BinaryOp) -> f32 {
    todo!()
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
    todo!()
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
    todo!()
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
    todo!()
}

/// Boolean logic with broadcasting on u8 bools: `kind` 0 = and, 1 = or, 2 = xor.
pub fn logic_u8(
    kind: u8,
    dims: &[usize],
    a: &[u8],
    a_strides: &[usize],
    b: &[u8],
    b_strides: &[usize],
    out: &mut [u8],
) {
    todo!()
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
    todo!()
}
