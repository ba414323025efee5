//! Reductions over any set of axes.

use crate::ReduceOp;

/// Reduces `x` of shape `dims` (rank <= MAX_RANK) over the axes whose bit is set in `axes_mask`
/// (bit k = axis k). `out` has the shape of `dims` with reduced axes set to 1 (keepdims layout;
/// dropping them does not change the memory order). Empty reductions give the identity (0 for
/// Sum/Mean-of-nothing is 0/0 -> NaN as in numpy; -inf for Max; +inf for Min; 1 for Prod).
pub fn reduce_f32(op: ReduceOp, dims: &[usize], axes_mask: u32, x: &[f32], out: &mut [f32]) {
    todo!()
}
