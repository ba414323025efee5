//! Gathers with data-dependent indices; every index is range-checked (negative = from end).

use crate::KernelError;

/// ONNX Gather on `data` viewed as `[outer, axis_len, inner]`, `indices` flattened to
/// `[n_idx]`: `out[o, j, i] = data[o, idx[j], i]`, `out` is `[outer, n_idx, inner]`.
pub fn gather<T: Copy>(
    outer: usize,
    axis_len: usize,
    inner: usize,
    data: &[T],
    indices: &[i64],
    out: &mut [T],
) -> Result<(), KernelError> {
    todo!()
}

/// ONNX GatherElements: `out[i] = data[i with i[axis] = idx[i]]`. `idx_dims` is the shape of
/// `indices` and `out`; `data_dims` the shape of data (same rank, <= MAX_RANK).
pub fn gather_elements<T: Copy>(
    data_dims: &[usize],
    idx_dims: &[usize],
    axis: usize,
    data: &[T],
    indices: &[i64],
    out: &mut [T],
) -> Result<(), KernelError> {
    todo!()
}

/// ArgMax (or ArgMin when `min`) over `[outer, axis_len, inner]` -> `[outer, inner]` as i64.
/// Ties give the first index, or the last when `select_last`. NaN counts as the largest value.
pub fn argmax_f32(
    outer: usize,
    axis_len: usize,
    inner: usize,
    min: bool,
    select_last: bool,
    x: &[f32],
    out: &mut [i64],
) {
    todo!()
}
