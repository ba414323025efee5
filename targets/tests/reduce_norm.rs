//! reduce_f32, softmax and the normalizations against naive references.

mod common;

use common::{assert_same, row_major, unravel, Rng, REDUCE_OPS};
use mote_targets::generic::norm::{instancenorm_f32, layernorm_f32, softmax_f32};
use mote_targets::generic::reduce::reduce_f32;
use mote_targets::ReduceOp;
use proptest::prelude::*;

/// Folds every input element into its keepdims output slot, visiting the input in row-major
/// order (so each slot sees its elements in row-major order of the reduced axes).
fn naive_reduce(op: ReduceOp, dims: &[usize], mask: u32, x: &[f32]) -> Vec<f32> {
    let odims: Vec<usize> = dims
        .iter()
        .enumerate()
        .map(|(k, &d)| if mask & (1 << k) != 0 { 1 } else { d })
        .collect();
    let n_out: usize = odims.iter().product();
    let count: usize = dims
        .iter()
        .enumerate()
        .filter(|(k, _)| mask & (1 << k) != 0)
        .map(|(_, &d)| d)
        .product();
    let init = match op {
        ReduceOp::Max => f32::NEG_INFINITY,
        ReduceOp::Min => f32::INFINITY,
        ReduceOp::Prod => 1.0,
        _ => 0.0,
    };
    let mut acc = vec![init; n_out];
    let os = row_major(&odims);
    let total: usize = dims.iter().product();
    for flat in 0..total {
        let idx = unravel(flat, dims);
        let o: usize = idx
            .iter()
            .zip(&odims)
            .zip(&os)
            .map(|((&i, &d), &s)| if d == 1 { 0 } else { i * s })
            .sum();
        let v = x[flat];
        let a = &mut acc[o];
        *a = match op {
            ReduceOp::Sum | ReduceOp::Mean => *a + v,
            ReduceOp::Max => {
                if a.is_nan() || v.is_nan() {
                    f32::NAN
                } else {
                    a.max(v)
                }
            }
            ReduceOp::Min => {
                if a.is_nan() || v.is_nan() {
                    f32::NAN
                } else {
                    a.min(v)
                }
            }
            ReduceOp::Prod => *a * v,
            ReduceOp::L1 => *a + v.abs(),
            ReduceOp::L2 | ReduceOp::SumSquare => *a + v * v,
        };
    }
    acc.iter()
        .map(|&a| match op {
            ReduceOp::Mean => a / count as f32,
            ReduceOp::L2 => a.sqrt(),
            _ => a,
        })
        .collect()
}

