//! Scalar f32 math for `no_std` builds: rounding, `sqrt`, `exp`, `expm1`, `ln`, `ln_1p`, `tanh`,
//! `erf`, `erfc` and `powf`.
//!
//! `core` has no transcendental functions, so the reference kernels carry their own. Every
//! function here is a pure function of its bits: it uses only IEEE-754 `+ - * /` (no fused
//! multiply-add, no platform libm), so results are identical on every target. None of them
//! panics. The error bounds below are the worst cases measured by `targets/tests/math.rs`
//! against `f64` references over dense sweeps; "ulp" is the spacing of f32 at the exact result.
//!
//! | function | asserted bound (measured worst) | range checked |
//! |---|---|---|
//! | [`floor`], [`ceil`], [`trunc`], [`round_ties_even`] | exact | all f32 classes |
//! | [`sqrt`] | correctly rounded | all f32 classes |
//! | [`exp`] | 1 ulp (0.94 ulp; relative 1.1e-7) | `[-87.33, 88.72]` |
//! | [`expm1`] | 1.5 ulp (1.34 ulp) | `[-20, 88.72]` |
//! | [`ln`] | 1 ulp (0.82 ulp) | all positive f32 |
//! | [`ln_1p`] | 1.5 ulp (1.44 ulp) | `(-1, 1e38]` |
//! | [`tanh`] | 2 ulp (1.49 ulp) | `[-12, 12]` |
//! | [`erf`] | absolute 8e-8 (6.95e-8); 1.5 ulp (0.97 ulp) for `\|x\| < 0.875` | `[-10, 10]` |
//! | [`erfc`] | 5 ulp (4.68 ulp) while the result is normal | `[-10, 9.3]` |
//! | [`powf`] | 1 ulp (0.50 ulp: computed in f64, rounded once) | `\|y\| <= 40`, all `x` |
//!
//! Subnormal results of `exp`, `expm1`, `erfc` are computed by scaling and carry an absolute error
//! below the smallest subnormal's size, not a relative bound.

const LOG2_E: f32 = core::f32::consts::LOG2_E;
/// `ln 2` rounded to 15 significant bits, so that `n * LN2_HI` is exact for `|n| < 512`.
const LN2_HI: f32 = f32::from_bits(0x3f31_7200);
/// `ln 2 - LN2_HI`.
const LN2_LO: f32 = 1.428_606_8e-6;
/// Adding and subtracting this rounds an f32 of magnitude `< 2^22` to the nearest integer.
const ROUND_SHIFT: f32 = 12_582_912.0; // 1.5 * 2^23

/// `2^23`: every f32 at least this large is an integer.
const TWO_23: f32 = 8_388_608.0;

/// Rounds toward zero. Exact.
#[inline]
pub fn trunc(x: f32) -> f32 {
    // NaN, infinities and |x| >= 2^23 are already integral (or not numbers).
    if x.is_nan() || x.abs() >= TWO_23 {
        return x;
    }
    // |x| < 2^23 fits an i32 exactly; the conversion truncates.
    let t = (x as i32) as f32;
    t.copysign(x)
}

/// Rounds toward negative infinity. Exact; keeps the sign of zero (`floor(-0.0) = -0.0`).
#[inline]
pub fn floor(x: f32) -> f32 {
    let t = trunc(x);
    if t > x {
        t - 1.0
    } else {
        t
    }
}

/// Rounds toward positive infinity. Exact; `ceil(-0.5) = -0.0`.
#[inline]
pub fn ceil(x: f32) -> f32 {
    let t = trunc(x);
    if t < x {
        t + 1.0
    } else {
        t
    }
}

/// Rounds to the nearest integer, ties to even (ONNX `Round`). Exact; keeps the sign of zero.
#[inline]
pub fn round_ties_even(x: f32) -> f32 {
    let a = x.abs();
    if x.is_nan() || a >= TWO_23 {
        return x;
    }
    // a + 2^23 lies in [2^23, 2^24), where the f32 spacing is 1: the addition rounds `a` to an
    // integer with the current (nearest-even) rounding mode, and the subtraction is exact.
    let r = (a + TWO_23) - TWO_23;
    r.copysign(x)
}

