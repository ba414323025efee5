//! The executor: walks the step list over a caller-provided arena. No allocation, no graph work.
// A build with some op families left out (firmware) leaves their helpers unused.
#![cfg_attr(not(feature = "all-ops"), allow(unused))]

use crate::error::{Error, Result};
use crate::format::{DType, Storage, DATA_ALIGN};
use crate::model::{Model, TensorInfo};

use crate::ops::{head, Op};
use crate::view::{cast, cast_mut, ArenaSplit, Elem, Region};
use mote_targets::generic as k;
use mote_targets::kernels as kd;
use mote_targets::{Isa, KernelError};

/// What a step's kernels depend on besides their operands: the kernel set and the file's
/// packed-layout id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ctx {
    /// Kernel set.
    pub isa: Isa,
    /// Packed-layout id of the weights (see `mote_targets::profile`).
    pub layout: u32,
}

impl Ctx {
    /// The scalar reference over plain weights (the converter's constant folding).
    pub const REFERENCE: Ctx = Ctx {
        isa: Isa::GENERIC,
        layout: mote_targets::profile::LAYOUT_REFERENCE,
    };
}

/// The kernel set a new session uses: `MOTE_FORCE_ISA` when set (with `std`), else the best the
/// CPU supports.
pub fn default_isa() -> Result<Isa> {
    #[cfg(feature = "std")]
    {
        Isa::from_env().map_err(Error::Isa)
    }
    #[cfg(not(feature = "std"))]
    {
        Ok(Isa::best())
    }
}

/// A model bound to an arena, ready to run. Inputs are written into the arena, `run` executes
/// every step, outputs are read back from the arena. Graph inputs keep their values across runs.
#[derive(Debug)]
pub struct Session<'m, 'a> {
    model: &'m Model<'m>,
    arena: &'a mut [u8],
    ctx: Ctx,
    #[cfg(feature = "std")]
    pool: Option<&'a crate::pool::ThreadPool>,
}

impl<'m, 'a> Session<'m, 'a> {
    /// Binds `model` to `arena`, which must hold at least [`Model::arena_size_min`] bytes. The
    /// arena is not cleared: inputs written through an earlier session over the same arena stay.
    ///
    /// The kernel set is [`default_isa`]: the best this CPU has, or `MOTE_FORCE_ISA`.
    pub fn new(model: &'m Model<'m>, arena: &'a mut [u8]) -> Result<Self> {
        Self::with_isa(model, arena, default_isa()?)
    }

    /// [`Session::new`] with an explicit kernel set.
    pub fn with_isa(model: &'m Model<'m>, arena: &'a mut [u8], isa: Isa) -> Result<Self> {
        let given = arena.len();
        let skip = arena.as_ptr().align_offset(DATA_ALIGN);
        let need = model.arena_size();
        let arena = match arena.get_mut(skip..) {
            Some(a) if a.len() >= need && skip < DATA_ALIGN => a,
            _ => {
                return Err(Error::ArenaTooSmall {
                    needed: model.arena_size_min(),
                    given,
                })
            }
        };
        let arena = &mut arena[..need];
        let ctx = Ctx {
            isa,
            layout: model.layout(),
        };
        Ok(Session {
            model,
            arena,
            ctx,
            #[cfg(feature = "std")]
            pool: None,
        })
    }

    /// Splits the large convolutions and matrix products of each run over `pool`'s threads
    /// (results are bit-identical to one thread). Without a pool a session runs on the
    /// calling thread only.
    #[cfg(feature = "std")]
    pub fn with_pool(mut self, pool: &'a crate::pool::ThreadPool) -> Self {
        self.pool = Some(pool);
        self
    }

    /// Threads a run uses: 1, or the pool's size.
    pub fn threads(&self) -> usize {
        #[cfg(feature = "std")]
        if let Some(p) = self.pool {
            return p.threads();
        }
        1
    }

    /// The kernel set this session runs.
    pub fn isa(&self) -> Isa {
        self.ctx.isa
    }

    /// The model this session runs.
    pub fn model(&self) -> &'m Model<'m> {
        self.model
    }

    fn io_bytes_mut(&mut self, t: TensorInfo<'_>) -> Result<&mut [u8]> {
        self.arena
            .get_mut(t.offset..t.offset + t.byte_len)
            .ok_or(Error::BadTensor {
                index: t.index,
                reason: "out of range",
            })
    }

