//! AVX-512F kernels for row normalizations (LayerNorm, InstanceNorm), reductions over one
//! contiguous block of axes, broadcasting binary arithmetic and per-channel affine maps.
//!
//! Error behaviour against the scalar reference in [`crate::generic`]:
//! - Sums over a contiguous run (LayerNorm/InstanceNorm mean and variance, row reductions) are
//!   accumulated in 32 f32 lanes and combined by a tree at the end, not sequentially, so they
//!   differ from the reference by rounding only (each within the usual `n * eps * sum |x|`
//!   bound of f32 summation; in practice far tighter). Normalizations multiply by
//!   `1 / sqrt(var + eps)` instead of dividing, one more rounding per element.
//! - Reductions over a block of axes with a kept contiguous inner block fold each output in
//!   the reference's order and are bit-identical to it, as are binary arithmetic and the
//!   per-channel affine map (same operations, same order, no FMA contraction).
//! - NaN propagates wherever the reference propagates it: through sums, through Max/Min
//!   reductions (any NaN in the run gives NaN) and through the binary Max/Min (numpy
//!   `maximum`/`minimum`, with `max(-0, +0) = +0` and `min(-0, +0) = -0`).

use crate::{BinaryOp, ReduceOp, MAX_RANK};
use core::arch::x86_64::*;

/// The lanes `[0, min(rem, 16))` of a vector.
#[inline(always)]
fn lanes(rem: usize) -> __mmask16 {
    if rem >= 16 {
        0xffff
    } else {
        ((1u32 << rem) - 1) as __mmask16
    }
}

/// Mean and biased variance of `v` (two passes; `v` not empty).
#[inline]
#[target_feature(enable = "avx512f")]
fn mean_var(v: &[f32]) -> (f32, f32) {
    let n = v.len();
    let p = v.as_ptr();
    let body = n - n % 32;
    let (mut s0, mut s1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    let mut i = 0;
    // SAFETY: the full loads read [i, i + 32) with i + 32 <= body <= n; the masked loads only
    // touch lanes below `n - i`, inside `v`.
    unsafe {
        while i < body {
            s0 = _mm512_add_ps(s0, _mm512_loadu_ps(p.add(i)));
            s1 = _mm512_add_ps(s1, _mm512_loadu_ps(p.add(i + 16)));
            i += 32;
        }
        while i < n {
            s0 = _mm512_add_ps(s0, _mm512_maskz_loadu_ps(lanes(n - i), p.add(i)));
            i += 16;
        }
    }
    let mean = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1)) / n as f32;
    let mv = _mm512_set1_ps(mean);
    let (mut q0, mut q1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    i = 0;
    // SAFETY: as above. The masked-off lanes load `mean`, so they add 0.
    unsafe {
        while i < body {
            let d0 = _mm512_sub_ps(_mm512_loadu_ps(p.add(i)), mv);
            let d1 = _mm512_sub_ps(_mm512_loadu_ps(p.add(i + 16)), mv);
            q0 = _mm512_fmadd_ps(d0, d0, q0);
            q1 = _mm512_fmadd_ps(d1, d1, q1);
            i += 32;
        }
        while i < n {
            let d = _mm512_sub_ps(_mm512_mask_loadu_ps(mv, lanes(n - i), p.add(i)), mv);
            q0 = _mm512_fmadd_ps(d, d, q0);
            i += 16;
        }
    }
    (mean, _mm512_reduce_add_ps(_mm512_add_ps(q0, q1)) / n as f32)
}

/// LayerNormalization over `outer` contiguous rows of `size` values, as
/// [`crate::generic::norm::layernorm_f32`] (see the module notes for the error).
#[target_feature(enable = "avx512f")]
pub(crate) fn avx512_layernorm_f32(
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
    let scale = scale.map(|s| &s[..size]);
    let bias = bias.map(|b| &b[..size]);
    let x = &x[..outer * size];
    let out = &mut out[..outer * size];
    for (xr, yr) in x.chunks_exact(size).zip(out.chunks_exact_mut(size)) {
        let (mean, var) = mean_var(xr);
        let inv = 1.0 / crate::generic::math::sqrt(var + eps);
        let (mv, iv) = (_mm512_set1_ps(mean), _mm512_set1_ps(inv));
        let mut i = 0;
        while i < size {
            let m = lanes(size - i);
            // SAFETY: the lanes of `m` lie in [i, size), inside `xr`, `yr`, `scale` and `bias`
            // (each sliced to `size` values above).
            unsafe {
                let v = _mm512_maskz_loadu_ps(m, xr.as_ptr().add(i));
                let mut t = _mm512_mul_ps(_mm512_sub_ps(v, mv), iv);
                if let Some(s) = scale {
                    t = _mm512_mul_ps(t, _mm512_maskz_loadu_ps(m, s.as_ptr().add(i)));
                }
                if let Some(b) = bias {
                    t = _mm512_add_ps(t, _mm512_maskz_loadu_ps(m, b.as_ptr().add(i)));
                }
                _mm512_mask_storeu_ps(yr.as_mut_ptr().add(i), m, t);
            }
            i += 16;
        }
    }
}

