//! Splitting one step over a [`ThreadPool`] (std only).
//!
//! Only steps with enough arithmetic are split, and only along dimensions whose output is one
//! contiguous block per part, so every part gets its own `&mut` slice of the output and runs
//! the same kernel on a sub-problem:
//!
//! - convolutions by batch item, then by output channels (whole 6-row weight panels, or whole
//!   groups for grouped and depthwise convolutions);
//! - matrix products by batch item, then by output rows.
//!
//! Each output value is computed by the same kernel with the same summation order as without
//! threads, so results are bit-identical for any thread count.

use crate::exec::Ctx;
use crate::format::DType;
use crate::ops::{conv_packed, MatMulGeom, Op};
use crate::pool::ThreadPool;
use crate::view::{cast, cast_mut};
use mote_targets::gemm::{panels_len, MR};
use mote_targets::generic::gemm::MatRef;
use mote_targets::kernels as kd;
use mote_targets::{Activation, Conv2dGeom};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Most parts one step is split into.
const MAX_PARTS: usize = 64;

/// One part's output range (in elements) and what it computes.
#[derive(Clone, Copy, Debug, Default)]
struct Part {
    lo: usize,
    hi: usize,
    /// Batch item.
    b: usize,
    /// First and one-past-last split unit (conv: group or row tile; matmul: row).
    u0: usize,
    u1: usize,
}

/// The output split into the parts' disjoint slices, each handed out once.
struct Slots<'o> {
    slots: [Mutex<Option<&'o mut [f32]>>; MAX_PARTS],
}

impl<'o> Slots<'o> {
    /// Splits `out` by `parts` (ordered, non-overlapping ranges); `None` if they are not.
    fn new(out: &'o mut [f32], parts: &[Part]) -> Option<Self> {
        let slots: [Mutex<Option<&'o mut [f32]>>; MAX_PARTS] =
            core::array::from_fn(|_| Mutex::new(None));
        let mut rest = out;
        let mut at = 0usize;
        for (slot, p) in slots.iter().zip(parts) {
            if p.lo < at || p.hi < p.lo {
                return None;
            }
            let tail = core::mem::take(&mut rest);
            let tail = tail.get_mut(p.lo - at..)?;
            if tail.len() < p.hi - p.lo {
                return None;
            }
            let (mine, tail) = tail.split_at_mut(p.hi - p.lo);
            *slot.lock().ok()? = Some(mine);
            rest = tail;
            at = p.hi;
        }
        Some(Slots { slots })
    }

    fn take(&self, i: usize) -> Option<&'o mut [f32]> {
        self.slots.get(i)?.lock().ok()?.take()
    }
}

/// How many parts `macs` multiply-adds are worth on `pool`.
fn parts_for(macs: usize, pool: &ThreadPool) -> usize {
    (macs / pool.min_part_macs())
        .min(pool.threads())
        .min(MAX_PARTS)
}

/// Splits `units` into `pieces` near-equal consecutive ranges; piece `i`'s range.
fn piece(units: usize, pieces: usize, i: usize) -> (usize, usize) {
    (units * i / pieces, units * (i + 1) / pieces)
}

/// `x` as binary16 bits.
fn h(x: &[u8]) -> Option<&[u16]> {
    cast::<u16>(x).ok()
}

/// Runs `op` split over `pool` if it is worth it; `None` leaves the whole step to the caller
/// (which then computes it serially, overwriting anything written here).
/// Operands must have passed [`Op::validate`].
pub(crate) fn eval_parallel(
    pool: &ThreadPool,
    ctx: Ctx,
    op: &Op,
    ins: &[Option<(DType, &[u8])>; 4],
    out: &mut [u8],
) -> Option<()> {
    if pool.threads() < 2 {
        return None;
    }
    let f = |i: usize| -> Option<&[f32]> { cast::<f32>(ins[i]?.1).ok() };
    let of = |i: usize| -> Option<Option<&[f32]>> {
        match ins[i] {
            Some((_, x)) => Some(Some(cast::<f32>(x).ok()?)),
            None => Some(None),
        }
    };
    match *op {
        Op::Conv2d { g, act } => {
            let (dt, wb) = ins[1]?;
            let w = crate::exec::conv_weights(conv_packed(ctx.layout, &g), dt, wb).ok()?;
            conv(pool, ctx, &g, f(0)?, w, of(2)?, act, cast_mut(out).ok()?)
        }
        Op::MatMul(g) => {
            let (a, bm, bias, out) = (ins[0]?, ins[1]?, of(2)?, cast_mut(out).ok()?);
            match (a.0, bm.0) {
                (DType::F16, DType::F16) => matmul(pool, ctx, &g, h(a.1)?, h(bm.1)?, bias, out),
                (DType::F16, _) => matmul(pool, ctx, &g, h(a.1)?, f(1)?, bias, out),
                (_, DType::F16) => matmul(pool, ctx, &g, f(0)?, h(bm.1)?, bias, out),
                _ => matmul(pool, ctx, &g, f(0)?, f(1)?, bias, out),
            }
        }
        _ => None,
    }
}

