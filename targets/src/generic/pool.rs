//! 2-D pooling over NCHW planes.

use crate::{Pool2dGeom, PoolKind};

/// Max or average pooling; `x` is `[planes, h_in, w_in]`, `out` is `[planes, h_out, w_out]`.
/// Windows that lie entirely in padding produce 0 for Avg without `count_include_pad` and
/// `-inf` for Max.
///
/// Max ignores padded positions and propagates NaN. Avg sums the in-bounds values in window
/// order (f32) and divides by their count, or, with `count_include_pad`, by the full window size
/// `kh * kw`. Since the geometry carries no bottom/right pads, the latter also counts window
/// positions beyond the explicit bottom/right padding (those that `ceil_mode` adds), where ONNX
/// would not; the two agree whenever the windows stay inside the padded input.
pub fn pool2d_f32(kind: PoolKind, g: &Pool2dGeom, x: &[f32], out: &mut [f32]) {
    let in_plane = g.h_in * g.w_in;
    let out_plane = g.h_out * g.w_out;
    let window = (g.kh * g.kw) as f32;
    for p in 0..g.planes {
        let xp = &x[p * in_plane..(p + 1) * in_plane];
        let op = &mut out[p * out_plane..(p + 1) * out_plane];
        for oh in 0..g.h_out {
            for ow in 0..g.w_out {
                let mut max = f32::NEG_INFINITY;
                let mut sum = 0.0f32;
                let mut count = 0usize;
                for ky in 0..g.kh {
                    let ih = (oh * g.stride_h + ky * g.dil_h) as isize - g.pad_top as isize;
                    if ih < 0 || ih >= g.h_in as isize {
                        continue;
                    }
                    let row = &xp[ih as usize * g.w_in..(ih as usize + 1) * g.w_in];
                    for kx in 0..g.kw {
                        let iw = (ow * g.stride_w + kx * g.dil_w) as isize - g.pad_left as isize;
                        if iw < 0 || iw >= g.w_in as isize {
                            continue;
                        }
                        let v = row[iw as usize];
                        // NaN propagates: once `max` is NaN no comparison replaces it.
                        if v > max || v.is_nan() {
                            max = v;
                        }
                        sum += v;
                        count += 1;
                    }
                }
                op[oh * g.w_out + ow] = match kind {
                    PoolKind::Max => max,
                    PoolKind::Avg {
                        count_include_pad: true,
                    } => sum / window,
                    PoolKind::Avg {
                        count_include_pad: false,
                    } => {
                        if count == 0 {
                            0.0
                        } else {
                            sum / count as f32
                        }
                    }
                };
            }
        }
    }
}
