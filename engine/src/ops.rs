//! The step vocabulary: every op the runtime executes, its parameter encoding, and the check
//! that its parameters fit its operands. Op ids and parameter layouts are part of the file
//! format: new ops are appended, existing encodings never change.
#![forbid(unsafe_code)]

use crate::error::Error;
use crate::format::{caps, le_u32, DType, MAX_RANK};
use mote_targets::program::{
    Instr, LogicOp, Program, PROGRAM_MAX_INSTRS, PROGRAM_OPERANDS, PROGRAM_REG0, PROGRAM_REGS,
};
use mote_targets::{
    Activation, BinaryOp, CompareOp, Conv2dGeom, PadMode, Pool2dGeom, PoolKind, ReduceOp, UnaryOp,
};

/// Op ids as stored in step records.
pub mod code {
    /// [`super::Op::Conv2d`].
    pub const CONV2D: u16 = 1;
    /// [`super::Op::MatMul`].
    pub const MATMUL: u16 = 2;
    /// [`super::Op::Binary`].
    pub const BINARY: u16 = 3;
    /// [`super::Op::Compare`].
    pub const COMPARE: u16 = 4;
    /// [`super::Op::Logic`].
    pub const LOGIC: u16 = 5;
    /// [`super::Op::Where`].
    pub const WHERE: u16 = 6;
    /// [`super::Op::Unary`].
    pub const UNARY: u16 = 7;
    /// [`super::Op::Cast`].
    pub const CAST: u16 = 8;
    /// [`super::Op::Softmax`].
    pub const SOFTMAX: u16 = 9;
    /// [`super::Op::LayerNorm`].
    pub const LAYER_NORM: u16 = 10;
    /// [`super::Op::InstanceNorm`].
    pub const INSTANCE_NORM: u16 = 11;
    /// [`super::Op::ChannelAffine`].
    pub const CHANNEL_AFFINE: u16 = 12;
    /// [`super::Op::Reduce`].
    pub const REDUCE: u16 = 13;
    /// [`super::Op::ArgMax`].
    pub const ARGMAX: u16 = 14;
    /// [`super::Op::Gather`].
    pub const GATHER: u16 = 15;
    /// [`super::Op::GatherElements`].
    pub const GATHER_ELEMENTS: u16 = 16;
    /// [`super::Op::Copy`].
    pub const COPY: u16 = 17;
    /// [`super::Op::Pad`].
    pub const PAD: u16 = 18;
    /// [`super::Op::Pool2d`].
    pub const POOL2D: u16 = 19;
    /// [`super::Op::LayerNormAxis`] (format 1.1).
    pub const LAYER_NORM_AXIS: u16 = 20;
    /// [`super::Op::Elementwise`] (format 1.1). Ids 21-24 are reserved for the int8 ops.
    pub const ELEMENTWISE: u16 = 25;
    /// [`super::Op::ElementwiseReduce`] (format 1.2).
    pub const ELEMENTWISE_REDUCE: u16 = 26;
    /// [`super::Op::Quantize`] (int8, feature `op-int8`).
    pub const QUANTIZE: u16 = 21;
    /// [`super::Op::Dequantize`] (int8, feature `op-int8`).
    pub const DEQUANTIZE: u16 = 22;
    /// [`super::Op::QConv2d`] (int8, feature `op-int8`).
    pub const QCONV2D: u16 = 23;
    /// [`super::Op::QMatMul`] (int8, feature `op-int8`).
    pub const QMATMUL: u16 = 24;
}

/// What an int8 layer ([`Op::QConv2d`], [`Op::QMatMul`]) writes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum QOut {
    /// `u8` requantized with per-channel fixed-point multipliers to the output zero point,
    /// clamped to `[lo, hi]` (a fused ReLU or clip).
    U8 {
        /// Output zero point.
        zp: u8,
        /// Lowest output value.
        lo: u8,
        /// Highest output value.
        hi: u8,
    },
    /// `f32`: the accumulator times a per-channel scale (`qgemm_f32out`), then `act`, for
    /// layers whose consumer is f32.
    F32 {
        /// The activation applied to the f32 result (SiLU, GELU, ... of the layer).
        act: Activation,
    },
}

/// The quantization words shared by the int8 layers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QParams {
    /// Zero point of the `u8` input.
    pub x_zp: u8,
    /// Output form.
    pub out: QOut,
}

impl QParams {
    /// Bytes of the requantization blob per output channel: `i32` bias, `i32` multiplier and
    /// `i8` shift for a `u8` output; `i32` bias and `f32` scale for an `f32` output.
    pub fn rq_bytes_per_channel(&self) -> usize {
        match self.out {
            QOut::U8 { .. } => 9,
            QOut::F32 { .. } => 8,
        }
    }
    /// The output dtype.
    pub fn out_dtype(&self) -> DType {
        match self.out {
            QOut::U8 { .. } => DType::U8,
            QOut::F32 { .. } => DType::F32,
        }
    }
}

/// Whether an int8 convolution is depthwise (`groups == c_in == c_out > 1`): it then runs
/// `qdwconv2d` over plain `[c, kh × kw]` weights instead of per-group GEMMs.
pub fn q_depthwise(g: &Conv2dGeom) -> bool {
    g.groups > 1 && g.groups == g.c_in && g.groups == g.c_out
}

/// Whether an int8 dense convolution reads its input directly as the GEMM operand (1×1,
/// stride 1, no padding): no im2col.
pub fn q_direct(g: &Conv2dGeom) -> bool {
    g.kh == 1
        && g.kw == 1
        && g.stride_h == 1
        && g.stride_w == 1
        && g.pad_top == 0
        && g.pad_left == 0
        && g.h_in == g.h_out
        && g.w_in == g.w_out
}

/// Output dims plus per-operand element strides (0 = broadcast) for element-wise ops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bcast<const N: usize> {
    /// Rank of the iteration space.
    pub rank: usize,
    /// Output dims.
    pub dims: [usize; MAX_RANK],
    /// Strides of each operand, in elements.
    pub strides: [[usize; MAX_RANK]; N],
}

impl<const N: usize> Default for Bcast<N> {
    fn default() -> Self {
        Bcast {
            rank: 0,
            dims: [0; MAX_RANK],
            strides: [[0; MAX_RANK]; N],
        }
    }
}

impl<const N: usize> Bcast<N> {
    /// The first `rank` dims.
    pub fn dims(&self) -> &[usize] {
        head(&self.dims, self.rank)
    }
    /// The first `rank` strides of operand `i`.
    pub fn strides(&self, i: usize) -> &[usize] {
        head(&self.strides[i], self.rank)
    }
}

/// The first `n` elements of a fixed-size geometry array. Decoding bounds every rank by the
/// array length (`ParamReader::rank`); the `min` only lets the compiler see it, so running a
/// step has no slice-index panic path (the firmware image links none for these).
#[inline]
pub(crate) fn head<T, const N: usize>(a: &[T; N], n: usize) -> &[T] {
    &a[..n.min(N)]
}

/// Geometry of a batched matrix product `out[b] = act(alpha · A[b] · B[b] + bias)`.
/// Output is contiguous `[batch dims…, m, n]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MatMulGeom {
    /// Number of batch dims (<= 6).
    pub batch_rank: usize,
    /// Batch dims.
    pub batch: [usize; 6],
    /// Element stride of A per batch dim (0 = broadcast).
    pub a_bs: [usize; 6],
    /// Element stride of B per batch dim (0 = broadcast).
    pub b_bs: [usize; 6],
    /// Rows of A and of the output.
    pub m: usize,
    /// Columns of B and of the output.
    pub n: usize,
    /// Shared dimension.
    pub k: usize,
    /// A row stride.
    pub a_rs: usize,
    /// A column stride.
    pub a_cs: usize,
    /// B row stride.
    pub b_rs: usize,
    /// B column stride.
    pub b_cs: usize,
    /// Scale of the product.
    pub alpha: f32,
    /// Fused epilogue.
    pub act: Activation,
}

impl Default for MatMulGeom {
    fn default() -> Self {
        MatMulGeom {
            batch_rank: 0,
            batch: [0; 6],
            a_bs: [0; 6],
            b_bs: [0; 6],
            m: 0,
            n: 0,
            k: 0,
            a_rs: 0,
            a_cs: 0,
            b_rs: 0,
            b_cs: 0,
            alpha: 1.0,
            act: Activation::None,
        }
    }
}

/// A strided copy (see `mote_targets::generic::copy::copy_strided`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CopyGeom {
    /// Rank of the iteration space.
    pub rank: usize,
    /// Iteration dims.
    pub dims: [usize; MAX_RANK],
    /// Source offset, elements.
    pub src_off: usize,
    /// Source strides, elements.
    pub src_strides: [isize; MAX_RANK],
    /// Destination offset, elements.
    pub dst_off: usize,
    /// Destination strides, elements.
    pub dst_strides: [isize; MAX_RANK],
}

