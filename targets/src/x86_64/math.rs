//! Vector transcendental functions for AVX2 and AVX-512, used by the element-wise kernels and
//! the GEMM epilogues.
//!
//! | function | bound (asserted by `targets/tests/isa.rs` against the scalar reference) |
//! |---|---|
//! | `exp` | relative 3e-7 on `[-87, 88.7]`; `+inf` above 88.73, flushes toward 0 below -87.3 |
//! | `erf` | absolute 5e-7 (rational minimax on `[-4, 4]`, `±1` outside) |
//! | `sigmoid` | absolute 3e-7 |
//! | `gelu` | absolute `5e-7 * max(1, |x|)` |
//!
//! NaN inputs give NaN outputs.

use core::arch::x86_64::*;

use crate::vmath::*;

macro_rules! vmath {
    ($feat:literal, $V:ty, $set1:ident, $add:ident, $sub:ident, $mul:ident, $div:ident,
     $fmadd:ident, $fnmadd:ident, $min:ident, $max:ident, $round:ident, $scale:ident,
     $exp:ident, $erf:ident, $sigmoid:ident, $gelu:ident, $tanh:ident) => {
        /// `e^x` (see the module table).
        ///
        /// # Safety
        /// Callable only where the CPU has the target features (`Isa` proves it).
        #[inline]
        #[target_feature(enable = $feat)]
        pub fn $exp(x: $V) -> $V {
            let x = $min($set1(EXP_HI), $max($set1(EXP_LO), x));
            let n = $round($mul(x, $set1(LOG2E)));
            let r = $fnmadd(n, $set1(LN2_HI), x);
            let r = $fnmadd(n, $set1(LN2_LO), r);
            let mut p = $set1(P0);
            p = $fmadd(p, r, $set1(P1));
            p = $fmadd(p, r, $set1(P2));
            p = $fmadd(p, r, $set1(P3));
            p = $fmadd(p, r, $set1(P4));
            p = $fmadd(p, r, $set1(P5));
            let r2 = $mul(r, r);
            let y = $add($fmadd(p, r2, r), $set1(1.0));
            $scale(y, n)
        }

        /// `erf(x)` (see the module table).
        ///
        /// # Safety
        /// Callable only where the CPU has the target features (`Isa` proves it).
        #[inline]
        #[target_feature(enable = $feat)]
        pub fn $erf(x: $V) -> $V {
            let x = $min($set1(4.0), $max($set1(-4.0), x));
            let x2 = $mul(x, x);
            let mut p = $set1(EA[6]);
            p = $fmadd(x2, p, $set1(EA[5]));
            p = $fmadd(x2, p, $set1(EA[4]));
            p = $fmadd(x2, p, $set1(EA[3]));
            p = $fmadd(x2, p, $set1(EA[2]));
            p = $fmadd(x2, p, $set1(EA[1]));
            p = $fmadd(x2, p, $set1(EA[0]));
            p = $mul(x, p);
            let mut q = $set1(EB[4]);
            q = $fmadd(x2, q, $set1(EB[3]));
            q = $fmadd(x2, q, $set1(EB[2]));
            q = $fmadd(x2, q, $set1(EB[1]));
            q = $fmadd(x2, q, $set1(EB[0]));
            $div(p, q)
        }

        /// `1 / (1 + e^-x)`.
        ///
        /// # Safety
        /// Callable only where the CPU has the target features (`Isa` proves it).
        #[inline]
        #[target_feature(enable = $feat)]
        pub fn $sigmoid(x: $V) -> $V {
            let one = $set1(1.0);
            let e = $exp($sub($set1(0.0), x));
            $div(one, $add(one, e))
        }

        /// `0.5 x (1 + erf(x / sqrt 2))`.
        ///
        /// # Safety
        /// Callable only where the CPU has the target features (`Isa` proves it).
        #[inline]
        #[target_feature(enable = $feat)]
        pub fn $gelu(x: $V) -> $V {
            let e = $erf($mul(x, $set1(core::f32::consts::FRAC_1_SQRT_2)));
            $mul($mul($set1(0.5), x), $add($set1(1.0), e))
        }

        /// `tanh(x) = 2 sigmoid(2x) - 1` (absolute error 6e-7).
        ///
        /// # Safety
        /// Callable only where the CPU has the target features (`Isa` proves it).
        #[inline]
        #[target_feature(enable = $feat)]
        pub fn $tanh(x: $V) -> $V {
            let s = $sigmoid($add(x, x));
            $sub($add(s, s), $set1(1.0))
        }
    };
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn round256(x: __m256) -> __m256 {
    _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(x)
}

/// `y * 2^n` for integral `n` in `[-151, 129]`, in two factors so each stays a normal float.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn scale256(y: __m256, n: __m256) -> __m256 {
    let n = _mm256_cvtps_epi32(n);
    let n1 = _mm256_srai_epi32::<1>(n);
    let n2 = _mm256_sub_epi32(n, n1);
    let bias = _mm256_set1_epi32(127);
    let s1 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(n1, bias)));
    let s2 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(n2, bias)));
    _mm256_mul_ps(_mm256_mul_ps(y, s1), s2)
}

vmath!(
    "avx2,fma",
    __m256,
    _mm256_set1_ps,
    _mm256_add_ps,
    _mm256_sub_ps,
    _mm256_mul_ps,
    _mm256_div_ps,
    _mm256_fmadd_ps,
    _mm256_fnmadd_ps,
    _mm256_min_ps,
    _mm256_max_ps,
    round256,
    scale256,
    exp256,
    erf256,
    sigmoid256,
    gelu256,
    tanh256
);

#[inline]
#[target_feature(enable = "avx512f")]
fn round512(x: __m512) -> __m512 {
    _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(x)
}

#[inline]
#[target_feature(enable = "avx512f")]
fn scale512(y: __m512, n: __m512) -> __m512 {
    _mm512_scalef_ps(y, n)
}

vmath!(
    "avx512f",
    __m512,
    _mm512_set1_ps,
    _mm512_add_ps,
    _mm512_sub_ps,
    _mm512_mul_ps,
    _mm512_div_ps,
    _mm512_fmadd_ps,
    _mm512_fnmadd_ps,
    _mm512_min_ps,
    _mm512_max_ps,
    round512,
    scale512,
    exp512,
    erf512,
    sigmoid512,
    gelu512,
    tanh512
);
