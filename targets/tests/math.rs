//! Accuracy of `generic::math` against std's f64 functions (or independent f64 references where
//! std has none), over dense sweeps of f32 inputs. The asserted bounds are the ones documented
//! in `math.rs`; each test prints the worst error it saw (`--nocapture`).

mod common;

use common::{erf64, erf_series, erfc64, erfc_cf};
use mote_targets::generic::math;

/// Spacing of f32 values at the magnitude of `exact` (the subnormal spacing below 2^-126).
fn ulp_at(exact: f64) -> f64 {
    let a = exact.abs();
    if a < f32::MIN_POSITIVE as f64 {
        return 2f64.powi(-149);
    }
    let e = a.log2().floor() as i32;
    // log2 may be off by one right at a power of two; correct it.
    let e = if 2f64.powi(e) > a {
        e - 1
    } else if 2f64.powi(e + 1) <= a {
        e + 1
    } else {
        e
    };
    2f64.powi(e - 23)
}

/// Error of `got` in ulps of the exact result.
fn ulps(got: f32, exact: f64) -> f64 {
    if got as f64 == exact {
        return 0.0;
    }
    if exact.abs() > f32::MAX as f64 * (1.0 + 2f64.powi(-24)) {
        return if got.is_infinite() && got.signum() as f64 == exact.signum() {
            0.0
        } else {
            f64::INFINITY
        };
    }
    (got as f64 - exact).abs() / ulp_at(exact)
}

/// f32 values from `lo` to `hi` (same sign, or straddling 0) visiting about `count` of them
/// evenly in bit space, plus both ends.
fn sweep(lo: f32, hi: f32, count: u64) -> Vec<f32> {
    // Map f32 to a monotonic integer key.
    fn key(x: f32) -> i64 {
        let b = x.to_bits() as i32 as i64;
        if b < 0 {
            -(b & 0x7fff_ffff)
        } else {
            b
        }
    }
    fn unkey(k: i64) -> f32 {
        if k < 0 {
            f32::from_bits(((-k) as u32) | 0x8000_0000)
        } else {
            f32::from_bits(k as u32)
        }
    }
    let (a, b) = (key(lo), key(hi));
    let step = (((b - a) as u64) / count.max(1)).max(1) as i64;
    let mut v: Vec<f32> = (0..)
        .map(|i| a + i * step)
        .take_while(|&k| k <= b)
        .map(unkey)
        .collect();
    v.push(hi);
    v
}

struct Worst {
    name: &'static str,
    err: f64,
    at: f32,
}

