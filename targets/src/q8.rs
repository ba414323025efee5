//! The int8 kernel contract and its scalar reference.
//!
//! Quantized tensors follow the common contract (DESIGN.md): weights are per-output-channel
//! symmetric `i8` in `[-127, 127]` (zero point 0), activations are per-tensor asymmetric and
//! stored as `u8` with a zero point (`real = scale × (q − zp)`), biases are `i32` in the
//! accumulator's scale (`x_scale × w_scale[c]`). Every function here defines its result
//! exactly in integer arithmetic (or, for the f32 conversions, in single IEEE operations), so
//! each ISA's kernel must return the same bits as this reference for the same inputs.
//!
//! Requantization uses a fixed-point multiplier: the real factor
//! `x_scale × w_scale[c] / y_scale` is `multiplier × 2^−(31 + shift)` with `multiplier` in
//! `[2^30, 2^31)` (see [`quantize_multiplier`]), applied with one rounding
//! ([`requantize`]).
//!
//! [`qgemm`] reads its weights from a buffer packed by [`pack_qgemm_weights`] in
//! [`QGEMM_MR`]-row panels, `k` padded to a multiple of 4, and the row sums appended to each
//! panel, the layout the VNNI (`vpdpbusd`), AVX2 and NEON (`sdot`, `smull`/`sadalp`) kernels
//! read: for each group of four `k`, each row's four weights are one 32-bit word.

/// Rows per packed weight panel of [`qgemm`].
pub const QGEMM_MR: usize = 8;

/// Longest reduction [`qgemm`] and [`qdwconv2d`] accept: `k × 255 × 127` fits in an `i32`
/// with room for the bias.
pub const MAX_QK: usize = 1 << 16;

/// Requantization of one output channel set: `y = clamp(zp + round(acc × m × 2^−(31+s)))`.
#[derive(Clone, Copy, Debug)]
pub struct Requant<'a> {
    /// Per output row (channel): the `i32` bias added to the accumulator (see each kernel for
    /// what it includes).
    pub bias: &'a [i32],
    /// Per output row: fixed-point multiplier, `0` or in `[2^30, 2^31)`.
    pub multiplier: &'a [i32],
    /// Per output row: shift, in `[-30, 30]` (so `31 + shift` is in `[1, 61]`).
    pub shift: &'a [i8],
    /// Output zero point.
    pub out_zp: u8,
    /// Lowest output value (a fused ReLU or clip raises it above 0).
    pub lo: u8,
    /// Highest output value.
    pub hi: u8,
}

/// `clamp(zp + ((acc × multiplier + 2^(t−1)) >> t), lo, hi)` with `t = 31 + shift`, computed
/// in `i64` (the product of an `i32` and a multiplier below `2^31` cannot overflow; `>>` is
/// arithmetic, so ties round toward +∞).
#[inline(always)]
pub fn requantize(acc: i32, multiplier: i32, shift: i8, zp: u8, lo: u8, hi: u8) -> u8 {
    let t = 31 + shift as i32;
    let t = t.clamp(1, 61) as u32;
    let r = (acc as i64 * multiplier as i64 + (1i64 << (t - 1))) >> t;
    (r + zp as i64).clamp(lo as i64, hi as i64) as u8
}

/// The fixed-point form of a positive real factor: `(multiplier, shift)` with
/// `real ≈ multiplier × 2^−(31 + shift)`, `multiplier` in `[2^30, 2^31)`. Factors too small to
/// move any `i32` accumulator give `(0, 0)`; `None` for a factor that is not finite, is
/// negative, or is `2^30` or more (no valid shift).
pub fn quantize_multiplier(real: f64) -> Option<(i32, i8)> {
    if !real.is_finite() || real < 0.0 {
        return None;
    }
    if real == 0.0 {
        return Some((0, 0));
    }
    // real = q × 2^e with q in [0.5, 1).
    let mut e = 0i32;
    let mut q = real;
    while q >= 1.0 {
        q /= 2.0;
        e += 1;
    }
    while q < 0.5 {
        q *= 2.0;
        e -= 1;
    }
    // Positive and below 2^31 with an ulp of at most 2^−22: `+ 0.5` is exact and the cast
    // truncates, so this is `round()` (half away from zero), which `core` lacks.
    let mut m = (q * (1u64 << 31) as f64 + 0.5) as i64;
    if m == 1i64 << 31 {
        m /= 2;
        e += 1;
    }
    // multiplier × 2^−31 × 2^e: shift = −e.
    let shift = -e;
    if shift > 30 {
        // Below 2^−61 relative to the accumulator: every result rounds to 0.
        return Some((0, 0));
    }
    if shift < -30 {
        return None;
    }
    Some((m as i32, shift as i8))
}