/// LayerNormalization over the middle axis of `[outer, size, inner]`, as
/// [`crate::generic::norm::layernorm_axis_f32`], 16 positions `j` per vector: each lane sums
/// its column in the reference's order and divides as it does (no FMA), so the result is
/// bit-identical to the reference.
#[target_feature(enable = "avx512f")]
pub(crate) fn avx512_layernorm_axis_f32(
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
    let scale = scale.map(|s| &s[..size]);
    let bias = bias.map(|b| &b[..size]);
    let plane = size * inner;
    let x = &x[..outer * plane];
    let out = &mut out[..outer * plane];
    let (nv, ev) = (_mm512_set1_ps(size as f32), _mm512_set1_ps(eps));
    for (xo, yo) in x.chunks_exact(plane).zip(out.chunks_exact_mut(plane)) {
        let (xp, yp) = (xo.as_ptr(), yo.as_mut_ptr());
        let mut j = 0;
        while j < inner {
            let m = lanes(inner - j);
            // SAFETY: every access is at `c * inner + j + lane` for c < size and lanes of `m`
            // (j + lane < inner), inside the `plane` values of `xo` / `yo`; `scale` and `bias`
            // hold `size` values (sliced above).
            unsafe {
                let mut s = _mm512_setzero_ps();
                for c in 0..size {
                    s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(m, xp.add(c * inner + j)));
                }
                let mean = _mm512_div_ps(s, nv);
                let mut q = _mm512_setzero_ps();
                for c in 0..size {
                    let d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, xp.add(c * inner + j)), mean);
                    q = _mm512_add_ps(q, _mm512_mul_ps(d, d));
                }
                let d = _mm512_sqrt_ps(_mm512_add_ps(_mm512_div_ps(q, nv), ev));
                for c in 0..size {
                    let v = _mm512_maskz_loadu_ps(m, xp.add(c * inner + j));
                    let mut t = _mm512_div_ps(_mm512_sub_ps(v, mean), d);
                    if let Some(sc) = scale {
                        t = _mm512_mul_ps(t, _mm512_set1_ps(sc[c]));
                    }
                    if let Some(b) = bias {
                        t = _mm512_add_ps(t, _mm512_set1_ps(b[c]));
                    }
                    _mm512_mask_storeu_ps(yp.add(c * inner + j), m, t);
                }
            }
            j += 16;
        }
    }
}

/// InstanceNormalization over `[n, c, spatial]`, as
/// [`crate::generic::norm::instancenorm_f32`] (see the module notes for the error).
#[target_feature(enable = "avx512f")]
pub(crate) fn avx512_instancenorm_f32(
    n: usize,
    c: usize,
    spatial: usize,
    eps: f32,
    x: &[f32],
    scale: &[f32],
    bias: &[f32],
    out: &mut [f32],
) {
    if spatial == 0 || c == 0 {
        return;
    }
    let (scale, bias) = (&scale[..c], &bias[..c]);
    let total = n * c * spatial;
    let planes = x[..total]
        .chunks_exact(spatial)
        .zip(out[..total].chunks_exact_mut(spatial));
    for (k, (xr, yr)) in planes.enumerate() {
        let ch = k % c;
        let (mean, var) = mean_var(xr);
        let inv = 1.0 / crate::generic::math::sqrt(var + eps);
        let (mv, iv) = (_mm512_set1_ps(mean), _mm512_set1_ps(inv));
        let (sv, bv) = (_mm512_set1_ps(scale[ch]), _mm512_set1_ps(bias[ch]));
        let mut i = 0;
        while i < spatial {
            let m = lanes(spatial - i);
            // SAFETY: the lanes of `m` lie in [i, spatial), inside `xr` and `yr`.
            unsafe {
                let v = _mm512_maskz_loadu_ps(m, xr.as_ptr().add(i));
                let t = _mm512_mul_ps(_mm512_mul_ps(_mm512_sub_ps(v, mv), iv), sv);
                _mm512_mask_storeu_ps(yr.as_mut_ptr().add(i), m, _mm512_add_ps(t, bv));
            }
            i += 16;
        }
    }
}

