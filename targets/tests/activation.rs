//! Unary ops and epilogue activations against f64 references.

mod common;

use common::{close, erf64, erfc64, same, Rng};
use mote_targets::generic::activation::{activate, activate_inplace_f32, unary, unary_f32};
use mote_targets::{Activation, UnaryOp};
use proptest::prelude::*;

const ALL_OPS: &[UnaryOp] = &[
    UnaryOp::Identity,
    UnaryOp::Relu,
    UnaryOp::Clip { lo: -1.5, hi: 2.0 },
    UnaryOp::Sigmoid,
    UnaryOp::Gelu,
    UnaryOp::Erf,
    UnaryOp::Exp,
    UnaryOp::Log,
    UnaryOp::Neg,
    UnaryOp::Sign,
    UnaryOp::Reciprocal,
    UnaryOp::Abs,
    UnaryOp::Sqrt,
    UnaryOp::Tanh,
    UnaryOp::Floor,
    UnaryOp::Ceil,
    UnaryOp::Round,
    UnaryOp::LeakyRelu { alpha: 0.1 },
    UnaryOp::HardSigmoid {
        alpha: 0.2,
        beta: 0.5,
    },
    UnaryOp::HardSwish,
    UnaryOp::Softplus,
    UnaryOp::Silu,
    UnaryOp::PowConst { exp: 2.0 },
    UnaryOp::PowConst { exp: 3.0 },
    UnaryOp::PowConst { exp: 0.5 },
    UnaryOp::PowConst { exp: 1.0 },
    UnaryOp::PowConst { exp: -1.0 },
    UnaryOp::PowConst { exp: 1.5 },
    UnaryOp::PowConst { exp: -2.0 },
    UnaryOp::Affine { k: 0.75, c: -0.25 },
];

/// The exact value (in f64) that `op(x)` should round to, plus the allowed error in ulps and
/// absolute terms.
fn reference(op: UnaryOp, x: f32) -> (f64, f64, f64) {
    let d = x as f64;
    let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
    match op {
        UnaryOp::Identity => (d, 0.0, 0.0),
        UnaryOp::Relu => (if d.is_nan() { d } else { d.max(0.0) }, 0.0, 0.0),
        UnaryOp::Clip { lo, hi } => (
            if d.is_nan() {
                d
            } else {
                d.max(lo as f64).min(hi as f64)
            },
            0.0,
            0.0,
        ),
        UnaryOp::Sigmoid => (sig(d), 3.0, 0.0),
        UnaryOp::Gelu => {
            let z = d / std::f64::consts::SQRT_2;
            let g = if z < 0.0 {
                0.5 * d * erfc64(-z)
            } else {
                0.5 * d * (1.0 + erf64(z))
            };
            (if d == f64::NEG_INFINITY { 0.0 } else { g }, 8.0, 1e-44)
        }
        UnaryOp::Erf => (erf64(d), 1.5, 8e-8),
        UnaryOp::Exp => (d.exp(), 1.0, 1.5e-45),
        UnaryOp::Log => (d.ln(), 1.0, 0.0),
        UnaryOp::Neg => (-d, 0.0, 0.0),
        UnaryOp::Sign => (
            if d.is_nan() {
                d
            } else if d > 0.0 {
                1.0
            } else if d < 0.0 {
                -1.0
            } else {
                0.0
            },
            0.0,
            0.0,
        ),
        UnaryOp::Reciprocal => (1.0 / d, 0.5, 0.0),
        UnaryOp::Abs => (d.abs(), 0.0, 0.0),
        UnaryOp::Sqrt => (d.sqrt(), 0.5, 0.0),
        UnaryOp::Tanh => (d.tanh(), 2.0, 0.0),
        UnaryOp::Floor => (d.floor(), 0.0, 0.0),
        UnaryOp::Ceil => (d.ceil(), 0.0, 0.0),
        UnaryOp::Round => (d.round_ties_even(), 0.0, 0.0),
        UnaryOp::LeakyRelu { alpha } => (if d >= 0.0 { d } else { (alpha as f64) * d }, 0.5, 0.0),
        UnaryOp::HardSigmoid { alpha, beta } => {
            let v = (alpha as f64) * d + beta as f64;
            (if v.is_nan() { v } else { v.clamp(0.0, 1.0) }, 1.0, 1e-7)
        }
        UnaryOp::HardSwish => {
            let v = d / 6.0 + 0.5;
            (
                d * if v.is_nan() { v } else { v.clamp(0.0, 1.0) },
                1.5,
                1e-7,
            )
        }
        UnaryOp::Softplus => (
            if d > 0.0 {
                d + (-d).exp().ln_1p()
            } else {
                d.exp().ln_1p()
            },
            3.0,
            1.5e-45,
        ),
        UnaryOp::Silu => (
            if d == f64::NEG_INFINITY {
                0.0
            } else {
                d * sig(d)
            },
            4.0,
            1.5e-45,
        ),
        UnaryOp::PowConst { exp } => {
            let p = (d).powf(exp as f64);
            (p, if exp == 3.0 { 2.0 } else { 0.5 }, 0.0)
        }
        // Defined as the f32 expression `x * k + c`; compared bit for bit below.
        UnaryOp::Affine { .. } => (f64::NAN, 0.0, 0.0),
    }
}