/// `q = clamp(round_half_even(x / scale) + zp, 0, 255)`, ONNX `QuantizeLinear` to `u8`. A NaN
/// gives `zp`. `scale` must be positive and finite.
#[inline(always)]
pub fn quantize_one(x: f32, scale: f32, zp: u8) -> u8 {
    let v = x / scale;
    if v.is_nan() {
        return zp;
    }
    let r = crate::generic::math::round_ties_even(v).clamp(-512.0, 512.0) as i32;
    (r + zp as i32).clamp(0, 255) as u8
}

/// `x = (q − zp) × scale`, ONNX `DequantizeLinear` from `u8` (exact up to the one rounding of
/// the product).
#[inline(always)]
pub fn dequantize_one(q: u8, scale: f32, zp: u8) -> f32 {
    (q as i32 - zp as i32) as f32 * scale
}

/// [`quantize_one`] over a slice; `out.len() == x.len()`.
pub fn quantize_u8(x: &[f32], scale: f32, zp: u8, out: &mut [u8]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = quantize_one(v, scale, zp);
    }
}

/// [`dequantize_one`] over a slice; `out.len() == q.len()`.
pub fn dequantize_u8(q: &[u8], scale: f32, zp: u8, out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(q) {
        *o = dequantize_one(v, scale, zp);
    }
}

/// `k` rounded up to a multiple of 4 (the packed reduction length).
pub fn qgemm_k4(k: usize) -> usize {
    k.div_ceil(4) * 4
}

/// Bytes of the packed weights of an `m × k` matrix: per panel of [`QGEMM_MR`] rows,
/// `qgemm_k4(k) × QGEMM_MR` weight bytes then `QGEMM_MR` little-endian `i32` row sums.
pub fn qgemm_packed_len(m: usize, k: usize) -> usize {
    m.div_ceil(QGEMM_MR) * (qgemm_k4(k) * QGEMM_MR + 4 * QGEMM_MR)
}

/// Packs row-major `w` (`m × k`, values in `[-127, 127]`) for [`qgemm`]. Panel `p` holds rows
/// `p×MR .. p×MR+MR`; inside it, for each quad `q` of `k` and each row `r`, the four bytes
/// `w[r][4q .. 4q+4]` (rows and `k` past the end are 0); then each row's `Σ_k w[r][k]` as a
/// little-endian `i32`. `out.len() == qgemm_packed_len(m, k)`.
pub fn pack_qgemm_weights(w: &[i8], m: usize, k: usize, out: &mut [i8]) {
    let k4 = qgemm_k4(k);
    let panel = k4 * QGEMM_MR + 4 * QGEMM_MR;
    for (p, dst) in out.chunks_exact_mut(panel).enumerate() {
        let (wq, sums) = dst.split_at_mut(k4 * QGEMM_MR);
        for (q, quad) in wq.chunks_exact_mut(4 * QGEMM_MR).enumerate() {
            for (r, word) in quad.chunks_exact_mut(4).enumerate() {
                let row = p * QGEMM_MR + r;
                for (j, b) in word.iter_mut().enumerate() {
                    let kk = 4 * q + j;
                    *b = if row < m && kk < k {
                        w[row * k + kk]
                    } else {
                        0
                    };
                }
            }
        }
        for (r, s) in sums.chunks_exact_mut(4).enumerate() {
            let row = p * QGEMM_MR + r;
            let sum: i32 = if row < m {
                w[row * k..row * k + k].iter().map(|&v| v as i32).sum()
            } else {
                0
            };
            for (d, b) in s.iter_mut().zip(sum.to_le_bytes()) {
                *d = b as i8;
            }
        }
    }
}

/// The packed weight `w[row][kk]` (see [`pack_qgemm_weights`]).
#[inline(always)]
fn packed_w(packed: &[i8], k: usize, row: usize, kk: usize) -> i32 {
    let panel = qgemm_k4(k) * QGEMM_MR + 4 * QGEMM_MR;
    let (p, r) = (row / QGEMM_MR, row % QGEMM_MR);
    packed[p * panel + (kk / 4) * 4 * QGEMM_MR + r * 4 + kk % 4] as i32
}

/// A `u8` matrix operand: element `(r, c)` is `data[offset + r×rs + c×cs]`.
#[derive(Clone, Copy, Debug)]
pub struct QMat<'a> {
    /// Backing bytes.
    pub data: &'a [u8],
    /// Index of element `(0, 0)`.
    pub offset: usize,
    /// Row stride (elements).
    pub rs: usize,
    /// Column stride (elements).
    pub cs: usize,
}

/// Where [`qgemm`] writes element `(i, j)`: `offset + i×rs + j×cs`.
#[derive(Clone, Copy, Debug)]
pub struct QOut {
    /// Index of element `(0, 0)`.
    pub offset: usize,
    /// Row stride (elements).
    pub rs: usize,
    /// Column stride (elements).
    pub cs: usize,
}