/// Square root, correctly rounded (the IEEE-754 result). `sqrt(-0.0) = -0.0`, negative inputs
/// and NaN give NaN.
pub fn sqrt(x: f32) -> f32 {
    if x.is_nan() || x < 0.0 {
        return f32::NAN;
    }
    if x == 0.0 || x == f32::INFINITY {
        return x;
    }
    // Newton's iteration in f64 from a bit-level first guess (relative error < 3.5%): four steps
    // reach the f64 precision. Every f32, subnormals included, is a normal f64.
    let d = x as f64;
    let mut y = f64::from_bits((d.to_bits() >> 1) + 0x1ff8_0000_0000_0000);
    for _ in 0..4 {
        y = 0.5 * (y + d / y);
    }
    // Round to f32, then make the rounding exact: compare `d` with the squares of the midpoints
    // to the neighbouring f32 values. The midpoints have at most 25 significant bits, so their
    // squares (50 bits) are exact in f64; `d` is never exactly a midpoint's square.
    let mut r = y as f32;
    let lo = f32::from_bits(r.to_bits() - 1);
    let mid_lo = (r as f64 + lo as f64) * 0.5;
    if d < mid_lo * mid_lo {
        r = lo;
    } else {
        let hi = f32::from_bits(r.to_bits() + 1);
        let mid_hi = (r as f64 + hi as f64) * 0.5;
        if d > mid_hi * mid_hi {
            r = hi;
        }
    }
    r
}

/// `y * 2^n` with a single rounding, for `n` in `[-277, 254]` (wider `n` saturates).
#[inline]
fn scalbn(mut y: f32, mut n: i32) -> f32 {
    const P127: f32 = f32::from_bits(0x7f00_0000); // 2^127
    const M102: f32 = f32::from_bits(0x0c80_0000); // 2^-102
    if n > 127 {
        y *= P127;
        n -= 127;
        if n > 127 {
            n = 127;
        }
    } else if n < -126 {
        // Step down to 2^-102 first (still normal, exact), so the last multiplication is the
        // only one that can round into the subnormal range.
        y *= M102;
        n += 102;
        if n < -126 {
            n = -126;
        }
    }
    y * f32::from_bits(((0x7f + n) as u32) << 23)
}

/// Cody–Waite reduction: `x = n ln2 + r`, `|r| <= ln2/2 (1 + 2^-20)`. Requires `|x| < 2^21`.
#[inline]
fn reduce_ln2(x: f32) -> (f32, i32) {
    let kf = (x * LOG2_E + ROUND_SHIFT) - ROUND_SHIFT;
    // kf * LN2_HI is exact and close to x, so the first subtraction is exact too.
    let r = (x - kf * LN2_HI) - kf * LN2_LO;
    (r, kf as i32)
}

/// `e^r - 1 - r` for `|r| <= 0.35`: Taylor series to degree 8 (truncation < 6e-10 relative).
#[inline]
fn expm1_tail(r: f32) -> f32 {
    let p = 1.0 / 40_320.0;
    let p = p * r + 1.0 / 5_040.0;
    let p = p * r + 1.0 / 720.0;
    let p = p * r + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = p * r + 0.5;
    r * r * p
}

/// `e^x`. Error < 1 ulp over the normal range (`x` in `[-87.33, 88.72]`); overflows to
/// `+inf` above `88.7228`, rounds smoothly through the subnormals, and is `0` below `-103.98`.
pub fn exp(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    if x > 89.0 {
        return f32::INFINITY;
    }
    if x < -104.0 {
        return 0.0;
    }
    exp_scaled(x, 0)
}

/// `e^x * 2^k` with a single final rounding, for `x` in `[-104, 89]` and `|k| <= 64`: lets a
/// caller keep full precision where `e^x` alone would be subnormal.
#[inline]
pub(crate) fn exp_scaled(x: f32, k: i32) -> f32 {
    let (r, n) = reduce_ln2(x);
    // e^r = 1 + (r + tail): summing the small terms first keeps the error near 0.5 ulp.
    let er = 1.0 + (r + expm1_tail(r));
    scalbn(er, n + k)
}

