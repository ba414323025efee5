//! Gathers with data-dependent indices; every index is range-checked (negative = from end).

use crate::{KernelError, MAX_RANK};

/// Resolves an ONNX index (negative counts from the end) against an axis of length `len`.
#[inline]
fn resolve(index: i64, len: usize) -> Result<usize, KernelError> {
    let l = len as i64;
    let i = if index < 0 { index + l } else { index };
    if (0..l).contains(&i) {
        Ok(i as usize)
    } else {
        Err(KernelError::IndexOutOfRange { index, len })
    }
}

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
    // Check every index before writing, so a failure leaves `out` untouched.
    for &i in indices {
        resolve(i, axis_len)?;
    }
    let n_idx = indices.len();
    for o in 0..outer {
        for (j, &i) in indices.iter().enumerate() {
            let i = resolve(i, axis_len)?;
            let src = (o * axis_len + i) * inner;
            let dst = (o * n_idx + j) * inner;
            out[dst..dst + inner].copy_from_slice(&data[src..src + inner]);
        }
    }
    Ok(())
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
    let rank = idx_dims.len();
    let axis_len = data_dims[axis];
    let total: usize = idx_dims.iter().product();
    // Check every index before writing, so a failure leaves `out` untouched.
    for &i in &indices[..total] {
        resolve(i, axis_len)?;
    }
    if total == 0 {
        return Ok(());
    }
    let mut data_strides = [0usize; MAX_RANK];
    let mut s = 1;
    for k in (0..rank).rev() {
        data_strides[k] = s;
        s *= data_dims[k];
    }
    // `base` is the data offset of the current index with its `axis` coordinate set to 0.
    let mut idx = [0usize; MAX_RANK];
    let mut base = 0usize;
    let axis_stride = data_strides[axis];
    for (o, &i) in out[..total].iter_mut().zip(indices) {
        *o = data[base + resolve(i, axis_len)? * axis_stride];
        let mut k = rank;
        while k > 0 {
            k -= 1;
            idx[k] += 1;
            if k != axis {
                base += data_strides[k];
            }
            if idx[k] < idx_dims[k] {
                break;
            }
            if k != axis {
                base -= data_strides[k] * idx_dims[k];
            }
            idx[k] = 0;
        }
    }
    Ok(())
}

/// ArgMax (or ArgMin when `min`) over `[outer, axis_len, inner]` -> `[outer, inner]` as i64.
/// Ties give the first index, or the last when `select_last`. NaN counts as the largest value
/// (all NaNs tie; `-0` and `+0` tie). An empty axis (`axis_len == 0`) writes 0.
///
/// Runs over blocks of [`ARGMAX_BLOCK`] positions, reading each row of the block contiguously;
/// the comparison is branch-free so the block loop vectorizes.
pub fn argmax_f32(
    outer: usize,
    axis_len: usize,
    inner: usize,
    min: bool,
    select_last: bool,
    x: &[f32],
    out: &mut [i64],
) {
    // Whether `v` (at a later index) replaces `b`, per mode. `v != v` is `v.is_nan()`.
    #[allow(clippy::eq_op)]
    match (min, select_last) {
        (false, false) => argmax_blocks(outer, axis_len, inner, x, out, |v, b| {
            v > b || (v != v && b == b)
        }),
        (false, true) => argmax_blocks(outer, axis_len, inner, x, out, |v, b| v >= b || v != v),
        (true, false) => argmax_blocks(outer, axis_len, inner, x, out, |v, b| {
            v < b || (b != b && v == v)
        }),
        (true, true) => argmax_blocks(outer, axis_len, inner, x, out, |v, b| v <= b || b != b),
    }
}

/// Positions per block of [`argmax_f32`].
pub const ARGMAX_BLOCK: usize = 64;

#[inline(always)]
fn argmax_blocks(
    outer: usize,
    axis_len: usize,
    inner: usize,
    x: &[f32],
    out: &mut [i64],
    wins: impl Fn(f32, f32) -> bool,
) {
    let mut best = [0f32; ARGMAX_BLOCK];
    let mut best_j = [0u32; ARGMAX_BLOCK];
    for o in 0..outer {
        let mut i0 = 0;
        while i0 < inner {
            let nb = ARGMAX_BLOCK.min(inner - i0);
            let base = o * axis_len * inner + i0;
            best_j[..nb].fill(0);
            if axis_len > 0 {
                best[..nb].copy_from_slice(&x[base..base + nb]);
            }
            for j in 1..axis_len {
                let row = &x[base + j * inner..base + j * inner + nb];
                // Step parameters are u32 words in the file format, so `j < 2^32`.
                let jj = u32::try_from(j).unwrap_or(u32::MAX);
                for ((b, bj), &v) in best[..nb].iter_mut().zip(&mut best_j[..nb]).zip(row) {
                    let w = wins(v, *b);
                    *b = if w { v } else { *b };
                    *bj = if w { jj } else { *bj };
                }
            }
            for (d, &j) in out[o * inner + i0..o * inner + i0 + nb]
                .iter_mut()
                .zip(&best_j[..nb])
            {
                *d = j as i64;
            }
            i0 += nb;
        }
    }
}
