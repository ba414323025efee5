//! Every SIMD kernel set this CPU supports against the scalar reference for the
//! normalization, reduction and broadcasting-arithmetic dispatchers in `kernels`:
//! LayerNorm, InstanceNorm, Reduce, Binary (and in place), ChannelAffine (and in place).
//! Random shapes by proptest plus the edge lengths around the 16-lane vector (0, 1, 15, 16,
//! 17, 33). Sums may be reordered (stated tolerance); everything else is bit-identical.

mod common;

use common::{assert_same, row_major, simd_isas, Rng, REDUCE_OPS};
use mote_targets::generic;
use mote_targets::kernels;
use mote_targets::{BinaryOp, ReduceOp};
use proptest::prelude::*;

const EDGES: [usize; 6] = [0, 1, 15, 16, 17, 33];

const BINARY_OPS: [BinaryOp; 7] = [
    BinaryOp::Add,
    BinaryOp::Sub,
    BinaryOp::Mul,
    BinaryOp::Div,
    BinaryOp::Pow,
    BinaryOp::Max,
    BinaryOp::Min,
];

/// A length: one of [`EDGES`] or uniform in `[0, max)`.
fn len(rng: &mut Rng, max: usize) -> usize {
    if rng.below(2) == 0 {
        EDGES[rng.below(EDGES.len())]
    } else {
        rng.below(max)
    }
}

/// Values in `[-10, 10)` around `shift`, with signed zeros and (if `special`) a few NaNs and
/// infinities mixed in.
fn values(rng: &mut Rng, n: usize, shift: f32, special: bool) -> Vec<f32> {
    (0..n)
        .map(|_| match rng.below(if special { 40 } else { 20 }) {
            0 => 0.0,
            1 => -0.0,
            20 => f32::NAN,
            21 => f32::INFINITY,
            22 => f32::NEG_INFINITY,
            _ => shift + rng.f32(-10.0, 10.0),
        })
        .collect()
}

/// Asserts `|got - want| <= tol[i]`, NaN matching NaN.
fn assert_close(what: &str, got: &[f32], want: &[f32], tol: &[f32]) {
    assert_eq!(got.len(), want.len());
    for i in 0..got.len() {
        let (g, w) = (got[i], want[i]);
        let ok = (g.is_nan() && w.is_nan()) || g == w || (g - w).abs() <= tol[i];
        assert!(
            ok,
            "{what}: element {i}: got {g:e}, want {w:e}, tolerance {:e}",
            tol[i]
        );
    }
}

/// Per-row tolerance of a normalization: the reordered mean and variance err by a few ulps
/// of the row's magnitude, amplified by `1 / sigma`, then scaled by `scale`.
fn norm_tol(row: &[f32], eps: f32, want: f32, scale: f32) -> f32 {
    let n = row.len() as f64;
    let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    let sigma = (var + eps as f64).sqrt();
    let maxabs = row.iter().fold(0f64, |m, &v| m.max((v as f64).abs()));
    (1e-5 * (1.0 + want.abs() as f64 + scale.abs() as f64 * maxabs / sigma)) as f32
}

fn check_layernorm(seed: u64, outer: usize, size: usize, affine: u8, special: bool) {
    let mut rng = Rng(seed | 1);
    let shift = rng.f32(-20.0, 20.0);
    let x = values(&mut rng, outer * size, shift, special);
    let scale = rng.vec(size, -2.0, 2.0);
    let bias = rng.vec(size, -2.0, 2.0);
    let s = (affine & 1 != 0).then_some(&scale[..]);
    let b = (affine & 2 != 0).then_some(&bias[..]);
    let eps = 1e-5;
    let mut want = vec![0f32; outer * size];
    generic::norm::layernorm_f32(outer, size, eps, &x, s, b, &mut want);
    let mut tol = vec![0f32; want.len()];
    for (i, t) in tol.iter_mut().enumerate() {
        let r = i / size;
        let sc = s.map_or(1.0, |s| s[i % size]);
        *t = norm_tol(&x[r * size..(r + 1) * size], eps, want[i], sc);
    }
    for isa in simd_isas() {
        let mut got = vec![0f32; outer * size];
        kernels::layernorm_f32(isa, outer, size, eps, &x, s, b, &mut got);
        assert_close(
            &format!("layernorm {} {outer}x{size}", isa.name()),
            &got,
            &want,
            &tol,
        );
    }
}

