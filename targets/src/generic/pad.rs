//! N-d padding.

use crate::PadMode;

/// Pads `x` of shape `in_dims` into `out` of shape `out_dims` (same rank <= MAX_RANK), where
/// `out_dims[k] = in_dims[k] + begin[k] + end` and `begin[k]` may be negative (crop). Constant
/// mode fills with `value`; Reflect and Edge mirror/repeat (the engine guarantees `in_dims[k] >= 2`
/// for Reflect when that axis is padded, and `>= 1` for Edge).
pub fn pad<T: Copy>(
    mode: PadMode,
    in_dims: &[usize],
    out_dims: &[usize],
    begin: &[isize],
    value: T,
    x: &[T],
    out: &mut [T],
) {
    todo!()
}