fn reduce_case() -> impl Strategy<Value = (Vec<usize>, u32)> {
    proptest::collection::vec(
        prop_oneof![1 => Just(0usize), 12 => 1usize..=4, 2 => 5usize..=8],
        0..=5,
    )
    .prop_flat_map(|d| {
        let r = d.len() as u32;
        // Random bits within the rank, plus junk above it (ignored).
        (Just(d), 0u32..(1 << r), any::<bool>())
            .prop_map(move |(d, m, junk)| (d, if junk { m | (1 << 20) } else { m }))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn reduce_matches_naive((dims, mask) in reduce_case(), which in 0..REDUCE_OPS.len(), seed in any::<u64>(), nan in 0u8..8) {
        let op = REDUCE_OPS[which];
        let mut rng = Rng(seed | 1);
        let total: usize = dims.iter().product();
        let mut x = rng.vec(total, -2.0, 2.0);
        if nan == 0 && total > 0 {
            let i = rng.below(total);
            x[i] = f32::NAN;
        }
        let want = naive_reduce(op, &dims, mask, &x);
        let mut got = vec![-123.0f32; want.len()];
        reduce_f32(op, &dims, mask, &x, &mut got);
        assert_same(&got, &want);
    }
}

#[test]
fn reduce_fixed() {
    // [2, 3] = [[1, 2, 3], [4, 5, 6]].
    let x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
    let r = |op, mask, n| {
        let mut out = vec![0.0f32; n];
        reduce_f32(op, &[2, 3], mask, &x, &mut out);
        out
    };
    assert_eq!(r(ReduceOp::Sum, 0b01, 3), [5.0, 7.0, 9.0]);
    assert_eq!(r(ReduceOp::Sum, 0b10, 2), [6.0, 15.0]);
    assert_eq!(r(ReduceOp::Mean, 0b11, 1), [3.5]);
    assert_eq!(r(ReduceOp::Max, 0b10, 2), [3.0, 6.0]);
    assert_eq!(r(ReduceOp::Min, 0b01, 3), [1.0, 2.0, 3.0]);
    assert_eq!(r(ReduceOp::Prod, 0b11, 1), [720.0]);
    assert_eq!(r(ReduceOp::SumSquare, 0b10, 2), [14.0, 77.0]);
    assert_eq!(
        r(ReduceOp::L2, 0b01, 3),
        [17.0f32.sqrt(), 29.0f32.sqrt(), 45.0f32.sqrt()]
    );
    assert_eq!(r(ReduceOp::Sum, 0, 6), x);
    // Non-contiguous axis set: reduce axes 0 and 2 of [2, 2, 2].
    let y = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
    let mut out = [0.0f32; 2];
    reduce_f32(ReduceOp::Sum, &[2, 2, 2], 0b101, &y, &mut out);
    assert_eq!(out, [1.0 + 2.0 + 5.0 + 6.0, 3.0 + 4.0 + 7.0 + 8.0]);
    // Empty reductions give the identity (Mean: 0/0 = NaN).
    let mut out = [9.0f32; 3];
    for (op, want) in [
        (ReduceOp::Sum, 0.0),
        (ReduceOp::Max, f32::NEG_INFINITY),
        (ReduceOp::Min, f32::INFINITY),
        (ReduceOp::Prod, 1.0),
        (ReduceOp::L2, 0.0),
    ] {
        reduce_f32(op, &[0, 3], 0b01, &[], &mut out);
        assert_eq!(out, [want; 3], "{op:?}");
    }
    reduce_f32(ReduceOp::Mean, &[0, 3], 0b01, &[], &mut out);
    assert!(out.iter().all(|v| v.is_nan()));
    // Rank 0.
    let mut out = [0.0f32];
    reduce_f32(ReduceOp::L1, &[], 0, &[-2.5], &mut out);
    assert_eq!(out, [2.5]);
    // MAX_RANK, every other axis reduced.
    let dims = [2usize; mote_targets::MAX_RANK];
    let z: Vec<f32> = (0..256).map(|v| v as f32).collect();
    let mut got = vec![0.0f32; 16];
    reduce_f32(ReduceOp::Sum, &dims, 0b1010_1010, &z, &mut got);
    assert_same(&got, &naive_reduce(ReduceOp::Sum, &dims, 0b1010_1010, &z));
}

// ---------------------------------------------------------------------------------------------
// softmax

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn softmax_matches_f64(outer in 0usize..4, axis_len in 1usize..12, inner in 1usize..4, log in any::<bool>(), scale in prop::sample::select(vec![1.0f32, 10.0, 100.0]), seed in any::<u64>(), neg_inf in any::<bool>()) {
        let mut rng = Rng(seed | 1);
        let n = outer * axis_len * inner;
        let mut x = rng.vec(n, -scale, scale);
        if neg_inf && n > 0 && axis_len > 1 {
            // One masked-out entry per case (attention masks); the lane keeps other values.
            x[rng.below(n)] = f32::NEG_INFINITY;
        }
        let mut got = vec![f32::NAN; n];
        softmax_f32(outer, axis_len, inner, log, &x, &mut got);
        for o in 0..outer {
            for i in 0..inner {
                let at = |j: usize| (o * axis_len + j) * inner + i;
                let m = (0..axis_len).map(|j| x[at(j)] as f64).fold(f64::NEG_INFINITY, f64::max);
                let s: f64 = (0..axis_len).map(|j| (x[at(j)] as f64 - m).exp()).sum();
                for j in 0..axis_len {
                    let g = got[at(j)] as f64;
                    let d = x[at(j)] as f64 - m;
                    if log {
                        let e = d - s.ln();
                        if e == f64::NEG_INFINITY {
                            prop_assert_eq!(g, e);
                        } else {
                            prop_assert!((g - e).abs() <= 4.0 * f32::EPSILON as f64 * (d.abs() + s.ln().abs() + 1.0), "{} vs {}", g, e);
                        }
                    } else {
                        let e = d.exp() / s;
                        // x - max is rounded in f32: a relative error of |d| eps / 2 in e^d.
                        let rel = (axis_len as f64 + 4.0 + d.abs()) * f32::EPSILON as f64;
                        if e == 0.0 {
                            prop_assert_eq!(g, 0.0);
                        } else {
                            prop_assert!((g - e).abs() <= rel * e + 1e-44, "{} vs {}", g, e);
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn softmax_fixed() {
    let mut out = [0.0f32; 3];
    softmax_f32(
        1,
        3,
        1,
        false,
        &[1000.0, 1000.0, f32::NEG_INFINITY],
        &mut out,
    );
    assert_eq!(out, [0.5, 0.5, 0.0]);
    softmax_f32(1, 3, 1, true, &[0.0, 0.0, 0.0], &mut out);
    let l3 = -(3.0f32.ln());
    assert!(out.iter().all(|&v| (v - l3).abs() < 1e-7));
    // Length-1 axis: 1 and 0.
    let mut one = [0.0f32; 2];
    softmax_f32(2, 1, 1, false, &[5.0, -7.0], &mut one);
    assert_eq!(one, [1.0, 1.0]);
    softmax_f32(2, 1, 1, true, &[5.0, -7.0], &mut one);
    assert_eq!(one, [0.0, 0.0]);
    // Softmax over the middle axis of [1, 2, 2].
    let mut out = [0.0f32; 4];
    softmax_f32(1, 2, 2, false, &[0.0, 1.0, 0.0, 3.0], &mut out);
    assert_eq!(out[0], 0.5);
    assert_eq!(out[2], 0.5);
    assert!((out[1] as f64 - 1.0 / (1.0 + 2f64.exp())).abs() < 1e-7);
    // NaN propagates through its lane.
    softmax_f32(1, 2, 2, false, &[f32::NAN, 1.0, 0.0, 3.0], &mut out);
    assert!(out[0].is_nan() && out[2].is_nan() && !out[1].is_nan());
}

// ---------------------------------------------------------------------------------------------
// layernorm / instancenorm

fn normalize64(xs: &[f32], eps: f32) -> Vec<f64> {
    let n = xs.len() as f64;
    let mean = xs.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = xs.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    xs.iter()
        .map(|&v| (v as f64 - mean) / (var + eps as f64).sqrt())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn layernorm_matches_f64(outer in 0usize..4, size in 1usize..48, offset in prop::sample::select(vec![0.0f32, 3.0, -50.0]), has_scale in any::<bool>(), has_bias in any::<bool>(), seed in any::<u64>()) {
        let mut rng = Rng(seed | 1);
        let x: Vec<f32> = rng.vec(outer * size, -2.0, 2.0).iter().map(|v| v + offset).collect();
        let scale = rng.vec(size, 0.5, 2.0);
        let bias = rng.vec(size, -1.0, 1.0);
        let eps = 1e-5f32;
        let mut got = vec![f32::NAN; x.len()];
        layernorm_f32(outer, size, eps, &x, has_scale.then_some(&scale[..]), has_bias.then_some(&bias[..]), &mut got);
        for r in 0..outer {
            let row = &x[r * size..(r + 1) * size];
            let xhat = normalize64(row, eps);
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / size as f64;
            let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / size as f64;
            let std = (var + eps as f64).sqrt();
            for j in 0..size {
                let s = if has_scale { scale[j] as f64 } else { 1.0 };
                let b = if has_bias { bias[j] as f64 } else { 0.0 };
                let e = xhat[j] * s + b;
                let g = got[r * size + j] as f64;
                // The f32 mean carries up to ~size * eps * max|x| of error into every deviation;
                // dividing by the row's std amplifies it (a tightly clustered row far from zero is
                // ill-conditioned in any f32 layer norm), and the same error in the variance scales
                // the output by (1 + |xhat|).
                let max_abs = row.iter().fold(0f64, |m, &v| m.max((v as f64).abs()));
                let dev_err = 2.0 * size as f64 * f32::EPSILON as f64 * max_abs;
                let tol = dev_err / std * (1.0 + xhat[j].abs()) * s.abs() + 4.0 * f32::EPSILON as f64 * (e.abs() + b.abs()) + 1e-6;
                prop_assert!((g - e).abs() <= tol, "row {} col {}: {} vs {} (tol {})", r, j, g, e, tol);
            }
        }
    }

    #[test]
    fn instancenorm_matches_f64(n in 0usize..3, c in 1usize..4, spatial in 1usize..40, seed in any::<u64>()) {
        let mut rng = Rng(seed | 1);
        let x = rng.vec(n * c * spatial, -3.0, 3.0);
        let scale = rng.vec(c, 0.5, 2.0);
        let bias = rng.vec(c, -1.0, 1.0);
        let eps = 1e-5f32;
        let mut got = vec![f32::NAN; x.len()];
        instancenorm_f32(n, c, spatial, eps, &x, &scale, &bias, &mut got);
        for b in 0..n {
            for ch in 0..c {
                let p = (b * c + ch) * spatial;
                let xhat = normalize64(&x[p..p + spatial], eps);
                for j in 0..spatial {
                    let e = xhat[j] * scale[ch] as f64 + bias[ch] as f64;
                    prop_assert!((got[p + j] as f64 - e).abs() <= 2e-5 * (1.0 + e.abs()));
                }
            }
        }
    }
}

#[test]
fn layernorm_is_two_pass_literal() {
    // Bit-exact against the documented formula evaluated with the same f32 operations.
    let mut rng = Rng(99);
    let size = 37;
    let x = rng.vec(3 * size, -4.0, 4.0);
    let scale = rng.vec(size, -2.0, 2.0);
    let bias = rng.vec(size, -2.0, 2.0);
    let eps = 1e-3f32;
    let mut got = vec![0.0f32; x.len()];
    layernorm_f32(3, size, eps, &x, Some(&scale), Some(&bias), &mut got);
    let mut want = vec![0.0f32; x.len()];
    for r in 0..3 {
        let row = &x[r * size..(r + 1) * size];
        let mut s = 0.0f32;
        for &v in row {
            s += v;
        }
        let mean = s / size as f32;
        let mut q = 0.0f32;
        for &v in row {
            q += (v - mean) * (v - mean);
        }
        let d = (q / size as f32 + eps).sqrt();
        for j in 0..size {
            want[r * size + j] = (row[j] - mean) / d * scale[j] + bias[j];
        }
    }
    assert_same(&got, &want);
    // A constant row normalizes to the bias.
    let mut out = [0.0f32; 4];
    layernorm_f32(
        1,
        4,
        1e-5,
        &[3.0; 4],
        Some(&[2.0; 4]),
        Some(&[0.5, 1.0, 1.5, 2.0]),
        &mut out,
    );
    assert_eq!(out, [0.5, 1.0, 1.5, 2.0]);
}
