//! General matrix multiply with arbitrary strides and a fused epilogue.

use super::activation::activate;
use crate::fp16::Real;
use crate::Activation;

/// A strided read-only matrix: element `(r, c)` is `data[offset + r * rs + c * cs]`, of f32
/// or (`T = u16`) binary16 values, read as f32 (see [`crate::fp16`]).
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a, T = f32> {
    /// Backing storage.
    pub data: &'a [T],
    /// Offset of element (0, 0).
    pub offset: usize,
    /// Row stride.
    pub rs: usize,
    /// Column stride.
    pub cs: usize,
}

/// `out[offset + i*ldo + j] = act(alpha * sum_k a(i,k) b(k,j) + bias[j])` for i < m, j < n.
///
/// `bias`, when present, has `n` elements (per output column). `k == 0` gives `act(bias)`.
/// binary16 operands are widened exactly, so the result equals that over the widened values.
pub fn gemm_f32<TA: Real, TB: Real>(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: MatRef<'_, TA>,
    b: MatRef<'_, TB>,
    bias: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
    out_offset: usize,
    ldo: usize,
) {
    // Each output accumulates `acc = ((0 + a0 b0) + a1 b1) + ...` in k order, in f32, exactly as
    // the plain triple loop with k innermost; the loops run i, k, j so that the row of `out`
    // serves as the accumulator and the j loop is unit-stride in `out`.
    for i in 0..m {
        let row = &mut out[out_offset + i * ldo..out_offset + i * ldo + n];
        row.fill(0.0);
        for p in 0..k {
            let av = a.data[a.offset + i * a.rs + p * a.cs].to_f32();
            let b0 = b.offset + p * b.rs;
            if b.cs == 1 {
                for (acc, &bv) in row.iter_mut().zip(&b.data[b0..b0 + n]) {
                    *acc += av * bv.to_f32();
                }
            } else {
                for (j, acc) in row.iter_mut().enumerate() {
                    *acc += av * b.data[b0 + j * b.cs].to_f32();
                }
            }
        }
        match bias {
            Some(bias) => {
                for (acc, &bv) in row.iter_mut().zip(&bias[..n]) {
                    *acc = activate(alpha * *acc + bv, act);
                }
            }
            None => {
                for acc in row.iter_mut() {
                    *acc = activate(alpha * *acc, act);
                }
            }
        }
    }
}