fn check(op: UnaryOp, x: f32) {
    let got = unary(x, op);
    if let UnaryOp::Affine { k, c } = op {
        assert!(same(got, x * k + c));
        return;
    }
    let (exact, ulps, abs) = reference(op, x);
    assert!(
        close(got, exact, ulps, abs),
        "{op:?}({x:e}) = {got:e}, exact {exact:e}"
    );
}

#[test]
fn unary_ops_match_f64_reference_on_a_sweep() {
    let mut xs: Vec<f32> = Vec::new();
    // Dense linear sweep over the interesting range, and a log sweep over magnitudes.
    for i in -100_000..=100_000 {
        xs.push(i as f32 * 3.3e-4);
    }
    let mut m = 1e-38f32;
    while m < 1e38 {
        xs.extend([m, -m]);
        m *= 1.013;
    }
    xs.extend([
        0.0,
        -0.0,
        0.5,
        -0.5,
        1.5,
        -1.5,
        2.5,
        -2.5,
        3.0,
        -3.0,
        1e-45,
        -1e-45,
        f32::MAX,
        f32::MIN,
    ]);
    xs.extend([
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        88.7,
        -88.7,
        100.0,
        -100.0,
        1000.0,
        -1000.0,
    ]);
    for &op in ALL_OPS {
        for &x in &xs {
            check(op, x);
        }
    }
}

#[test]
fn onnx_edge_cases() {
    let sign = |x| unary(x, UnaryOp::Sign);
    assert_eq!(sign(0.0).to_bits(), 0);
    assert_eq!(sign(-0.0).to_bits(), 0);
    assert_eq!(sign(-3.0), -1.0);
    assert!(sign(f32::NAN).is_nan());
    let round = |x| unary(x, UnaryOp::Round);
    for (x, r) in [
        (0.5, 0.0),
        (1.5, 2.0),
        (2.5, 2.0),
        (-0.5, -0.0),
        (-1.5, -2.0),
        (-2.5, -2.0),
        (0.49999997, 0.0),
    ] {
        assert!(same(round(x), r), "round({x}) = {}", round(x));
    }
    assert_eq!(unary(-3.0, UnaryOp::HardSwish), 0.0);
    assert_eq!(unary(3.0, UnaryOp::HardSwish), 3.0);
    assert_eq!(unary(1.0, UnaryOp::HardSwish), 1.0 * (1.0f32 / 6.0 + 0.5));
    assert_eq!(unary(100.0, UnaryOp::Sigmoid), 1.0);
    let s = unary(-100.0, UnaryOp::Sigmoid);
    assert!(s > 0.0 && s < 1e-43);
    assert_eq!(unary(-200.0, UnaryOp::Sigmoid), 0.0);
    assert_eq!(unary(f32::NEG_INFINITY, UnaryOp::Sigmoid), 0.0);
    assert_eq!(unary(f32::INFINITY, UnaryOp::Sigmoid), 1.0);
    assert_eq!(unary(100.0, UnaryOp::Softplus), 100.0);
    assert_eq!(unary(f32::INFINITY, UnaryOp::Softplus), f32::INFINITY);
    assert_eq!(unary(f32::NEG_INFINITY, UnaryOp::Softplus), 0.0);
    assert!(same(unary(f32::NEG_INFINITY, UnaryOp::Gelu), -0.0));
    assert_eq!(unary(f32::INFINITY, UnaryOp::Gelu), f32::INFINITY);
    assert!(same(unary(f32::NEG_INFINITY, UnaryOp::Silu), -0.0));
    assert_eq!(unary(f32::INFINITY, UnaryOp::Silu), f32::INFINITY);
    // Clamps propagate NaN.
    for op in [
        UnaryOp::Relu,
        UnaryOp::Clip { lo: 0.0, hi: 6.0 },
        UnaryOp::HardSigmoid {
            alpha: 0.2,
            beta: 0.5,
        },
        UnaryOp::HardSwish,
    ] {
        assert!(unary(f32::NAN, op).is_nan(), "{op:?}");
    }
    assert_eq!(unary(7.0, UnaryOp::Clip { lo: 0.0, hi: 6.0 }), 6.0);
    assert_eq!(unary(-7.0, UnaryOp::Clip { lo: 0.0, hi: 6.0 }), 0.0);
    // PowConst shortcuts agree with powf's special cases.
    assert!(same(unary(-0.0, UnaryOp::PowConst { exp: 0.5 }), 0.0));
    assert_eq!(
        unary(f32::NEG_INFINITY, UnaryOp::PowConst { exp: 0.5 }),
        f32::INFINITY
    );
    assert!(unary(-4.0, UnaryOp::PowConst { exp: 0.5 }).is_nan());
    assert_eq!(unary(-2.0, UnaryOp::PowConst { exp: 3.0 }), -8.0);
    assert_eq!(unary(-2.0, UnaryOp::PowConst { exp: 2.0 }), 4.0);
    assert_eq!(unary(f32::NAN, UnaryOp::PowConst { exp: 0.0 }), 1.0);
    assert!(unary(-2.0, UnaryOp::PowConst { exp: 1.5 }).is_nan());
    assert_eq!(unary(0.0, UnaryOp::Reciprocal), f32::INFINITY);
    assert_eq!(unary(-0.0, UnaryOp::Log), f32::NEG_INFINITY);
    assert!(unary(-1.0, UnaryOp::Log).is_nan());
    assert_eq!(unary(-1.0, UnaryOp::LeakyRelu { alpha: 0.1 }), -0.1);
}

