//! N-d padding.

use crate::{PadMode, MAX_RANK};

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
    let rank = out_dims.len();
    if out_dims.contains(&0) {
        return;
    }
    if rank == 0 {
        out[0] = x[0];
        return;
    }
    let mut in_strides = [0usize; MAX_RANK];
    let mut s = 1;
    for k in (0..rank).rev() {
        in_strides[k] = s;
        s *= in_dims[k];
    }
    let last = rank - 1;
    let (n_out, n_in, b) = (out_dims[last], in_dims[last], begin[last]);
    // Output columns [lo, hi) read input columns [lo - b, hi - b) directly.
    let lo = b.clamp(0, n_out as isize) as usize;
    let hi = (b + n_in as isize).clamp(lo as isize, n_out as isize) as usize;
    let mut idx = [0usize; MAX_RANK];
    for row in out.chunks_exact_mut(n_out) {
        // Source offset of this row, or None when an outer coordinate is constant padding.
        let mut base = Some(0usize);
        for k in 0..last {
            base = match (base, source(mode, idx[k], begin[k], in_dims[k])) {
                (Some(o), Some(c)) => Some(o + c * in_strides[k]),
                _ => None,
            };
        }
        match base {
            None => row.fill(value),
            Some(base) => {
                let src = &x[base..base + n_in];
                for (o, y) in row.iter_mut().enumerate().take(lo) {
                    *y = source(mode, o, b, n_in).map_or(value, |c| src[c]);
                }
                let s0 = (lo as isize - b) as usize;
                row[lo..hi].copy_from_slice(&src[s0..s0 + (hi - lo)]);
                for (o, y) in row.iter_mut().enumerate().skip(hi) {
                    *y = source(mode, o, b, n_in).map_or(value, |c| src[c]);
                }
            }
        }
        // Advance the outer counters.
        let mut k = last;
        while k > 0 {
            k -= 1;
            idx[k] += 1;
            if idx[k] < out_dims[k] {
                break;
            }
            idx[k] = 0;
        }
    }
}

/// The input coordinate that output coordinate `o` reads on an axis of input length `n`
/// padded by `begin` in front, or `None` for the constant value. Reflect folds repeatedly
/// (period `2 (n - 1)`), so pads wider than the axis are also defined; an empty axis reads the
/// constant in every mode.
#[inline]
fn source(mode: PadMode, o: usize, begin: isize, n: usize) -> Option<usize> {
    let s = o as isize - begin;
    let n_i = n as isize;
    if (0..n_i).contains(&s) {
        return Some(s as usize);
    }
    if n == 0 {
        return None;
    }
    match mode {
        PadMode::Constant => None,
        PadMode::Edge => Some(s.clamp(0, n_i - 1) as usize),
        PadMode::Reflect => {
            if n == 1 {
                return Some(0);
            }
            let period = 2 * (n_i - 1);
            let r = s.rem_euclid(period);
            Some(if r >= n_i { period - r } else { r } as usize)
        }
    }
}
