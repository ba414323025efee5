//! Vector transcendental functions for NEON (4 x f32), used by the element-wise kernels and the
//! GEMM epilogues. Same algorithms and constants as the AVX2/AVX-512 ones (`x86_64/math.rs`), so
//! both ISAs share one error budget:
//!
//! | function | bound (asserted by `targets/tests/neon.rs` against the scalar reference) |
//! |---|---|
//! | `exp` | relative 3e-7 on `[-87, 88.7]`; `+inf` above 88.73, flushes toward 0 below -87.3 |
//! | `erf` | absolute 5e-7 (rational minimax on `[-4, 4]`, `±1` outside) |
//! | `sigmoid` | absolute 3e-7 |
//! | `gelu` | absolute `5e-7 * max(1, |x|)`; `-0` below -15 (so `gelu(-inf) = -0`) |
//! | `tanh` | absolute 6e-7 |
//!
//! NaN inputs give NaN outputs: the clamps use `vmaxq`/`vminq` (FMAX/FMIN), which propagate
//! NaN, not the `*nm` forms.

use core::arch::aarch64::*;

use crate::vmath::*;
/// Below this GELU is smaller than the least subnormal (the reference returns `-0` for
/// `x / sqrt 2 < -10.2`); selecting `-0` there also avoids `-inf * 0` at `x = -inf`.
const GELU_ZERO_BELOW: f32 = -15.0;

/// `y * 2^n` for integral `n` in `[-151, 129]`, in two factors so each stays a normal float.
#[inline]
#[target_feature(enable = "neon")]
fn scale(y: float32x4_t, n: float32x4_t) -> float32x4_t {
    let n = vcvtq_s32_f32(n);
    let n1 = vshrq_n_s32::<1>(n);
    let n2 = vsubq_s32(n, n1);
    let bias = vdupq_n_s32(127);
    let s1 = vreinterpretq_f32_s32(vshlq_n_s32::<23>(vaddq_s32(n1, bias)));
    let s2 = vreinterpretq_f32_s32(vshlq_n_s32::<23>(vaddq_s32(n2, bias)));
    vmulq_f32(vmulq_f32(y, s1), s2)
}

/// `e^x` (see the module table): `x = n ln2 + r`, Cephes polynomial for `e^r`, then `2^n`.
///
/// # Safety
/// Callable only where the CPU has NEON (every aarch64 CPU; an `Isa` of kind Neon proves it).
#[inline]
#[target_feature(enable = "neon")]
pub fn exp(x: float32x4_t) -> float32x4_t {
    let x = vminq_f32(vdupq_n_f32(EXP_HI), vmaxq_f32(vdupq_n_f32(EXP_LO), x));
    let n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(LOG2E)));
    let r = vfmsq_f32(x, n, vdupq_n_f32(LN2_HI));
    let r = vfmsq_f32(r, n, vdupq_n_f32(LN2_LO));
    let mut p = vdupq_n_f32(P0);
    p = vfmaq_f32(vdupq_n_f32(P1), p, r);
    p = vfmaq_f32(vdupq_n_f32(P2), p, r);
    p = vfmaq_f32(vdupq_n_f32(P3), p, r);
    p = vfmaq_f32(vdupq_n_f32(P4), p, r);
    p = vfmaq_f32(vdupq_n_f32(P5), p, r);
    let r2 = vmulq_f32(r, r);
    let y = vaddq_f32(vfmaq_f32(r, p, r2), vdupq_n_f32(1.0));
    scale(y, n)
}

/// `erf(x)` (see the module table).
///
/// # Safety
/// Callable only where the CPU has NEON (every aarch64 CPU; an `Isa` of kind Neon proves it).
#[inline]
#[target_feature(enable = "neon")]
pub fn erf(x: float32x4_t) -> float32x4_t {
    let x = vminq_f32(vdupq_n_f32(4.0), vmaxq_f32(vdupq_n_f32(-4.0), x));
    let x2 = vmulq_f32(x, x);
    let mut p = vdupq_n_f32(EA[6]);
    p = vfmaq_f32(vdupq_n_f32(EA[5]), x2, p);
    p = vfmaq_f32(vdupq_n_f32(EA[4]), x2, p);
    p = vfmaq_f32(vdupq_n_f32(EA[3]), x2, p);
    p = vfmaq_f32(vdupq_n_f32(EA[2]), x2, p);
    p = vfmaq_f32(vdupq_n_f32(EA[1]), x2, p);
    p = vfmaq_f32(vdupq_n_f32(EA[0]), x2, p);
    p = vmulq_f32(x, p);
    let mut q = vdupq_n_f32(EB[4]);
    q = vfmaq_f32(vdupq_n_f32(EB[3]), x2, q);
    q = vfmaq_f32(vdupq_n_f32(EB[2]), x2, q);
    q = vfmaq_f32(vdupq_n_f32(EB[1]), x2, q);
    q = vfmaq_f32(vdupq_n_f32(EB[0]), x2, q);
    vdivq_f32(p, q)
}

/// `1 / (1 + e^-x)`.
///
/// # Safety
/// Callable only where the CPU has NEON (every aarch64 CPU; an `Isa` of kind Neon proves it).
#[inline]
#[target_feature(enable = "neon")]
pub fn sigmoid(x: float32x4_t) -> float32x4_t {
    let one = vdupq_n_f32(1.0);
    let e = exp(vnegq_f32(x));
    vdivq_f32(one, vaddq_f32(one, e))
}

/// `0.5 x (1 + erf(x / sqrt 2))`, `-0` below -15.
///
/// # Safety
/// Callable only where the CPU has NEON (every aarch64 CPU; an `Isa` of kind Neon proves it).
#[inline]
#[target_feature(enable = "neon")]
pub fn gelu(x: float32x4_t) -> float32x4_t {
    let e = erf(vmulq_f32(x, vdupq_n_f32(core::f32::consts::FRAC_1_SQRT_2)));
    let g = vmulq_f32(
        vmulq_f32(vdupq_n_f32(0.5), x),
        vaddq_f32(vdupq_n_f32(1.0), e),
    );
    let tiny = vcltq_f32(x, vdupq_n_f32(GELU_ZERO_BELOW));
    vbslq_f32(tiny, vdupq_n_f32(-0.0), g)
}

/// `x sigmoid(x)`, `-0` below -150 (as the reference; avoids `-inf * 0` at `x = -inf`).
///
/// # Safety
/// Callable only where the CPU has NEON (every aarch64 CPU; an `Isa` of kind Neon proves it).
#[inline]
#[target_feature(enable = "neon")]
pub fn silu(x: float32x4_t) -> float32x4_t {
    let tiny = vcltq_f32(x, vdupq_n_f32(-150.0));
    vbslq_f32(tiny, vdupq_n_f32(-0.0), vmulq_f32(x, sigmoid(x)))
}

/// `tanh(x) = 2 sigmoid(2x) - 1` (absolute error 6e-7).
///
/// # Safety
/// Callable only where the CPU has NEON (every aarch64 CPU; an `Isa` of kind Neon proves it).
#[inline]
#[target_feature(enable = "neon")]
pub fn tanh(x: float32x4_t) -> float32x4_t {
    let s = sigmoid(vaddq_f32(x, x));
    vsubq_f32(vaddq_f32(s, s), vdupq_n_f32(1.0))
}