/// One executable step. Operand order is listed per variant; `?` marks an optional operand.
// `Elementwise` holds its whole program (about 850 bytes, three times the next variant): the
// core has no allocator to box it, and a step is decoded once per run onto the stack.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    /// in: x `[n,c_in,h,w]` f32, weight `[c_out,c_in/g,kh,kw]` f32, bias? `[c_out]`.
    Conv2d {
        /// Geometry.
        g: Conv2dGeom,
        /// Fused epilogue.
        act: Activation,
    },
    /// in: a, b, bias? `[n]` — all f32.
    MatMul(MatMulGeom),
    /// in: a, b (f32) -> f32.
    Binary {
        /// Operation.
        op: BinaryOp,
        /// Broadcast geometry.
        bc: Bcast<2>,
    },
    /// in: a, b (f32) -> bool.
    Compare {
        /// Comparison.
        op: CompareOp,
        /// Broadcast geometry.
        bc: Bcast<2>,
    },
    /// in: a, b? (bool) -> bool. kind 0 and, 1 or, 2 xor, 3 not (b absent).
    Logic {
        /// Which function.
        kind: u8,
        /// Broadcast geometry.
        bc: Bcast<2>,
    },
    /// in: cond (bool), x, y (same dtype) -> that dtype.
    Where {
        /// Broadcast geometry (operands cond, x, y).
        bc: Bcast<3>,
    },
    /// in: x f32 -> f32, same element count.
    Unary {
        /// Function.
        op: UnaryOp,
    },
    /// in: x -> output dtype, same element count (float -> int truncates toward zero; values
    /// outside the target range, which ONNX leaves undefined, give a deterministic but
    /// unspecified result; anything -> bool is `!= 0`).
    Cast,
    /// in: x f32 `[outer, axis, inner]`.
    Softmax {
        /// Rows.
        outer: usize,
        /// Softmax axis length.
        axis: usize,
        /// Trailing elements.
        inner: usize,
        /// LogSoftmax.
        log: bool,
    },
    /// in: x f32 `[outer, size]`, scale? `[size]`, bias? `[size]`.
    LayerNorm {
        /// Rows.
        outer: usize,
        /// Normalized elements per row.
        size: usize,
        /// Epsilon.
        eps: f32,
    },
    /// in: x f32 `[outer, size, inner]`, scale? `[size]`, bias? `[size]`: LayerNorm over the
    /// middle axis (channels of NCHW), as if it were transposed last.
    LayerNormAxis {
        /// Leading elements (batch).
        outer: usize,
        /// Normalized elements (channels), stride `inner`.
        size: usize,
        /// Trailing elements (spatial positions).
        inner: usize,
        /// Epsilon.
        eps: f32,
    },
    /// in: x f32 `[n, c, spatial]`, scale `[c]`, bias `[c]`.
    InstanceNorm {
        /// Batch.
        n: usize,
        /// Channels.
        c: usize,
        /// Elements per plane.
        spatial: usize,
        /// Epsilon.
        eps: f32,
    },
    /// in: x f32 `[outer, c, inner]`, scale `[c]`, bias `[c]`.
    ChannelAffine {
        /// Outer count.
        outer: usize,
        /// Channels.
        c: usize,
        /// Inner count.
        inner: usize,
    },
    /// in: x f32 of `dims`, reduced over `mask` axes.
    Reduce {
        /// Reduction.
        op: ReduceOp,
        /// Rank.
        rank: usize,
        /// Input dims.
        dims: [usize; MAX_RANK],
        /// Bit k set = axis k reduced.
        mask: u32,
    },
    /// in: x f32 `[outer, axis, inner]` -> i64 `[outer, inner]`.
    ArgMax {
        /// Outer count.
        outer: usize,
        /// Axis length.
        axis: usize,
        /// Inner count.
        inner: usize,
        /// ArgMin instead.
        min: bool,
        /// Ties pick the last index.
        select_last: bool,
    },
    /// in: data `[outer, axis, inner]`, indices i64 -> `[outer, n_idx, inner]`.
    Gather {
        /// Outer count.
        outer: usize,
        /// Axis length.
        axis: usize,
        /// Inner count.
        inner: usize,
    },
    /// in: data, indices i64 (same rank) -> shape of indices.
    GatherElements {
        /// Rank.
        rank: usize,
        /// Data dims.
        data_dims: [usize; MAX_RANK],
        /// Index (= output) dims.
        idx_dims: [usize; MAX_RANK],
        /// Axis.
        axis: usize,
    },
    /// in: src -> writes part (or all) of the output.
    Copy(CopyGeom),
    /// in: x -> padded output (same dtype).
    Pad {
        /// Mode.
        mode: PadMode,
        /// Rank.
        rank: usize,
        /// Input dims.
        in_dims: [usize; MAX_RANK],
        /// Output dims.
        out_dims: [usize; MAX_RANK],
        /// Leading pad per axis (negative crops).
        begin: [isize; MAX_RANK],
        /// Fill value bits in the output dtype (constant mode).
        value: u64,
    },
    /// in: x f32 `[planes, h, w]`.
    Pool2d {
        /// Max or average.
        kind: PoolKind,
        /// Geometry.
        g: Pool2dGeom,
    },
    /// in: `prog.n_in` operands (f32 or bool) -> f32 or bool: a chain of element-wise
    /// instructions run in blocks (see `mote_targets::program`).
    Elementwise {
        /// Output dims and the strides of the first `prog.n_in` operands.
        bc: Bcast<PROGRAM_OPERANDS>,
        /// The program.
        prog: Program,
    },
    /// in: as [`Op::Elementwise`] -> f32 `[total / len]`: the program's f32 results reduced
    /// by `op` over consecutive runs of `len` (its trailing iteration dims, at most
    /// `mote_targets::program::FOLD_MAX_RUN`), bit-identical to an `Elementwise` step
    /// followed by a `Reduce` over those dims. The results are never stored.
    ElementwiseReduce {
        /// Iteration dims and the strides of the first `prog.n_in` operands.
        bc: Bcast<PROGRAM_OPERANDS>,
        /// The program.
        prog: Program,
        /// The reduction.
        op: ReduceOp,
        /// Results per reduced run.
        len: usize,
    },
    /// in: x f32 -> u8, `q = clamp(round_half_even(x / scale) + zp, 0, 255)`.
    Quantize {
        /// Scale (positive, finite).
        scale: f32,
        /// Zero point.
        zp: u8,
    },
    /// in: x u8 -> f32, `(q - zp) × scale`.
    Dequantize {
        /// Scale (positive, finite).
        scale: f32,
        /// Zero point.
        zp: u8,
    },
    /// in: x u8 `[n,c_in,h,w]`, packed i8 weights, requant blob (i8 bytes), scratch? (u8,
    /// arena) -> u8 or f32 `[n,c_out,h_out,w_out]`.
    QConv2d {
        /// Geometry.
        g: Conv2dGeom,
        /// Quantization.
        q: QParams,
    },
    /// in: x u8 (row `r`, column `c` at `r × a_rs + c × a_cs`), packed i8 weights `[n, k]`,
    /// requant blob, scratch? -> u8 or f32 `[p, n]`: `y[r, j] = Σ_c x[r, c] × W[c, j]`.
    QMatMul {
        /// Rows of x and of the output.
        p: usize,
        /// Output channels.
        n: usize,
        /// Reduction length.
        k: usize,
        /// x row stride.
        a_rs: usize,
        /// x column stride.
        a_cs: usize,
        /// Quantization.
        q: QParams,
    },
}

/// Reads parameter words from the params section.
#[derive(Debug)]
pub struct ParamReader<'a> {
    bytes: &'a [u8],
    at: usize,
    end: usize,
}

const PARAMS_SHORT: &str = "parameter list is too short";
const BAD_ENUM: &str = "parameter enum value out of range";
const BAD_VALUE: &str = "parameter out of range";

impl<'a> ParamReader<'a> {
    /// A reader over words `[first, first + len)` of the params section.
    pub fn new(
        section: &'a [u8],
        first: u32,
        len: u32,
    ) -> core::result::Result<Self, &'static str> {
        let at = (first as usize)
            .checked_mul(4)
            .ok_or("parameter range overflows")?;
        let end = at
            .checked_add(
                (len as usize)
                    .checked_mul(4)
                    .ok_or("parameter range overflows")?,
            )
            .ok_or("parameter range overflows")?;
        if end > section.len() {
            return Err("parameter range is outside the params section");
        }
        Ok(ParamReader {
            bytes: section,
            at,
            end,
        })
    }

    fn word(&mut self) -> core::result::Result<u32, &'static str> {
        if self.at + 4 > self.end {
            return Err(PARAMS_SHORT);
        }
        let w = le_u32(self.bytes, self.at, "params").map_err(|_| PARAMS_SHORT)?;
        self.at += 4;
        Ok(w)
    }
    fn usize(&mut self) -> core::result::Result<usize, &'static str> {
        Ok(self.word()? as usize)
    }
    fn isize(&mut self) -> core::result::Result<isize, &'static str> {
        Ok(self.word()? as i32 as isize)
    }
    fn f32(&mut self) -> core::result::Result<f32, &'static str> {
        Ok(f32::from_bits(self.word()?))
    }
    fn u8(&mut self) -> core::result::Result<u8, &'static str> {
        u8::try_from(self.word()?).map_err(|_| "zero point or bound above 255")
    }
    fn bool(&mut self) -> core::result::Result<bool, &'static str> {
        match self.word()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(BAD_ENUM),
        }
    }
    fn rank(&mut self, max: usize) -> core::result::Result<usize, &'static str> {
        let r = self.usize()?;
        if r > max {
            return Err("rank above the maximum");
        }
        Ok(r)
    }
    fn dims(&mut self, rank: usize) -> core::result::Result<[usize; MAX_RANK], &'static str> {
        let mut d = [0usize; MAX_RANK];
        for x in d.iter_mut().take(rank) {
            *x = self.usize()?;
        }
        Ok(d)
    }
    fn sdims(&mut self, rank: usize) -> core::result::Result<[isize; MAX_RANK], &'static str> {
        let mut d = [0isize; MAX_RANK];
        for x in d.iter_mut().take(rank) {
            *x = self.isize()?;
        }
        Ok(d)
    }
    fn finish(&self) -> core::result::Result<(), &'static str> {
        if self.at != self.end {
            return Err("parameter list is too long");
        }
        Ok(())
    }
}

