//! Kernels for the mote inference engine.
//!
//! `generic` holds the portable scalar reference: the fallback on every target and the oracle
//! that every ISA kernel is tested against. The kernels here are pure functions over slices:
//! they never allocate, and all geometry they receive has been validated by the engine when the
//! model was loaded, so an index derived from geometry is in bounds. Data-dependent indices
//! (Gather, GatherElements) are checked per element and reported as [`KernelError`].
#![no_std]
#![warn(missing_docs)]

#[cfg(feature = "std")]
extern crate std;

#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
pub mod aarch64;
// Shared plumbing of the SIMD kernels; targets without them (Cortex-M, armv7, RISC-V) run the
// scalar reference only and need none of it (the GEMM module still packs and reads panels).
#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "aarch64", target_feature = "neon")
))]
mod dwconv;
pub mod fp16;
#[cfg_attr(
    not(any(
        target_arch = "x86_64",
        all(target_arch = "aarch64", target_feature = "neon")
    )),
    allow(dead_code)
)]
pub mod gemm;
pub mod generic;
pub mod isa;
pub mod kernels;
pub mod profile;
pub mod program;
pub mod q8;
#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "aarch64", target_feature = "neon")
))]
mod qgemm;
#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "aarch64", target_feature = "neon")
))]
mod vmath;
#[cfg(target_arch = "x86_64")]
pub mod x86_64;

pub use isa::{Isa, IsaKind};

/// Largest tensor rank any kernel handles.
pub const MAX_RANK: usize = 8;

/// An element-wise function applied in a kernel epilogue (after bias) or as a standalone step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// Identity.
    None,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, lo), hi)`.
    Clip {
        /// Lower bound.
        lo: f32,
        /// Upper bound.
        hi: f32,
    },
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// Exact GELU, `0.5 x (1 + erf(x / sqrt 2))`.
    Gelu,
    /// `x * sigmoid(x)` (SiLU / swish), as [`UnaryOp::Silu`].
    Silu,
}

/// Element-wise unary functions on f32.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    /// Copy.
    Identity,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, lo), hi)`.
    Clip {
        /// Lower bound.
        lo: f32,
        /// Upper bound.
        hi: f32,
    },
    /// Logistic sigmoid.
    Sigmoid,
    /// Exact (erf) GELU.
    Gelu,
    /// Gauss error function.
    Erf,
    /// `e^x`.
    Exp,
    /// Natural logarithm.
    Log,
    /// `-x`.
    Neg,
    /// `-1, 0, +1` (ONNX `Sign`: `sign(0) = 0`, NaN stays NaN).
    Sign,
    /// `1 / x`.
    Reciprocal,
    /// `|x|`.
    Abs,
    /// Square root.
    Sqrt,
    /// Hyperbolic tangent.
    Tanh,
    /// Round down.
    Floor,
    /// Round up.
    Ceil,
    /// Round half to even (ONNX `Round`).
    Round,
    /// `x if x >= 0 else alpha x`.
    LeakyRelu {
        /// Slope for negative inputs.
        alpha: f32,
    },
    /// `max(0, min(1, alpha x + beta))`.
    HardSigmoid {
        /// Slope.
        alpha: f32,
        /// Offset.
        beta: f32,
    },
    /// `x * max(0, min(1, x/6 + 1/2))`.
    HardSwish,
    /// `ln(1 + e^x)`.
    Softplus,
    /// `x * sigmoid(x)`.
    Silu,
    /// `x` raised to a constant power.
    PowConst {
        /// Exponent.
        exp: f32,
    },
    /// `x * k + c` with constants (folded scalar Mul/Add chains).
    Affine {
        /// Scale.
        k: f32,
        /// Offset.
        c: f32,
    },
}

/// Element-wise binary arithmetic on f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    /// `a + b`.
    Add,
    /// `a - b`.
    Sub,
    /// `a * b`.
    Mul,
    /// `a / b`.
    Div,
    /// `a ^ b` (`powf`).
    Pow,
    /// `max(a, b)`.
    Max,
    /// `min(a, b)`.
    Min,
}

/// Element-wise comparisons on f32; the result is a bool stored as `u8` 0/1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    /// `a == b`.
    Equal,
    /// `a < b`.
    Less,
    /// `a <= b`.
    LessOrEqual,
    /// `a > b`.
    Greater,
    /// `a >= b`.
    GreaterOrEqual,
}

/// Reductions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    /// Sum.
    Sum,
    /// Arithmetic mean.
    Mean,
    /// Maximum.
    Max,
    /// Minimum.
    Min,
    /// Product.
    Prod,
    /// Sum of absolute values.
    L1,
    /// Euclidean norm.
    L2,
    /// Sum of squares.
    SumSquare,
}

/// Pooling kind for [`generic::pool::pool2d_f32`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    /// Maximum over the window (padding never wins).
    Max,
    /// Mean over the window; `count_include_pad` counts padded positions in the divisor.
    Avg {
        /// ONNX `count_include_pad`.
        count_include_pad: bool,
    },
}

/// Padding mode for [`generic::pad::pad`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PadMode {
    /// Fill with a constant (the kernel receives the value as `T`).
    Constant,
    /// Mirror without repeating the edge (`[a b c] -> b a | a b c | b a`).
    Reflect,
    /// Repeat the edge value.
    Edge,
}

/// Geometry of a 2-D convolution over NCHW tensors (1-D convs use `h_in = h_out = kh = 1`).
///
/// Weight layout: `[c_out, c_in / groups, kh, kw]`, row-major. Output `[n, c_out, h_out, w_out]`.
/// Invariants (checked by the engine at load): `groups` divides `c_in` and `c_out`; all sizes
/// non-zero except `n`; `h_out`/`w_out` follow the ONNX formula for the given pads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Conv2dGeom {
    /// Batch.
    pub n: usize,
    /// Input channels.
    pub c_in: usize,
    /// Input height.
    pub h_in: usize,
    /// Input width.
    pub w_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Output height.
    pub h_out: usize,
    /// Output width.
    pub w_out: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Vertical stride.
    pub stride_h: usize,
    /// Horizontal stride.
    pub stride_w: usize,
    /// Vertical dilation.
    pub dil_h: usize,
    /// Horizontal dilation.
    pub dil_w: usize,
    /// Zero rows added above.
    pub pad_top: usize,
    /// Zero columns added on the left.
    pub pad_left: usize,
    /// Channel groups (`c_in` for depthwise).
    pub groups: usize,
}

/// Geometry of a 2-D pooling window over NCHW tensors (`c` counts `n * channels`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Pool2dGeom {
    /// Planes (`batch * channels`).
    pub planes: usize,
    /// Input height.
    pub h_in: usize,
    /// Input width.
    pub w_in: usize,
    /// Output height.
    pub h_out: usize,
    /// Output width.
    pub w_out: usize,
    /// Window height.
    pub kh: usize,
    /// Window width.
    pub kw: usize,
    /// Vertical stride.
    pub stride_h: usize,
    /// Horizontal stride.
    pub stride_w: usize,
    /// Vertical dilation.
    pub dil_h: usize,
    /// Horizontal dilation.
    pub dil_w: usize,
    /// Padding above.
    pub pad_top: usize,
    /// Padding on the left.
    pub pad_left: usize,
}

/// A data-dependent failure inside a kernel (an index read from a tensor is out of range).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelError {
    /// A gather index was outside `[-len, len)`.
    IndexOutOfRange {
        /// The offending index.
        index: i64,
        /// The axis length it indexes.
        len: usize,
    },
}