/// Splits a reduction of `dims` over `axes_mask` into `[outer, red, inner]` when the reduced
/// axes (ignoring size-1 axes) form one contiguous block; `None` for any other pattern, for a
/// zero-sized axis and for a rank above [`MAX_RANK`]. Mask bits at or above the rank are
/// ignored, as in the reference.
pub(crate) fn reduce_blocks(dims: &[usize], axes_mask: u32) -> Option<(usize, usize, usize)> {
    if dims.len() > MAX_RANK || dims.contains(&0) {
        return None;
    }
    let (mut outer, mut red, mut inner) = (1, 1, 1);
    // 0: before the reduced block, 1: inside it, 2: after it.
    let mut state = 0;
    for (k, &n) in dims.iter().enumerate() {
        if n == 1 {
            continue;
        }
        let reduced = axes_mask & (1 << k) != 0;
        match (state, reduced) {
            (0, false) => outer *= n,
            (0 | 1, true) => {
                state = 1;
                red *= n;
            }
            (_, false) => {
                state = 2;
                inner *= n;
            }
            (_, true) => return None,
        }
    }
    Some((outer, red, inner))
}

/// Whether [`avx512_reduce_f32`] handles `op` (Prod is left to the reference).
pub(crate) fn reduce_vectorized(op: ReduceOp) -> bool {
    !matches!(op, ReduceOp::Prod)
}

fn reduce_identity(op: ReduceOp) -> f32 {
    match op {
        ReduceOp::Max => f32::NEG_INFINITY,
        ReduceOp::Min => f32::INFINITY,
        _ => 0.0,
    }
}

/// One fold step of `op` per lane, as the reference's scalar fold.
#[inline]
#[target_feature(enable = "avx512f")]
fn reduce_fold(op: ReduceOp, acc: __m512, v: __m512) -> __m512 {
    match op {
        // `max(v, acc)` returns `acc` on ties and when either is NaN, so the reference's
        // "keep the first of equals" holds and a NaN accumulator stays; a NaN `v` is put in.
        ReduceOp::Max => {
            let m = _mm512_max_ps(v, acc);
            _mm512_mask_mov_ps(m, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), v)
        }
        ReduceOp::Min => {
            let m = _mm512_min_ps(v, acc);
            _mm512_mask_mov_ps(m, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), v)
        }
        ReduceOp::L1 => _mm512_add_ps(acc, _mm512_abs_ps(v)),
        ReduceOp::L2 | ReduceOp::SumSquare => _mm512_add_ps(acc, _mm512_mul_ps(v, v)),
        _ => _mm512_add_ps(acc, v),
    }
}