fn conv_geom_decode(r: &mut ParamReader<'_>) -> core::result::Result<Conv2dGeom, &'static str> {
    let mut v = [0usize; 16];
    for x in v.iter_mut() {
        *x = r.usize()?;
    }
    Ok(Conv2dGeom {
        n: v[0],
        c_in: v[1],
        h_in: v[2],
        w_in: v[3],
        c_out: v[4],
        h_out: v[5],
        w_out: v[6],
        kh: v[7],
        kw: v[8],
        stride_h: v[9],
        stride_w: v[10],
        dil_h: v[11],
        dil_w: v[12],
        pad_top: v[13],
        pad_left: v[14],
        groups: v[15],
    })
}

fn q_scale(r: &mut ParamReader<'_>) -> core::result::Result<f32, &'static str> {
    let s = r.f32()?;
    if !(s.is_finite() && s > 0.0) {
        return Err("quantization scale must be positive and finite");
    }
    Ok(s)
}

fn qparams_decode(r: &mut ParamReader<'_>) -> core::result::Result<QParams, &'static str> {
    let x_zp = r.u8()?;
    let kind = r.word()?;
    let out = match kind {
        0 => {
            let (zp, lo, hi) = (r.u8()?, r.u8()?, r.u8()?);
            if lo > hi {
                return Err("int8 output bounds are inverted (lo > hi)");
            }
            QOut::U8 { zp, lo, hi }
        }
        // The activation's three words (all 0: none).
        1 => QOut::F32 {
            act: act_decode(r)?,
        },
        _ => return Err(BAD_ENUM),
    };
    Ok(QParams { x_zp, out })
}

fn qparams_encode(q: &QParams, w: &mut dyn FnMut(u32)) {
    w(q.x_zp as u32);
    match q.out {
        QOut::U8 { zp, lo, hi } => {
            w(0);
            w(zp as u32);
            w(lo as u32);
            w(hi as u32);
        }
        QOut::F32 { act } => {
            w(1);
            act_encode(act, w);
        }
    }
}

fn act_decode(r: &mut ParamReader<'_>) -> core::result::Result<Activation, &'static str> {
    let kind = r.word()?;
    let (p0, p1) = (r.f32()?, r.f32()?);
    Ok(match kind {
        0 => Activation::None,
        1 => Activation::Relu,
        2 => Activation::Clip { lo: p0, hi: p1 },
        3 => Activation::Sigmoid,
        4 => Activation::Gelu,
        5 => Activation::Silu,
        _ => return Err(BAD_ENUM),
    })
}

fn act_encode(a: Activation, w: &mut dyn FnMut(u32)) {
    let (k, p0, p1) = match a {
        Activation::None => (0, 0.0, 0.0),
        Activation::Relu => (1, 0.0, 0.0),
        Activation::Clip { lo, hi } => (2, lo, hi),
        Activation::Sigmoid => (3, 0.0, 0.0),
        Activation::Gelu => (4, 0.0, 0.0),
        Activation::Silu => (5, 0.0, 0.0),
    };
    w(k);
    w(f32::to_bits(p0));
    w(f32::to_bits(p1));
}

fn unary_decode(r: &mut ParamReader<'_>) -> core::result::Result<UnaryOp, &'static str> {
    let kind = r.word()?;
    let (p0, p1) = (r.f32()?, r.f32()?);
    use UnaryOp::*;
    Ok(match kind {
        0 => Identity,
        1 => Relu,
        2 => Clip { lo: p0, hi: p1 },
        3 => Sigmoid,
        4 => Gelu,
        5 => Erf,
        6 => Exp,
        7 => Log,
        8 => Neg,
        9 => Sign,
        10 => Reciprocal,
        11 => Abs,
        12 => Sqrt,
        13 => Tanh,
        14 => Floor,
        15 => Ceil,
        16 => Round,
        17 => LeakyRelu { alpha: p0 },
        18 => HardSigmoid {
            alpha: p0,
            beta: p1,
        },
        19 => HardSwish,
        20 => Softplus,
        21 => Silu,
        22 => PowConst { exp: p0 },
        23 => Affine { k: p0, c: p1 },
        _ => return Err(BAD_ENUM),
    })
}

fn unary_encode(u: UnaryOp, w: &mut dyn FnMut(u32)) {
    use UnaryOp::*;
    let (k, p0, p1) = match u {
        Identity => (0, 0.0, 0.0),
        Relu => (1, 0.0, 0.0),
        Clip { lo, hi } => (2, lo, hi),
        Sigmoid => (3, 0.0, 0.0),
        Gelu => (4, 0.0, 0.0),
        Erf => (5, 0.0, 0.0),
        Exp => (6, 0.0, 0.0),
        Log => (7, 0.0, 0.0),
        Neg => (8, 0.0, 0.0),
        Sign => (9, 0.0, 0.0),
        Reciprocal => (10, 0.0, 0.0),
        Abs => (11, 0.0, 0.0),
        Sqrt => (12, 0.0, 0.0),
        Tanh => (13, 0.0, 0.0),
        Floor => (14, 0.0, 0.0),
        Ceil => (15, 0.0, 0.0),
        Round => (16, 0.0, 0.0),
        LeakyRelu { alpha } => (17, alpha, 0.0),
        HardSigmoid { alpha, beta } => (18, alpha, beta),
        HardSwish => (19, 0.0, 0.0),
        Softplus => (20, 0.0, 0.0),
        Silu => (21, 0.0, 0.0),
        PowConst { exp } => (22, exp, 0.0),
        Affine { k, c } => (23, k, c),
    };
    w(k);
    w(f32::to_bits(p0));
    w(f32::to_bits(p1));
}

fn binary_from(k: u32) -> core::result::Result<BinaryOp, &'static str> {
    use BinaryOp::*;
    Ok(match k {
        0 => Add,
        1 => Sub,
        2 => Mul,
        3 => Div,
        4 => Pow,
        5 => Max,
        6 => Min,
        _ => return Err(BAD_ENUM),
    })
}
fn binary_id(b: BinaryOp) -> u32 {
    use BinaryOp::*;
    match b {
        Add => 0,
        Sub => 1,
        Mul => 2,
        Div => 3,
        Pow => 4,
        Max => 5,
        Min => 6,
    }
}
fn compare_from(k: u32) -> core::result::Result<CompareOp, &'static str> {
    use CompareOp::*;
    Ok(match k {
        0 => Equal,
        1 => Less,
        2 => LessOrEqual,
        3 => Greater,
        4 => GreaterOrEqual,
        _ => return Err(BAD_ENUM),
    })
}
fn compare_id(c: CompareOp) -> u32 {
    use CompareOp::*;
    match c {
        Equal => 0,
        Less => 1,
        LessOrEqual => 2,
        Greater => 3,
        GreaterOrEqual => 4,
    }
}
fn reduce_from(k: u32) -> core::result::Result<ReduceOp, &'static str> {
    use ReduceOp::*;
    Ok(match k {
        0 => Sum,
        1 => Mean,
        2 => Max,
        3 => Min,
        4 => Prod,
        5 => L1,
        6 => L2,
        7 => SumSquare,
        _ => return Err(BAD_ENUM),
    })
}
fn reduce_id(r: ReduceOp) -> u32 {
    use ReduceOp::*;
    match r {
        Sum => 0,
        Mean => 1,
        Max => 2,
        Min => 3,
        Prod => 4,
        L1 => 5,
        L2 => 6,
        SumSquare => 7,
    }
}

fn bcast_decode<const N: usize>(
    r: &mut ParamReader<'_>,
) -> core::result::Result<Bcast<N>, &'static str> {
    let rank = r.rank(MAX_RANK)?;
    let dims = r.dims(rank)?;
    let mut strides = [[0usize; MAX_RANK]; N];
    for s in strides.iter_mut() {
        *s = r.dims(rank)?;
    }
    Ok(Bcast {
        rank,
        dims,
        strides,
    })
}

fn bcast_encode<const N: usize>(b: &Bcast<N>, w: &mut dyn FnMut(u32)) {
    w(b.rank as u32);
    for &d in b.dims() {
        w(d as u32);
    }
    for i in 0..N {
        for &s in b.strides(i) {
            w(s as u32);
        }
    }
}

mod prog_code {
    pub const CONST: u32 = 0;
    pub const UNARY: u32 = 1;
    pub const BINARY: u32 = 2;
    pub const COMPARE: u32 = 3;
    pub const LOGIC: u32 = 4;
    pub const WHERE: u32 = 5;
    pub const NONZERO: u32 = 6;
}

fn logic_id(l: LogicOp) -> u32 {
    match l {
        LogicOp::And => 0,
        LogicOp::Or => 1,
        LogicOp::Xor => 2,
        LogicOp::Not => 3,
    }
}

fn program_encode(bc: &Bcast<PROGRAM_OPERANDS>, prog: &Program, w: &mut dyn FnMut(u32)) {
    w(prog.n_in as u32);
    w(bc.rank as u32);
    words_usize(w, bc.dims());
    for j in 0..prog.n_in.min(PROGRAM_OPERANDS) {
        words_usize(w, bc.strides(j));
    }
    w(prog.len as u32);
    for ins in prog.instrs() {
        match *ins {
            Instr::Const { dst, value } => {
                w(prog_code::CONST);
                w(dst as u32);
                w(value.to_bits());
            }
            Instr::Unary { dst, a, op } => {
                w(prog_code::UNARY);
                w(dst as u32);
                w(a as u32);
                unary_encode(op, w);
            }
            Instr::Binary { dst, a, b, op } => {
                w(prog_code::BINARY);
                words_usize(w, &[dst as usize, a as usize, b as usize]);
                w(binary_id(op));
            }
            Instr::Compare { dst, a, b, op } => {
                w(prog_code::COMPARE);
                words_usize(w, &[dst as usize, a as usize, b as usize]);
                w(compare_id(op));
            }
            Instr::Logic { dst, a, b, op } => {
                w(prog_code::LOGIC);
                words_usize(w, &[dst as usize, a as usize, b as usize]);
                w(logic_id(op));
            }
            Instr::Where { dst, cond, a, b } => {
                w(prog_code::WHERE);
                words_usize(w, &[dst as usize, cond as usize, a as usize, b as usize]);
            }
            Instr::NonZero { dst, a } => {
                w(prog_code::NONZERO);
                words_usize(w, &[dst as usize, a as usize]);
            }
        }
    }
}

fn slot(r: &mut ParamReader<'_>) -> core::result::Result<u8, &'static str> {
    let s = r.word()?;
    if s >= (PROGRAM_REG0 as u32) + PROGRAM_REGS as u32 {
        return Err("element-wise program slot out of range");
    }
    Ok(s as u8)
}

fn program_decode(r: &mut ParamReader<'_>) -> core::result::Result<Op, &'static str> {
    let n_in = r.usize()?;
    if n_in == 0 || n_in > PROGRAM_OPERANDS {
        return Err("element-wise program operand count out of range");
    }
    let mut bc = Bcast::<PROGRAM_OPERANDS> {
        rank: r.rank(MAX_RANK)?,
        ..Default::default()
    };
    bc.dims = r.dims(bc.rank)?;
    for j in 0..n_in {
        bc.strides[j] = r.dims(bc.rank)?;
    }
    let len = r.usize()?;
    if len == 0 || len > PROGRAM_MAX_INSTRS {
        return Err("element-wise program length out of range");
    }
    let mut prog = Program {
        n_in,
        len,
        ..Default::default()
    };
    for ins in prog.instrs.iter_mut().take(len) {
        *ins = match r.word()? {
            prog_code::CONST => Instr::Const {
                dst: slot(r)?,
                value: r.f32()?,
            },
            prog_code::UNARY => Instr::Unary {
                dst: slot(r)?,
                a: slot(r)?,
                op: unary_decode(r)?,
            },
            prog_code::BINARY => Instr::Binary {
                dst: slot(r)?,
                a: slot(r)?,
                b: slot(r)?,
                op: binary_from(r.word()?)?,
            },
            prog_code::COMPARE => Instr::Compare {
                dst: slot(r)?,
                a: slot(r)?,
                b: slot(r)?,
                op: compare_from(r.word()?)?,
            },
            prog_code::LOGIC => Instr::Logic {
                dst: slot(r)?,
                a: slot(r)?,
                b: slot(r)?,
                op: match r.word()? {
                    0 => LogicOp::And,
                    1 => LogicOp::Or,
                    2 => LogicOp::Xor,
                    3 => LogicOp::Not,
                    _ => return Err(BAD_ENUM),
                },
            },
            prog_code::WHERE => Instr::Where {
                dst: slot(r)?,
                cond: slot(r)?,
                a: slot(r)?,
                b: slot(r)?,
            },
            prog_code::NONZERO => Instr::NonZero {
                dst: slot(r)?,
                a: slot(r)?,
            },
            _ => return Err(BAD_ENUM),
        };
    }
    prog.check()?;
    Ok(Op::Elementwise { bc, prog })
}

/// Whether a convolution's weight is panel-packed in a file of `layout`.
pub fn conv_packed(layout: u32, g: &Conv2dGeom) -> bool {
    layout == mote_targets::profile::LAYOUT_PANEL6 && mote_targets::kernels::conv_uses_panels(g)
}

fn words_usize(w: &mut dyn FnMut(u32), xs: &[usize]) {
    for &x in xs {
        w(x as u32);
    }
}

impl Op {
    /// The op id stored in the step record.
    pub fn code(&self) -> u16 {
        match self {
            Op::Conv2d { .. } => code::CONV2D,
            Op::MatMul(_) => code::MATMUL,
            Op::Binary { .. } => code::BINARY,
            Op::Compare { .. } => code::COMPARE,
            Op::Logic { .. } => code::LOGIC,
            Op::Where { .. } => code::WHERE,
            Op::Unary { .. } => code::UNARY,
            Op::Cast => code::CAST,
            Op::Softmax { .. } => code::SOFTMAX,
            Op::LayerNorm { .. } => code::LAYER_NORM,
            Op::LayerNormAxis { .. } => code::LAYER_NORM_AXIS,
            Op::InstanceNorm { .. } => code::INSTANCE_NORM,
            Op::ChannelAffine { .. } => code::CHANNEL_AFFINE,
            Op::Reduce { .. } => code::REDUCE,
            Op::ArgMax { .. } => code::ARGMAX,
            Op::Gather { .. } => code::GATHER,
            Op::GatherElements { .. } => code::GATHER_ELEMENTS,
            Op::Copy(_) => code::COPY,
            Op::Pad { .. } => code::PAD,
            Op::Pool2d { .. } => code::POOL2D,
            Op::Elementwise { .. } => code::ELEMENTWISE,
            Op::ElementwiseReduce { .. } => code::ELEMENTWISE_REDUCE,
            Op::Quantize { .. } => code::QUANTIZE,
            Op::Dequantize { .. } => code::DEQUANTIZE,
            Op::QConv2d { .. } => code::QCONV2D,
            Op::QMatMul { .. } => code::QMATMUL,
        }
    }

    /// The operand slot that is the step's scratch (an arena tensor the kernel may overwrite,
    /// planned by the converter so a run allocates nothing), if the op has one.
    pub fn scratch_slot(&self) -> Option<usize> {
        match self {
            Op::QConv2d { .. } | Op::QMatMul { .. } => Some(3),
            _ => None,
        }
    }

    /// Bytes of scratch the int8 layers need (`None` for other ops, or when the geometry is
    /// too large to compute it; validation refuses those).
    pub fn q_scratch_len(&self) -> Option<usize> {
        let gemm = |k: usize, n: usize| -> Option<usize> {
            if k > mote_targets::q8::MAX_QK {
                return None;
            }
            // Keep the kernel crate's formula (which may grow) far from overflow.
            mote_targets::q8::qgemm_k4(k)
                .checked_mul(n)?
                .checked_mul(16)?;
            Some(mote_targets::q8::qgemm_scratch_len(k, n))
        };
        match *self {
            Op::QConv2d { g, .. } => {
                if q_depthwise(&g) {
                    return Some(0);
                }
                let k = (g.c_in / g.groups.max(1))
                    .checked_mul(g.kh)?
                    .checked_mul(g.kw)?;
                let n = g.h_out.checked_mul(g.w_out)?;
                let col = if q_direct(&g) { 0 } else { k.checked_mul(n)? };
                col.checked_add(gemm(k, n)?)
            }
            Op::QMatMul { p, k, .. } => gemm(k, p),
            _ => None,
        }
    }

    /// Whether the output may occupy exactly the storage of operand 0 (element-wise ops whose
    /// operand 0 has the output's layout). The planner uses this to compute in place; the
    /// executor then runs the in-place kernel.
    pub fn in_place_ok(&self) -> bool {
        match self {
            Op::Unary { .. } | Op::ChannelAffine { .. } => true,
            Op::Binary { bc, .. } => {
                let mut acc = 1usize;
                for k in (0..bc.rank).rev() {
                    if bc.dims[k] != 1 && bc.strides[0][k] != acc {
                        return false;
                    }
                    acc = acc.saturating_mul(bc.dims[k]);
                }
                true
            }
            _ => false,
        }
    }

    /// The cargo feature of `mote` that builds this op's kernels in, and whether this build
    /// has it; `None` for the strided copy (reshape, transpose, concat, slice), always built.
    pub fn feature(&self) -> Option<(&'static str, bool)> {
        let f = match self {
            Op::Conv2d { .. } => ("op-conv", cfg!(feature = "op-conv")),
            Op::MatMul(_) => ("op-matmul", cfg!(feature = "op-matmul")),
            Op::Binary { .. }
            | Op::Compare { .. }
            | Op::Logic { .. }
            | Op::Where { .. }
            | Op::Unary { .. }
            | Op::Cast
            | Op::Elementwise { .. }
            | Op::ElementwiseReduce { .. } => ("op-elementwise", cfg!(feature = "op-elementwise")),
            Op::Softmax { .. }
            | Op::LayerNorm { .. }
            | Op::LayerNormAxis { .. }
            | Op::InstanceNorm { .. }
            | Op::ChannelAffine { .. } => ("op-norm", cfg!(feature = "op-norm")),
            Op::Reduce { .. } | Op::ArgMax { .. } => ("op-reduce", cfg!(feature = "op-reduce")),
            Op::Gather { .. } | Op::GatherElements { .. } => {
                ("op-gather", cfg!(feature = "op-gather"))
            }
            Op::Pad { .. } => ("op-pad", cfg!(feature = "op-pad")),
            Op::Pool2d { .. } => ("op-pool", cfg!(feature = "op-pool")),
            Op::Quantize { .. }
            | Op::Dequantize { .. }
            | Op::QConv2d { .. }
            | Op::QMatMul { .. } => ("op-int8", cfg!(feature = "op-int8")),
            Op::Copy(_) => return None,
        };
        Some(f)
    }

    /// Short name for listings (`mote inspect`).
    pub fn name(&self) -> &'static str {
        match self {
            Op::Conv2d { g, .. } if g.groups == g.c_in && g.groups == g.c_out && g.groups > 1 => {
                "DepthwiseConv2d"
            }
            Op::Conv2d { .. } => "Conv2d",
            Op::MatMul(_) => "MatMul",
            Op::Binary { .. } => "Binary",
            Op::Compare { .. } => "Compare",
            Op::Logic { .. } => "Logic",
            Op::Where { .. } => "Where",
            Op::Unary { .. } => "Unary",
            Op::Cast => "Cast",
            Op::Softmax { .. } => "Softmax",
            Op::LayerNorm { .. } => "LayerNorm",
            Op::LayerNormAxis { .. } => "LayerNormAxis",
            Op::InstanceNorm { .. } => "InstanceNorm",
            Op::ChannelAffine { .. } => "ChannelAffine",
            Op::Reduce { .. } => "Reduce",
            Op::ArgMax { .. } => "ArgMax",
            Op::Gather { .. } => "Gather",
            Op::GatherElements { .. } => "GatherElements",
            Op::Copy(_) => "Copy",
            Op::Pad { .. } => "Pad",
            Op::Pool2d { .. } => "Pool2d",
            Op::Elementwise { .. } => "Elementwise",
            Op::ElementwiseReduce { .. } => "ElementwiseReduce",
            Op::Quantize { .. } => "Quantize",
            Op::Dequantize { .. } => "Dequantize",
            Op::QConv2d { g, .. } if q_depthwise(g) => "QDepthwiseConv2d",
            Op::QConv2d { .. } => "QConv2d",
            Op::QMatMul { .. } => "QMatMul",
        }
    }

    /// Writes the parameter words.
    pub fn encode(&self, w: &mut dyn FnMut(u32)) {
        match self {
            Op::Conv2d { g, act } => {
                words_usize(
                    w,
                    &[
                        g.n, g.c_in, g.h_in, g.w_in, g.c_out, g.h_out, g.w_out, g.kh, g.kw,
                        g.stride_h, g.stride_w, g.dil_h, g.dil_w, g.pad_top, g.pad_left, g.groups,
                    ],
                );
                act_encode(*act, w);
            }
            Op::MatMul(g) => {
                w(g.batch_rank as u32);
                words_usize(w, &g.batch[..g.batch_rank]);
                words_usize(w, &g.a_bs[..g.batch_rank]);
                words_usize(w, &g.b_bs[..g.batch_rank]);
                words_usize(w, &[g.m, g.n, g.k, g.a_rs, g.a_cs, g.b_rs, g.b_cs]);
                w(g.alpha.to_bits());
                act_encode(g.act, w);
            }
            Op::Binary { op, bc } => {
                w(binary_id(*op));
                bcast_encode(bc, w);
            }
            Op::Compare { op, bc } => {
                w(compare_id(*op));
                bcast_encode(bc, w);
            }
            Op::Logic { kind, bc } => {
                w(*kind as u32);
                bcast_encode(bc, w);
            }
            Op::Where { bc } => bcast_encode(bc, w),
            Op::Unary { op } => unary_encode(*op, w),
            Op::Cast => {}
            Op::Softmax {
                outer,
                axis,
                inner,
                log,
            } => {
                words_usize(w, &[*outer, *axis, *inner]);
                w(*log as u32);
            }
            Op::LayerNorm { outer, size, eps } => {
                words_usize(w, &[*outer, *size]);
                w(eps.to_bits());
            }
            Op::LayerNormAxis {
                outer,
                size,
                inner,
                eps,
            } => {
                words_usize(w, &[*outer, *size, *inner]);
                w(eps.to_bits());
            }
            Op::InstanceNorm { n, c, spatial, eps } => {
                words_usize(w, &[*n, *c, *spatial]);
                w(eps.to_bits());
            }
            Op::ChannelAffine { outer, c, inner } => words_usize(w, &[*outer, *c, *inner]),
            Op::Reduce {
                op,
                rank,
                dims,
                mask,
            } => {
                w(reduce_id(*op));
                w(*rank as u32);
                words_usize(w, &dims[..*rank]);
                w(*mask);
            }
            Op::ArgMax {
                outer,
                axis,
                inner,
                min,
                select_last,
            } => {
                words_usize(w, &[*outer, *axis, *inner]);
                w(*min as u32);
                w(*select_last as u32);
            }
            Op::Gather { outer, axis, inner } => words_usize(w, &[*outer, *axis, *inner]),
            Op::GatherElements {
                rank,
                data_dims,
                idx_dims,
                axis,
            } => {
                w(*rank as u32);
                words_usize(w, &data_dims[..*rank]);
                words_usize(w, &idx_dims[..*rank]);
                w(*axis as u32);
            }
            Op::Copy(c) => {
                w(c.rank as u32);
                words_usize(w, &c.dims[..c.rank]);
                w(c.src_off as u32);
                for &s in &c.src_strides[..c.rank] {
                    w(s as i32 as u32);
                }
                w(c.dst_off as u32);
                for &s in &c.dst_strides[..c.rank] {
                    w(s as i32 as u32);
                }
            }
            Op::Pad {
                mode,
                rank,
                in_dims,
                out_dims,
                begin,
                value,
            } => {
                w(match mode {
                    PadMode::Constant => 0,
                    PadMode::Reflect => 1,
                    PadMode::Edge => 2,
                });
                w(*rank as u32);
                words_usize(w, &in_dims[..*rank]);
                words_usize(w, &out_dims[..*rank]);
                for &b in &begin[..*rank] {
                    w(b as i32 as u32);
                }
                w(*value as u32);
                w((*value >> 32) as u32);
            }
            Op::Pool2d { kind, g } => {
                w(match kind {
                    PoolKind::Max => 0,
                    PoolKind::Avg {
                        count_include_pad: false,
                    } => 1,
                    PoolKind::Avg {
                        count_include_pad: true,
                    } => 2,
                });
                words_usize(
                    w,
                    &[
                        g.planes, g.h_in, g.w_in, g.h_out, g.w_out, g.kh, g.kw, g.stride_h,
                        g.stride_w, g.dil_h, g.dil_w, g.pad_top, g.pad_left,
                    ],
                );
            }
            Op::Elementwise { bc, prog } => program_encode(bc, prog, w),
            Op::ElementwiseReduce { bc, prog, op, len } => {
                program_encode(bc, prog, w);
                w(reduce_id(*op));
                w(*len as u32);
            }
            Op::Quantize { scale, zp } | Op::Dequantize { scale, zp } => {
                w(scale.to_bits());
                w(*zp as u32);
            }
            Op::QConv2d { g, q } => {
                words_usize(
                    w,
                    &[
                        g.n, g.c_in, g.h_in, g.w_in, g.c_out, g.h_out, g.w_out, g.kh, g.kw,
                        g.stride_h, g.stride_w, g.dil_h, g.dil_w, g.pad_top, g.pad_left, g.groups,
                    ],
                );
                qparams_encode(q, w);
            }
            Op::QMatMul {
                p,
                n,
                k,
                a_rs,
                a_cs,
                q,
            } => {
                words_usize(w, &[*p, *n, *k, *a_rs, *a_cs]);
                qparams_encode(q, w);
            }
        }
    }

    /// Decodes an op from its id and parameter words.
    pub fn decode(op: u16, r: &mut ParamReader<'_>) -> core::result::Result<Op, &'static str> {
        let o = match op {
            code::CONV2D => Op::Conv2d {
                g: conv_geom_decode(r)?,
                act: act_decode(r)?,
            },
            code::QUANTIZE => Op::Quantize {
                scale: q_scale(r)?,
                zp: r.u8()?,
            },
            code::DEQUANTIZE => Op::Dequantize {
                scale: q_scale(r)?,
                zp: r.u8()?,
            },
            code::QCONV2D => Op::QConv2d {
                g: conv_geom_decode(r)?,
                q: qparams_decode(r)?,
            },
            code::QMATMUL => Op::QMatMul {
                p: r.usize()?,
                n: r.usize()?,
                k: r.usize()?,
                a_rs: r.usize()?,
                a_cs: r.usize()?,
                q: qparams_decode(r)?,
            },
            code::MATMUL => {
                let br = r.rank(6)?;
                let mut g = MatMulGeom {
                    batch_rank: br,
                    ..Default::default()
                };
                for x in g.batch.iter_mut().take(br) {
                    *x = r.usize()?;
                }
                for x in g.a_bs.iter_mut().take(br) {
                    *x = r.usize()?;
                }
                for x in g.b_bs.iter_mut().take(br) {
                    *x = r.usize()?;
                }
                g.m = r.usize()?;
                g.n = r.usize()?;
                g.k = r.usize()?;
                g.a_rs = r.usize()?;
                g.a_cs = r.usize()?;
                g.b_rs = r.usize()?;
                g.b_cs = r.usize()?;
                g.alpha = r.f32()?;
                g.act = act_decode(r)?;
                Op::MatMul(g)
            }
            code::BINARY => Op::Binary {
                op: binary_from(r.word()?)?,
                bc: bcast_decode(r)?,
            },
            code::COMPARE => Op::Compare {
                op: compare_from(r.word()?)?,
                bc: bcast_decode(r)?,
            },
            code::LOGIC => {
                let kind = r.word()?;
                if kind > 3 {
                    return Err(BAD_ENUM);
                }
                Op::Logic {
                    kind: kind as u8,
                    bc: bcast_decode(r)?,
                }
            }
            code::WHERE => Op::Where {
                bc: bcast_decode(r)?,
            },
            code::UNARY => Op::Unary {
                op: unary_decode(r)?,
            },
            code::CAST => Op::Cast,
            code::SOFTMAX => Op::Softmax {
                outer: r.usize()?,
                axis: r.usize()?,
                inner: r.usize()?,
                log: r.bool()?,
            },
            code::LAYER_NORM => Op::LayerNorm {
                outer: r.usize()?,
                size: r.usize()?,
                eps: r.f32()?,
            },
            code::LAYER_NORM_AXIS => Op::LayerNormAxis {
                outer: r.usize()?,
                size: r.usize()?,
                inner: r.usize()?,
                eps: r.f32()?,
            },
            code::INSTANCE_NORM => Op::InstanceNorm {
                n: r.usize()?,
                c: r.usize()?,
                spatial: r.usize()?,
                eps: r.f32()?,
            },
            code::CHANNEL_AFFINE => Op::ChannelAffine {
                outer: r.usize()?,
                c: r.usize()?,
                inner: r.usize()?,
            },
            code::REDUCE => {
                let op = reduce_from(r.word()?)?;
                let rank = r.rank(MAX_RANK)?;
                let dims = r.dims(rank)?;
                let mask = r.word()?;
                if mask >> rank != 0 {
                    return Err("reduce mask names an axis past the rank");
                }
                Op::Reduce {
                    op,
                    rank,
                    dims,
                    mask,
                }
            }
            code::ARGMAX => Op::ArgMax {
                outer: r.usize()?,
                axis: r.usize()?,
                inner: r.usize()?,
                min: r.bool()?,
                select_last: r.bool()?,
            },
            code::GATHER => Op::Gather {
                outer: r.usize()?,
                axis: r.usize()?,
                inner: r.usize()?,
            },
            code::GATHER_ELEMENTS => {
                let rank = r.rank(MAX_RANK)?;
                let data_dims = r.dims(rank)?;
                let idx_dims = r.dims(rank)?;
                let axis = r.usize()?;
                if axis >= rank {
                    return Err("gather axis past the rank");
                }
                Op::GatherElements {
                    rank,
                    data_dims,
                    idx_dims,
                    axis,
                }
            }
            code::COPY => {
                let rank = r.rank(MAX_RANK)?;
                let dims = r.dims(rank)?;
                let src_off = r.usize()?;
                let src_strides = r.sdims(rank)?;
                let dst_off = r.usize()?;
                let dst_strides = r.sdims(rank)?;
                Op::Copy(CopyGeom {
                    rank,
                    dims,
                    src_off,
                    src_strides,
                    dst_off,
                    dst_strides,
                })
            }
            code::PAD => {
                let mode = match r.word()? {
                    0 => PadMode::Constant,
                    1 => PadMode::Reflect,
                    2 => PadMode::Edge,
                    _ => return Err(BAD_ENUM),
                };
                let rank = r.rank(MAX_RANK)?;
                let in_dims = r.dims(rank)?;
                let out_dims = r.dims(rank)?;
                let begin = r.sdims(rank)?;
                let lo = r.word()? as u64;
                let hi = r.word()? as u64;
                Op::Pad {
                    mode,
                    rank,
                    in_dims,
                    out_dims,
                    begin,
                    value: lo | (hi << 32),
                }
            }
            code::POOL2D => {
                let kind = match r.word()? {
                    0 => PoolKind::Max,
                    1 => PoolKind::Avg {
                        count_include_pad: false,
                    },
                    2 => PoolKind::Avg {
                        count_include_pad: true,
                    },
                    _ => return Err(BAD_ENUM),
                };
                let mut v = [0usize; 13];
                for x in v.iter_mut() {
                    *x = r.usize()?;
                }
                let g = Pool2dGeom {
                    planes: v[0],
                    h_in: v[1],
                    w_in: v[2],
                    h_out: v[3],
                    w_out: v[4],
                    kh: v[5],
                    kw: v[6],
                    stride_h: v[7],
                    stride_w: v[8],
                    dil_h: v[9],
                    dil_w: v[10],
                    pad_top: v[11],
                    pad_left: v[12],
                };
                Op::Pool2d { kind, g }
            }
            code::ELEMENTWISE => program_decode(r)?,
            code::ELEMENTWISE_REDUCE => {
                let Op::Elementwise { bc, prog } = program_decode(r)? else {
                    return Err("element-wise program did not decode as one");
                };
                Op::ElementwiseReduce {
                    bc,
                    prog,
                    op: reduce_from(r.word()?)?,
                    len: r.usize()?,
                }
            }
            _ => return Err("unknown op id"),
        };
        r.finish()?;
        Ok(o)
    }

    /// Checks the op against its operands: dtypes, element counts and every index the kernel
    /// can reach. After this passes, running the step cannot index out of bounds.
    ///
    /// `layout` is the file's packed-layout id: it decides how many values a convolution's
    /// weight holds (see `mote_targets::profile`).
    pub fn validate(
        &self,
        layout: u32,
        ins: &[Option<Operand>; 4],
        out: &Operand,
    ) -> core::result::Result<(), &'static str> {
        let need = |i: usize| ins[i].ok_or("a required operand is missing");
        let no_more = |from: usize| {
            if ins[from..].iter().any(|x| x.is_some()) {
                Err("too many operands")
            } else {
                Ok(())
            }
        };
        let f32_of = |t: Operand| {
            if t.dtype == DType::F32 {
                Ok(t)
            } else {
                Err("operand must be float32")
            }
        };
        match *self {
            Op::Conv2d { g, act: _ } => {
                no_more(3)?;
                let x = f32_of(need(0)?)?;
                let wt = weight_of(need(1)?)?;
                f32_of(*out)?;
                if g.groups == 0 || g.c_in % g.groups != 0 || g.c_out % g.groups != 0 {
                    return Err("conv groups must divide the channel counts");
                }
                if g.kh == 0
                    || g.kw == 0
                    || g.stride_h == 0
                    || g.stride_w == 0
                    || g.dil_h == 0
                    || g.dil_w == 0
                {
                    return Err("conv kernel, stride and dilation must be positive");
                }
                window_fits(g.h_out, g.stride_h, g.kh, g.dil_h)?;
                window_fits(g.w_out, g.stride_w, g.kw, g.dil_w)?;
                // The kernel treats every input position outside the image as zero padding,
                // so only the element counts need to agree.
                expect_elems(x, prod(&[g.n, g.c_in, g.h_in, g.w_in])?)?;
                if conv_packed(layout, &g) {
                    // Panels of MR = 6 rows per group: the checked product is the length.
                    let len = prod(&[
                        g.groups,
                        (g.c_out / g.groups).div_ceil(mote_targets::gemm::MR),
                        mote_targets::gemm::MR,
                        g.c_in / g.groups,
                        g.kh,
                        g.kw,
                    ])?;
                    debug_assert_eq!(len, mote_targets::kernels::conv_panels_len(&g));
                    expect_elems(wt, len)?;
                } else {
                    expect_elems(wt, prod(&[g.c_out, g.c_in / g.groups, g.kh, g.kw])?)?;
                }
                expect_elems(*out, prod(&[g.n, g.c_out, g.h_out, g.w_out])?)?;
                if let Some(b) = ins[2] {
                    expect_elems(f32_of(b)?, g.c_out)?;
                }
            }
            Op::MatMul(g) => {
                no_more(3)?;
                let a = weight_of(need(0)?)?;
                let b = weight_of(need(1)?)?;
                f32_of(*out)?;
                let mut a_max = 0usize;
                let mut b_max = 0usize;
                let mut batch = 1usize;
                let dims = g.batch.iter().zip(&g.a_bs).zip(&g.b_bs);
                for ((&d, &a_bs), &b_bs) in dims.take(g.batch_rank) {
                    if d == 0 {
                        batch = 0;
                        continue;
                    }
                    a_max = add(a_max, mul(d - 1, a_bs)?)?;
                    b_max = add(b_max, mul(d - 1, b_bs)?)?;
                    batch = mul(batch, d)?;
                }
                expect_elems(*out, prod(&[batch, g.m, g.n])?)?;
                // The contraction must walk through A and B, so its length is bounded by their
                // sizes (a zero stride would let a hostile file ask for any amount of work).
                if out.elems > 0 && g.k > 1 && (g.a_cs == 0 || g.b_rs == 0) {
                    return Err("matmul contraction stride is zero");
                }
                if batch > 0 && g.m > 0 && g.k > 0 {
                    let am = add(add(a_max, mul(g.m - 1, g.a_rs)?)?, mul(g.k - 1, g.a_cs)?)?;
                    if am >= a.elems {
                        return Err("matmul reaches past the end of A");
                    }
                }
                if batch > 0 && g.n > 0 && g.k > 0 {
                    let bm = add(add(b_max, mul(g.k - 1, g.b_rs)?)?, mul(g.n - 1, g.b_cs)?)?;
                    if bm >= b.elems {
                        return Err("matmul reaches past the end of B");
                    }
                }
                if let Some(bias) = ins[2] {
                    expect_elems(f32_of(bias)?, g.n)?;
                }
            }
            Op::Binary { bc, .. } => {
                no_more(2)?;
                bcast_check(&bc, &[f32_of(need(0)?)?, f32_of(need(1)?)?], f32_of(*out)?)?;
            }
            Op::Compare { bc, .. } => {
                no_more(2)?;
                bool_of(*out)?;
                bcast_check(&bc, &[f32_of(need(0)?)?, f32_of(need(1)?)?], *out)?;
            }
            Op::Logic { kind, bc } => {
                bool_of(*out)?;
                if kind == 3 {
                    no_more(1)?;
                    let a = bool_of(need(0)?)?;
                    bcast_check(&bc, &[a, a], *out)?;
                } else {
                    no_more(2)?;
                    bcast_check(&bc, &[bool_of(need(0)?)?, bool_of(need(1)?)?], *out)?;
                }
            }
            Op::Where { bc } => {
                no_more(3)?;
                let (c, x, y) = (bool_of(need(0)?)?, need(1)?, need(2)?);
                if x.dtype != out.dtype || y.dtype != out.dtype {
                    return Err("where branches and output must share a dtype");
                }
                bcast_check(&bc, &[c, x, y], *out)?;
            }
            Op::Unary { .. } => {
                no_more(1)?;
                let x = f32_of(need(0)?)?;
                f32_of(*out)?;
                expect_elems(*out, x.elems)?;
            }
            Op::Cast => {
                no_more(1)?;
                let x = need(0)?;
                if x.dtype == DType::F16 || out.dtype == DType::F16 {
                    return Err("cast to or from float16 is not supported");
                }
                expect_elems(*out, x.elems)?;
            }
            Op::Softmax {
                outer, axis, inner, ..
            } => {
                no_more(1)?;
                let n = prod(&[outer, axis, inner])?;
                expect_elems(f32_of(need(0)?)?, n)?;
                expect_elems(f32_of(*out)?, n)?;
            }
            Op::LayerNormAxis {
                outer, size, inner, ..
            } => {
                no_more(3)?;
                let n = prod(&[outer, size, inner])?;
                expect_elems(f32_of(need(0)?)?, n)?;
                expect_elems(f32_of(*out)?, n)?;
                for t in ins[1..3].iter().flatten() {
                    expect_elems(f32_of(*t)?, size)?;
                }
            }
            Op::LayerNorm { outer, size, .. } => {
                no_more(3)?;
                let n = prod(&[outer, size])?;
                expect_elems(f32_of(need(0)?)?, n)?;
                expect_elems(f32_of(*out)?, n)?;
                for t in ins[1..3].iter().flatten() {
                    expect_elems(f32_of(*t)?, size)?;
                }
            }
            Op::InstanceNorm { n, c, spatial, .. } => {
                no_more(3)?;
                let e = prod(&[n, c, spatial])?;
                expect_elems(f32_of(need(0)?)?, e)?;
                expect_elems(f32_of(*out)?, e)?;
                expect_elems(f32_of(need(1)?)?, c)?;
                expect_elems(f32_of(need(2)?)?, c)?;
            }
            Op::ChannelAffine { outer, c, inner } => {
                no_more(3)?;
                let e = prod(&[outer, c, inner])?;
                expect_elems(f32_of(need(0)?)?, e)?;
                expect_elems(f32_of(*out)?, e)?;
                expect_elems(f32_of(need(1)?)?, c)?;
                expect_elems(f32_of(need(2)?)?, c)?;
            }
            Op::Reduce {
                rank, dims, mask, ..
            } => {
                no_more(1)?;
                expect_elems(f32_of(need(0)?)?, prod(&dims[..rank])?)?;
                strides_fit(&dims[..rank])?;
                let mut o = 1usize;
                for (k, &d) in dims[..rank].iter().enumerate() {
                    if mask & (1 << k) == 0 {
                        o = mul(o, d)?;
                    }
                }
                expect_elems(f32_of(*out)?, o)?;
            }
            Op::ArgMax {
                outer, axis, inner, ..
            } => {
                no_more(1)?;
                expect_elems(f32_of(need(0)?)?, prod(&[outer, axis, inner])?)?;
                if out.dtype != DType::I64 {
                    return Err("argmax output must be int64");
                }
                if axis == 0 && outer > 0 && inner > 0 {
                    return Err("argmax over an empty axis");
                }
                expect_elems(*out, prod(&[outer, inner])?)?;
            }
            Op::Gather { outer, axis, inner } => {
                no_more(2)?;
                let (d, i) = (need(0)?, need(1)?);
                if i.dtype != DType::I64 {
                    return Err("gather indices must be int64");
                }
                if d.dtype != out.dtype {
                    return Err("gather output dtype differs from data");
                }
                expect_elems(d, prod(&[outer, axis, inner])?)?;
                expect_elems(*out, prod(&[outer, i.elems, inner])?)?;
            }
            Op::GatherElements {
                rank,
                data_dims,
                idx_dims,
                axis,
            } => {
                no_more(2)?;
                let (d, i) = (need(0)?, need(1)?);
                if i.dtype != DType::I64 {
                    return Err("gather indices must be int64");
                }
                if d.dtype != out.dtype {
                    return Err("gather output dtype differs from data");
                }
                for k in 0..rank {
                    if k != axis && idx_dims[k] > data_dims[k] {
                        return Err("gather_elements index dims exceed data dims");
                    }
                }
                expect_elems(d, prod(&data_dims[..rank])?)?;
                expect_elems(i, prod(&idx_dims[..rank])?)?;
                expect_elems(*out, prod(&idx_dims[..rank])?)?;
            }
            Op::Copy(c) => {
                no_more(1)?;
                let s = need(0)?;
                if s.dtype.size() != out.dtype.size() {
                    return Err("copy between dtypes of different sizes");
                }
                // Every iteration writes one output element; a legitimate copy writes each at
                // most once. This bounds the work (zero strides would otherwise allow 2^256
                // iterations) and keeps the kernel's merged dims from overflowing.
                if prod(&c.dims[..c.rank])? > out.elems {
                    return Err("copy iterates over more elements than its output holds");
                }
                strided_check(
                    &c.dims[..c.rank],
                    c.src_off,
                    &c.src_strides[..c.rank],
                    s.elems,
                )?;
                strided_check(
                    &c.dims[..c.rank],
                    c.dst_off,
                    &c.dst_strides[..c.rank],
                    out.elems,
                )?;
            }
            Op::Pad {
                mode,
                rank,
                in_dims,
                out_dims,
                begin,
                ..
            } => {
                no_more(1)?;
                let x = need(0)?;
                if x.dtype != out.dtype {
                    return Err("pad output dtype differs from input");
                }
                for k in 0..rank {
                    let (i, o, b) = (in_dims[k] as i64, out_dims[k] as i64, begin[k] as i64);
                    let end = o - i - b;
                    let padded = b != 0 || end != 0;
                    match mode {
                        PadMode::Reflect if padded && (i < 2 || b >= i || end >= i) => {
                            return Err("reflect padding needs pads smaller than the axis")
                        }
                        PadMode::Edge if padded && i < 1 && o > 0 => {
                            return Err("edge padding of an empty axis")
                        }
                        _ => {}
                    }
                    if o < 0 || b + i < 0 && o > 0 {
                        return Err("pad crops more than the axis");
                    }
                    // The kernel copies the input span of each row starting at output column
                    // `min(begin, out)`, i.e. at input column `min(begin, out) - begin`.
                    if b > o {
                        return Err("leading pad is longer than the output axis");
                    }
                }
                expect_elems(x, prod(&in_dims[..rank])?)?;
                strides_fit(&in_dims[..rank])?;
                expect_elems(*out, prod(&out_dims[..rank])?)?;
            }
            Op::Pool2d { g, .. } => {
                no_more(1)?;
                if g.kh == 0
                    || g.kw == 0
                    || g.stride_h == 0
                    || g.stride_w == 0
                    || g.dil_h == 0
                    || g.dil_w == 0
                {
                    return Err("pool window, stride and dilation must be positive");
                }
                window_fits(g.h_out, g.stride_h, g.kh, g.dil_h)?;
                window_fits(g.w_out, g.stride_w, g.kw, g.dil_w)?;
                expect_elems(f32_of(need(0)?)?, prod(&[g.planes, g.h_in, g.w_in])?)?;
                expect_elems(f32_of(*out)?, prod(&[g.planes, g.h_out, g.w_out])?)?;
                // Nothing else bounds the window (it reads no weights): cap the work so a
                // hostile file cannot make one step run for hours.
                if prod(&[out.elems, g.kh, g.kw]).map_or(true, |w| w as u64 > caps::STEP_WORK) {
                    return Err("pool window work exceeds the cap");
                }
            }
            Op::Elementwise { bc, prog } | Op::ElementwiseReduce { bc, prog, .. } => {
                prog.check()?;
                let n = prog.n_in;
                no_more(n)?;
                let mut opnds = [Operand {
                    dtype: DType::F32,
                    elems: 0,
                }; PROGRAM_OPERANDS];
                for (j, o) in opnds.iter_mut().enumerate().take(n) {
                    *o = f32_or_bool(need(j)?)?;
                }
                let Op::ElementwiseReduce { len, .. } = *self else {
                    f32_or_bool(*out)?;
                    return bcast_check(&bc, &opnds[..n], *out);
                };
                let total = prod(bc.dims())?;
                if len == 0 || !total.is_multiple_of(len) {
                    return Err("element-wise reduction runs do not divide the iteration");
                }
                if len > mote_targets::program::FOLD_MAX_RUN {
                    return Err("element-wise reduction run too long");
                }
                let all = Operand {
                    dtype: DType::F32,
                    elems: total,
                };
                bcast_check(&bc, &opnds[..n], all)?;
                expect_elems(f32_of(*out)?, total / len)?;
            }
            Op::Quantize { .. } => {
                no_more(1)?;
                let x = f32_of(need(0)?)?;
                expect_elems(u8_of(*out)?, x.elems)?;
            }
            Op::Dequantize { .. } => {
                no_more(1)?;
                let x = u8_of(need(0)?)?;
                expect_elems(f32_of(*out)?, x.elems)?;
            }
            Op::QConv2d { g, q } => {
                let x = u8_of(need(0)?)?;
                let wt = i8_of(need(1)?)?;
                let rq = i8_of(need(2)?)?;
                if out.dtype != q.out_dtype() {
                    return Err("int8 layer output dtype differs from its output kind");
                }
                if g.groups == 0 || g.c_in % g.groups != 0 || g.c_out % g.groups != 0 {
                    return Err("conv groups must divide the channel counts");
                }
                if g.kh == 0
                    || g.kw == 0
                    || g.stride_h == 0
                    || g.stride_w == 0
                    || g.dil_h == 0
                    || g.dil_w == 0
                {
                    return Err("conv kernel, stride and dilation must be positive");
                }
                window_fits(g.h_out, g.stride_h, g.kh, g.dil_h)?;
                window_fits(g.w_out, g.stride_w, g.kw, g.dil_w)?;
                expect_elems(x, prod(&[g.n, g.c_in, g.h_in, g.w_in])?)?;
                expect_elems(*out, prod(&[g.n, g.c_out, g.h_out, g.w_out])?)?;
                let k = prod(&[g.c_in / g.groups, g.kh, g.kw])?;
                if k > mote_targets::q8::MAX_QK {
                    return Err("int8 reduction longer than MAX_QK");
                }
                if q_depthwise(&g) {
                    if matches!(q.out, QOut::F32 { .. }) {
                        return Err("a depthwise int8 conv has no f32 output form");
                    }
                    expect_elems(wt, prod(&[g.c_out, k])?)?;
                } else {
                    let m = g.c_out / g.groups;
                    let panel = add(mul(mote_targets::q8::qgemm_k4(k), 8)?, 32)?;
                    let len = prod(&[g.groups, m.div_ceil(mote_targets::q8::QGEMM_MR), panel])?;
                    debug_assert_eq!(len, g.groups * mote_targets::q8::qgemm_packed_len(m, k));
                    expect_elems(wt, len)?;
                }
                expect_elems(rq, mul(g.c_out, q.rq_bytes_per_channel())?)?;
                scratch_check(self, ins[3])?;
            }
            Op::QMatMul {
                p,
                n,
                k,
                a_rs,
                a_cs,
                q,
            } => {
                let x = u8_of(need(0)?)?;
                let wt = i8_of(need(1)?)?;
                let rq = i8_of(need(2)?)?;
                if out.dtype != q.out_dtype() {
                    return Err("int8 layer output dtype differs from its output kind");
                }
                if k > mote_targets::q8::MAX_QK {
                    return Err("int8 reduction longer than MAX_QK");
                }
                expect_elems(*out, prod(&[p, n])?)?;
                if out.elems > 0 && k > 1 && a_cs == 0 {
                    return Err("matmul contraction stride is zero");
                }
                if p > 0 && k > 0 {
                    let am = add(mul(p - 1, a_rs)?, mul(k - 1, a_cs)?)?;
                    if am >= x.elems {
                        return Err("matmul reaches past the end of A");
                    }
                }
                let panel = add(mul(mote_targets::q8::qgemm_k4(k), 8)?, 32)?;
                expect_elems(wt, mul(n.div_ceil(mote_targets::q8::QGEMM_MR), panel)?)?;
                expect_elems(rq, mul(n, q.rq_bytes_per_channel())?)?;
                scratch_check(self, ins[3])?;
            }
        }
        Ok(())
    }
}

/// What validation needs to know about an operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Operand {
    /// Element type.
    pub dtype: DType,
    /// Element count.
    pub elems: usize,
}

fn f32_or_bool(t: Operand) -> core::result::Result<Operand, &'static str> {
    if t.dtype == DType::F32 || t.dtype == DType::Bool {
        Ok(t)
    } else {
        Err("operand must be float32 or bool")
    }
}

