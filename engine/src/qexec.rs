//! The int8 steps (`Quantize`, `Dequantize`, `QConv2d`, `QMatMul`): operand unpacking, im2col
//! into the step's scratch, and the calls into the int8 kernels (the contract of
//! `mote_targets::q8`). Nothing here allocates.
#![forbid(unsafe_code)]

use crate::error::Error;
use crate::exec::{Ctx, StepError};
use crate::format::DType;
use crate::ops::{q_depthwise, q_direct, Op, QOut, QParams};
use crate::view::{cast, cast_mut};
use mote_targets::q8::{qgemm_packed_len, QMat, QOut as Dst, Requant};
use mote_targets::{Activation, Conv2dGeom};

/// The one place the runtime calls the int8 kernels from: the dispatching versions, which run
/// the kernel set's SIMD code (VNNI, AVX2, NEON dot-product or widening) and return exactly the
/// bits of the `mote_targets::q8` references.
mod kern {
    pub use mote_targets::kernels::{
        activation_inplace_f32, dequantize_u8, qdwconv2d, qgemm, qgemm_f32out, quantize_u8,
    };
}

fn bad(reason: &'static str) -> StepError {
    StepError::Other(Error::BadStep { index: 0, reason })
}

/// The requantization blob of `c` channels (`ops::QParams::rq_bytes_per_channel`).
#[derive(Clone, Copy)]
enum Rq<'a> {
    U8 {
        bias: &'a [i32],
        multiplier: &'a [i32],
        shift: &'a [i8],
    },
    F32 {
        bias: &'a [i32],
        scale: &'a [f32],
    },
}

fn split_rq<'a>(q: &QParams, blob: &'a [u8], c: usize) -> Result<Rq<'a>, StepError> {
    let part = |from: usize, len: usize| blob.get(from..from + len).ok_or(bad("requant blob"));
    let bias = cast::<i32>(part(0, 4 * c)?)?;
    Ok(match q.out {
        QOut::U8 { .. } => Rq::U8 {
            bias,
            multiplier: cast::<i32>(part(4 * c, 4 * c)?)?,
            shift: cast::<i8>(part(8 * c, c)?)?,
        },
        QOut::F32 { .. } => Rq::F32 {
            bias,
            scale: cast::<f32>(part(4 * c, 4 * c)?)?,
        },
    })
}

/// Evaluates one int8 step; `scratch` is the step's scratch operand (empty when it has none).
/// Operands passed [`Op::validate`].
pub(crate) fn eval_q8(
    ctx: Ctx,
    op: &Op,
    ins: &[Option<(DType, &[u8])>; 4],
    scratch: &mut [u8],
    out: &mut [u8],
) -> Result<(), StepError> {
    let b = |i: usize| ins[i].map(|x| x.1).ok_or(bad("missing operand"));
    let isa = ctx.isa;
    match *op {
        Op::Quantize { scale, zp } => {
            kern::quantize_u8(isa, cast::<f32>(b(0)?)?, scale, zp, out);
        }
        Op::Dequantize { scale, zp } => {
            kern::dequantize_u8(isa, b(0)?, scale, zp, cast_mut::<f32>(out)?);
        }
        Op::QConv2d { g, q } => {
            let rq = split_rq(&q, b(2)?, g.c_out)?;
            qconv(ctx, &g, &q, b(0)?, cast::<i8>(b(1)?)?, &rq, scratch, out)?;
        }
        Op::QMatMul {
            p,
            n,
            k,
            a_rs,
            a_cs,
            q,
        } => {
            let rq = split_rq(&q, b(2)?, n)?;
            // out[r, j] = Σ_c W[c, j] x[r, c]: the GEMM's rows are the output channels and its
            // columns the rows of x, read and written through strides.
            let xm = QMat {
                data: b(0)?,
                offset: 0,
                rs: a_cs,
                cs: a_rs,
            };
            let dst = Dst {
                offset: 0,
                rs: 1,
                cs: n,
            };
            let w = cast::<i8>(b(1)?)?;
            gemm(ctx, n, p, k, w, xm, &q, &rq, 0, out, dst, scratch)?;
        }
        _ => return Err(bad("not an int8 op")),
    }
    Ok(())
}

/// One GEMM over output rows `row0 .. row0 + m` of the requant parameters.
#[allow(clippy::too_many_arguments)]
fn gemm(
    ctx: Ctx,
    m: usize,
    n: usize,
    k: usize,
    w: &[i8],
    x: QMat<'_>,
    q: &QParams,
    rq: &Rq<'_>,
    row0: usize,
    out: &mut [u8],
    dst: Dst,
    scratch: &mut [u8],
) -> Result<(), StepError> {
    let rows = row0..row0 + m;
    match (*rq, q.out) {
        (
            Rq::U8 {
                bias,
                multiplier,
                shift,
            },
            QOut::U8 { zp, lo, hi },
        ) => {
            let r = Requant {
                bias: &bias[rows.clone()],
                multiplier: &multiplier[rows.clone()],
                shift: &shift[rows],
                out_zp: zp,
                lo,
                hi,
            };
            kern::qgemm(ctx.isa, m, n, k, w, x, q.x_zp, &r, out, dst, scratch);
        }
        (Rq::F32 { bias, scale }, QOut::F32 { act }) => {
            let out = cast_mut::<f32>(out)?;
            let region = (dst.offset, m, n, dst.rs, dst.cs);
            kern::qgemm_f32out(
                ctx.isa,
                m,
                n,
                k,
                w,
                x,
                q.x_zp,
                &bias[rows.clone()],
                &scale[rows],
                out,
                dst,
                scratch,
            );
            if act != Activation::None {
                activate(ctx, act, out, region)?;
            }
        }
        _ => return Err(bad("requant blob does not match the output kind")),
    }
    Ok(())
}