/// LayerNorm over the middle axis: the reference equals transpose → row LayerNorm →
/// transpose bit for bit, and every set equals the reference bit for bit.
fn check_layernorm_axis(seed: u64, outer: usize, size: usize, inner: usize, affine: u8) {
    let mut rng = Rng(seed | 1);
    let shift = rng.f32(-20.0, 20.0);
    let total = outer * size * inner;
    let x = values(&mut rng, total, shift, seed.is_multiple_of(3));
    let scale = rng.vec(size, -2.0, 2.0);
    let bias = rng.vec(size, -2.0, 2.0);
    let s = (affine & 1 != 0).then_some(&scale[..]);
    let b = (affine & 2 != 0).then_some(&bias[..]);
    let eps = 1e-6;
    let mut want = vec![0f32; total];
    generic::norm::layernorm_axis_f32(outer, size, inner, eps, &x, s, b, &mut want);
    // [outer, size, inner] -> [outer, inner, size] -> rows -> back.
    let idx = |o: usize, c: usize, j: usize| (o * size + c) * inner + j;
    let mut t = vec![0f32; total];
    for o in 0..outer {
        for c in 0..size {
            for j in 0..inner {
                t[(o * inner + j) * size + c] = x[idx(o, c, j)];
            }
        }
    }
    let mut tn = vec![0f32; total];
    generic::norm::layernorm_f32(outer * inner, size, eps, &t, s, b, &mut tn);
    let mut back = vec![0f32; total];
    for o in 0..outer {
        for c in 0..size {
            for j in 0..inner {
                back[idx(o, c, j)] = tn[(o * inner + j) * size + c];
            }
        }
    }
    assert_same(&want, &back);
    for isa in simd_isas() {
        let mut got = vec![0f32; total];
        kernels::layernorm_axis_f32(isa, outer, size, inner, eps, &x, s, b, &mut got);
        assert_same(&got, &want);
    }
}

fn check_instancenorm(seed: u64, n: usize, c: usize, spatial: usize, special: bool) {
    let mut rng = Rng(seed | 1);
    let shift = rng.f32(-20.0, 20.0);
    let x = values(&mut rng, n * c * spatial, shift, special);
    let scale = rng.vec(c, -2.0, 2.0);
    let bias = rng.vec(c, -2.0, 2.0);
    let eps = 1e-5;
    let mut want = vec![0f32; x.len()];
    generic::norm::instancenorm_f32(n, c, spatial, eps, &x, &scale, &bias, &mut want);
    let mut tol = vec![0f32; want.len()];
    for (i, t) in tol.iter_mut().enumerate() {
        let p = i / spatial;
        let row = &x[p * spatial..(p + 1) * spatial];
        *t = norm_tol(row, eps, want[i], scale[p % c]);
    }
    for isa in simd_isas() {
        let mut got = vec![0f32; x.len()];
        kernels::instancenorm_f32(isa, n, c, spatial, eps, &x, &scale, &bias, &mut got);
        let what = format!("instancenorm {} {n}x{c}x{spatial}", isa.name());
        assert_close(&what, &got, &want, &tol);
    }
}

/// Output length of a reduction with keepdims.
fn reduced_len(dims: &[usize], mask: u32) -> usize {
    dims.iter()
        .enumerate()
        .map(|(k, &d)| if mask & (1 << k) != 0 { 1 } else { d })
        .product()
}