#[allow(clippy::too_many_arguments)]
fn conv(
    pool: &ThreadPool,
    ctx: Ctx,
    g: &Conv2dGeom,
    input: &[f32],
    w: kd::ConvWeights<'_>,
    bias: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
) -> Option<()> {
    let cig = g.c_in / g.groups;
    let cog = g.c_out / g.groups;
    let k = cig * g.kh * g.kw;
    let in_plane = g.h_in * g.w_in;
    let out_plane = g.h_out * g.w_out;
    let macs = g.n * g.c_out * out_plane * k;
    let want = parts_for(macs, pool);
    if want < 2 {
        return None;
    }
    // Split units per batch item: groups (kept >= 2 per part, so a grouped conv stays on its
    // direct kernel), or 6-row tiles of the output channels.
    let grouped = g.groups > 1;
    let units = if grouped {
        g.groups / 2
    } else {
        g.c_out.div_ceil(MR)
    };
    let per_batch = want.div_ceil(g.n).min(units).max(1);
    let nparts = (g.n * per_batch).min(MAX_PARTS);
    if nparts < 2 {
        return None;
    }
    let per_batch = nparts / g.n;
    if per_batch == 0 || g.n * per_batch != nparts {
        // More batch items than parts: whole batch items per part are not split here.
        return None;
    }
    let units = if grouped { g.groups } else { units };
    let ch = |u: usize| {
        if grouped {
            u * cog
        } else {
            (u * MR).min(g.c_out)
        }
    };
    let mut parts = [Part::default(); MAX_PARTS];
    for (p, part) in parts.iter_mut().enumerate().take(nparts) {
        let (b, i) = (p / per_batch, p % per_batch);
        let (u0, u1) = piece(units, per_batch, i);
        let base = b * g.c_out;
        *part = Part {
            lo: (base + ch(u0)) * out_plane,
            hi: (base + ch(u1)) * out_plane,
            b,
            u0,
            u1,
        };
    }
    let parts = &parts[..nparts];
    let slots = Slots::new(out, parts)?;
    let per_group_panels = panels_len(cog, k);
    let failed = AtomicBool::new(false);
    let job = |i: usize| {
        let fail = || failed.store(true, Ordering::Relaxed);
        let (Some(p), Some(dst)) = (parts.get(i), slots.take(i)) else {
            return fail();
        };
        let (c0, c1) = (ch(p.u0), ch(p.u1));
        let (sub, x, wsub, bsub) = if grouped {
            let ng = p.u1 - p.u0;
            let sub = Conv2dGeom {
                n: 1,
                c_in: ng * cig,
                c_out: ng * cog,
                groups: ng,
                ..*g
            };
            let x0 = (p.b * g.c_in + p.u0 * cig) * in_plane;
            let x = input.get(x0..x0 + ng * cig * in_plane);
            let (plain, panels) = (
                p.u0 * cog * k..p.u1 * cog * k,
                p.u0 * per_group_panels..p.u1 * per_group_panels,
            );
            let wsub = match w {
                kd::ConvWeights::Plain(w) => w.get(plain).map(kd::ConvWeights::Plain),
                kd::ConvWeights::PlainF16(w) => w.get(plain).map(kd::ConvWeights::PlainF16),
                kd::ConvWeights::Panels(w) => w.get(panels).map(kd::ConvWeights::Panels),
                kd::ConvWeights::PanelsF16(w) => w.get(panels).map(kd::ConvWeights::PanelsF16),
            };
            (sub, x, wsub, bias.map(|v| v.get(c0..c1)))
        } else {
            let rows = c1 - c0;
            let sub = Conv2dGeom {
                n: 1,
                c_out: rows,
                ..*g
            };
            let x0 = p.b * g.c_in * in_plane;
            let x = input.get(x0..x0 + g.c_in * in_plane);
            let s = p.u0 * MR * k;
            let (plain, panels) = (c0 * k..c1 * k, s..s + panels_len(rows, k));
            let wsub = match w {
                kd::ConvWeights::Plain(w) => w.get(plain).map(kd::ConvWeights::Plain),
                kd::ConvWeights::PlainF16(w) => w.get(plain).map(kd::ConvWeights::PlainF16),
                kd::ConvWeights::Panels(w) => w.get(panels).map(kd::ConvWeights::Panels),
                kd::ConvWeights::PanelsF16(w) => w.get(panels).map(kd::ConvWeights::PanelsF16),
            };
            (sub, x, wsub, bias.map(|v| v.get(c0..c1)))
        };
        let bsub = match bsub {
            Some(None) => return fail(),
            Some(Some(v)) => Some(v),
            None => None,
        };
        match (x, wsub) {
            (Some(x), Some(wsub)) => kd::conv2d_f32(ctx.isa, &sub, x, wsub, bsub, act, dst),
            _ => fail(),
        }
    };
    pool.run(nparts, &job);
    // A part whose operands did not slice (validation should make that impossible): the
    // caller recomputes the whole step serially.
    (!failed.into_inner()).then_some(())
}

