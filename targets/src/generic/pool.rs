//! 2-D pooling over NCHW planes.

use crate::{Pool2dGeom, PoolKind};

/// Max or average pooling; `x` is `[planes, h_in, w_in]`, `out` is `[planes, h_out, w_out]`.
/// Windows that lie entirely in padding produce 0 for Avg without `count_include_pad` and
/// `-inf` for Max.
pub fn pool2d_f32(kind: PoolKind, g: &Pool2dGeom, x: &[f32], out: &mut [f32]) {
    todo!()
}