/// Reduces `x` as `[outer, red, inner]` over the middle axis into `out` (`[outer, inner]`),
/// as [`crate::generic::reduce::reduce_f32`]; `red >= 1`, `inner >= 1` (see
/// [`reduce_blocks`]) and `op` satisfies [`reduce_vectorized`]. With `inner == 1` each run is
/// summed in lanes (module notes); otherwise the result is bit-identical to the reference.
#[target_feature(enable = "avx512f")]
pub(crate) fn avx512_reduce_f32(
    op: ReduceOp,
    outer: usize,
    red: usize,
    inner: usize,
    x: &[f32],
    out: &mut [f32],
) {
    let x = &x[..outer * red * inner];
    let out = &mut out[..outer * inner];
    let id = _mm512_set1_ps(reduce_identity(op));
    let nf = red as f32;
    if inner == 1 {
        for (o, row) in out.iter_mut().zip(x.chunks_exact(red)) {
            let p = row.as_ptr();
            let (mut a0, mut a1) = (id, id);
            let mut i = 0;
            // SAFETY: full loads read [i, i + 32) with i + 32 <= red; masked loads only lanes
            // below `red - i`, inside `row`.
            unsafe {
                while i + 32 <= red {
                    a0 = reduce_fold(op, a0, _mm512_loadu_ps(p.add(i)));
                    a1 = reduce_fold(op, a1, _mm512_loadu_ps(p.add(i + 16)));
                    i += 32;
                }
                while i < red {
                    let v = _mm512_mask_loadu_ps(id, lanes(red - i), p.add(i));
                    a0 = reduce_fold(op, a0, v);
                    i += 16;
                }
            }
            let acc = match op {
                ReduceOp::Max | ReduceOp::Min => reduce_fold(op, a0, a1),
                _ => _mm512_add_ps(a0, a1),
            };
            let nan = _mm512_cmp_ps_mask(acc, acc, _CMP_UNORD_Q) != 0;
            *o = match op {
                ReduceOp::Max if nan => f32::NAN,
                ReduceOp::Min if nan => f32::NAN,
                ReduceOp::Max => _mm512_reduce_max_ps(acc),
                ReduceOp::Min => _mm512_reduce_min_ps(acc),
                ReduceOp::Mean => _mm512_reduce_add_ps(acc) / nf,
                ReduceOp::L2 => crate::generic::math::sqrt(_mm512_reduce_add_ps(acc)),
                _ => _mm512_reduce_add_ps(acc),
            };
        }
        return;
    }
    let nv = _mm512_set1_ps(nf);
    for (xo, oo) in x.chunks_exact(red * inner).zip(out.chunks_exact_mut(inner)) {
        let mut j = 0;
        while j < inner {
            let m = lanes(inner - j);
            let mut acc = id;
            // SAFETY: lanes of `m` are at r * inner + j + l < red * inner, inside `xo`, and at
            // j + l < inner, inside `oo`.
            unsafe {
                for r in 0..red {
                    let v = _mm512_mask_loadu_ps(id, m, xo.as_ptr().add(r * inner + j));
                    acc = reduce_fold(op, acc, v);
                }
                let res = match op {
                    ReduceOp::Mean => _mm512_div_ps(acc, nv),
                    ReduceOp::L2 => _mm512_sqrt_ps(acc),
                    _ => acc,
                };
                _mm512_mask_storeu_ps(oo.as_mut_ptr().add(j), m, res);
            }
            j += 16;
        }
    }
}

/// Whether [`avx512_binary_f32`] / [`avx512_binary_inplace_f32`] vectorize `op` (Pow is left
/// to the reference).
pub(crate) fn binary_vectorized(op: BinaryOp) -> bool {
    !matches!(op, BinaryOp::Pow)
}

/// A broadcast iteration with size-1 dims dropped and contiguous neighbours merged (the
/// reference's plan, for two operands): rows of `dims[rank - 1]` outputs.
struct Plan2 {
    rank: usize,
    dims: [usize; MAX_RANK],
    strides: [[usize; MAX_RANK]; 2],
}

/// `None` when there is nothing to compute (a zero-sized dim), when the rank exceeds
/// [`MAX_RANK`] or when an operand would be read out of bounds (the reference then panics).
fn plan2(dims: &[usize], sa: &[usize], a_len: usize, sb: &[usize], b_len: usize) -> Option<Plan2> {
    if dims.len() > MAX_RANK || dims.contains(&0) || sa.len() < dims.len() || sb.len() < dims.len()
    {
        return None;
    }
    let mut p = Plan2 {
        rank: 0,
        dims: [1; MAX_RANK],
        strides: [[0; MAX_RANK]; 2],
    };
    let (mut last_a, mut last_b) = (0usize, 0usize);
    for (d, &n) in dims.iter().enumerate() {
        last_a = last_a.checked_add((n - 1).checked_mul(sa[d])?)?;
        last_b = last_b.checked_add((n - 1).checked_mul(sb[d])?)?;
        if n == 1 {
            continue;
        }
        if p.rank > 0 {
            let l = p.rank - 1;
            if sa[d] * n == p.strides[0][l] && sb[d] * n == p.strides[1][l] {
                p.dims[l] *= n;
                p.strides[0][l] = sa[d];
                p.strides[1][l] = sb[d];
                continue;
            }
        }
        p.dims[p.rank] = n;
        p.strides[0][p.rank] = sa[d];
        p.strides[1][p.rank] = sb[d];
        p.rank += 1;
    }
    (last_a < a_len && last_b < b_len).then_some(p)
}