/// A matrix operand of Conv2d (the weight) or MatMul (either side): float32, or float16
/// values that the kernels widen to float32 as they load them.
fn weight_of(t: Operand) -> core::result::Result<Operand, &'static str> {
    if t.dtype == DType::F32 || t.dtype == DType::F16 {
        Ok(t)
    } else {
        Err("operand must be float32 or float16")
    }
}

fn u8_of(t: Operand) -> core::result::Result<Operand, &'static str> {
    if t.dtype == DType::U8 {
        Ok(t)
    } else {
        Err("operand must be uint8")
    }
}

fn i8_of(t: Operand) -> core::result::Result<Operand, &'static str> {
    if t.dtype == DType::I8 {
        Ok(t)
    } else {
        Err("operand must be int8")
    }
}

/// The scratch operand of an int8 layer: `u8`, at least as large as the kernels need (absent
/// when they need none). That it lives in the arena and overlaps nothing else of the step is
/// checked with the other storage rules (`Model::from_bytes`).
fn scratch_check(op: &Op, s: Option<Operand>) -> core::result::Result<(), &'static str> {
    let need = op
        .q_scratch_len()
        .ok_or("int8 layer geometry is too large")?;
    match s {
        None if need == 0 => Ok(()),
        None => Err("int8 layer scratch operand is missing"),
        Some(s) => {
            u8_of(s)?;
            if s.elems < need {
                return Err("int8 layer scratch is smaller than its kernels need");
            }
            Ok(())
        }
    }
}

