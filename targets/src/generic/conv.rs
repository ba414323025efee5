//! Direct 2-D convolution (dense, grouped, depthwise, dilated, strided, zero padding).

use super::activation::activate;
use crate::{Activation, Conv2dGeom};

/// `out = act(conv(input, weight) + bias)`.
///
/// `input`: `[n, c_in, h_in, w_in]`; `weight`: `[c_out, c_in/groups, kh, kw]`; `bias`: `[c_out]`;
/// `out`: `[n, c_out, h_out, w_out]`. Padding positions read as 0; bottom/right padding is
/// implied by `h_out`/`w_out`.
///
/// Each output is `act(acc + bias[co])` where `acc` starts at 0 and accumulates
/// `x * w` in f32 over the group's input channels, then kernel rows, then kernel columns.
/// Taps that fall in the padding are skipped rather than multiplied by 0 (identical for finite
/// weights).
pub fn conv2d_f32(
    g: &Conv2dGeom,
    input: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
) {
    let cig = g.c_in / g.groups;
    // 0 only when `c_out` is 0 (validation: groups divide c_out) and the loop below is empty;
    // `max(1)` keeps `co / cog` free of a panic path.
    let cog = (g.c_out / g.groups).max(1);
    let in_plane = g.h_in * g.w_in;
    let out_plane = g.h_out * g.w_out;
    let (sh, sw) = (g.stride_h, g.stride_w);
    for b in 0..g.n {
        for co in 0..g.c_out {
            let grp = co / cog;
            let o0 = (b * g.c_out + co) * out_plane;
            let oplane = &mut out[o0..o0 + out_plane];
            // The output plane is the accumulator. For each output the terms arrive in
            // (ci, kh, kw) order, as in the plain nested loop; padded taps are skipped.
            oplane.fill(0.0);
            for ci in 0..cig {
                let i0 = (b * g.c_in + grp * cig + ci) * in_plane;
                let iplane = &input[i0..i0 + in_plane];
                let w0 = (co * cig + ci) * g.kh * g.kw;
                for ky in 0..g.kh {
                    let wrow = &weight[w0 + ky * g.kw..w0 + (ky + 1) * g.kw];
                    let y_off = (ky * g.dil_h) as isize - g.pad_top as isize;
                    for oh in 0..g.h_out {
                        let ih = (oh * sh) as isize + y_off;
                        if ih < 0 || ih >= g.h_in as isize {
                            continue;
                        }
                        let irow = &iplane[ih as usize * g.w_in..(ih as usize + 1) * g.w_in];
                        let orow = &mut oplane[oh * g.w_out..(oh + 1) * g.w_out];
                        for (kx, &wv) in wrow.iter().enumerate() {
                            // iw = ow * sw + x_off must lie in [0, w_in).
                            let x_off = (kx * g.dil_w) as isize - g.pad_left as isize;
                            let (lo, hi) = valid_range(x_off, sw, g.w_in, g.w_out);
                            for ow in lo..hi {
                                let iw = ((ow * sw) as isize + x_off) as usize;
                                orow[ow] += irow[iw] * wv;
                            }
                        }
                    }
                }
            }
            let bv = bias.map(|bs| bs[co]);
            for v in oplane.iter_mut() {
                let acc = match bv {
                    Some(bv) => *v + bv,
                    None => *v,
                };
                *v = activate(acc, act);
            }
        }
    }
}

/// The outputs `o` in `[lo, hi)` (within `[0, n_out)`) for which `o * stride + off` lies in
/// `[0, n_in)`.
#[inline]
pub(crate) fn valid_range(off: isize, stride: usize, n_in: usize, n_out: usize) -> (usize, usize) {
    // Validation rejects a zero stride; `max(1)` keeps the divisions below free of a panic path.
    let s = stride.max(1);
    // Smallest o with o*s + off >= 0.
    let lo = if off >= 0 {
        0
    } else {
        off.unsigned_abs().div_ceil(s)
    };
    // Largest o with o*s + off <= n_in - 1, plus one.
    let last = n_in as isize - 1 - off;
    let hi = if last < 0 { 0 } else { last as usize / s + 1 };
    let hi = hi.min(n_out);
    (lo.min(hi), hi)
}