/// `(a, b)` element offsets of batch item `bi`.
fn batch_offsets(g: &MatMulGeom, mut bi: usize) -> (usize, usize) {
    let (mut ao, mut bo) = (0, 0);
    for d in (0..g.batch_rank).rev() {
        let i = bi % g.batch[d];
        bi /= g.batch[d];
        ao += i * g.a_bs[d];
        bo += i * g.b_bs[d];
    }
    (ao, bo)
}

fn matmul<TA: kd::MatElem, TB: kd::MatElem>(
    pool: &ThreadPool,
    ctx: Ctx,
    g: &MatMulGeom,
    a: &[TA],
    bm: &[TB],
    bias: Option<&[f32]>,
    out: &mut [f32],
) -> Option<()> {
    let batch: usize = g.batch[..g.batch_rank].iter().product();
    let macs = batch * g.m * g.n * g.k;
    let want = parts_for(macs, pool);
    if want < 2 {
        return None;
    }
    // Whole batch items per part when there are enough, else rows of each batch item.
    let (nparts, per_batch) = if batch >= want {
        (want, 0)
    } else {
        let per_batch = want.div_ceil(batch).min(g.m.div_ceil(MR));
        ((batch * per_batch).min(MAX_PARTS), per_batch)
    };
    if nparts < 2 || (per_batch > 0 && nparts != batch * per_batch) {
        return None;
    }
    let plane = g.m * g.n;
    let mut parts = [Part::default(); MAX_PARTS];
    for (p, part) in parts.iter_mut().enumerate().take(nparts) {
        *part = if let (Some(b), Some(i)) = (p.checked_div(per_batch), p.checked_rem(per_batch)) {
            let (t0, t1) = piece(g.m.div_ceil(MR), per_batch, i);
            let (r0, r1) = (t0 * MR, (t1 * MR).min(g.m));
            Part {
                lo: b * plane + r0 * g.n,
                hi: b * plane + r1 * g.n,
                b,
                u0: r0,
                u1: r1,
            }
        } else {
            // Batch items u0..u1, all rows.
            let (u0, u1) = piece(batch, nparts, p);
            Part {
                lo: u0 * plane,
                hi: u1 * plane,
                b: u0,
                u0,
                u1,
            }
        };
    }
    let parts = &parts[..nparts];
    let slots = Slots::new(out, parts)?;
    let mm = |bi: usize, r0: usize, rows: usize, dst: &mut [f32], off: usize| {
        let (ao, bo) = batch_offsets(g, bi);
        kd::gemm_f32(
            ctx.isa,
            rows,
            g.n,
            g.k,
            g.alpha,
            MatRef {
                data: a,
                offset: ao + r0 * g.a_rs,
                rs: g.a_rs,
                cs: g.a_cs,
            },
            MatRef {
                data: bm,
                offset: bo,
                rs: g.b_rs,
                cs: g.b_cs,
            },
            bias,
            g.act,
            dst,
            off,
            g.n,
        );
    };
    let failed = AtomicBool::new(false);
    let job = |i: usize| {
        let (Some(p), Some(dst)) = (parts.get(i), slots.take(i)) else {
            return failed.store(true, Ordering::Relaxed);
        };
        if per_batch == 0 {
            for bi in p.u0..p.u1 {
                mm(bi, 0, g.m, dst, (bi - p.u0) * plane);
            }
        } else {
            mm(p.b, p.u0, p.u1 - p.u0, dst, 0);
        }
    };
    pool.run(nparts, &job);
    (!failed.into_inner()).then_some(())
}
