//! General matrix multiply with arbitrary strides and a fused epilogue.

use crate::Activation;

/// A strided read-only matrix: element `(r, c)` is `data[offset + r * rs + c * cs]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    /// Backing storage.
    pub data: &'a [f32],
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
pub fn gemm_f32(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    bias: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
    out_offset: usize,
    ldo: usize,
) {
    todo!()
}