    /// The bytes of graph input `i`, to be filled before [`Session::run`].
    pub fn input_bytes_mut(&mut self, i: usize) -> Result<&mut [u8]> {
        let t = self.model.input(i)?;
        self.io_bytes_mut(t)
    }

    /// Graph input `i` as a typed slice; `T` must match the input's dtype.
    pub fn input_mut<T: Elem>(&mut self, i: usize) -> Result<&mut [T]> {
        let t = self.model.input(i)?;
        check_type::<T>(t.dtype)?;
        cast_mut(self.io_bytes_mut(t)?)
    }

    /// Copies `data` into graph input `i` (element type and count must match).
    pub fn set_input<T: Elem>(&mut self, i: usize, data: &[T]) -> Result<()> {
        let dst = self.input_mut::<T>(i)?;
        if dst.len() != data.len() {
            return Err(Error::WrongInput {
                reason: "input element count",
                expected: dst.len(),
                given: data.len(),
            });
        }
        dst.copy_from_slice(data);
        Ok(())
    }

    /// The bytes of graph output `i`, valid after [`Session::run`].
    pub fn output_bytes(&self, i: usize) -> Result<&[u8]> {
        let t = self.model.output(i)?;
        self.arena
            .get(t.offset..t.offset + t.byte_len)
            .ok_or(Error::BadTensor {
                index: t.index,
                reason: "out of range",
            })
    }

    /// Graph output `i` as a typed slice; `T` must match the output's dtype.
    pub fn output<T: Elem>(&self, i: usize) -> Result<&[T]> {
        let t = self.model.output(i)?;
        check_type::<T>(t.dtype)?;
        cast(self.output_bytes(i)?)
    }

    /// Runs every step once.
    pub fn run(&mut self) -> Result<()> {
        self.run_observed(|_, _| {})
    }

    /// Runs every step once, calling `after(i, op)` when step `i` has finished (profilers time
    /// the gaps between calls). The observer must not allocate if the caller counts allocations.
    pub fn run_observed(&mut self, mut after: impl FnMut(usize, &Op)) -> Result<()> {
        self.run_inspected(|i, op, _, _| after(i, op))
    }

    /// Runs every step once, calling `after(i, op, tensor, bytes)` when step `i` has finished,
    /// with the id of the tensor it wrote and that tensor's bytes as they are now. Converters
    /// and accuracy tools read every intermediate value this way (calibration, per-layer
    /// comparison): a value is only valid until a later step reuses its arena bytes, so read
    /// it in the call. Several steps may write parts of one tensor (lowered `Concat`); the
    /// tensor is complete after the last of them.
    pub fn run_inspected(&mut self, mut after: impl FnMut(usize, &Op, u32, &[u8])) -> Result<()> {
        let model = self.model;
        let split = ArenaSplit::new(self.arena);
        for i in 0..model.step_count() {
            let step = model.step(i)?;
            log::trace!("step {i}: {} -> tensor {}", step.op.name(), step.output);
            let err = |reason| Error::BadStep {
                index: i as u32,
                reason,
            };
            let out_t = model.tensor(step.output)?;
            if out_t.byte_len == 0 {
                continue; // nothing to compute, however large the other loop bounds are
            }
            let mut ins: [Option<(DType, &[u8])>; 4] = [None; 4];
            let mut in_place = false;
            let mut scratch_at = None;
            for (k, (slot, id)) in ins.iter_mut().zip(step.inputs).enumerate() {
                if let Some(id) = id {
                    let t = model.tensor(id)?;
                    if step.op.scratch_slot() == Some(k) {
                        // Written by the kernel: viewed exclusively below, never shared.
                        scratch_at = Some(Region {
                            offset: t.offset,
                            len: t.byte_len,
                        });
                        continue;
                    }
                    if k == 0
                        && t.storage == Storage::Arena
                        && t.offset == out_t.offset
                        && step.op.in_place_ok()
                    {
                        // Validation allows only an exact match here: computed in place.
                        in_place = true;
                        continue;
                    }
                    let b = match t.storage {
                        Storage::Const => model.const_bytes(&t)?,
                        // SAFETY: validation proved that no input region overlaps the output
                        // region of this step; inputs are only read.
                        Storage::Arena => unsafe {
                            split.input(Region {
                                offset: t.offset,
                                len: t.byte_len,
                            })
                        }
                        .ok_or(err("input outside the arena"))?,
                    };
                    *slot = Some((t.dtype, b));
                }
            }
            // SAFETY: the output region overlaps no input region of this step except operand 0
            // of an in-place step, for which no input view was made (validated), and this is
            // the only mutable view alive.
            let out = unsafe {
                split.output(Region {
                    offset: out_t.offset,
                    len: out_t.byte_len,
                })
            }
            .ok_or(err("output outside the arena"))?;
            let r = if let Some(at) = scratch_at {
                // SAFETY: validation proved the scratch region overlaps neither the output nor
                // any other operand of this step, and no other view of it is alive.
                let scratch =
                    unsafe { split.output(at) }.ok_or(err("scratch outside the arena"))?;
                eval_scratch(self.ctx, &step.op, &ins, scratch, out)
            } else if in_place {
                eval_in_place(self.ctx, &step.op, &ins, out)
            } else {
                #[cfg(feature = "std")]
                let done = self.pool.is_some_and(|pool| {
                    crate::par::eval_parallel(pool, self.ctx, &step.op, &ins, out).is_some()
                });
                #[cfg(not(feature = "std"))]
                let done = false;
                if done {
                    Ok(())
                } else {
                    eval(self.ctx, &step.op, &ins, out_t.dtype, out)
                }
            };
            r.map_err(|e| match e {
                StepError::Kernel(KernelError::IndexOutOfRange { index, len }) => {
                    Error::IndexOutOfRange {
                        step: i as u32,
                        index,
                        len: len as u64,
                    }
                }
                StepError::Other(e) => e,
            })?;
            after(i, &step.op, step.output, out);
        }
        Ok(())
    }
}

