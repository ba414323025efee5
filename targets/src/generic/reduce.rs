//! Reductions over any set of axes.

use super::math;
use crate::{ReduceOp, MAX_RANK};

/// Reduces `x` of shape `dims` (rank <= MAX_RANK) over the axes whose bit is set in `axes_mask`
/// (bit k = axis k). `out` has the shape of `dims` with reduced axes set to 1 (keepdims layout;
/// dropping them does not change the memory order). Empty reductions give the identity (0 for
/// Sum/Mean-of-nothing is 0/0 -> NaN as in numpy; -inf for Max; +inf for Min; 1 for Prod).
///
/// Values are folded in row-major order of the reduced axes, sequentially in f32. `Max`/`Min`
/// propagate NaN (numpy). `Mean` is the f32 sum divided by the element count, `L2` the square
/// root of the f32 sum of squares. Bits of `axes_mask` at or above the rank are ignored.
pub fn reduce_f32(op: ReduceOp, dims: &[usize], axes_mask: u32, x: &[f32], out: &mut [f32]) {
    let rank = dims.len();
    let mut strides = [0usize; MAX_RANK];
    let mut s = 1;
    for k in (0..rank).rev() {
        strides[k] = s;
        s *= dims[k];
    }
    let mut kept = Axes::default();
    let mut red = Axes::default();
    for k in 0..rank {
        if axes_mask & (1 << k) != 0 {
            red.push(dims[k], strides[k]);
        } else {
            kept.push(dims[k], strides[k]);
        }
    }
    let n_out = kept.count();
    let n_red = red.count();
    if n_out == 0 {
        return;
    }
    let out = &mut out[..n_out];
    match op {
        ReduceOp::Sum => run(&kept, &red, x, out, 0.0, |a, v| a + v, |a| a),
        ReduceOp::Mean => {
            let n = n_red as f32;
            run(&kept, &red, x, out, 0.0, |a, v| a + v, |a| a / n)
        }
        ReduceOp::Max => run(&kept, &red, x, out, f32::NEG_INFINITY, max_nan, |a| a),
        ReduceOp::Min => run(&kept, &red, x, out, f32::INFINITY, min_nan, |a| a),
        ReduceOp::Prod => run(&kept, &red, x, out, 1.0, |a, v| a * v, |a| a),
        ReduceOp::L1 => run(&kept, &red, x, out, 0.0, |a, v| a + v.abs(), |a| a),
        ReduceOp::L2 => run(&kept, &red, x, out, 0.0, |a, v| a + v * v, math::sqrt),
        ReduceOp::SumSquare => run(&kept, &red, x, out, 0.0, |a, v| a + v * v, |a| a),
    }
}

#[inline]
fn max_nan(a: f32, v: f32) -> f32 {
    if v > a || v.is_nan() {
        v
    } else {
        a
    }
}

#[inline]
fn min_nan(a: f32, v: f32) -> f32 {
    if v < a || v.is_nan() {
        v
    } else {
        a
    }
}

/// A list of (size, stride) axes in iteration order, with contiguous neighbours merged.
#[derive(Default)]
struct Axes {
    rank: usize,
    dims: [usize; MAX_RANK],
    strides: [usize; MAX_RANK],
}

impl Axes {
    fn push(&mut self, n: usize, stride: usize) {
        if n == 1 {
            return;
        }
        if self.rank > 0 && self.strides[self.rank - 1] == stride * n && n != 0 {
            self.dims[self.rank - 1] *= n;
            self.strides[self.rank - 1] = stride;
            return;
        }
        self.dims[self.rank] = n;
        self.strides[self.rank] = stride;
        self.rank += 1;
    }

    fn count(&self) -> usize {
        self.dims[..self.rank].iter().product()
    }

    /// Calls `f` with the offset of every element, in row-major order.
    #[inline]
    fn for_each(&self, base: usize, mut f: impl FnMut(usize)) {
        if self.rank == 0 {
            f(base);
            return;
        }
        if self.count() == 0 {
            return;
        }
        let inner = self.rank - 1;
        let (n, st) = (self.dims[inner], self.strides[inner]);
        let mut idx = [0usize; MAX_RANK];
        let mut off = base;
        loop {
            for j in 0..n {
                f(off + j * st);
            }
            let mut d = inner;
            loop {
                if d == 0 {
                    return;
                }
                d -= 1;
                idx[d] += 1;
                off += self.strides[d];
                if idx[d] < self.dims[d] {
                    break;
                }
                idx[d] = 0;
                off -= self.strides[d] * self.dims[d];
            }
        }
    }
}

/// For every kept position, folds the reduced elements into `init` with `fold`, then `fin`.
#[inline]
fn run(
    kept: &Axes,
    red: &Axes,
    x: &[f32],
    out: &mut [f32],
    init: f32,
    fold: impl Fn(f32, f32) -> f32,
    fin: impl Fn(f32) -> f32,
) {
    // The kept positions number `out.len()` (validated); zip-style writes need no index check.
    let mut outs = out.iter_mut();
    kept.for_each(0, |base| {
        let mut acc = init;
        if red.rank == 1 && red.strides[0] == 1 {
            // One contiguous run: a plain slice fold.
            for &v in &x[base..base + red.dims[0]] {
                acc = fold(acc, v);
            }
        } else {
            red.for_each(base, |i| acc = fold(acc, x[i]));
        }
        if let Some(o) = outs.next() {
            *o = fin(acc);
        }
    });
}