/// `e^x - 1`, accurate for small `|x|` (error < 1.5 ulp everywhere).
pub fn expm1(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    if x > 16.0 {
        // e^x > 2^23: subtracting 1 is exact or a single rounding of the rounded e^x.
        return exp(x) - 1.0;
    }
    if x < -18.0 {
        // e^x < 2^-25: the result rounds to -1.
        return -1.0;
    }
    if x.abs() < 2.980_232_2e-8 {
        // |x| < 2^-25: e^x - 1 = x (1 + x/2 + ...) rounds to x.
        return x;
    }
    let (r, n) = reduce_ln2(x);
    let tail = expm1_tail(r);
    if n == 1 {
        // 2 (e^r - 1) + 1 with the exact part summed first: 2r + 1 is exact for r < 0, where
        // the result (down to 0.41) is smaller than 2 (e^r - 1) and would double its rounding.
        return (r + r + 1.0) + 2.0 * tail;
    }
    let p = r + tail; // e^r - 1
    if n == 0 {
        return p;
    }
    // e^x - 1 = 2^n (e^r - 1) + (2^n - 1), with n in [-26, 23]: 2^n is exact, and so is
    // 2^n - 1 except for n < -24, where it rounds to -1 and the sum is -1 within an ulp.
    let t = scalbn(1.0, n);
    t * p + (t - 1.0)
}

const SQRT_2: f32 = core::f32::consts::SQRT_2;

/// Natural logarithm. Error < 1 ulp. `ln(0) = -inf`, `ln(x < 0) = NaN`,
/// `ln(+inf) = +inf`.
pub fn ln(x: f32) -> f32 {
    if x.is_nan() || x < 0.0 {
        return f32::NAN;
    }
    if x == 0.0 {
        return f32::NEG_INFINITY;
    }
    if x == f32::INFINITY {
        return x;
    }
    let mut k: i32 = 0;
    let mut v = x;
    if v < f32::MIN_POSITIVE {
        v *= 33_554_432.0; // 2^25: subnormals become normal
        k -= 25;
    }
    let bits = v.to_bits();
    k += ((bits >> 23) as i32) - 127;
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000); // [1, 2)
    if m > SQRT_2 {
        m *= 0.5;
        k += 1;
    }
    // m in (sqrt(1/2), sqrt(2)]; f = m - 1 is exact.
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    // ln(1+f) = 2 atanh(s) = 2s + s R(z), R(z) = sum_{j>=1} 2 z^j / (2j + 1); |z| < 0.0295 so
    // five terms leave < 1e-10 relative. 2s = f - s f is rewritten as f - hfsq + s hfsq, with the
    // exact leading term f kept apart.
    let r = 2.0 / 11.0;
    let r = r * z + 2.0 / 9.0;
    let r = r * z + 2.0 / 7.0;
    let r = r * z + 2.0 / 5.0;
    let r = r * z + 2.0 / 3.0;
    let r = r * z;
    let hfsq = 0.5 * f * f;
    let kf = k as f32;
    kf * LN2_HI - ((hfsq - (s * (hfsq + r) + kf * LN2_LO)) - f)
}

/// `ln(1 + x)`, accurate for small `|x|` (error < 1.5 ulp). `ln_1p(-1) = -inf`,
/// `x < -1` gives NaN.
pub fn ln_1p(x: f32) -> f32 {
    if x.is_nan() || x < -1.0 {
        return f32::NAN;
    }
    if x == f32::INFINITY {
        return x;
    }
    if x == -1.0 {
        return f32::NEG_INFINITY;
    }
    let u = 1.0 + x;
    if u == 1.0 {
        // |x| < 2^-24: ln(1+x) = x (1 - x/2 + ...) rounds to x.
        return x;
    }
    // u = 1 + x + d with the rounding error d = x - (u - 1) (exact when u <= 2, tiny
    // otherwise); ln(1 + x) = ln(u) - ln(1 + d/u) ~= ln(u) + (x - (u - 1)) / u.
    ln(u) + (x - (u - 1.0)) / u
}

/// Hyperbolic tangent: an odd polynomial for `|x| < 0.625`, else `e / (e + 2)` with
/// `e = expm1(2|x|)`. Relative error < 2 ulp; exactly `±1` for `|x| > 9.1`; odd
/// (`tanh(-x) = -tanh(x)`).
pub fn tanh(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    if a > 9.1 {
        // 1 - tanh(9.1) < 2.5e-8 is under half an ulp of 1.
        return 1.0f32.copysign(x);
    }
    if a < 2.441_406_3e-4 {
        // |x| < 2^-12: tanh x = x (1 - x^2/3 + ...) rounds to x (this also keeps -0).
        return x;
    }
    if a < 0.625 {
        // tanh x = x + x^3 Q(x^2) (Chebyshev fit of Q, relative error 1.6e-9), keeping the
        // leading term exact.
        let u = x * x;
        let q = poly5(&TANH_SMALL, u);
        return x + (x * u) * q;
    }
    let e = expm1(a + a);
    (e / (e + 2.0)).copysign(x)
}