fn check_type<T: Elem>(d: DType) -> Result<()> {
    let ok = match d {
        DType::F32 => core::any::TypeId::of::<T>() == core::any::TypeId::of::<f32>(),
        DType::I64 => core::any::TypeId::of::<T>() == core::any::TypeId::of::<i64>(),
        DType::I32 => core::any::TypeId::of::<T>() == core::any::TypeId::of::<i32>(),
        DType::I8 => core::any::TypeId::of::<T>() == core::any::TypeId::of::<i8>(),
        DType::U8 | DType::Bool => core::any::TypeId::of::<T>() == core::any::TypeId::of::<u8>(),
        DType::F16 => core::any::TypeId::of::<T>() == core::any::TypeId::of::<u16>(),
    };
    if ok {
        Ok(())
    } else {
        Err(Error::WrongInput {
            reason: "element type differs from the tensor's dtype (size in bytes)",
            expected: d.size(),
            given: core::mem::size_of::<T>(),
        })
    }
}

/// Runs `$body` with `$t` bound to the unsigned integer type of the element size: the data
/// movement kernels only copy bits, so one instance per size serves every dtype.
macro_rules! by_size {
    ($size:expr, $t:ident => $body:expr) => {
        match $size {
            1 => {
                type $t = u8;
                $body
            }
            2 => {
                type $t = u16;
                $body
            }
            4 => {
                type $t = u32;
                $body
            }
            _ => {
                type $t = u64;
                $body
            }
        }
    };
}

/// A failure inside one step.
#[derive(Debug)]
pub enum StepError {
    /// A data-dependent index was out of range.
    Kernel(KernelError),
    /// Anything else.
    Other(Error),
}

impl From<Error> for StepError {
    fn from(e: Error) -> Self {
        StepError::Other(e)
    }
}
impl From<KernelError> for StepError {
    fn from(e: KernelError) -> Self {
        StepError::Kernel(e)
    }
}

