//! Depthwise 2-D convolution written for auto-vectorization: each output row accumulates its
//! kernel taps as contiguous (stride 1) or strided row updates. Compiled once per ISA inside a
//! `#[target_feature]` wrapper (see [`crate::kernels`]); the reference is
//! [`crate::generic::conv::conv2d_f32`].

use crate::generic::conv::valid_range;
use crate::{Activation, Conv2dGeom};

/// `out = act(depthwise_conv(input, weight) + bias)`; `g.groups == g.c_in == g.c_out`.
/// `weight` is `[c, 1, kh, kw]`.
#[inline(always)]
pub(crate) fn dwconv_body(
    g: &Conv2dGeom,
    input: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
    activate: impl Fn(&mut [f32], Activation),
) {
    let in_plane = g.h_in * g.w_in;
    let out_plane = g.h_out * g.w_out;
    let taps = g.kh * g.kw;
    for b in 0..g.n {
        for c in 0..g.c_out {
            let ip = &input[(b * g.c_in + c) * in_plane..][..in_plane];
            let op = &mut out[(b * g.c_out + c) * out_plane..][..out_plane];
            let w = &weight[c * taps..(c + 1) * taps];
            let bv = bias.map_or(0.0, |bs| bs[c]);
            for oh in 0..g.h_out {
                let orow = &mut op[oh * g.w_out..(oh + 1) * g.w_out];
                orow.fill(bv);
                for ky in 0..g.kh {
                    let ih = (oh * g.stride_h + ky * g.dil_h) as isize - g.pad_top as isize;
                    if ih < 0 || ih >= g.h_in as isize {
                        continue;
                    }
                    let irow = &ip[ih as usize * g.w_in..(ih as usize + 1) * g.w_in];
                    for kx in 0..g.kw {
                        let wv = w[ky * g.kw + kx];
                        let x_off = (kx * g.dil_w) as isize - g.pad_left as isize;
                        let (lo, hi) = valid_range(x_off, g.stride_w, g.w_in, g.w_out);
                        if lo >= hi {
                            continue;
                        }
                        let first = (lo * g.stride_w) as isize + x_off;
                        let first = first as usize;
                        if g.stride_w == 1 {
                            let src = &irow[first..first + (hi - lo)];
                            for (o, &x) in orow[lo..hi].iter_mut().zip(src) {
                                *o += x * wv;
                            }
                        } else {
                            let src = &irow[first..];
                            for (o, x) in
                                orow[lo..hi].iter_mut().zip(src.iter().step_by(g.stride_w))
                            {
                                *o += *x * wv;
                            }
                        }
                    }
                }
                activate(orow, act);
            }
        }
    }
}