/// Bytes of scratch [`qgemm`] may use to repack `x` (`k × n`): `qgemm_k4(k) × n`.
pub fn qgemm_scratch_len(k: usize, n: usize) -> usize {
    qgemm_k4(k) * n
}

/// Quantized matrix product with requantization, reference:
/// `out(i, j) = requantize(bias[i] + Σ_k w[i][k] × (x(k, j) − x_zp), multiplier[i], shift[i],
/// out_zp, lo, hi)` for `i < m, j < n`, with the sum exact in `i32` (`k ≤` [`MAX_QK`]).
/// `packed` is `w` packed by [`pack_qgemm_weights`]; `rq` slices have `m` entries; `scratch`
/// holds at least [`qgemm_scratch_len`] bytes (the reference does not use it). Convolutions
/// pass their im2col matrix as `x` with padding filled with `x_zp` (contributes 0).
#[allow(clippy::too_many_arguments)]
pub fn qgemm(
    m: usize,
    n: usize,
    k: usize,
    packed: &[i8],
    x: QMat<'_>,
    x_zp: u8,
    rq: &Requant<'_>,
    out: &mut [u8],
    dst: QOut,
    _scratch: &mut [u8],
) {
    for i in 0..m {
        for j in 0..n {
            let mut acc = rq.bias[i];
            for kk in 0..k {
                let xv = x.data[x.offset + kk * x.rs + j * x.cs] as i32 - x_zp as i32;
                acc = acc.wrapping_add(packed_w(packed, k, i, kk) * xv);
            }
            out[dst.offset + i * dst.rs + j * dst.cs] =
                requantize(acc, rq.multiplier[i], rq.shift[i], rq.out_zp, rq.lo, rq.hi);
        }
    }
}

/// [`qgemm`] with a dequantized `f32` result instead of requantization:
/// `out(i, j) = (bias[i] + Σ_k w[i][k] × (x(k, j) − x_zp)) as f32 × scale[i]` (one conversion,
/// one product), for int8 layers whose consumer is f32 (an activation int8 cannot express, a
/// graph output).
#[allow(clippy::too_many_arguments)]
pub fn qgemm_f32out(
    m: usize,
    n: usize,
    k: usize,
    packed: &[i8],
    x: QMat<'_>,
    x_zp: u8,
    bias: &[i32],
    scale: &[f32],
    out: &mut [f32],
    dst: QOut,
    _scratch: &mut [u8],
) {
    for i in 0..m {
        for j in 0..n {
            let mut acc = bias[i];
            for kk in 0..k {
                let xv = x.data[x.offset + kk * x.rs + j * x.cs] as i32 - x_zp as i32;
                acc = acc.wrapping_add(packed_w(packed, k, i, kk) * xv);
            }
            out[dst.offset + i * dst.rs + j * dst.cs] = acc as f32 * scale[i];
        }
    }
}