/// Evaluates one op. `ins[i]` is `(dtype, bytes)` of operand `i`; `out` receives the result in
/// `out_dtype`. Operands must already have passed [`Op::validate`]. The executor and the
/// converter's constant folding both call this, so folded constants are computed exactly as the
/// runtime would compute them.
pub fn eval(
    ctx: Ctx,
    op: &Op,
    ins: &[Option<(DType, &[u8])>; 4],
    out_dtype: DType,
    out: &mut [u8],
) -> core::result::Result<(), StepError> {
    let missing = || {
        StepError::Other(Error::BadStep {
            index: 0,
            reason: "missing operand",
        })
    };
    let b = |i: usize| ins[i].map(|x| x.1).ok_or_else(missing);
    let f = |i: usize| -> core::result::Result<&[f32], StepError> { Ok(cast::<f32>(b(i)?)?) };
    let of = |i: usize| -> core::result::Result<Option<&[f32]>, StepError> {
        match ins[i] {
            Some((_, x)) => Ok(Some(cast::<f32>(x)?)),
            None => Ok(None),
        }
    };
    match *op {
        #[cfg(feature = "op-conv")]
        Op::Conv2d { g, act } => {
            let (dt, wb) = ins[1].ok_or_else(missing)?;
            let w = conv_weights(crate::ops::conv_packed(ctx.layout, &g), dt, wb)?;
            kd::conv2d_f32(ctx.isa, &g, f(0)?, w, of(2)?, act, cast_mut(out)?)
        }
        #[cfg(feature = "op-matmul")]
        Op::MatMul(g) => {
            let (a, bm) = (ins[0].ok_or_else(missing)?, ins[1].ok_or_else(missing)?);
            let (bias, out) = (of(2)?, cast_mut::<f32>(out)?);
            match (a.0, bm.0) {
                (DType::F16, DType::F16) => {
                    matmul(ctx, &g, cast::<u16>(a.1)?, cast::<u16>(bm.1)?, bias, out)
                }
                (DType::F16, _) => {
                    matmul(ctx, &g, cast::<u16>(a.1)?, cast::<f32>(bm.1)?, bias, out)
                }
                (_, DType::F16) => {
                    matmul(ctx, &g, cast::<f32>(a.1)?, cast::<u16>(bm.1)?, bias, out)
                }
                _ => matmul(ctx, &g, cast::<f32>(a.1)?, cast::<f32>(bm.1)?, bias, out),
            }
        }
        #[cfg(feature = "op-elementwise")]
        Op::Binary { op, bc } => kd::binary_f32(
            ctx.isa,
            op,
            bc.dims(),
            f(0)?,
            bc.strides(0),
            f(1)?,
            bc.strides(1),
            cast_mut(out)?,
        ),
        #[cfg(feature = "op-elementwise")]
        Op::Compare { op, bc } => k::elementwise::compare_f32(
            op,
            bc.dims(),
            f(0)?,
            bc.strides(0),
            f(1)?,
            bc.strides(1),
            out,
        ),
        #[cfg(feature = "op-elementwise")]
        Op::Logic { kind, bc } => {
            let a = b(0)?;
            let bb = if kind == 3 { a } else { b(1)? };
            if kind == 3 {
                k::elementwise::logic_u8(
                    2,
                    bc.dims(),
                    a,
                    bc.strides(0),
                    &[1u8],
                    head(&[0; 8], bc.rank),
                    out,
                );
            } else {
                k::elementwise::logic_u8(kind, bc.dims(), a, bc.strides(0), bb, bc.strides(1), out);
            }
        }
        #[cfg(feature = "op-elementwise")]
        Op::Where { bc } => {
            let c = b(0)?;
            let (x, y) = (b(1)?, b(2)?);
            by_size!(out_dtype.size(), T => k::elementwise::where_select::<T>(bc.dims(), c, bc.strides(0), cast(x)?, bc.strides(1), cast(y)?, bc.strides(2), cast_mut(out)?))
        }
        #[cfg(feature = "op-elementwise")]
        Op::Unary { op } => kd::unary_f32(ctx.isa, op, f(0)?, cast_mut(out)?),
        #[cfg(feature = "op-elementwise")]
        Op::Cast => cast_elems(ins[0].ok_or_else(missing)?, out_dtype, out)?,
        #[cfg(feature = "op-elementwise")]
        Op::Elementwise { bc, prog } | Op::ElementwiseReduce { bc, prog, .. } => {
            use mote_targets::program::{ProgramIn, ProgramOut};
            let mut pins = [ProgramIn::F32(&[]); mote_targets::program::PROGRAM_OPERANDS];
            for (j, p) in pins.iter_mut().enumerate().take(prog.n_in) {
                let (dt, x) = ins[j].ok_or_else(missing)?;
                *p = match dt {
                    DType::Bool => ProgramIn::Bool(x),
                    _ => ProgramIn::F32(cast(x)?),
                };
            }
            let o = match (*op, out_dtype) {
                (Op::ElementwiseReduce { op, len, .. }, _) => ProgramOut::Fold {
                    out: cast_mut(out)?,
                    op,
                    len,
                },
                (_, DType::Bool) => ProgramOut::Bool(out),
                _ => ProgramOut::F32(cast_mut(out)?),
            };
            mote_targets::program::program_f32(
                ctx.isa,
                &prog,
                bc.dims(),
                &pins[..prog.n_in],
                &bc.strides[..prog.n_in],
                o,
            )
            .map_err(|e| {
                StepError::Other(Error::BadStep {
                    index: 0,
                    reason: e.0,
                })
            })?
        }
        #[cfg(feature = "op-norm")]
        Op::Softmax {
            outer,
            axis,
            inner,
            log,
        } => kd::softmax_f32(ctx.isa, outer, axis, inner, log, f(0)?, cast_mut(out)?),
        #[cfg(feature = "op-norm")]
        Op::LayerNorm { outer, size, eps } => kd::layernorm_f32(
            ctx.isa,
            outer,
            size,
            eps,
            f(0)?,
            of(1)?,
            of(2)?,
            cast_mut(out)?,
        ),
        #[cfg(feature = "op-norm")]
        Op::LayerNormAxis {
            outer,
            size,
            inner,
            eps,
        } => kd::layernorm_axis_f32(
            ctx.isa,
            outer,
            size,
            inner,
            eps,
            f(0)?,
            of(1)?,
            of(2)?,
            cast_mut(out)?,
        ),
        #[cfg(feature = "op-norm")]
        Op::InstanceNorm { n, c, spatial, eps } => kd::instancenorm_f32(
            ctx.isa,
            n,
            c,
            spatial,
            eps,
            f(0)?,
            f(1)?,
            f(2)?,
            cast_mut(out)?,
        ),
        #[cfg(feature = "op-norm")]
        Op::ChannelAffine { outer, c, inner } => kd::channel_affine_f32(
            ctx.isa,
            outer,
            c,
            inner,
            f(0)?,
            f(1)?,
            f(2)?,
            cast_mut(out)?,
        ),
        #[cfg(feature = "op-reduce")]
        Op::Reduce {
            op,
            rank,
            dims,
            mask,
        } => kd::reduce_f32(ctx.isa, op, head(&dims, rank), mask, f(0)?, cast_mut(out)?),
        #[cfg(feature = "op-reduce")]
        Op::ArgMax {
            outer,
            axis,
            inner,
            min,
            select_last,
        } => k::gather::argmax_f32(outer, axis, inner, min, select_last, f(0)?, cast_mut(out)?),
        #[cfg(feature = "op-gather")]
        Op::Gather { outer, axis, inner } => {
            let idx = cast::<i64>(b(1)?)?;
            let d = b(0)?;
            by_size!(out_dtype.size(), T => k::gather::gather::<T>(outer, axis, inner, cast(d)?, idx, cast_mut(out)?)?)
        }
        #[cfg(feature = "op-gather")]
        Op::GatherElements {
            rank,
            data_dims,
            idx_dims,
            axis,
        } => {
            let idx = cast::<i64>(b(1)?)?;
            let d = b(0)?;
            let (dd, id) = (head(&data_dims, rank), head(&idx_dims, rank));
            by_size!(out_dtype.size(), T => k::gather::gather_elements::<T>(dd, id, axis, cast(d)?, idx, cast_mut(out)?)?)
        }
        Op::Copy(c) => {
            let s = b(0)?;
            let (dims, ss, ds) = (
                head(&c.dims, c.rank),
                head(&c.src_strides, c.rank),
                head(&c.dst_strides, c.rank),
            );
            by_size!(out_dtype.size(), T => k::copy::copy_strided::<T>(dims, cast(s)?, c.src_off, ss, cast_mut(out)?, c.dst_off, ds))
        }
        #[cfg(feature = "op-pad")]
        Op::Pad {
            mode,
            rank,
            in_dims,
            out_dims,
            begin,
            value,
        } => {
            let x = b(0)?;
            let (id, od, bg) = (
                head(&in_dims, rank),
                head(&out_dims, rank),
                head(&begin, rank),
            );
            by_size!(out_dtype.size(), T => k::pad::pad::<T>(mode, id, od, bg, value as T, cast(x)?, cast_mut(out)?))
        }
        #[cfg(feature = "op-pool")]
        Op::Pool2d { kind, g } => k::pool::pool2d_f32(kind, &g, f(0)?, cast_mut(out)?),
        #[cfg(feature = "op-int8")]
        Op::Quantize { .. } | Op::Dequantize { .. } | Op::QConv2d { .. } | Op::QMatMul { .. } => {
            crate::qexec::eval_q8(ctx, op, ins, &mut [], out)?
        }
        // Ops whose cargo feature is off; `Model::from_bytes` refuses them before any run.
        #[allow(unreachable_patterns)]
        _ => {
            return Err(StepError::Other(Error::OpNotBuilt {
                step: 0,
                op: op.name(),
                feature: op.feature().map_or("", |f| f.0),
            }))
        }
    }
    Ok(())
}