/// `(tanh(x)/x - 1) / x^2` as a polynomial in `x^2` for `|x| < 0.625`.
const TANH_SMALL: [f32; 6] = [
    2.292_744_8e-3,
    -8.343_945e-3,
    2.176_891_8e-2,
    -5.395_925_8e-2,
    1.333_330_4e-1,
    -3.333_333_4e-1,
];

/// Horner evaluation of a degree-5 polynomial, highest coefficient first.
#[inline]
fn poly5(c: &[f32; 6], t: f32) -> f32 {
    let mut p = c[0];
    for &ci in &c[1..] {
        p = p * t + ci;
    }
    p
}

/// Horner evaluation of a degree-6 polynomial, highest coefficient first.
#[inline]
fn poly6(c: &[f32; 7], t: f32) -> f32 {
    let mut p = c[0];
    for &ci in &c[1..] {
        p = p * t + ci;
    }
    p
}

/// `erf(x)/x - 1` as a polynomial in `x^2` for `|x| < 0.875` (Chebyshev fit, 2e-10 abs).
const ERF_SMALL: [f32; 7] = [
    8.690_369e-5,
    -8.214_571e-4,
    5.207_049e-3,
    -2.686_170_7e-2,
    1.128_373_5e-1,
    -3.761_263_5e-1,
    1.283_791_7e-1,
];

/// `erfc(x) e^(x^2)` as polynomials in `t = 1/x` on `[0.875, 1.5)`, `[1.5, 2.5)`, `[2.5, 4)`,
/// `[4, 10.2)` (Chebyshev fits, relative error < 2.2e-8, < 1.2e-9, < 3.4e-10, < 9e-10).
const ERFC_PIECES: [[f32; 7]; 4] = [
    [
        1.081_429_7e-2,
        -6.658_649_4e-2,
        1.603_873_7e-1,
        -1.483_026_7e-1,
        -1.326_053_1e-1,
        6.098_280_5e-1,
        -5.951_678e-3,
    ],
    [
        5.820_016_2e-2,
        -2.621_287_7e-1,
        5.017_261e-1,
        -4.707_836e-1,
        4.115_659_7e-2,
        5.592_566e-1,
        2.504_385_2e-4,
    ],
    [
        -1.862_271_3e-2,
        -9.604_038e-2,
        3.526_616e-1,
        -3.998_594_6e-1,
        2.235_379_6e-2,
        5.618_763_6e-1,
        1.018_076_9e-4,
    ],
    [
        -3.937_193_8e-1,
        4.475_844_8e-1,
        1.732_511_8e-2,
        -2.871_891_6e-1,
        6.295_233_6e-4,
        5.641_514_7e-1,
        9.230_501_5e-7,
    ],
];

/// `erfc(a) e^(a^2)` for `a` in `[0.875, 10.2)` (relative error about 2 ulp).
#[inline]
pub(crate) fn erfc_scaled(a: f32) -> f32 {
    let c = if a < 1.5 {
        &ERFC_PIECES[0]
    } else if a < 2.5 {
        &ERFC_PIECES[1]
    } else if a < 4.0 {
        &ERFC_PIECES[2]
    } else {
        &ERFC_PIECES[3]
    };
    poly6(c, 1.0 / a)
}

/// `erfc(a)` for `a` in `[0.875, 10.2)`.
#[inline]
fn erfc_tail(a: f32) -> f32 {
    let g = erfc_scaled(a);
    // e^(-a^2) without the rounding error of a^2: z keeps the top 12 bits of a, so z*z is exact,
    // and -a^2 = -z^2 + (z - a)(z + a) where the correction is small.
    let z = f32::from_bits(a.to_bits() & 0xffff_f000);
    let e = exp(-z * z) * exp((z - a) * (z + a));
    e * g
}

/// Gauss error function. Absolute error < 8e-8 (about one ulp of values near 1) and error
/// < 1.5 ulp for `|x| < 0.875`. `erf(±inf) = ±1`; `erf(x) = ±1` exactly for `|x| >= 4`.
pub fn erf(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    if a < 0.875 {
        // erf(x) = x + x P(x^2), keeping the leading term exact.
        return x + x * poly6(&ERF_SMALL, x * x);
    }
    if a >= 4.0 {
        // erfc(4) = 1.5e-8 is below half an ulp of 1.
        return 1.0f32.copysign(x);
    }
    (1.0 - erfc_tail(a)).copysign(x)
}

