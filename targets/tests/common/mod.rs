//! Helpers shared by the kernel tests: f64 references, ulp measures, layouts.
#![allow(dead_code)]

use mote_targets::ReduceOp;
use proptest::prelude::*;

/// Every reduction.
pub const REDUCE_OPS: [ReduceOp; 8] = [
    ReduceOp::Sum,
    ReduceOp::Mean,
    ReduceOp::Max,
    ReduceOp::Min,
    ReduceOp::Prod,
    ReduceOp::L1,
    ReduceOp::L2,
    ReduceOp::SumSquare,
];

/// Spacing of f32 values at the magnitude of `exact` (the subnormal spacing below 2^-126).
pub fn ulp_at(exact: f64) -> f64 {
    let a = exact.abs();
    if a < f32::MIN_POSITIVE as f64 {
        return 2f64.powi(-149);
    }
    let mut e = a.log2().floor() as i32;
    if 2f64.powi(e) > a {
        e -= 1;
    } else if 2f64.powi(e + 1) <= a {
        e += 1;
    }
    2f64.powi(e - 23)
}

/// Whether `got` is within `ulps` f32 ulps of `exact`, or within `abs` absolutely. NaN matches
/// NaN; infinities must match exactly (an exact value beyond f32 range matches the infinity).
pub fn close(got: f32, exact: f64, ulps: f64, abs: f64) -> bool {
    if exact.is_nan() || got.is_nan() {
        return exact.is_nan() && got.is_nan();
    }
    if exact.is_infinite() || got.is_infinite() || exact.abs() > f32::MAX as f64 {
        return got as f64 == exact
            || (got.is_infinite()
                && exact.abs() > f32::MAX as f64
                && got.signum() as f64 == exact.signum());
    }
    let d = (got as f64 - exact).abs();
    d <= ulps * ulp_at(exact) || d <= abs
}

/// Bit equality with all NaNs equal.
pub fn same(a: f32, b: f32) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

/// Asserts `same` element-wise, naming the first mismatch.
pub fn assert_same(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            same(g, w),
            "element {i}: got {g:e} ({:#x}), want {w:e} ({:#x})",
            g.to_bits(),
            w.to_bits()
        );
    }
}

/// erf(x) for x >= 0 from the everywhere-positive series
/// `erf x = 2/sqrt(pi) e^(-x^2) sum_n 2^n x^(2n+1) / (1*3*...*(2n+1))`.
pub fn erf_series(x: f64) -> f64 {
    let x2 = x * x;
    let mut term = x;
    let mut sum = x;
    let mut n = 0.0;
    while term > sum * 1e-18 {
        n += 1.0;
        term *= 2.0 * x2 / (2.0 * n + 1.0);
        sum += term;
    }
    2.0 / std::f64::consts::PI.sqrt() * (-x2).exp() * sum
}

/// erfc(x) for x >= 2 by its continued fraction.
pub fn erfc_cf(x: f64) -> f64 {
    let mut t = 0.0;
    for n in (1..400).rev() {
        t = (n as f64 / 2.0) / (x + t);
    }
    (-x * x).exp() / std::f64::consts::PI.sqrt() / (x + t)
}

/// f64 erf (independent of the crate), ~1e-16.
pub fn erf64(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    let r = if a < 3.0 {
        erf_series(a)
    } else if a < 30.0 {
        1.0 - erfc_cf(a)
    } else {
        1.0
    };
    r.copysign(x)
}

/// f64 erfc.
pub fn erfc64(x: f64) -> f64 {
    if x < 2.0 {
        1.0 - erf64(x)
    } else if x < 30.0 {
        erfc_cf(x)
    } else {
        0.0
    }
}

/// Row-major strides of `dims`.
pub fn row_major(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![0; dims.len()];
    let mut acc = 1;
    for k in (0..dims.len()).rev() {
        s[k] = acc;
        acc *= dims[k];
    }
    s
}

/// Multi-index of flat row-major position `flat` in `dims`.
pub fn unravel(mut flat: usize, dims: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; dims.len()];
    for k in (0..dims.len()).rev() {
        idx[k] = flat % dims[k];
        flat /= dims[k];
    }
    idx
}

/// A memory layout for a tensor of some dims: per-axis strides (possibly with gaps between
/// rows, permuted axis order) and the buffer length that holds it.
#[derive(Clone, Debug)]
pub struct Layout {
    pub strides: Vec<usize>,
    pub len: usize,
}

/// Strategy: a layout for `dims`, contiguous, axis-permuted, or with gaps.
pub fn layout(dims: Vec<usize>) -> impl Strategy<Value = Layout> {
    let rank = dims.len();
    (
        Just((0..rank).collect::<Vec<usize>>()).prop_shuffle(),
        proptest::collection::vec(0usize..3, rank),
        any::<bool>(),
    )
        .prop_map(move |(perm, gaps, contiguous)| {
            if contiguous || rank == 0 {
                let strides = row_major(&dims);
                return Layout {
                    len: dims.iter().product::<usize>().max(1),
                    strides,
                };
            }
            // Lay the axes out innermost-first in `perm` order, each with an optional gap.
            let mut strides = vec![0; rank];
            let mut acc = 1;
            for (j, &axis) in perm.iter().enumerate().rev() {
                strides[axis] = acc;
                acc = acc * dims[axis] + gaps[j];
            }
            let len = 1 + dims
                .iter()
                .zip(&strides)
                .map(|(&d, &s)| d.saturating_sub(1) * s)
                .sum::<usize>();
            Layout { strides, len }
        })
}

/// Strategy: f32 values, mostly moderate, sometimes special.
pub fn value() -> impl Strategy<Value = f32> + Clone {
    prop_oneof![
        8 => -10.0f32..10.0,
        1 => -1e4f32..1e4,
        1 => prop::sample::select(vec![0.0f32, -0.0, 1.0, -1.0, 0.5, f32::INFINITY, f32::NEG_INFINITY, f32::NAN]),
    ]
}

/// Strategy: finite f32 values in a moderate range.
pub fn finite() -> impl Strategy<Value = f32> + Clone {
    -10.0f32..10.0
}

/// Deterministic xorshift generator for bulk test data.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        let mut s = self.0;
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        self.0 = s;
        s
    }
    /// Uniform in [lo, hi).
    pub fn f32(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }
    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.f32(lo, hi)).collect()
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// The SIMD kernel sets this CPU has (what the ISA tests compare with the reference).
pub fn simd_isas() -> Vec<mote_targets::Isa> {
    use mote_targets::{Isa, IsaKind};
    IsaKind::ALL
        .into_iter()
        .filter(|&k| k != IsaKind::Generic)
        .filter_map(Isa::new)
        .collect()
}