/// [`eval`] for an op with a scratch operand ([`Op::scratch_slot`]): `scratch` is that
/// operand's bytes, exclusively borrowed (`ins` leaves its slot empty).
pub fn eval_scratch(
    ctx: Ctx,
    op: &Op,
    ins: &[Option<(DType, &[u8])>; 4],
    scratch: &mut [u8],
    out: &mut [u8],
) -> core::result::Result<(), StepError> {
    match *op {
        #[cfg(feature = "op-int8")]
        Op::QConv2d { .. } | Op::QMatMul { .. } => {
            crate::qexec::eval_q8(ctx, op, ins, scratch, out)
        }
        _ => Err(StepError::Other(Error::OpNotBuilt {
            step: 0,
            op: op.name(),
            feature: op.feature().map_or("", |f| f.0),
        })),
    }
}

/// Evaluates an op whose output is also its operand 0 (`ins[0]` is ignored). Only for ops with
/// [`Op::in_place_ok`].
pub fn eval_in_place(
    ctx: Ctx,
    op: &Op,
    ins: &[Option<(DType, &[u8])>; 4],
    out: &mut [u8],
) -> core::result::Result<(), StepError> {
    let f = |i: usize| -> core::result::Result<&[f32], StepError> {
        let b = ins[i].map(|x| x.1).ok_or(StepError::Other(Error::BadStep {
            index: 0,
            reason: "missing operand",
        }))?;
        Ok(cast::<f32>(b)?)
    };
    let x = cast_mut::<f32>(out)?;
    match *op {
        #[cfg(feature = "op-elementwise")]
        Op::Unary { op } => kd::unary_inplace_f32(ctx.isa, op, x),
        Op::Binary { op, bc } => {
            kd::binary_inplace_f32(ctx.isa, op, bc.dims(), x, f(1)?, bc.strides(1))
        }
        #[cfg(feature = "op-norm")]
        Op::ChannelAffine { outer, c, inner } => {
            kd::channel_affine_inplace_f32(ctx.isa, outer, c, inner, x, f(1)?, f(2)?)
        }
        _ => {
            return Err(StepError::Other(Error::BadStep {
                index: 0,
                reason: "op cannot run in place",
            }))
        }
    }
    Ok(())
}

