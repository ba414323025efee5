//! Normalizations and softmax.

/// Softmax over the middle axis of `[outer, axis_len, inner]` (max-subtracted, exact exp).
/// `log` selects LogSoftmax.
pub fn softmax_f32(outer: usize, axis_len: usize, inner: usize, log: bool, x: &[f32], out: &mut [f32]) {
    todo!()
}

/// LayerNormalization over the last `size` elements of each of `outer` rows:
/// `(x - mean) / sqrt(var + eps) * scale + bias`, biased variance; `scale`/`bias` have `size`
/// elements when present. Accumulate in f32 with a two-pass (mean, then variance) algorithm.
pub fn layernorm_f32(
    outer: usize,
    size: usize,
    eps: f32,
    x: &[f32],
    scale: Option<&[f32]>,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    todo!()
}

/// InstanceNormalization over `[n, c, spatial]`: each (n, c) plane normalized with its own mean
/// and biased variance, then `* scale[c] + bias[c]`.
pub fn instancenorm_f32(
    n: usize,
    c: usize,
    spatial: usize,
    eps: f32,
    x: &[f32],
    scale: &[f32],
    bias: &[f32],
    out: &mut [f32],
) {
    todo!()
}
