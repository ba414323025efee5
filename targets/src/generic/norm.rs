//! Normalizations and softmax.

use super::math;

/// Softmax over the middle axis of `[outer, axis_len, inner]` (max-subtracted, exact exp).
/// `log` selects LogSoftmax.
///
/// Per lane: `m = max x` (NaN propagates), `e_j = exp(x_j - m)`, `s = sum e_j` in order (f32);
/// Softmax writes `e_j / s`, LogSoftmax `(x_j - m) - ln s`.
pub fn softmax_f32(
    outer: usize,
    axis_len: usize,
    inner: usize,
    log: bool,
    x: &[f32],
    out: &mut [f32],
) {
    if axis_len == 0 {
        return;
    }
    for o in 0..outer {
        for i in 0..inner {
            let base = o * axis_len * inner + i;
            let at = |j: usize| base + j * inner;
            let mut m = f32::NEG_INFINITY;
            for j in 0..axis_len {
                let v = x[at(j)];
                if v > m || v.is_nan() {
                    m = v;
                }
            }
            let mut sum = 0.0f32;
            for j in 0..axis_len {
                let e = math::exp(x[at(j)] - m);
                sum += e;
                if !log {
                    out[at(j)] = e;
                }
            }
            if log {
                let ls = math::ln(sum);
                for j in 0..axis_len {
                    out[at(j)] = (x[at(j)] - m) - ls;
                }
            } else {
                for j in 0..axis_len {
                    out[at(j)] /= sum;
                }
            }
        }
    }
}

/// Mean and biased variance of `v`, two passes, sequential f32 sums.
#[inline]
fn mean_var(v: &[f32]) -> (f32, f32) {
    let n = v.len() as f32;
    let mut s = 0.0f32;
    for &a in v {
        s += a;
    }
    let mean = s / n;
    let mut q = 0.0f32;
    for &a in v {
        let d = a - mean;
        q += d * d;
    }
    (mean, q / n)
}

/// LayerNormalization over the last `size` elements of each of `outer` rows:
/// `(x - mean) / sqrt(var + eps) * scale + bias`, biased variance; `scale`/`bias` have `size`
/// elements when present. Accumulate in f32 with a two-pass (mean, then variance) algorithm.
///
/// Evaluated literally: `((x - mean) / sqrt(var + eps)) * scale + bias`, with the sums in
/// element order.
pub fn layernorm_f32(
    outer: usize,
    size: usize,
    eps: f32,
    x: &[f32],
    scale: Option<&[f32]>,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    if size == 0 {
        return;
    }
    for r in 0..outer {
        let xs = &x[r * size..(r + 1) * size];
        let ys = &mut out[r * size..(r + 1) * size];
        let (mean, var) = mean_var(xs);
        let d = math::sqrt(var + eps);
        for (j, (y, &v)) in ys.iter_mut().zip(xs).enumerate() {
            let mut t = (v - mean) / d;
            if let Some(s) = scale {
                t *= s[j];
            }
            if let Some(b) = bias {
                t += b[j];
            }
            *y = t;
        }
    }
}

/// LayerNormalization over the middle axis of `[outer, size, inner]`: for each `(o, j)` the
/// `size` values `x[o, :, j]` (stride `inner`) are normalized as in [`layernorm_f32`], with the
/// same operations in the same order, so each result is bit-identical to transposing that
/// axis last, running [`layernorm_f32`] and transposing back. This is LayerNorm over the
/// channels of an NCHW tensor without the two transposes.
pub fn layernorm_axis_f32(
    outer: usize,
    size: usize,
    inner: usize,
    eps: f32,
    x: &[f32],
    scale: Option<&[f32]>,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    if size == 0 || inner == 0 {
        return;
    }
    let n = size as f32;
    for o in 0..outer {
        let base = o * size * inner;
        for j in 0..inner {
            let at = |c: usize| base + c * inner + j;
            let mut s = 0.0f32;
            for c in 0..size {
                s += x[at(c)];
            }
            let mean = s / n;
            let mut q = 0.0f32;
            for c in 0..size {
                let d = x[at(c)] - mean;
                q += d * d;
            }
            let d = math::sqrt(q / n + eps);
            for c in 0..size {
                let mut t = (x[at(c)] - mean) / d;
                if let Some(s) = scale {
                    t *= s[c];
                }
                if let Some(b) = bias {
                    t += b[c];
                }
                out[at(c)] = t;
            }
        }
    }
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
    if spatial == 0 {
        return;
    }
    for b in 0..n {
        for ch in 0..c {
            let p = (b * c + ch) * spatial;
            let xs = &x[p..p + spatial];
            let ys = &mut out[p..p + spatial];
            let (mean, var) = mean_var(xs);
            let d = math::sqrt(var + eps);
            let (s, bb) = (scale[ch], bias[ch]);
            for (y, &v) in ys.iter_mut().zip(xs) {
                *y = (v - mean) / d * s + bb;
            }
        }
    }
}