fn bool_of(t: Operand) -> core::result::Result<Operand, &'static str> {
    if t.dtype == DType::Bool {
        Ok(t)
    } else {
        Err("operand must be bool")
    }
}

fn mul(a: usize, b: usize) -> core::result::Result<usize, &'static str> {
    a.checked_mul(b).ok_or(BAD_VALUE)
}
fn add(a: usize, b: usize) -> core::result::Result<usize, &'static str> {
    a.checked_add(b).ok_or(BAD_VALUE)
}
fn prod(xs: &[usize]) -> core::result::Result<usize, &'static str> {
    xs.iter().try_fold(1usize, |acc, &x| mul(acc, x))
}
/// Kernels compute row-major strides of `dims` as suffix products. A zero dim makes the element
/// count 0 (so `prod` cannot overflow) without bounding the other dims: require the product of
/// the nonzero dims to fit as well.
fn strides_fit(dims: &[usize]) -> core::result::Result<(), &'static str> {
    dims.iter()
        .filter(|&&d| d != 0)
        .try_fold(1usize, |acc, &d| mul(acc, d))
        .map(|_| ())
}
/// The conv and pool kernels compute `o * stride + k * dil` (then subtract the padding, as
/// `isize`) for every output position `o` and window tap `k`: the largest value must fit.
fn window_fits(
    n_out: usize,
    stride: usize,
    k: usize,
    dil: usize,
) -> core::result::Result<(), &'static str> {
    let reach = add(
        mul(n_out.saturating_sub(1), stride)?,
        mul(k.saturating_sub(1), dil)?,
    )?;
    if reach > isize::MAX as usize {
        return Err(BAD_VALUE);
    }
    Ok(())
}
fn expect_elems(t: Operand, n: usize) -> core::result::Result<(), &'static str> {
    if t.elems != n {
        return Err("operand element count does not match the step's geometry");
    }
    Ok(())
}