fn check_reduce(seed: u64, dims: &[usize], mask: u32, special: bool) {
    let mut rng = Rng(seed | 1);
    let total: usize = dims.iter().product();
    let shift = rng.f32(-5.0, 5.0);
    let x = values(&mut rng, total, shift, special);
    let n_out = reduced_len(dims, mask);
    let n_red: usize = dims
        .iter()
        .enumerate()
        .filter(|(k, _)| mask & (1 << k) != 0)
        .map(|(_, &d)| d)
        .product();
    // The magnitude of the summed terms bounds the error of a reordered sum.
    let mut l1 = vec![0f32; n_out];
    generic::reduce::reduce_f32(ReduceOp::L1, dims, mask, &x, &mut l1);
    let mut sq = vec![0f32; n_out];
    generic::reduce::reduce_f32(ReduceOp::SumSquare, dims, mask, &x, &mut sq);
    for op in REDUCE_OPS {
        let mut want = vec![0f32; n_out];
        generic::reduce::reduce_f32(op, dims, mask, &x, &mut want);
        let tol: Vec<f32> = (0..n_out)
            .map(|i| {
                let mag = match op {
                    ReduceOp::Sum | ReduceOp::L1 => l1[i],
                    ReduceOp::Mean => l1[i] / n_red.max(1) as f32,
                    ReduceOp::SumSquare => sq[i],
                    _ => 0.0,
                };
                1e-5 * (1.0 + want[i].abs()) + 2e-6 * mag
            })
            .collect();
        for isa in simd_isas() {
            let mut got = vec![0f32; n_out];
            kernels::reduce_f32(isa, op, dims, mask, &x, &mut got);
            let what = format!("reduce {op:?} {} {dims:?} mask {mask:#b}", isa.name());
            match op {
                // Not reordered: max/min agree exactly (up to the sign of zero ties).
                ReduceOp::Max | ReduceOp::Min => {
                    assert_close(&what, &got, &want, &vec![0.0; n_out])
                }
                _ => assert_close(&what, &got, &want, &tol),
            }
        }
    }
}

/// Operand strides over `dims`: per axis broadcast (stride 0) with probability 1/3 (or always
/// when `scalar`), the rest laid out row-major or, when `reversed`, column-major.
fn operand(rng: &mut Rng, dims: &[usize], scalar: bool, reversed: bool) -> (Vec<usize>, usize) {
    let own: Vec<usize> = dims
        .iter()
        .map(|&d| if scalar || rng.below(3) == 0 { 1 } else { d })
        .collect();
    let mut strides = if reversed {
        let mut s = vec![0; own.len()];
        let mut acc = 1;
        for k in 0..own.len() {
            s[k] = acc;
            acc *= own[k];
        }
        s
    } else {
        row_major(&own)
    };
    for (s, &d) in strides.iter_mut().zip(&own) {
        if d == 1 {
            *s = 0;
        }
    }
    (strides, own.iter().product::<usize>().max(1))
}

fn check_binary(seed: u64, dims: &[usize], kind: u8) {
    let mut rng = Rng(seed | 1);
    let total: usize = dims.iter().product();
    let (sa, la) = operand(&mut rng, dims, kind == 1, kind == 3);
    let (sb, lb) = operand(&mut rng, dims, kind == 2, false);
    let a = values(&mut rng, la, 0.0, true);
    let b = values(&mut rng, lb, 0.0, true);
    for op in BINARY_OPS {
        let mut want = vec![0f32; total];
        generic::elementwise::binary_f32(op, dims, &a, &sa, &b, &sb, &mut want);
        for isa in simd_isas() {
            let mut got = vec![0f32; total];
            kernels::binary_f32(isa, op, dims, &a, &sa, &b, &sb, &mut got);
            assert_same(&got, &want);
        }
        // In place: operand a is the contiguous output.
        let x = values(&mut rng, total, 0.0, true);
        let mut want = x.clone();
        generic::elementwise::binary_inplace_f32(op, dims, &mut want, &b, &sb);
        for isa in simd_isas() {
            let mut got = x.clone();
            kernels::binary_inplace_f32(isa, op, dims, &mut got, &b, &sb);
            assert_same(&got, &want);
        }
    }
}

fn check_channel_affine(seed: u64, outer: usize, c: usize, inner: usize) {
    let mut rng = Rng(seed | 1);
    let total = outer * c * inner;
    let x = values(&mut rng, total, 0.0, true);
    let scale = values(&mut rng, c, 0.0, false);
    let bias = values(&mut rng, c, 0.0, false);
    let mut want = vec![0f32; total];
    generic::elementwise::channel_affine_f32(outer, c, inner, &x, &scale, &bias, &mut want);
    let mut want_in = x.clone();
    generic::elementwise::channel_affine_inplace_f32(outer, c, inner, &mut want_in, &scale, &bias);
    for isa in simd_isas() {
        let mut got = vec![0f32; total];
        kernels::channel_affine_f32(isa, outer, c, inner, &x, &scale, &bias, &mut got);
        assert_same(&got, &want);
        let mut got = x.clone();
        kernels::channel_affine_inplace_f32(isa, outer, c, inner, &mut got, &scale, &bias);
        assert_same(&got, &want_in);
    }
}

