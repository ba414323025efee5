//! Direct 2-D convolution (dense, grouped, depthwise, dilated, strided, zero padding).

use crate::{Activation, Conv2dGeom};

/// `out = act(conv(input, weight) + bias)`.
///
/// `input`: `[n, c_in, h_in, w_in]`; `weight`: `[c_out, c_in/groups, kh, kw]`; `bias`: `[c_out]`;
/// `out`: `[n, c_out, h_out, w_out]`. Padding positions read as 0; bottom/right padding is
/// implied by `h_out`/`w_out`.
pub fn conv2d_f32(
    g: &Conv2dGeom,
    input: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
) {
    todo!()
}