#[test]
fn activations_agree_with_unary_ops() {
    let pairs = [
        (Activation::None, UnaryOp::Identity),
        (Activation::Relu, UnaryOp::Relu),
        (
            Activation::Clip { lo: -0.5, hi: 6.0 },
            UnaryOp::Clip { lo: -0.5, hi: 6.0 },
        ),
        (Activation::Sigmoid, UnaryOp::Sigmoid),
        (Activation::Gelu, UnaryOp::Gelu),
    ];
    let mut rng = Rng(7);
    let mut xs = rng.vec(10_000, -20.0, 20.0);
    xs.extend([0.0, -0.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY]);
    for (act, op) in pairs {
        for &x in &xs {
            assert!(same(activate(x, act), unary(x, op)), "{act:?}({x})");
        }
        let mut v = xs.clone();
        activate_inplace_f32(act, &mut v);
        for (&y, &x) in v.iter().zip(&xs) {
            assert!(same(y, activate(x, act)));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The slice kernel is the scalar function applied element-wise (any length, incl. 0).
    #[test]
    fn unary_f32_is_elementwise(xs in proptest::collection::vec(common::value(), 0..40), which in 0..ALL_OPS.len()) {
        let op = ALL_OPS[which];
        let mut out = vec![f32::NAN; xs.len()];
        unary_f32(op, &xs, &mut out);
        for (&y, &x) in out.iter().zip(&xs) {
            prop_assert!(same(y, unary(x, op)), "{:?}({}) = {} vs {}", op, x, y, unary(x, op));
        }
    }

    #[test]
    fn unary_ops_on_random_inputs(x in common::value(), which in 0..ALL_OPS.len()) {
        check(ALL_OPS[which], x);
    }
}

#[test]
fn gelu_tail_is_accurate() {
    let mut worst = 0.0f64;
    let mut at = 0.0f32;
    let mut x = -14.0f32;
    while x < 10.0 {
        let d = x as f64;
        let z = d / std::f64::consts::SQRT_2;
        let exact = if z < 0.0 {
            0.5 * d * erfc64(-z)
        } else {
            0.5 * d * (1.0 + erf64(z))
        };
        let got = unary(x, UnaryOp::Gelu);
        if exact.abs() > 1.2e-38 {
            let e = (got as f64 - exact).abs() / common::ulp_at(exact);
            if e > worst {
                worst = e;
                at = x;
            }
        }
        x = f32::from_bits(if x < 0.0 {
            x.to_bits() - 1999
        } else {
            x.to_bits() + 1999
        });
        if x == 0.0 || x.abs() < 1e-30 {
            x = 1e-30;
        }
    }
    println!("gelu worst {worst:.3} ulp at {at:e}");
    assert!(worst <= 8.0, "gelu worst {worst} ulp at {at:e}");
}