#[test]
fn edge_lengths() {
    let mut seed = 7;
    for &n in &EDGES {
        for &m in &[1usize, 2, 3] {
            for special in [false, true] {
                seed += 1;
                check_layernorm(seed, m, n, (seed % 4) as u8, special);
                check_instancenorm(seed, m, 2, n, special);
                check_reduce(seed, &[m, n], 0b10, special);
                check_reduce(seed, &[n, m], 0b01, special);
                check_reduce(seed, &[m, n, 3], 0b010, special);
            }
            for kind in 0..4 {
                check_binary(seed + kind as u64, &[m, n], kind);
                check_binary(seed + kind as u64, &[n, m, 5], kind);
            }
            check_layernorm_axis(seed, m, n, 3, (seed % 4) as u8);
            check_layernorm_axis(seed, m, 5, n, (seed % 4) as u8);
            check_channel_affine(seed, m, n, 1);
            check_channel_affine(seed, m, 3, n);
            check_channel_affine(seed, 2, n, m);
        }
    }
}

#[test]
fn nan_propagates_through_the_whole_row() {
    for isa in simd_isas() {
        let mut x: Vec<f32> = (0..40).map(|i| i as f32).collect();
        x[37] = f32::NAN;
        let mut y = vec![0f32; 40];
        kernels::layernorm_f32(isa, 1, 40, 1e-5, &x, None, None, &mut y);
        assert!(y.iter().all(|v| v.is_nan()), "{}", isa.name());
        for op in [ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min, ReduceOp::Mean] {
            let mut r = [0f32];
            kernels::reduce_f32(isa, op, &[40], 1, &x, &mut r);
            assert!(r[0].is_nan(), "{} {op:?}", isa.name());
        }
    }
}

#[test]
fn binary_max_min_follow_numpy_on_signed_zeros() {
    let a = [0.0f32, -0.0, -0.0, 0.0, f32::NAN, 1.0, 2.0, 3.0];
    let b = [-0.0f32, 0.0, -0.0, 0.0, 1.0, f32::NAN, 2.0, -3.0];
    for op in [BinaryOp::Max, BinaryOp::Min] {
        let mut want = [0f32; 8];
        generic::elementwise::binary_f32(op, &[8], &a, &[1], &b, &[1], &mut want);
        for isa in simd_isas() {
            let mut got = [0f32; 8];
            kernels::binary_f32(isa, op, &[8], &a, &[1], &b, &[1], &mut got);
            assert_same(&got, &want);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn layernorm_matches_reference(
        seed in any::<u64>(),
        outer in 0usize..5,
        size in 0usize..300,
        affine in 0u8..4,
        special in any::<bool>(),
    ) {
        check_layernorm(seed, outer, size, affine, special);
    }

    #[test]
    fn layernorm_axis_matches_reference(
        seed in any::<u64>(),
        outer in 0usize..3,
        size in 0usize..40,
        inner in 0usize..70,
        affine in 0u8..4,
    ) {
        check_layernorm_axis(seed, outer, size, inner, affine);
    }

    #[test]
    fn instancenorm_matches_reference(
        seed in any::<u64>(),
        n in 0usize..3,
        c in 0usize..5,
        spatial in 0usize..300,
        special in any::<bool>(),
    ) {
        check_instancenorm(seed, n, c, spatial, special);
    }

    #[test]
    fn reduce_matches_reference(
        seed in any::<u64>(),
        rank in 1usize..5,
        mask in any::<u32>(),
        special in any::<bool>(),
    ) {
        let mut rng = Rng(seed | 1);
        let dims: Vec<usize> = (0..rank).map(|_| len(&mut rng, 40).min(if rank > 2 { 17 } else { 70 })).collect();
        check_reduce(seed, &dims, mask, special);
    }

    #[test]
    fn binary_matches_reference(seed in any::<u64>(), rank in 1usize..5, kind in 0u8..4) {
        let mut rng = Rng(seed | 1);
        let dims: Vec<usize> = (0..rank).map(|_| len(&mut rng, 40).min(if rank > 2 { 17 } else { 70 })).collect();
        check_binary(seed, &dims, kind);
    }

    #[test]
    fn channel_affine_matches_reference(
        seed in any::<u64>(),
        outer in 0usize..4,
        c in 0usize..40,
        inner in 0usize..70,
    ) {
        check_channel_affine(seed, outer, c, inner);
    }
}