fn bcast_check<const N: usize>(
    bc: &Bcast<N>,
    ins: &[Operand],
    out: Operand,
) -> core::result::Result<(), &'static str> {
    let total = prod(bc.dims())?;
    expect_elems(out, total)?;
    if total == 0 {
        return Ok(());
    }
    for (t, strides) in ins.iter().zip(&bc.strides) {
        let mut max = 0usize;
        for (&d, &s) in bc.dims().iter().zip(strides) {
            max = add(max, mul(d.saturating_sub(1), s)?)?;
        }
        if max >= t.elems {
            return Err("broadcast strides reach past an operand");
        }
    }
    Ok(())
}

fn strided_check(
    dims: &[usize],
    off: usize,
    strides: &[isize],
    len: usize,
) -> core::result::Result<(), &'static str> {
    if dims.contains(&0) {
        return Ok(());
    }
    let mut lo = off as i128;
    let mut hi = off as i128;
    for (&d, &s) in dims.iter().zip(strides) {
        let span = (d as i128 - 1) * s as i128;
        if span < 0 {
            lo += span;
        } else {
            hi += span;
        }
    }
    if lo < 0 || hi >= len as i128 {
        return Err("strided copy reaches outside its tensor");
    }
    Ok(())
}

/// Maps a step-validation failure to the public error.
pub(crate) fn step_error(index: u32) -> impl Fn(&'static str) -> Error {
    move |reason| Error::BadStep { index, reason }
}