/// Applies `act` to the `m × n` elements `offset + i × rs + j × cs` the GEMM wrote: one
/// kernel call when they form one block (every layout the converter writes), else one per
/// element.
fn activate(
    ctx: Ctx,
    act: Activation,
    out: &mut [f32],
    (offset, m, n, rs, cs): (usize, usize, usize, usize, usize),
) -> Result<(), StepError> {
    let len = m * n;
    if len == 0 {
        return Ok(());
    }
    if (cs == 1 && rs == n) || (rs == 1 && cs == m) {
        let block = out
            .get_mut(offset..offset + len)
            .ok_or(bad("int8 output region"))?;
        kern::activation_inplace_f32(ctx.isa, act, block);
        return Ok(());
    }
    for i in 0..m {
        for j in 0..n {
            let v = out
                .get_mut(offset + i * rs + j * cs)
                .ok_or(bad("int8 output region"))?;
            kern::activation_inplace_f32(ctx.isa, act, core::slice::from_mut(v));
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn qconv(
    ctx: Ctx,
    g: &Conv2dGeom,
    q: &QParams,
    x: &[u8],
    w: &[i8],
    rq: &Rq<'_>,
    scratch: &mut [u8],
    out: &mut [u8],
) -> Result<(), StepError> {
    if q_depthwise(g) {
        let (
            Rq::U8 {
                bias,
                multiplier,
                shift,
            },
            QOut::U8 { zp, lo, hi },
        ) = (*rq, q.out)
        else {
            return Err(bad("a depthwise int8 conv has no f32 output form"));
        };
        let r = Requant {
            bias,
            multiplier,
            shift,
            out_zp: zp,
            lo,
            hi,
        };
        kern::qdwconv2d(ctx.isa, g, x, q.x_zp, w, &r, out);
        return Ok(());
    }
    let cpg = g.c_in / g.groups;
    let m = g.c_out / g.groups;
    let k = cpg * g.kh * g.kw;
    let n = g.h_out * g.w_out;
    let hw_in = g.h_in * g.w_in;
    let plen = qgemm_packed_len(m, k);
    let direct = q_direct(g);
    let (col, gs) = scratch.split_at_mut(if direct { 0 } else { k * n });
    for b in 0..g.n {
        for grp in 0..g.groups {
            let xoff = (b * g.c_in + grp * cpg) * hw_in;
            let xm = if direct {
                QMat {
                    data: x,
                    offset: xoff,
                    rs: hw_in,
                    cs: 1,
                }
            } else {
                im2col(g, &x[xoff..xoff + cpg * hw_in], q.x_zp, col);
                QMat {
                    data: col,
                    offset: 0,
                    rs: n,
                    cs: 1,
                }
            };
            let dst = Dst {
                offset: (b * g.c_out + grp * m) * n,
                rs: n,
                cs: 1,
            };
            let wg = &w[grp * plen..(grp + 1) * plen];
            gemm(ctx, m, n, k, wg, xm, q, rq, grp * m, out, dst, gs)?;
        }
    }
    Ok(())
}

/// `col[(c × kh × kw + ty × kw + tx) × n + oy × w_out + ox]` = the input under tap `(ty, tx)`
/// of output `(oy, ox)` for channel `c` of one group, or `x_zp` (a real 0) outside the input.
fn im2col(g: &Conv2dGeom, x: &[u8], x_zp: u8, col: &mut [u8]) {
    let n = g.h_out * g.w_out;
    let plane = g.h_in * g.w_in;
    if plane == 0 {
        col.fill(x_zp);
        return;
    }
    let mut row = 0usize;
    for xc in x.chunks_exact(plane.max(1)).take(g.c_in / g.groups) {
        for ty in 0..g.kh {
            for tx in 0..g.kw {
                let dst = &mut col[row * n..(row + 1) * n];
                row += 1;
                for oy in 0..g.h_out {
                    let iy = (oy * g.stride_h + ty * g.dil_h) as isize - g.pad_top as isize;
                    let line = &mut dst[oy * g.w_out..(oy + 1) * g.w_out];
                    if iy < 0 || iy >= g.h_in as isize {
                        line.fill(x_zp);
                        continue;
                    }
                    let src = &xc[iy as usize * g.w_in..(iy as usize + 1) * g.w_in];
                    // Outputs ox0 .. ox1 read inside the row (ix = ox × s + off in [0, w_in)),
                    // the others read padding: a fill, a copy (stride 1) or a strided gather.
                    let s = g.stride_w.max(1);
                    let off = (tx * g.dil_w) as isize - g.pad_left as isize;
                    let ox0 = if off >= 0 {
                        0
                    } else {
                        off.unsigned_abs().div_ceil(s)
                    }
                    .min(g.w_out);
                    let end = g.w_in as isize - off; // ox × s < end
                    let ox1 = if end <= 0 {
                        ox0
                    } else {
                        (end as usize).div_ceil(s).clamp(ox0, g.w_out)
                    };
                    line[..ox0].fill(x_zp);
                    line[ox1..].fill(x_zp);
                    if ox1 > ox0 {
                        // ≥ 0: ox0 is the first output whose tap is inside the row.
                        let first = ((ox0 * s) as isize + off) as usize;
                        if s == 1 {
                            line[ox0..ox1].copy_from_slice(&src[first..first + (ox1 - ox0)]);
                        } else {
                            for (o, &v) in line[ox0..ox1]
                                .iter_mut()
                                .zip(src[first..].iter().step_by(s))
                            {
                                *o = v;
                            }
                        }
                    }
                }
            }
        }
    }
}