/// `max(a, b)` per lane as the reference's numpy `maximum` (`min` when `is_min`).
#[inline]
#[target_feature(enable = "avx512f")]
fn max_min_nan(a: __m512, b: __m512, is_min: bool) -> __m512 {
    let (gt, lt) = (
        _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ),
        _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ),
    );
    let eq = _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ);
    let (ai, bi) = (_mm512_castps_si512(a), _mm512_castps_si512(b));
    // Equal values differ at most in the sign of a zero: AND keeps +0 for max, OR -0 for min.
    let tie = if is_min {
        _mm512_castsi512_ps(_mm512_or_si512(ai, bi))
    } else {
        _mm512_castsi512_ps(_mm512_and_si512(ai, bi))
    };
    let (hi, lo) = if is_min { (b, a) } else { (a, b) };
    let r = _mm512_mask_mov_ps(_mm512_set1_ps(f32::NAN), eq, tie);
    let r = _mm512_mask_mov_ps(r, gt, hi);
    _mm512_mask_mov_ps(r, lt, lo)
}

#[inline]
#[target_feature(enable = "avx512f")]
fn binary_vec(op: BinaryOp, a: __m512, b: __m512) -> __m512 {
    match op {
        BinaryOp::Add => _mm512_add_ps(a, b),
        BinaryOp::Sub => _mm512_sub_ps(a, b),
        BinaryOp::Mul => _mm512_mul_ps(a, b),
        BinaryOp::Div => _mm512_div_ps(a, b),
        BinaryOp::Max => max_min_nan(a, b, false),
        BinaryOp::Min => max_min_nan(a, b, true),
        BinaryOp::Pow => _mm512_set1_ps(f32::NAN),
    }
}

/// Runs the rows of `p`: `out[i] = a[ia] op b[ib]`; `a` may equal `out` when its strides are
/// the output's (in place).
///
/// # Safety
/// `p` comes from [`plan2`] with the lengths of `a` and `b`, and `out` holds the product of
/// `p.dims[..p.rank]` values. `op` satisfies [`binary_vectorized`].
#[target_feature(enable = "avx512f")]
unsafe fn binary_rows(op: BinaryOp, p: &Plan2, a: *const f32, b: *const f32, out: *mut f32) {
    if p.rank == 0 {
        // SAFETY: one element, in bounds by the contract.
        unsafe { *out = crate::generic::elementwise::binary(*a, *b, op) };
        return;
    }
    let l = p.rank - 1;
    let n = p.dims[l];
    let (ia, ib) = (p.strides[0][l], p.strides[1][l]);
    let rows: usize = p.dims[..l].iter().product();
    let mut idx = [0usize; MAX_RANK];
    let (mut oa, mut ob) = (0usize, 0usize);
    for r in 0..rows {
        // SAFETY: `plan2` checked that every operand offset of the iteration is in bounds;
        // `out` holds `rows * n` values. Masked lanes stay below `n`.
        unsafe {
            let (pa, pb, po) = (a.add(oa), b.add(ob), out.add(r * n));
            if ia <= 1 && ib <= 1 {
                let (sa, sb) = (_mm512_set1_ps(*pa), _mm512_set1_ps(*pb));
                let mut j = 0;
                while j < n {
                    let m = lanes(n - j);
                    let va = if ia == 1 {
                        _mm512_maskz_loadu_ps(m, pa.add(j))
                    } else {
                        sa
                    };
                    let vb = if ib == 1 {
                        _mm512_maskz_loadu_ps(m, pb.add(j))
                    } else {
                        sb
                    };
                    _mm512_mask_storeu_ps(po.add(j), m, binary_vec(op, va, vb));
                    j += 16;
                }
            } else {
                for j in 0..n {
                    *po.add(j) =
                        crate::generic::elementwise::binary(*pa.add(j * ia), *pb.add(j * ib), op);
                }
            }
        }
        let mut d = l;
        while d > 0 {
            d -= 1;
            idx[d] += 1;
            oa += p.strides[0][d];
            ob += p.strides[1][d];
            if idx[d] < p.dims[d] {
                break;
            }
            idx[d] = 0;
            oa -= p.strides[0][d] * p.dims[d];
            ob -= p.strides[1][d] * p.dims[d];
        }
    }
}