/// A Cast operand, viewed once as its element type.
enum CastSrc<'a> {
    F32(&'a [f32]),
    I64(&'a [i64]),
    I32(&'a [i32]),
    I8(&'a [i8]),
    U8(&'a [u8]),
}

impl CastSrc<'_> {
    fn len(&self) -> usize {
        match self {
            CastSrc::F32(v) => v.len(),
            CastSrc::I64(v) => v.len(),
            CastSrc::I32(v) => v.len(),
            CastSrc::I8(v) => v.len(),
            CastSrc::U8(v) => v.len(),
        }
    }
    /// Element `i` rounded to f32 (integers exactly where f32 can hold them).
    fn f32_at(&self, i: usize) -> f32 {
        match self {
            CastSrc::F32(v) => v[i],
            CastSrc::I64(v) => v[i] as f32,
            CastSrc::I32(v) => v[i] as f32,
            CastSrc::I8(v) => v[i] as f32,
            CastSrc::U8(v) => v[i] as f32,
        }
    }
    /// Element `i` as an integer (floats truncate toward zero, saturating).
    fn i64_at(&self, i: usize) -> i64 {
        match self {
            CastSrc::F32(v) => v[i] as i64,
            CastSrc::I64(v) => v[i],
            CastSrc::I32(v) => v[i] as i64,
            CastSrc::I8(v) => v[i] as i64,
            CastSrc::U8(v) => v[i] as i64,
        }
    }
    /// Element `i` as a bool (`!= 0`; NaN is true).
    fn nonzero(&self, i: usize) -> bool {
        match self {
            CastSrc::F32(v) => v[i] != 0.0,
            _ => self.i64_at(i) != 0,
        }
    }
}

fn cast_elems(src: (DType, &[u8]), to: DType, out: &mut [u8]) -> Result<()> {
    let (from, x) = src;
    let unsupported = Error::BadStep {
        index: 0,
        reason: "cast to or from float16",
    };
    let x = match from {
        DType::F32 => CastSrc::F32(cast(x)?),
        DType::I64 => CastSrc::I64(cast(x)?),
        DType::I32 => CastSrc::I32(cast(x)?),
        DType::I8 => CastSrc::I8(cast(x)?),
        DType::U8 | DType::Bool => CastSrc::U8(x),
        DType::F16 => return Err(unsupported),
    };
    let n = x.len();
    match to {
        DType::F32 => cast_mut::<f32>(out)?[..n]
            .iter_mut()
            .enumerate()
            .for_each(|(i, o)| *o = x.f32_at(i)),
        DType::Bool => out[..n]
            .iter_mut()
            .enumerate()
            .for_each(|(i, o)| *o = x.nonzero(i) as u8),
        DType::I64 => cast_mut::<i64>(out)?[..n]
            .iter_mut()
            .enumerate()
            .for_each(|(i, o)| *o = x.i64_at(i)),
        DType::I32 => cast_mut::<i32>(out)?[..n]
            .iter_mut()
            .enumerate()
            .for_each(|(i, o)| *o = x.i64_at(i) as i32),
        DType::I8 => cast_mut::<i8>(out)?[..n]
            .iter_mut()
            .enumerate()
            .for_each(|(i, o)| *o = x.i64_at(i) as i8),
        DType::U8 => out[..n]
            .iter_mut()
            .enumerate()
            .for_each(|(i, o)| *o = x.i64_at(i) as u8),
        DType::F16 => return Err(unsupported),
    }
    Ok(())
}

/// A convolution's weight operand as the kernels take it: float32 or float16 (validated),
/// plain or panel-packed by the file's layout.
pub(crate) fn conv_weights(
    packed: bool,
    dtype: DType,
    bytes: &[u8],
) -> core::result::Result<kd::ConvWeights<'_>, Error> {
    Ok(match (packed, dtype) {
        (false, DType::F16) => kd::ConvWeights::PlainF16(cast(bytes)?),
        (true, DType::F16) => kd::ConvWeights::PanelsF16(cast(bytes)?),
        (false, _) => kd::ConvWeights::Plain(cast(bytes)?),
        (true, _) => kd::ConvWeights::Panels(cast(bytes)?),
    })
}

/// Every batch item of a MatMul (operands f32 or binary16 bits, validated).
#[cfg(feature = "op-matmul")]
fn matmul<TA: kd::MatElem, TB: kd::MatElem>(
    ctx: Ctx,
    g: &crate::ops::MatMulGeom,
    a: &[TA],
    bm: &[TB],
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let batch: usize = head(&g.batch, g.batch_rank).iter().product();
    let mut idx = [0usize; 6];
    let batch_rank = g.batch_rank.min(idx.len()); // decoding bounds it (see `head`)
    for bi in 0..batch {
        let (mut ao, mut bo) = (0usize, 0usize);
        for d in 0..batch_rank {
            ao += idx[d] * g.a_bs[d];
            bo += idx[d] * g.b_bs[d];
        }
        kd::gemm_f32(
            ctx.isa,
            g.m,
            g.n,
            g.k,
            g.alpha,
            k::gemm::MatRef {
                data: a,
                offset: ao,
                rs: g.a_rs,
                cs: g.a_cs,
            },
            k::gemm::MatRef {
                data: bm,
                offset: bo,
                rs: g.b_rs,
                cs: g.b_cs,
            },
            bias,
            g.act,
            out,
            bi * g.m * g.n,
            g.n,
        );
        for d in (0..batch_rank).rev() {
            idx[d] += 1;
            if idx[d] < g.batch[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}