/// Complementary error function `1 - erf(x)`, accurate in the positive tail: relative error
/// < 5 ulp while the result is a normal f32 (`x < 9.3`); `0` for `x >= 10.2`;
/// `erfc(x) = 2 - erfc(-x)` for negative `x`.
pub fn erfc(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    if a < 0.875 {
        return 1.0 - erf(x);
    }
    let t = if a < 10.2 { erfc_tail(a) } else { 0.0 };
    if x > 0.0 {
        t
    } else {
        2.0 - t
    }
}

// ---------------------------------------------------------------------------------------------
// powf, evaluated in f64 so that the error of ln(x) is not magnified by y.

/// `ln(d)` for a positive, finite, normal f64 `d` converted from an f32 (relative error ~1e-16).
fn ln_f64(d: f64) -> f64 {
    let bits = d.to_bits();
    let mut k = ((bits >> 52) as i64) - 1023;
    let mut m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    if m > core::f64::consts::SQRT_2 {
        m *= 0.5;
        k += 1;
    }
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    // 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + ...); z < 0.0295, 12 terms reach 1e-19.
    let mut p = 1.0 / 25.0;
    let mut j = 11;
    while j >= 0 {
        p = p * z + 1.0 / (2 * j + 1) as f64;
        j -= 1;
    }
    k as f64 * core::f64::consts::LN_2 + 2.0 * s * p
}

/// `e^t` for `t` in `[-105, 90]` (relative error ~1e-14), as f64.
fn exp_f64(t: f64) -> f64 {
    let n = {
        let q = t * core::f64::consts::LOG2_E;
        // round to nearest via the f64 shift trick (|q| < 2^51)
        let shift = 6_755_399_441_055_744.0; // 1.5 * 2^52
        (q + shift) - shift
    };
    let r = t - n * core::f64::consts::LN_2;
    // Taylor series to degree 14 on |r| <= 0.35: truncation < 1e-18.
    let mut p = 1.0;
    let mut j = 14;
    while j >= 1 {
        p = 1.0 + p * r / j as f64;
        j -= 1;
    }
    p * f64::from_bits(((n as i64 + 1023) as u64) << 52)
}

/// Whether an f32 is an integer, and whether it is odd.
#[inline]
fn int_parity(y: f32) -> (bool, bool) {
    if !y.is_finite() {
        return (false, false);
    }
    if y.abs() >= 16_777_216.0 {
        return (true, false); // >= 2^24: even integers only
    }
    let t = trunc(y);
    (t == y, t == y && (t as i32) & 1 == 1)
}

/// `x^y` with C99/IEEE-754 `pow` special cases (as numpy and ONNX Runtime): `x^±0 = 1` and
/// `1^y = 1` even for NaN, a negative base needs an integer exponent (else NaN), signed zeros
/// and infinities follow the parity of `y`. Finite cases are computed as `exp(y ln|x|)` in f64
/// and rounded once, so the error is < 1 ulp (overflow gives `inf`, underflow `0`).
pub fn powf(x: f32, y: f32) -> f32 {
    if y == 0.0 || x == 1.0 {
        return 1.0;
    }
    if x.is_nan() || y.is_nan() {
        return f32::NAN;
    }
    let (y_int, y_odd) = int_parity(y);
    if x == 0.0 {
        return if y < 0.0 {
            if y_odd {
                f32::INFINITY.copysign(x)
            } else {
                f32::INFINITY
            }
        } else if y_odd {
            x
        } else {
            0.0
        };
    }
    if y.is_infinite() {
        let ax = x.abs();
        return if ax == 1.0 {
            1.0
        } else if (ax < 1.0) == (y < 0.0) {
            f32::INFINITY
        } else {
            0.0
        };
    }
    if x.is_infinite() {
        let neg = x < 0.0 && y_odd;
        let mag = if y < 0.0 { 0.0 } else { f32::INFINITY };
        return if neg { -mag } else { mag };
    }
    if x < 0.0 && !y_int {
        return f32::NAN;
    }
    let t = y as f64 * ln_f64(x.abs() as f64);
    let mag = if t > 90.0 {
        f32::INFINITY
    } else if t < -105.0 {
        0.0
    } else {
        exp_f64(t) as f32
    };
    if x < 0.0 && y_odd {
        -mag
    } else {
        mag
    }
}