/// `out[idx] = a[idx . a_strides] op b[idx . b_strides]`, as
/// [`crate::generic::elementwise::binary_f32`] and bit-identical to it. Returns `false`
/// (nothing written) when the reference must run instead: `op` fails [`binary_vectorized`], or
/// the geometry is empty or would index out of bounds.
#[target_feature(enable = "avx512f")]
pub(crate) fn avx512_binary_f32(
    op: BinaryOp,
    dims: &[usize],
    a: &[f32],
    a_strides: &[usize],
    b: &[f32],
    b_strides: &[usize],
    out: &mut [f32],
) -> bool {
    if !binary_vectorized(op) {
        return false;
    }
    let Some(p) = plan2(dims, a_strides, a.len(), b_strides, b.len()) else {
        return false;
    };
    if out.len() < p.dims[..p.rank].iter().product() {
        return false;
    }
    // SAFETY: `p` was planned with the lengths of `a` and `b`; `out` was checked above.
    unsafe { binary_rows(op, &p, a.as_ptr(), b.as_ptr(), out.as_mut_ptr()) };
    true
}

/// In place: `a[i] = a[i] op b[idx . b_strides]` with `a` the contiguous output of shape
/// `dims`, as [`crate::generic::elementwise::binary_inplace_f32`] and bit-identical to it.
/// Returns `false` (nothing written) when the reference must run instead.
#[target_feature(enable = "avx512f")]
pub(crate) fn avx512_binary_inplace_f32(
    op: BinaryOp,
    dims: &[usize],
    a: &mut [f32],
    b: &[f32],
    b_strides: &[usize],
) -> bool {
    if !binary_vectorized(op) || dims.len() > MAX_RANK {
        return false;
    }
    let mut sa = [0usize; MAX_RANK];
    let mut acc = 1usize;
    for k in (0..dims.len()).rev() {
        sa[k] = acc;
        acc = acc.saturating_mul(dims[k]);
    }
    let Some(p) = plan2(dims, &sa[..dims.len()], a.len(), b_strides, b.len()) else {
        return false;
    };
    let o = a.as_mut_ptr();
    // SAFETY: `p` was planned with the lengths of `a` and `b`; the output is `a` itself,
    // visited at the same offsets as it is read (row-major strides), each read before its
    // write.
    unsafe { binary_rows(op, &p, o, b.as_ptr(), o) };
    true
}

/// `y = x * scale[c] + bias[c]` over `[outer, channels, inner]`, as
/// [`crate::generic::elementwise::channel_affine_f32`] and bit-identical to it (no FMA). With
/// `x == None` it runs in place on `out`.
#[target_feature(enable = "avx512f")]
pub(crate) fn avx512_channel_affine_f32(
    outer: usize,
    channels: usize,
    inner: usize,
    x: Option<&[f32]>,
    scale: &[f32],
    bias: &[f32],
    out: &mut [f32],
) {
    if inner == 0 || channels == 0 {
        return;
    }
    let total = outer * channels * inner;
    let (scale, bias) = (&scale[..channels], &bias[..channels]);
    let out = &mut out[..total];
    let po = out.as_mut_ptr();
    let px = match x {
        Some(x) => x[..total].as_ptr(),
        None => po as *const f32,
    };
    let f = |v: __m512, s: __m512, b: __m512| _mm512_add_ps(_mm512_mul_ps(v, s), b);
    if inner == 1 {
        for o in 0..outer {
            let mut j = 0;
            while j < channels {
                let m = lanes(channels - j);
                let at = o * channels + j;
                // SAFETY: lanes of `m` are below `channels - j`: inside `scale`/`bias` at `j`
                // and inside the `total` values of `x`/`out` at `at`.
                unsafe {
                    let s = _mm512_maskz_loadu_ps(m, scale.as_ptr().add(j));
                    let b = _mm512_maskz_loadu_ps(m, bias.as_ptr().add(j));
                    let v = _mm512_maskz_loadu_ps(m, px.add(at));
                    _mm512_mask_storeu_ps(po.add(at), m, f(v, s, b));
                }
                j += 16;
            }
        }
        return;
    }
    for k in 0..outer * channels {
        let c = k % channels;
        let (s, b) = (_mm512_set1_ps(scale[c]), _mm512_set1_ps(bias[c]));
        let base = k * inner;
        let mut j = 0;
        while j < inner {
            let m = lanes(inner - j);
            // SAFETY: lanes of `m` are at base + j + l < (k + 1) * inner <= total.
            unsafe {
                let v = _mm512_maskz_loadu_ps(m, px.add(base + j));
                _mm512_mask_storeu_ps(po.add(base + j), m, f(v, s, b));
            }
            j += 16;
        }
    }
}