/// Depthwise quantized convolution, reference (`g.groups == g.c_in == g.c_out`, NCHW):
/// `out[b][c][oy][ox] = requantize(bias[c] + Σ_taps w[c][ty][tx] × (x[b][c][iy][ix] − x_zp))`
/// over the taps inside the input (padding contributes 0). `w` is `[c, kh × kw]` row-major.
pub fn qdwconv2d(
    g: &crate::Conv2dGeom,
    x: &[u8],
    x_zp: u8,
    w: &[i8],
    rq: &Requant<'_>,
    out: &mut [u8],
) {
    let (in_plane, out_plane, taps) = (g.h_in * g.w_in, g.h_out * g.w_out, g.kh * g.kw);
    for b in 0..g.n {
        for c in 0..g.c_out {
            let xp = &x[(b * g.c_in + c) * in_plane..][..in_plane];
            let op = &mut out[(b * g.c_out + c) * out_plane..][..out_plane];
            let wc = &w[c * taps..][..taps];
            for oy in 0..g.h_out {
                for ox in 0..g.w_out {
                    let mut acc = rq.bias[c];
                    for ty in 0..g.kh {
                        let iy = (oy * g.stride_h + ty * g.dil_h) as isize - g.pad_top as isize;
                        if iy < 0 || iy >= g.h_in as isize {
                            continue;
                        }
                        for tx in 0..g.kw {
                            let ix =
                                (ox * g.stride_w + tx * g.dil_w) as isize - g.pad_left as isize;
                            if ix < 0 || ix >= g.w_in as isize {
                                continue;
                            }
                            let xv = xp[iy as usize * g.w_in + ix as usize] as i32 - x_zp as i32;
                            acc = acc.wrapping_add(wc[ty * g.kw + tx] as i32 * xv);
                        }
                    }
                    op[oy * g.w_out + ox] =
                        requantize(acc, rq.multiplier[c], rq.shift[c], rq.out_zp, rq.lo, rq.hi);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;

    #[test]
    fn multiplier_round_trips() {
        for &real in &[
            1e-9,
            3.1e-4,
            0.0123,
            0.5,
            0.75,
            0.999_999_9,
            1.0,
            3.5,
            1234.5,
        ] {
            let (m, s) = quantize_multiplier(real).unwrap();
            assert!((1 << 30..=i32::MAX).contains(&m), "{real}: {m}");
            let back = m as f64 * 2f64.powi(-(31 + s as i32));
            assert!((back - real).abs() <= real * 1e-9, "{real} -> {back}");
        }
        assert_eq!(quantize_multiplier(0.0), Some((0, 0)));
        assert_eq!(quantize_multiplier(1e-30), Some((0, 0)));
        assert_eq!(quantize_multiplier(-1.0), None);
        assert_eq!(quantize_multiplier(f64::NAN), None);
        assert_eq!(quantize_multiplier(1e12), None);
    }

    #[test]
    fn requantize_matches_real_arithmetic() {
        // Against f64: acc × real rounded half up, for factors whose product is exact.
        for &real in &[0.25, 0.0625, 0.75, 1.5] {
            let (m, s) = quantize_multiplier(real).unwrap();
            for acc in -2000..2000 {
                let want = ((acc as f64 * real) + 0.5).floor() + 100.0;
                let want = want.clamp(3.0, 250.0) as u8;
                assert_eq!(requantize(acc, m, s, 100, 3, 250), want, "{acc} × {real}");
            }
        }
    }

    #[test]
    fn quantize_follows_onnx() {
        // Halves round to even; saturation; NaN to the zero point.
        assert_eq!(quantize_one(2.5, 1.0, 10), 12);
        assert_eq!(quantize_one(3.5, 1.0, 10), 14);
        assert_eq!(quantize_one(-2.5, 1.0, 10), 8);
        assert_eq!(quantize_one(1e9, 0.1, 0), 255);
        assert_eq!(quantize_one(-1e9, 0.1, 200), 0);
        assert_eq!(quantize_one(f32::NAN, 0.1, 77), 77);
        assert_eq!(dequantize_one(12, 0.5, 10), 1.0);
    }

    #[test]
    fn qgemm_reference_matches_plain_sum() {
        let (m, n, k) = (11, 5, 13);
        let w: std::vec::Vec<i8> = (0..m * k).map(|i| ((i * 37) % 255) as i8 / 2).collect();
        let x: std::vec::Vec<u8> = (0..k * n).map(|i| ((i * 91) % 256) as u8).collect();
        let mut packed = std::vec![0i8; qgemm_packed_len(m, k)];
        pack_qgemm_weights(&w, m, k, &mut packed);
        let bias: std::vec::Vec<i32> = (0..m as i32).map(|i| i * 1000 - 4000).collect();
        let mult = std::vec![1 << 30; m];
        let shift = std::vec![8i8; m];
        let rq = Requant {
            bias: &bias,
            multiplier: &mult,
            shift: &shift,
            out_zp: 128,
            lo: 0,
            hi: 255,
        };
        let mut out = std::vec![0u8; m * n];
        let xm = QMat {
            data: &x,
            offset: 0,
            rs: n,
            cs: 1,
        };
        let dst = QOut {
            offset: 0,
            rs: n,
            cs: 1,
        };
        qgemm(m, n, k, &packed, xm, 7, &rq, &mut out, dst, &mut []);
        for i in 0..m {
            // Row sums appended to the panel.
            let p = i / QGEMM_MR;
            let panel = qgemm_k4(k) * QGEMM_MR + 4 * QGEMM_MR;
            let at = p * panel + qgemm_k4(k) * QGEMM_MR + 4 * (i % QGEMM_MR);
            let bytes = [0, 1, 2, 3].map(|b| packed[at + b] as u8);
            let sum: i32 = w[i * k..i * k + k].iter().map(|&v| v as i32).sum();
            assert_eq!(i32::from_le_bytes(bytes), sum);
            for j in 0..n {
                let acc: i64 = bias[i] as i64
                    + (0..k)
                        .map(|kk| w[i * k + kk] as i64 * (x[kk * n + j] as i64 - 7))
                        .sum::<i64>();
                // × 2^30 × 2^−39 = / 512, rounded half up.
                let want = (acc as f64 / 512.0 + 0.5).floor() as i64 + 128;
                assert_eq!(out[i * n + j] as i64, want.clamp(0, 255), "({i}, {j})");
            }
        }
    }
}