impl Worst {
    fn new(name: &'static str) -> Self {
        Worst {
            name,
            err: 0.0,
            at: 0.0,
        }
    }
    fn add(&mut self, err: f64, x: f32) {
        if err > self.err || err.is_nan() {
            self.err = err;
            self.at = x;
        }
    }
    fn check(&self, bound: f64) {
        println!(
            "{}: worst {:.4e} at {:e} (bound {:e})",
            self.name, self.err, self.at, bound
        );
        assert!(
            self.err <= bound,
            "{}: error {} at x = {:e} ({:?}) exceeds {}",
            self.name,
            self.err,
            self.at,
            self.at,
            bound
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Rounding and sqrt: exact, compared bit for bit with std.

fn same(a: f32, b: f32) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

#[test]
fn rounding_is_exact() {
    let mut xs = sweep(f32::MIN, f32::MAX, 3_000_000);
    xs.extend([
        0.0,
        -0.0,
        0.5,
        -0.5,
        1.5,
        -1.5,
        2.5,
        -2.5,
        0.49999997,
        -0.49999997,
        8388607.5,
        -8388607.5,
    ]);
    xs.extend([
        8388608.0,
        8388609.0,
        16777215.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        1e-45,
        -1e-45,
    ]);
    for i in -1000..1000 {
        let h = i as f32 * 0.25;
        xs.extend([
            h,
            f32::from_bits(h.to_bits().wrapping_add(1)),
            f32::from_bits(h.to_bits().wrapping_sub(1)),
        ]);
    }
    for &x in &xs {
        assert!(same(math::floor(x), x.floor()), "floor({x:e})");
        assert!(same(math::ceil(x), x.ceil()), "ceil({x:e})");
        assert!(same(math::trunc(x), x.trunc()), "trunc({x:e})");
        assert!(
            same(math::round_ties_even(x), x.round_ties_even()),
            "round({x:e}) = {}",
            math::round_ties_even(x)
        );
    }
}

#[test]
fn sqrt_is_correctly_rounded() {
    let mut xs = sweep(0.0, f32::MAX, 20_000_000);
    xs.extend(sweep(0.0, f32::MIN_POSITIVE, 100_000));
    xs.extend(sweep(1.0, 4.0, 2_000_000)); // two full binades densely
    xs.extend([
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -0.0,
        -1.0,
        -1e-45,
    ]);
    for &x in &xs {
        assert!(
            same(math::sqrt(x), x.sqrt()),
            "sqrt({x:e}) = {} vs {}",
            math::sqrt(x),
            x.sqrt()
        );
    }
    // Perfect squares are exact.
    for i in 0..4096u32 {
        assert_eq!(math::sqrt((i * i) as f32), i as f32);
    }
}

// ---------------------------------------------------------------------------------------------
// exp, expm1, ln, ln_1p, tanh

#[test]
fn exp_accuracy() {
    let mut w = Worst::new("exp ulp [-87.33, 88.72]");
    let mut rel = Worst::new("exp relative [-87, 88]");
    for x in sweep(-87.33, 88.72, 30_000_000) {
        let e = (x as f64).exp();
        w.add(ulps(math::exp(x), e), x);
        if (-87.0..=88.0).contains(&x) {
            rel.add(((math::exp(x) as f64 - e) / e).abs(), x);
        }
    }
    w.check(1.0);
    rel.check(4e-7);
    // Subnormal results: absolute error within one subnormal step.
    let mut sub = Worst::new("exp subnormal abs (units of 2^-149)");
    for x in sweep(-104.0, -87.33, 2_000_000) {
        sub.add(
            (math::exp(x) as f64 - (x as f64).exp()).abs() / 2f64.powi(-149),
            x,
        );
    }
    sub.check(1.0);
    assert_eq!(math::exp(0.0), 1.0);
    assert_eq!(math::exp(-0.0), 1.0);
    assert_eq!(math::exp(88.73), f32::INFINITY);
    assert_eq!(math::exp(1e30), f32::INFINITY);
    assert_eq!(math::exp(f32::INFINITY), f32::INFINITY);
    assert_eq!(math::exp(-104.0), 0.0);
    assert_eq!(math::exp(f32::NEG_INFINITY), 0.0);
    assert!(math::exp(f32::NAN).is_nan());
    assert!(math::exp(88.72283).is_finite());
}

#[test]
fn expm1_accuracy() {
    let mut w = Worst::new("expm1 ulp [-20, 88.72]");
    let mut xs = sweep(-20.0, 88.72, 10_000_000);
    xs.extend(sweep(-1e-3, 1e-3, 2_000_000));
    for x in xs {
        w.add(ulps(math::expm1(x), (x as f64).exp_m1()), x);
    }
    w.check(1.5);
    assert_eq!(math::expm1(0.0).to_bits(), 0.0f32.to_bits());
    assert_eq!(math::expm1(-0.0).to_bits(), (-0.0f32).to_bits());
    assert_eq!(math::expm1(f32::NEG_INFINITY), -1.0);
    assert_eq!(math::expm1(f32::INFINITY), f32::INFINITY);
    assert!(math::expm1(f32::NAN).is_nan());
}

#[test]
fn ln_accuracy() {
    let mut w = Worst::new("ln ulp (0, inf)");
    let mut xs = sweep(1e-45, f32::MAX, 30_000_000);
    xs.extend(sweep(0.5, 2.0, 4_000_000)); // around 1, where ln is small
    for x in xs {
        w.add(ulps(math::ln(x), (x as f64).ln()), x);
    }
    w.check(1.0);
    assert_eq!(math::ln(1.0).to_bits(), 0);
    assert_eq!(math::ln(0.0), f32::NEG_INFINITY);
    assert_eq!(math::ln(-0.0), f32::NEG_INFINITY);
    assert_eq!(math::ln(f32::INFINITY), f32::INFINITY);
    assert!(math::ln(-1.0).is_nan());
    assert!(math::ln(f32::NEG_INFINITY).is_nan());
    assert!(math::ln(f32::NAN).is_nan());
}

#[test]
fn ln_1p_accuracy() {
    let mut w = Worst::new("ln_1p ulp (-1, 1e38]");
    let mut xs = sweep(-0.99999994, 1e38, 10_000_000);
    xs.extend(sweep(-1e-3, 1e-3, 2_000_000));
    for x in xs {
        w.add(ulps(math::ln_1p(x), (x as f64).ln_1p()), x);
    }
    w.check(1.5);
    assert_eq!(math::ln_1p(-1.0), f32::NEG_INFINITY);
    assert!(math::ln_1p(-1.5).is_nan());
    assert_eq!(math::ln_1p(-0.0).to_bits(), (-0.0f32).to_bits());
    assert_eq!(math::ln_1p(f32::INFINITY), f32::INFINITY);
}

#[test]
fn tanh_accuracy() {
    let mut w = Worst::new("tanh ulp [-12, 12]");
    let mut xs = sweep(-12.0, 12.0, 20_000_000);
    xs.extend(sweep(-1.0, 1.0, 2_000_000));
    for x in xs {
        w.add(ulps(math::tanh(x), (x as f64).tanh()), x);
    }
    w.check(2.0);
    assert_eq!(math::tanh(f32::INFINITY), 1.0);
    assert_eq!(math::tanh(f32::NEG_INFINITY), -1.0);
    assert_eq!(math::tanh(-0.0).to_bits(), (-0.0f32).to_bits());
    assert!(math::tanh(f32::NAN).is_nan());
    for x in sweep(0.0, 12.0, 100_000) {
        assert_eq!(math::tanh(-x).to_bits(), (-math::tanh(x)).to_bits());
    }
}

// ---------------------------------------------------------------------------------------------
// erf and erfc against an independent f64 implementation.

#[test]
fn erf_reference_is_sane() {
    // Published values.
    assert!((erf64(0.5) - 0.520_499_877_813_046_5).abs() < 3e-16);
    assert!((erf64(1.0) - 0.842_700_792_949_714_9).abs() < 3e-16);
    assert!((erf64(2.0) - 0.995_322_265_018_952_7).abs() < 3e-16);
    assert!((erfc64(3.0) / 2.209_049_699_858_544e-5 - 1.0).abs() < 1e-13);
    assert!((erfc64(5.0) / 1.537_459_794_428_035e-12 - 1.0).abs() < 1e-13);
    assert!((erfc64(2.5) / 4.069_520_174_449_59e-4 - 1.0).abs() < 1e-12);
    // The two branches agree where they meet.
    assert!((erf_series(3.0) - (1.0 - erfc_cf(3.0))).abs() < 1e-15);
    assert!((1.0 - erf_series(2.0)) / erfc_cf(2.0) - 1.0 < 1e-12);
}

#[test]
fn erf_accuracy() {
    let mut abs = Worst::new("erf absolute [-10, 10]");
    let mut small = Worst::new("erf ulp |x| < 0.875");
    let mut xs = sweep(-10.0, 10.0, 10_000_000);
    xs.extend(sweep(-1e-30, 1e-30, 10_000));
    for x in xs {
        let e = erf64(x as f64);
        let y = math::erf(x);
        abs.add((y as f64 - e).abs(), x);
        if x.abs() < 0.875 {
            small.add(ulps(y, e), x);
        }
    }
    abs.check(8e-8);
    small.check(1.5);
    assert_eq!(math::erf(f32::INFINITY), 1.0);
    assert_eq!(math::erf(f32::NEG_INFINITY), -1.0);
    assert_eq!(math::erf(-0.0).to_bits(), (-0.0f32).to_bits());
    assert!(math::erf(f32::NAN).is_nan());
    // The API entry point is the same function.
    assert_eq!(mote_targets::generic::activation::erf(0.3), math::erf(0.3));
}

#[test]
fn erfc_accuracy() {
    let mut w = Worst::new("erfc ulp [-10, 9.3]");
    for x in sweep(-10.0, 9.3, 10_000_000) {
        w.add(ulps(math::erfc(x), erfc64(x as f64)), x);
    }
    w.check(5.0);
    let mut sub = Worst::new("erfc abs beyond 9.3 (units of 2^-149)");
    for x in sweep(9.3, 11.0, 100_000) {
        sub.add(
            (math::erfc(x) as f64 - erfc64(x as f64)).abs() / 2f64.powi(-149),
            x,
        );
    }
    sub.check(2.0);
    assert_eq!(math::erfc(f32::INFINITY), 0.0);
    assert_eq!(math::erfc(f32::NEG_INFINITY), 2.0);
    assert!(math::erfc(f32::NAN).is_nan());
}

// ---------------------------------------------------------------------------------------------
// powf

#[test]
fn powf_accuracy() {
    // Deterministic pseudo-random pairs over wide ranges (xorshift).
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut w = Worst::new("powf ulp");
    for _ in 0..2_000_000 {
        let r = next();
        let x = f32::from_bits((r as u32) & 0x7fff_ffff);
        let y = ((r >> 32) as u32 as f64 / u32::MAX as f64 * 80.0 - 40.0) as f32;
        if !x.is_finite() {
            continue;
        }
        let e = (x as f64).powf(y as f64);
        w.add(ulps(math::powf(x, y), e), x);
    }
    // Bases near 1 and moderate exponents, the common case (Pow with y = 1.5, 0.75, ...).
    for x in sweep(1e-3, 1e3, 200_000) {
        for y in [
            -3.0f32, -2.5, -1.0, -0.5, 0.25, 0.5, 0.75, 1.5, 2.0, 3.0, 7.0, 10.5,
        ] {
            let e = (x as f64).powf(y as f64);
            w.add(ulps(math::powf(x, y), e), x);
            // Negative bases with integer exponents.
            if y == y.trunc() {
                w.add(ulps(math::powf(-x, y), (-x as f64).powf(y as f64)), -x);
            }
        }
    }
    w.check(1.0);
}

#[test]
fn powf_special_cases_match_c99() {
    let vals = [
        0.0f32,
        -0.0,
        1.0,
        -1.0,
        0.5,
        -0.5,
        2.0,
        -2.0,
        3.0,
        -3.0,
        2.5,
        -2.5,
        1e-40,
        1e30,
        -1e30,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        16777216.0,
        -16777217.0,
        1.0000001,
        0.99999994,
    ];
    for &x in &vals {
        for &y in &vals {
            let got = math::powf(x, y);
            let want = x.powf(y); // std follows C99 Annex F
            assert!(
                same(got, want) || ulps(got, (x as f64).powf(y as f64)) <= 1.0,
                "powf({x:e}, {y:e}) = {got:e}, want {want:e}"
            );
        }
    }
    assert!(math::powf(-2.0, 0.5).is_nan());
    assert_eq!(math::powf(f32::NAN, 0.0), 1.0);
    assert_eq!(math::powf(1.0, f32::NAN), 1.0);
    assert_eq!(math::powf(-0.0, -3.0), f32::NEG_INFINITY);
    assert_eq!(math::powf(2.0, 128.0), f32::INFINITY);
    assert_eq!(math::powf(2.0, -150.0), 0.0);
    assert_eq!(math::powf(2.0, -149.0), 1e-45);
    assert_eq!(math::powf(-2.0, 3.0), -8.0);
}
