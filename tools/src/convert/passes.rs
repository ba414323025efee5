//! Graph clean-up and fusion on lowered steps. Every rewrite here is exact up to fp32 rounding.

use anyhow::Result;
use mote::ops::{CopyGeom, Op};
use mote::DType;
use mote_targets::program::{
    Instr, LogicOp, Program, PROGRAM_MAX_INSTRS, PROGRAM_OPERANDS, PROGRAM_REG0, PROGRAM_REGS,
};
use mote_targets::{Activation, BinaryOp, CompareOp, UnaryOp};
use std::collections::HashMap;

use super::ir::{Graph, StepDesc, TId};

/// Runs every pass to a fixed point.
pub fn optimize(g: &mut Graph) -> Result<()> {
    optimize_with(g, true)
}

/// [`optimize`], with or without the last pass, which fuses chains of element-wise steps into
/// `Elementwise` programs (off: to compare against the unfused steps).
pub fn optimize_with(g: &mut Graph, elementwise: bool) -> Result<()> {
    // Lowering-time rewrites (the FFT convolution) leave the steps they replace behind; drop
    // them first so they cannot hold a tensor's "only reader" slot.
    remove_dead(g);
    fuse_gelu(g);
    fuse_silu(g);
    fuse_layernorm_axis(g);
    super::chanmix::fuse_channel_mix(g)?;
    fuse_matmul_bias(g)?;
    binary_to_affine(g)?;
    fold_copies_into_matmul(g);
    fuse_copy_chains(g);
    drop_copies_around_unary(g);
    loop {
        let before = g.steps.len();
        merge_affine_into_conv(g)?;
        super::chanmix::fold_mix_into_conv(g)?;
        merge_affine_into_matmul(g)?;
        fold_scale_into_matmul(g);
        fuse_activation(g);
        remove_dead(g);
        if g.steps.len() == before {
            break;
        }
    }
    if elementwise {
        fuse_elementwise(g);
        remove_dead(g);
        fuse_elementwise_reduce(g);
    }
    Ok(())
}

/// Uses of each storage root: step indices that read it, and whether a graph output is on it.
pub(super) struct Uses {
    readers: HashMap<TId, Vec<usize>>,
    outputs: Vec<TId>,
}

impl Uses {
    pub(super) fn of(g: &Graph) -> Uses {
        let mut readers: HashMap<TId, Vec<usize>> = HashMap::new();
        for (i, s) in g.steps.iter().enumerate() {
            for t in s.inputs.iter().flatten() {
                readers.entry(g.root(*t)).or_default().push(i);
            }
        }
        Uses {
            readers,
            outputs: g.outputs.iter().map(|&t| g.root(t)).collect(),
        }
    }
    /// The single step reading `t` (and nothing else, no graph output, no view of it read
    /// elsewhere), if any.
    pub(super) fn only_reader(&self, g: &Graph, t: TId) -> Option<usize> {
        let r = g.root(t);
        if self.outputs.contains(&r) {
            return None;
        }
        match self.readers.get(&r).map(|v| v.as_slice()) {
            Some([one]) => Some(*one),
            _ => None,
        }
    }
}

pub(super) fn producer(g: &Graph, t: TId) -> Option<usize> {
    let r = g.root(t);
    let mut found = None;
    for (i, s) in g.steps.iter().enumerate() {
        if g.root(s.output) == r {
            if found.is_some() {
                return None; // several writers (concat): not a simple producer
            }
            found = Some(i);
        }
    }
    found
}

fn scalar(g: &Graph, t: TId) -> Option<f32> {
    let te = &g.tensors[t];
    if te.dtype != DType::F32 || te.elems() != 1 {
        return None;
    }
    te.value.as_ref().and_then(|d| d.f32s().ok()).map(|v| v[0])
}

fn near(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

/// Binary step with operands (x, y); returns the operand that is not the scalar constant `c`
/// (for commutative ops either side).
fn binary_with_scalar(g: &Graph, s: &StepDesc, op: BinaryOp, c: f32) -> Option<TId> {
    let Op::Binary { op: o, .. } = s.op else {
        return None;
    };
    if o != op {
        return None;
    }
    let (x, y) = (s.inputs[0]?, s.inputs[1]?);
    let same_shape = |t: TId| g.tensors[t].shape == g.tensors[s.output].shape;
    if scalar(g, y).is_some_and(|v| near(v, c)) && same_shape(x) {
        return Some(x);
    }
    let commutes = matches!(op, BinaryOp::Add | BinaryOp::Mul);
    if commutes && scalar(g, x).is_some_and(|v| near(v, c)) && same_shape(y) {
        return Some(y);
    }
    None
}

/// `x/√2 → Erf → +1 → ·x → ·½` (and the `x·(1/√2)`, `(½x)·(…)` variants) → one GELU step.
fn fuse_gelu(g: &mut Graph) {
    let mut i = 0;
    while i < g.steps.len() {
        if let Some((remove, x, out, at)) = match_gelu(g, i) {
            let origin = g.steps[at].origin.clone();
            g.steps[at] = StepDesc {
                op: Op::Unary { op: UnaryOp::Gelu },
                inputs: [Some(x), None, None, None],
                output: out,
                origin,
            };
            let mut remove = remove;
            remove.sort_unstable();
            for r in remove.into_iter().rev() {
                g.steps.remove(r);
            }
            i = 0;
            continue;
        }
        i += 1;
    }
}

fn match_gelu(g: &Graph, e: usize) -> Option<(Vec<usize>, TId, TId, usize)> {
    let se = &g.steps[e];
    if se.op != (Op::Unary { op: UnaryOp::Erf }) {
        return None;
    }
    let u = Uses::of(g);
    let t1 = se.inputs[0]?;
    let p1 = producer(g, t1)?;
    if u.only_reader(g, t1)? != e {
        return None;
    }
    let sp = &g.steps[p1];
    let x = binary_with_scalar(g, sp, BinaryOp::Div, std::f32::consts::SQRT_2)
        .or_else(|| binary_with_scalar(g, sp, BinaryOp::Mul, std::f32::consts::FRAC_1_SQRT_2))?;
    let a = u.only_reader(g, se.output)?;
    let sa = &g.steps[a];
    if binary_with_scalar(g, sa, BinaryOp::Add, 1.0)? != se.output {
        return None;
    }
    let m = u.only_reader(g, sa.output)?;
    let sm = &g.steps[m];
    let Op::Binary {
        op: BinaryOp::Mul, ..
    } = sm.op
    else {
        return None;
    };
    let other = if sm.inputs[0]? == sa.output {
        sm.inputs[1]?
    } else {
        sm.inputs[0]?
    };
    if g.tensors[sm.output].shape != g.tensors[x].shape {
        return None;
    }
    if other == x || scalar(g, other).is_some_and(|v| near(v, 0.5)) {
        // ((1 + erf) · x) · ½  or  ((1 + erf) · ½) · x
        let m2 = u.only_reader(g, sm.output)?;
        let s2 = &g.steps[m2];
        let Op::Binary {
            op: BinaryOp::Mul, ..
        } = s2.op
        else {
            return None;
        };
        let last = if s2.inputs[0]? == sm.output {
            s2.inputs[1]?
        } else {
            s2.inputs[0]?
        };
        let ok = if other == x {
            scalar(g, last).is_some_and(|v| near(v, 0.5))
        } else {
            last == x
        };
        if !ok || g.tensors[s2.output].shape != g.tensors[x].shape {
            return None;
        }
        return Some((vec![p1, e, a, m], x, s2.output, m2));
    }
    // (½ · x) · (1 + erf)
    let h = producer(g, other)?;
    if u.only_reader(g, other)? != m || binary_with_scalar(g, &g.steps[h], BinaryOp::Mul, 0.5)? != x
    {
        return None;
    }
    Some((vec![p1, e, a, h], x, sm.output, m))
}

/// Binary ops with a scalar or per-channel constant become Unary Affine / ChannelAffine, which
/// fold into convolutions and are cheaper to run.
fn binary_to_affine(g: &mut Graph) -> Result<()> {
    for i in 0..g.steps.len() {
        let s = g.steps[i].clone();
        let Op::Binary { op, .. } = s.op else {
            continue;
        };
        let (Some(x), Some(y)) = (s.inputs[0], s.inputs[1]) else {
            continue;
        };
        let out_shape = g.tensors[s.output].shape.clone();
        if g.tensors[x].shape != out_shape {
            continue;
        }
        if let Some(c) = scalar(g, y) {
            let u = match op {
                BinaryOp::Add => UnaryOp::Affine { k: 1.0, c },
                BinaryOp::Sub => UnaryOp::Affine { k: 1.0, c: -c },
                BinaryOp::Mul => UnaryOp::Affine { k: c, c: 0.0 },
                _ => continue,
            };
            g.steps[i].op = Op::Unary { op: u };
            g.steps[i].inputs = [Some(x), None, None, None];
            continue;
        }
        // Per-channel constant on axis 1 of an [N, C, ...] tensor.
        let Some(cv) = g.tensors[y]
            .value
            .as_ref()
            .and_then(|d| d.f32s().ok())
            .map(|v| v.to_vec())
        else {
            continue;
        };
        if out_shape.len() < 2 || !matches!(op, BinaryOp::Add | BinaryOp::Mul | BinaryOp::Sub) {
            continue;
        }
        let ys = &g.tensors[y].shape;
        let c = out_shape[1];
        let mut padded = vec![1usize; out_shape.len() - ys.len().min(out_shape.len())];
        padded.extend(ys.iter());
        if padded.len() != out_shape.len()
            || padded
                .iter()
                .enumerate()
                .any(|(k, &d)| d != if k == 1 { c } else { 1 })
        {
            continue;
        }
        let (scale, bias): (Vec<f32>, Vec<f32>) = match op {
            BinaryOp::Mul => (cv.clone(), vec![0.0; c]),
            BinaryOp::Add => (vec![1.0; c], cv.clone()),
            _ => (vec![1.0; c], cv.iter().map(|v| -v).collect()),
        };
        let st = g.const_f32(format!("{}::scale", s.origin), vec![c], &scale)?;
        let bt = g.const_f32(format!("{}::bias", s.origin), vec![c], &bias)?;
        g.steps[i].op = Op::ChannelAffine {
            outer: out_shape[0],
            c,
            inner: out_shape[2..].iter().product(),
        };
        g.steps[i].inputs = [Some(x), Some(st), Some(bt), None];
    }
    Ok(())
}

/// `Conv → ChannelAffine` (BatchNorm, or a per-channel Mul/Add) folds into the conv's weights
/// and bias when the conv output feeds nothing else.
fn merge_affine_into_conv(g: &mut Graph) -> Result<()> {
    let mut i = 0;
    while i < g.steps.len() {
        let s = g.steps[i].clone();
        let Op::ChannelAffine { outer, c, .. } = s.op else {
            i += 1;
            continue;
        };
        let (Some(x), Some(sc), Some(bi)) = (s.inputs[0], s.inputs[1], s.inputs[2]) else {
            i += 1;
            continue;
        };
        let u = Uses::of(g);
        let folded = (|| -> Option<usize> {
            let p = producer(g, x)?;
            if u.only_reader(g, x)? != i {
                return None;
            }
            let sp = &g.steps[p];
            let Op::Conv2d {
                g: geom,
                act: Activation::None,
            } = sp.op
            else {
                return None;
            };
            if geom.c_out != c || geom.n != outer || g.tensors[x].shape != g.tensors[s.output].shape
            {
                return None;
            }
            let w = sp.inputs[1]?;
            g.tensors[w].value.as_ref()?;
            if let Some(b) = sp.inputs[2] {
                g.tensors[b].value.as_ref()?;
            }
            g.tensors[sc].value.as_ref()?;
            g.tensors[bi].value.as_ref()?;
            Some(p)
        })();
        let Some(p) = folded else {
            i += 1;
            continue;
        };
        let scale = g.f32_values(sc)?;
        let shift = g.f32_values(bi)?;
        let sp = g.steps[p].clone();
        let w = sp.inputs[1].unwrap_or(0);
        let wv = g.f32_values(w)?;
        let per = wv.len() / c;
        let nw: Vec<f32> = wv
            .iter()
            .enumerate()
            .map(|(k, &v)| v * scale[k / per])
            .collect();
        let old_b: Vec<f32> = match sp.inputs[2] {
            Some(b) => g.f32_values(b)?,
            None => vec![0.0; c],
        };
        let nb: Vec<f32> = (0..c).map(|k| old_b[k] * scale[k] + shift[k]).collect();
        let wshape = g.tensors[w].shape.clone();
        let wt = g.const_f32(format!("{}::w_folded", sp.origin), wshape, &nw)?;
        let bt = g.const_f32(format!("{}::b_folded", sp.origin), vec![c], &nb)?;
        g.steps[p].inputs[1] = Some(wt);
        g.steps[p].inputs[2] = Some(bt);
        g.steps[p].output = s.output;
        g.steps.remove(i);
    }
    Ok(())
}

/// `MatMul → Add(bias along the last axis)` (how exporters write `Linear` on rank-3 inputs)
/// becomes the MatMul's bias.
fn fuse_matmul_bias(g: &mut Graph) -> Result<()> {
    let mut i = 0;
    while i < g.steps.len() {
        let s = g.steps[i].clone();
        let found = (|| -> Option<(usize, TId, usize)> {
            let Op::Binary {
                op: BinaryOp::Add, ..
            } = s.op
            else {
                return None;
            };
            let (a, b) = (s.inputs[0]?, s.inputs[1]?);
            let (x, c) = if g.is_const(b) { (a, b) } else { (b, a) };
            if !g.is_const(c) || g.tensors[x].shape != g.tensors[s.output].shape {
                return None;
            }
            let p = producer(g, x)?;
            if Uses::of(g).only_reader(g, x)? != i {
                return None;
            }
            let Op::MatMul(m) = g.steps[p].op else {
                return None;
            };
            if m.act != Activation::None || g.steps[p].inputs[2].is_some() {
                return None;
            }
            let cs = &g.tensors[c].shape;
            let per_col = cs.last() == Some(&m.n) && cs.iter().rev().skip(1).all(|&d| d == 1);
            (per_col && g.tensors[c].dtype == DType::F32 && g.tensors[x].shape.last() == Some(&m.n))
                .then_some((p, c, m.n))
        })();
        let Some((p, c, n)) = found else {
            i += 1;
            continue;
        };
        let v = g.f32_values(c)?;
        let bias = g.const_f32(format!("{}::bias", s.origin), vec![n], &v)?;
        g.steps[p].inputs[2] = Some(bias);
        g.steps[p].output = s.output;
        g.steps.remove(i);
    }
    Ok(())
}

/// `MatMul → ChannelAffine over its columns` (BatchNorm after Gemm/Linear) folds into a scaled
/// copy of the constant B and the bias.
fn merge_affine_into_matmul(g: &mut Graph) -> Result<()> {
    let mut i = 0;
    while i < g.steps.len() {
        let s = g.steps[i].clone();
        let found = (|| -> Option<(usize, mote::ops::MatMulGeom, TId, TId, TId)> {
            let Op::ChannelAffine { c, inner: 1, .. } = s.op else {
                return None;
            };
            let (x, sc, bi) = (s.inputs[0]?, s.inputs[1]?, s.inputs[2]?);
            let p = producer(g, x)?;
            if Uses::of(g).only_reader(g, x)? != i
                || g.tensors[x].shape != g.tensors[s.output].shape
            {
                return None;
            }
            let Op::MatMul(m) = g.steps[p].op else {
                return None;
            };
            let b = g.steps[p].inputs[1]?;
            let shared_b = m.b_bs[..m.batch_rank].iter().all(|&st| st == 0);
            let ok = m.act == Activation::None
                && m.n == c
                && shared_b
                && g.is_const(b)
                && g.is_const(sc)
                && g.is_const(bi)
                && g.steps[p].inputs[2].is_none_or(|t| g.is_const(t));
            ok.then_some((p, m, b, sc, bi))
        })();
        let Some((p, m, b, sc, bi)) = found else {
            i += 1;
            continue;
        };
        let (scale, shift, mut bv) = (g.f32_values(sc)?, g.f32_values(bi)?, g.f32_values(b)?);
        for k in 0..m.k {
            for j in 0..m.n {
                bv[k * m.b_rs + j * m.b_cs] *= scale[j];
            }
        }
        let old_bias = match g.steps[p].inputs[2] {
            Some(t) => g.f32_values(t)?,
            None => vec![0.0; m.n],
        };
        let nb: Vec<f32> = (0..m.n)
            .map(|j| old_bias[j] * scale[j] + shift[j])
            .collect();
        let bshape = g.tensors[b].shape.clone();
        let origin = g.steps[p].origin.clone();
        let bt = g.const_f32(format!("{origin}::b_folded"), bshape, &bv)?;
        let biast = g.const_f32(format!("{origin}::bias_folded"), vec![m.n], &nb)?;
        g.steps[p].inputs[1] = Some(bt);
        g.steps[p].inputs[2] = Some(biast);
        g.steps[p].output = s.output;
        g.steps.remove(i);
    }
    Ok(())
}

/// `MatMul → ×k` (attention's `q·kᵀ × scale`, a constant `Mul` lowered to `Unary Affine { k,
/// c: 0 }`) becomes the MatMul's `alpha` when the MatMul has no bias, no activation and
/// `alpha = 1`: the kernel then rounds `acc × k` once, as the Affine step did (up to the sign
/// of a zero result: `x·k + 0` is never −0).
fn fold_scale_into_matmul(g: &mut Graph) {
    let mut i = 0;
    while i < g.steps.len() {
        let s = g.steps[i].clone();
        let Op::Unary {
            op: UnaryOp::Affine { k, c },
        } = s.op
        else {
            i += 1;
            continue;
        };
        let Some(x) = s.inputs[0] else {
            i += 1;
            continue;
        };
        let u = Uses::of(g);
        let p = producer(g, x).filter(|_| u.only_reader(g, x) == Some(i));
        let fold = c == 0.0
            && k.is_finite()
            && p.is_some_and(|p| {
                g.steps[p].inputs[2].is_none()
                    && matches!(g.steps[p].op, Op::MatMul(m)
                        if m.act == Activation::None && m.alpha == 1.0)
            });
        let out = s.output;
        match p {
            Some(p) if fold && g.tensors[out].shape == g.tensors[g.steps[p].output].shape => {
                if let Op::MatMul(m) = &mut g.steps[p].op {
                    m.alpha = k;
                }
                g.steps[p].output = out;
                g.steps.remove(i);
            }
            _ => i += 1,
        }
    }
}

/// `Conv/MatMul → Relu/Clip/Sigmoid/GELU` becomes the producer's epilogue.
fn fuse_activation(g: &mut Graph) {
    let mut i = 0;
    while i < g.steps.len() {
        let s = g.steps[i].clone();
        let act = match s.op {
            Op::Unary { op: UnaryOp::Relu } => Activation::Relu,
            Op::Unary {
                op: UnaryOp::Clip { lo, hi },
            } => Activation::Clip { lo, hi },
            Op::Unary {
                op: UnaryOp::Sigmoid,
            } => Activation::Sigmoid,
            Op::Unary { op: UnaryOp::Gelu } => Activation::Gelu,
            Op::Unary { op: UnaryOp::Silu } => Activation::Silu,
            _ => {
                i += 1;
                continue;
            }
        };
        let Some(x) = s.inputs[0] else {
            i += 1;
            continue;
        };
        let u = Uses::of(g);
        let p = producer(g, x).filter(|_| u.only_reader(g, x) == Some(i));
        let ok = p.is_some_and(|p| {
            matches!(
                g.steps[p].op,
                Op::Conv2d {
                    act: Activation::None,
                    ..
                }
            ) || matches!(g.steps[p].op, Op::MatMul(m) if m.act == Activation::None)
        });
        if let (true, Some(p)) = (ok, p) {
            match &mut g.steps[p].op {
                Op::Conv2d { act: a, .. } => *a = act,
                Op::MatMul(m) => m.act = act,
                _ => {}
            }
            // The producer now writes the activation's output (same shape: views are fine).
            let out = s.output;
            if g.tensors[out].elems() == g.tensors[x].elems() {
                let prod_out = g.steps[p].output;
                if g.tensors[prod_out].shape == g.tensors[out].shape {
                    g.steps[p].output = out;
                } else {
                    // Keep the producer's shape, make the activation's output a view of it.
                    g.tensors[out].alias_of = Some(g.root(prod_out));
                }
                g.steps.remove(i);
                continue;
            }
        }
        i += 1;
    }
}

/// `s = Sigmoid(x); y = x · s` (either operand order, same shapes, `s` read only by the
/// product) becomes one SiLU step, which [`fuse_activation`] may then fold into x's producer.
fn fuse_silu(g: &mut Graph) {
    let mut i = 0;
    while i < g.steps.len() {
        let s = &g.steps[i];
        let (
            Op::Binary {
                op: BinaryOp::Mul, ..
            },
            Some(a),
            Some(b),
        ) = (s.op, s.inputs[0], s.inputs[1])
        else {
            i += 1;
            continue;
        };
        let out_shape = &g.tensors[s.output].shape;
        let same = |t: TId| &g.tensors[t].shape == out_shape && g.tensors[t].dtype == DType::F32;
        let u = Uses::of(g);
        let sig_of = |t: TId, x: TId| {
            let p = producer(g, t)?;
            let ps = &g.steps[p];
            (ps.op
                == Op::Unary {
                    op: UnaryOp::Sigmoid,
                }
                && ps.inputs[0].map(|v| g.root(v)) == Some(g.root(x))
                && ps.inputs[0].is_some_and(|v| g.tensors[v].shape == g.tensors[x].shape)
                && u.only_reader(g, t) == Some(i))
            .then_some(p)
        };
        let hit = if !same(a) || !same(b) {
            None
        } else if let Some(p) = sig_of(b, a) {
            Some((p, a))
        } else {
            sig_of(a, b).map(|p| (p, b))
        };
        match hit {
            Some((p, x)) => {
                let origin = g.steps[i].origin.clone();
                let out = g.steps[i].output;
                g.steps[i] = StepDesc {
                    op: Op::Unary { op: UnaryOp::Silu },
                    inputs: [Some(x), None, None, None],
                    output: out,
                    origin,
                };
                g.steps.remove(p);
                i = 0;
            }
            None => i += 1,
        }
    }
}

/// For every destination element of copy `c` (`len` elements), the source element it is
/// copied from; `None` unless every destination element is written exactly once.
fn copy_sources(c: &CopyGeom, len: usize) -> Option<Vec<isize>> {
    if c.dims[..c.rank].iter().product::<usize>() != len {
        return None;
    }
    let mut map = vec![-1isize; len];
    copy_offsets(c, |src, dst| {
        let slot = map.get_mut(usize::try_from(dst).ok()?)?;
        if *slot >= 0 || src < 0 {
            return None;
        }
        *slot = src;
        Some(())
    })?;
    Some(map)
}

/// Calls `f(source offset, destination offset)` for every element copy `c` makes, in its
/// iteration order; stops with `None` as soon as `f` returns `None`.
fn copy_offsets(c: &CopyGeom, mut f: impl FnMut(isize, isize) -> Option<()>) -> Option<()> {
    let dims = &c.dims[..c.rank];
    let mut idx = [0usize; mote::format::MAX_RANK];
    for _ in 0..dims.iter().product::<usize>() {
        let (mut src, mut dst) = (c.src_off as isize, c.dst_off as isize);
        for d in 0..c.rank {
            src += idx[d] as isize * c.src_strides[d];
            dst += idx[d] as isize * c.dst_strides[d];
        }
        f(src, dst)?;
        for d in (0..c.rank).rev() {
            idx[d] += 1;
            if idx[d] < dims[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    Some(())
}

/// The strides that read through `map` what `dims`/`strides` read from the copy's output,
/// if one affine map does it for every element (checked element by element).
fn compose_strides(map: &[isize], dims: &[usize], strides: &[usize]) -> Option<Vec<usize>> {
    if *map.first()? != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(dims.len());
    for (&d, &st) in dims.iter().zip(strides) {
        out.push(if d > 1 {
            usize::try_from(*map.get(st)?).ok()?
        } else {
            0
        });
    }
    let total: usize = dims.iter().product();
    let mut idx = vec![0usize; dims.len()];
    for _ in 0..total {
        let (mut at, mut want) = (0usize, 0usize);
        for k in 0..dims.len() {
            at += idx[k] * strides[k];
            want += idx[k] * out[k];
        }
        if usize::try_from(*map.get(at)?).ok()? != want {
            return None;
        }
        for k in (0..dims.len()).rev() {
            idx[k] += 1;
            if idx[k] < dims[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    Some(out)
}

/// `Copy → Copy` where the first copy's output is read only by the second becomes one copy
/// from the first's source (e.g. EMOv2's un-permute of the attention output followed by the
/// inverse window partition): the composed element map is factored into strided dims.
fn fuse_copy_chains(g: &mut Graph) {
    let mut i = 0;
    while i < g.steps.len() {
        match compose_copy_pair(g, i) {
            Some((c1, step)) => {
                g.steps[i] = step;
                g.steps.remove(c1);
                i = c1;
            }
            None => i += 1,
        }
    }
}

fn compose_copy_pair(g: &Graph, c2: usize) -> Option<(usize, StepDesc)> {
    let s2 = &g.steps[c2];
    let Op::Copy(g2) = s2.op else {
        return None;
    };
    let t = s2.inputs[0]?;
    let c1 = producer(g, t)?;
    let Op::Copy(g1) = g.steps[c1].op else {
        return None;
    };
    let x = g.steps[c1].inputs[0]?;
    let tl = g.tensors[g.root(t)].elems();
    if Uses::of(g).only_reader(g, t) != Some(c2) || g.tensors[x].dtype != g.tensors[t].dtype {
        return None;
    }
    let map1 = copy_sources(&g1, tl)?;
    // The composed copy, element by element in the second copy's iteration order.
    let (mut xs, mut ys) = (vec![], vec![]);
    copy_offsets(&g2, |src, dst| {
        xs.push(*map1.get(usize::try_from(src).ok()?)?);
        ys.push(dst);
        Some(())
    })?;
    let (dims, ss, ds) = factor_strided(&xs, &ys)?;
    let mut cg = CopyGeom {
        rank: dims.len(),
        src_off: usize::try_from(*xs.first()?).ok()?,
        dst_off: usize::try_from(*ys.first()?).ok()?,
        ..Default::default()
    };
    cg.dims[..dims.len()].copy_from_slice(&dims);
    cg.src_strides[..dims.len()].copy_from_slice(&ss);
    cg.dst_strides[..dims.len()].copy_from_slice(&ds);
    let mut step = s2.clone();
    step.op = Op::Copy(cg);
    step.inputs[0] = Some(x);
    Some((c1, step))
}

/// `Copy → Unary → Copy` whose two copies undo each other (a transpose to apply an activation
/// and the transpose back, as LMUFormer's exports do) becomes the unary step alone: an
/// element-wise function does not care about layout. Both intermediates must have no other
/// reader, and the composed element map must be the identity (checked element by element).
fn drop_copies_around_unary(g: &mut Graph) {
    let mut i = 0;
    while i < g.steps.len() {
        match match_copy_sandwich(g, i) {
            Some((c1, c2, x, y)) => {
                g.steps[i].inputs[0] = Some(x);
                g.steps[i].output = y;
                g.steps.remove(c2);
                g.steps.remove(c1);
                i = 0;
            }
            None => i += 1,
        }
    }
}

fn match_copy_sandwich(g: &Graph, i: usize) -> Option<(usize, usize, TId, TId)> {
    let s = &g.steps[i];
    let Op::Unary { .. } = s.op else {
        return None;
    };
    let t = s.inputs[0]?;
    let u = s.output;
    let c1 = producer(g, t)?;
    let uses = Uses::of(g);
    if uses.only_reader(g, t) != Some(i) || producer(g, u) != Some(i) {
        return None;
    }
    let c2 = uses.only_reader(g, u)?;
    let (Op::Copy(g1), Op::Copy(g2)) = (g.steps[c1].op, g.steps[c2].op) else {
        return None;
    };
    // `c2`, a copy, reads only `u`, and comes after `i` (steps are in dependency order).
    let x = g.steps[c1].inputs[0]?;
    let y = g.steps[c2].output;
    let n = g.tensors[g.root(y)].elems();
    if producer(g, y) != Some(c2)
        || g.tensors[g.root(x)].elems() != n
        || g.tensors[g.root(t)].elems() != n
        || g.tensors[g.root(u)].elems() != n
        || g.tensors[x].dtype != g.tensors[y].dtype
    {
        return None;
    }
    let map1 = copy_sources(&g1, n)?;
    let map2 = copy_sources(&g2, n)?;
    let identity = map2.iter().enumerate().all(|(yi, &ui)| {
        usize::try_from(ui).ok().and_then(|ui| map1.get(ui)) == Some(&(yi as isize))
    });
    identity.then_some((c1, c2, x, y))
}

/// Dims (outermost first) and source/destination strides that visit the pairs `(xs[p],
/// ys[p])` in order, if at most `MAX_RANK` strided dims do: innermost first, each dim is the
/// longest run of equal steps, and every block of that length must repeat the same steps.
#[allow(clippy::type_complexity)]
fn factor_strided(xs: &[isize], ys: &[isize]) -> Option<(Vec<usize>, Vec<isize>, Vec<isize>)> {
    let (mut xs, mut ys) = (xs.to_vec(), ys.to_vec());
    let (mut dims, mut ss, mut ds) = (vec![], vec![], vec![]);
    while xs.len() > 1 {
        if dims.len() == mote::format::MAX_RANK {
            return None;
        }
        let (sx, sy) = (xs[1] - xs[0], ys[1] - ys[0]);
        let mut run = 2;
        while run < xs.len() && xs[run] - xs[run - 1] == sx && ys[run] - ys[run - 1] == sy {
            run += 1;
        }
        if !xs.len().is_multiple_of(run) {
            return None;
        }
        for b in (0..xs.len()).step_by(run) {
            for p in b + 1..b + run {
                if xs[p] - xs[p - 1] != sx || ys[p] - ys[p - 1] != sy {
                    return None;
                }
            }
        }
        dims.push(run);
        ss.push(sx);
        ds.push(sy);
        xs = xs.iter().step_by(run).copied().collect();
        ys = ys.iter().step_by(run).copied().collect();
    }
    if dims.is_empty() {
        dims.push(1);
        ss.push(0);
        ds.push(0);
    }
    dims.reverse();
    ss.reverse();
    ds.reverse();
    Some((dims, ss, ds))
}

/// A permuting copy read only by a MatMul operand is dropped: the MatMul reads the copy's
/// source with composed strides (transposed keys, split or merged heads), when one set of
/// strides does it exactly (checked for every element).
fn fold_copies_into_matmul(g: &mut Graph) {
    let mut i = 0;
    while i < g.steps.len() {
        let Op::MatMul(mm) = g.steps[i].op else {
            i += 1;
            continue;
        };
        let mut folded = false;
        for operand in 0..2 {
            let Some(t) = g.steps[i].inputs[operand] else {
                continue;
            };
            let u = Uses::of(g);
            if u.only_reader(g, t) != Some(i) {
                continue;
            }
            let Some(c) = producer(g, t) else { continue };
            let Op::Copy(cg) = g.steps[c].op else {
                continue;
            };
            let Some(x) = g.steps[c].inputs[0] else {
                continue;
            };
            let out = g.steps[c].output;
            if g.root(out) != out || g.tensors[out].elems() != g.tensors[t].elems() {
                continue;
            }
            let Some(map) = copy_sources(&cg, g.tensors[out].elems()) else {
                continue;
            };
            let br = mm.batch_rank;
            let (mut dims, mut strides) = (mm.batch[..br].to_vec(), Vec::with_capacity(br + 2));
            if operand == 0 {
                strides.extend_from_slice(&mm.a_bs[..br]);
                dims.extend([mm.m, mm.k]);
                strides.extend([mm.a_rs, mm.a_cs]);
            } else {
                strides.extend_from_slice(&mm.b_bs[..br]);
                dims.extend([mm.k, mm.n]);
                strides.extend([mm.b_rs, mm.b_cs]);
            }
            let Some(new) = compose_strides(&map, &dims, &strides) else {
                continue;
            };
            let mut ng = mm;
            // Broadcast batch dims (stride 0) stay broadcast.
            let keep_zero = |old: usize, new: usize| if old == 0 { 0 } else { new };
            for d in 0..br {
                if operand == 0 {
                    ng.a_bs[d] = keep_zero(mm.a_bs[d], new[d]);
                } else {
                    ng.b_bs[d] = keep_zero(mm.b_bs[d], new[d]);
                }
            }
            if operand == 0 {
                (ng.a_rs, ng.a_cs) = (new[br], new[br + 1]);
            } else {
                (ng.b_rs, ng.b_cs) = (new[br], new[br + 1]);
            }
            g.steps[i].op = Op::MatMul(ng);
            g.steps[i].inputs[operand] = Some(x);
            g.steps.remove(c);
            folded = true;
            break;
        }
        if folded {
            i = 0;
        } else {
            i += 1;
        }
    }
}

/// Whether `c` copies a contiguous `[n, a, b]` tensor into a contiguous `[n, b, a]` one
/// (every destination element written once, from the right source element).
fn is_swap_last2(c: &CopyGeom, n: usize, a: usize, b: usize) -> bool {
    let total = n * a * b;
    let Some(map) = copy_sources(c, total).filter(|_| total > 0) else {
        return false;
    };
    // dst = (i * b + k) * a + j  holds  src[i, j, k] = (i * a + j) * b + k.
    map.iter().enumerate().all(|(dst, &src)| {
        let (i, k, j) = (dst / (a * b), dst / a % b, dst % a);
        src == ((i * a + j) * b + k) as isize
    })
}

/// `Transpose(NCHW → NHWC) → LayerNorm over C → Transpose(NHWC → NCHW)` (LayerNorm over the
/// channels of an NCHW tensor) becomes one `LayerNormAxis` step reading and writing NCHW.
fn fuse_layernorm_axis(g: &mut Graph) {
    let mut i = 0;
    while i < g.steps.len() {
        if let Some((c1, c2, step)) = match_layernorm_axis(g, i) {
            g.steps[i] = step;
            g.steps.remove(c2);
            g.steps.remove(c1);
            i = 0;
            continue;
        }
        i += 1;
    }
}

fn match_layernorm_axis(g: &Graph, l: usize) -> Option<(usize, usize, StepDesc)> {
    let sl = &g.steps[l];
    let Op::LayerNorm { outer, size, eps } = sl.op else {
        return None;
    };
    let u = Uses::of(g);
    let y = sl.inputs[0]?;
    let c1 = producer(g, y)?;
    let Op::Copy(g1) = g.steps[c1].op else {
        return None;
    };
    if u.only_reader(g, y) != Some(l) || g.tensors[g.steps[c1].output].elems() != outer * size {
        return None;
    }
    let c2 = u.only_reader(g, sl.output)?;
    let Op::Copy(g2) = g.steps[c2].op else {
        return None;
    };
    if c2 < l || c1 > l || g.steps[c2].inputs[0] != Some(sl.output) {
        return None;
    }
    let x = g.steps[c1].inputs[0]?;
    let w = g.steps[c2].output;
    let xs = &g.tensors[x].shape;
    if g.tensors[x].dtype != DType::F32 || g.tensors[x].elems() != outer * size {
        return None;
    }
    if g.tensors[w].elems() != outer * size || producer(g, w) != Some(c2) {
        return None;
    }
    // x is [n, size, spatial...]: the batch is its first dim.
    let n = *xs.first()?;
    if xs.len() < 3 || xs[1] != size || n == 0 || outer % n != 0 {
        return None;
    }
    let inner = outer / n;
    if !is_swap_last2(&g1, n, size, inner) || !is_swap_last2(&g2, n, inner, size) {
        return None;
    }
    let step = StepDesc {
        op: Op::LayerNormAxis {
            outer: n,
            size,
            inner,
            eps,
        },
        inputs: [Some(x), sl.inputs[1], sl.inputs[2], None],
        output: w,
        origin: sl.origin.clone(),
    };
    Some((c1, c2, step))
}

/// Drops steps whose results nothing reads.
fn remove_dead(g: &mut Graph) {
    let mut live: std::collections::HashSet<TId> = g.outputs.iter().map(|&t| g.root(t)).collect();
    let mut keep = vec![false; g.steps.len()];
    for i in (0..g.steps.len()).rev() {
        if live.contains(&g.root(g.steps[i].output)) {
            keep[i] = true;
            for t in g.steps[i].inputs.iter().flatten() {
                live.insert(g.root(*t));
            }
        }
    }
    let mut k = keep.iter();
    g.steps.retain(|_| *k.next().unwrap_or(&true));
}

/// What one element-wise step computes, as a program instruction.
#[derive(Clone, Copy, Debug)]
enum EwKind {
    Unary(UnaryOp),
    Binary(BinaryOp),
    Compare(CompareOp),
    Logic(LogicOp),
    Where,
    /// Cast to bool.
    NonZero,
    /// Cast from f32 or bool to f32: the value is unchanged.
    Same,
}

/// An element-wise step seen as a program node: its kind, its iteration dims and, per read,
/// the tensor and its strides over those dims (`None`: read flat, element `i` for output `i`).
struct EwNode {
    kind: EwKind,
    dims: Vec<usize>,
    reads: Vec<(TId, Option<Vec<usize>>)>,
}

fn ew_node(g: &Graph, s: &StepDesc) -> Option<EwNode> {
    let dt = |t: TId| g.tensors[t].dtype;
    let out_dt = dt(s.output);
    let input = |k: usize| s.inputs[k];
    let bc_reads = |strides: &[&[usize]]| -> Option<Vec<(TId, Option<Vec<usize>>)>> {
        strides
            .iter()
            .enumerate()
            .map(|(k, st)| Some((input(k)?, Some(st.to_vec()))))
            .collect()
    };
    let (kind, dims, reads) = match s.op {
        Op::Unary { op } if out_dt == DType::F32 => (
            EwKind::Unary(op),
            g.tensors[s.output].shape.clone(),
            vec![(input(0)?, None)],
        ),
        Op::Binary { op, bc } => (
            EwKind::Binary(op),
            bc.dims().to_vec(),
            bc_reads(&[bc.strides(0), bc.strides(1)])?,
        ),
        Op::Compare { op, bc } => (
            EwKind::Compare(op),
            bc.dims().to_vec(),
            bc_reads(&[bc.strides(0), bc.strides(1)])?,
        ),
        Op::Logic { kind, bc } => {
            let op = match kind {
                0 => LogicOp::And,
                1 => LogicOp::Or,
                2 => LogicOp::Xor,
                _ => LogicOp::Not,
            };
            let reads = if op == LogicOp::Not {
                bc_reads(&[bc.strides(0)])?
            } else {
                bc_reads(&[bc.strides(0), bc.strides(1)])?
            };
            (EwKind::Logic(op), bc.dims().to_vec(), reads)
        }
        Op::Where { bc } if out_dt == DType::F32 => (
            EwKind::Where,
            bc.dims().to_vec(),
            bc_reads(&[bc.strides(0), bc.strides(1), bc.strides(2)])?,
        ),
        Op::Cast if matches!(dt(input(0)?), DType::F32 | DType::Bool) => {
            let kind = match out_dt {
                DType::Bool => EwKind::NonZero,
                DType::F32 => EwKind::Same,
                _ => return None,
            };
            (
                kind,
                g.tensors[s.output].shape.clone(),
                vec![(input(0)?, None)],
            )
        }
        _ => return None,
    };
    Some(EwNode { kind, dims, reads })
}

/// Strides over `out_dims` that read, for every flat output index, what `strides` read over
/// `dims` (the same element count, another factorization: dims split or merged, size-1 dims
/// anywhere), when one set of strides does it; `None` otherwise.
fn strides_onto(dims: &[usize], strides: &[usize], out_dims: &[usize]) -> Option<Vec<usize>> {
    let nd: Vec<(usize, usize)> = dims
        .iter()
        .zip(strides)
        .filter(|(&d, _)| d != 1)
        .map(|(&d, &s)| (d, s))
        .collect();
    let mut out = vec![0usize; out_dims.len()];
    // Walk both from the innermost dim: (remaining size, stride) of the current input dim.
    let mut i = nd.len();
    let (mut rem, mut st) = (1usize, 0usize);
    for k in (0..out_dims.len()).rev() {
        let need = out_dims[k];
        if need == 1 {
            continue;
        }
        let (mut got, mut first, mut next) = (1usize, None, 0usize);
        while got < need {
            if rem == 1 {
                i = i.checked_sub(1)?;
                (rem, st) = nd[i];
            }
            let want = need / got;
            let take = if rem.is_multiple_of(want) {
                want
            } else if want.is_multiple_of(rem) {
                rem
            } else {
                return None;
            };
            match first {
                None => first = Some(st),
                Some(_) if st != next => return None,
                Some(_) => {}
            }
            next = st.saturating_mul(take);
            got *= take;
            st = st.saturating_mul(take);
            rem /= take;
        }
        if got != need {
            return None;
        }
        out[k] = first?;
    }
    (rem == 1 && i == 0).then_some(out)
}

/// A read in the fused program's iteration space: the tensor and its strides over the output.
fn read_onto(
    node: &EwNode,
    strides: &Option<Vec<usize>>,
    out_dims: &[usize],
) -> Option<Vec<usize>> {
    match strides {
        None => Some(super::ir::strides_of(out_dims)),
        Some(s) => strides_onto(&node.dims, s, out_dims),
    }
}

/// Whether `strides` read a contiguous tensor of `dims` element for element.
fn is_identity(dims: &[usize], strides: &[usize]) -> bool {
    let rm = super::ir::strides_of(dims);
    dims.iter()
        .zip(strides.iter().zip(&rm))
        .all(|(&d, (&s, &r))| d == 1 || s == r)
}

/// A chain (or DAG) of element-wise steps that becomes one program.
struct EwGroup {
    /// The steps it replaces, ascending; the last is the root. Other members (computed again
    /// inside the program) stay steps, and die if nothing reads them any more.
    exclusive: Vec<usize>,
    /// The fused step.
    step: StepDesc,
}

/// Maximal chains and DAGs of element-wise steps (Unary, Binary, Compare, Logic, Where on f32,
/// Casts between f32 and bool) become one `Elementwise` step each, rooted at a step and grown
/// towards its inputs. An intermediate result that no graph output holds and that only the
/// group reads is computed in registers and its step disappears; one that other element-wise
/// steps also read is computed again inside the program (its step stays, and is dropped once
/// every reader has absorbed it); a graph output, or a value a non-element-wise step reads,
/// stays an operand. Every fused instruction computes all of the output's elements (smaller,
/// broadcast intermediates stay steps of their own and become operands), so the program runs
/// each instruction once per output element and the result is bit-identical to the steps it
/// replaces.
fn fuse_elementwise(g: &mut Graph) {
    let u = Uses::of(g);
    let mut writers: HashMap<TId, Vec<usize>> = HashMap::new();
    for (i, s) in g.steps.iter().enumerate() {
        writers.entry(g.root(s.output)).or_default().push(i);
    }
    let producer_of = |t: TId| match writers.get(&g.root(t)).map(|v| v.as_slice()) {
        Some([one]) => Some(*one),
        _ => None,
    };
    let nodes: Vec<Option<EwNode>> = g.steps.iter().map(|s| ew_node(g, s)).collect();
    let mut taken = vec![false; g.steps.len()];
    let mut groups = vec![];
    for root in (0..g.steps.len()).rev() {
        if taken[root] || nodes[root].is_none() {
            continue;
        }
        if let Some(grp) = grow_group(g, &u, &nodes, &taken, root, &producer_of) {
            for &m in &grp.exclusive {
                taken[m] = true;
            }
            groups.push(grp);
        }
    }
    if groups.is_empty() {
        return;
    }
    let mut replace: HashMap<usize, StepDesc> = HashMap::new();
    let mut drop = vec![false; g.steps.len()];
    for grp in groups {
        let (&root, rest) = grp.exclusive.split_last().unwrap_or((&0, &[]));
        for &m in rest {
            drop[m] = true;
        }
        replace.insert(root, grp.step);
    }
    let old = std::mem::take(&mut g.steps);
    for (i, s) in old.into_iter().enumerate() {
        if let Some(f) = replace.remove(&i) {
            g.steps.push(f);
        } else if !drop[i] {
            g.steps.push(s);
        }
    }
}

/// `Elementwise → Reduce over trailing dims` (the only reader) becomes one
/// `ElementwiseReduce` step: the program's results are folded as they are computed instead of
/// being stored and read again (EcoFormer's `Σ_d (x̂_d − a_d)²` over a broadcast
/// `[tokens, anchors, 32]` tensor).
fn fuse_elementwise_reduce(g: &mut Graph) {
    let mut i = 0;
    while i < g.steps.len() {
        if let Some((p, step)) = match_elementwise_reduce(g, i) {
            g.steps[p] = step;
            g.steps.remove(i);
            continue;
        }
        i += 1;
    }
}

fn match_elementwise_reduce(g: &Graph, i: usize) -> Option<(usize, StepDesc)> {
    let s = &g.steps[i];
    let Op::Reduce {
        op,
        rank,
        dims,
        mask,
    } = s.op
    else {
        return None;
    };
    let x = s.inputs[0]?;
    let p = producer(g, x)?;
    let Op::Elementwise { bc, prog } = g.steps[p].op else {
        return None;
    };
    if Uses::of(g).only_reader(g, x) != Some(i)
        || g.tensors[g.steps[p].output].dtype != DType::F32
        || g.tensors[s.output].dtype != DType::F32
    {
        return None;
    }
    // The reduced axes must be the trailing ones (size-1 axes aside): then each output is the
    // fold of one contiguous run of the program's results.
    let mut len = 1usize;
    let mut reducing = false;
    for (k, &n) in dims[..rank].iter().enumerate() {
        let reduced = mask & (1 << k) != 0;
        if reduced {
            reducing |= n != 1;
            len = len.checked_mul(n)?;
        } else if n != 1 && reducing {
            return None;
        }
    }
    let total: usize = bc.dims().iter().product();
    if len == 0
        || len > mote_targets::program::FOLD_MAX_RUN
        || total != dims[..rank].iter().product::<usize>()
        || !total.is_multiple_of(len)
    {
        return None;
    }
    Some((
        p,
        StepDesc {
            op: Op::ElementwiseReduce { bc, prog, op, len },
            inputs: g.steps[p].inputs,
            output: s.output,
            origin: s.origin.clone(),
        },
    ))
}

/// Grows the group rooted at step `root` towards its inputs (latest producer first, so every
/// reader of a candidate that can join has already joined) and compiles it; `None` when fewer
/// than two steps join or the program does not fit.
fn grow_group(
    g: &Graph,
    u: &Uses,
    nodes: &[Option<EwNode>],
    taken: &[bool],
    root: usize,
    producer_of: &dyn Fn(TId) -> Option<usize>,
) -> Option<EwGroup> {
    // The largest group first; when its program does not fit (too many operands, registers or
    // instructions), grow again keeping only the steps after which it still fits.
    grow_group_checked(g, u, nodes, taken, root, producer_of, false)
        .or_else(|| grow_group_checked(g, u, nodes, taken, root, producer_of, true))
}

#[allow(clippy::too_many_arguments)]
fn grow_group_checked(
    g: &Graph,
    u: &Uses,
    nodes: &[Option<EwNode>],
    taken: &[bool],
    root: usize,
    producer_of: &dyn Fn(TId) -> Option<usize>,
    check_each: bool,
) -> Option<EwGroup> {
    // The iteration space is the output's own shape (a step's broadcast dims may be merged).
    let rn = nodes[root].as_ref()?;
    let out_dims = g.tensors[g.steps[root].output].shape.clone();
    let total: usize = out_dims.iter().product();
    if rn.dims.iter().product::<usize>() != total || out_dims.len() > mote_targets::MAX_RANK {
        return None;
    }
    let mut members = std::collections::BTreeSet::from([root]);
    let mut heap = std::collections::BinaryHeap::new();
    let push_producers = |m: usize, heap: &mut std::collections::BinaryHeap<usize>| {
        if let Some(n) = nodes[m].as_ref() {
            for (t, _) in &n.reads {
                if let Some(p) = producer_of(*t) {
                    heap.push(p);
                }
            }
        }
    };
    push_producers(root, &mut heap);
    while let Some(p) = heap.pop() {
        if members.contains(&p) || taken[p] {
            continue;
        }
        let Some(pn) = nodes[p].as_ref() else {
            continue;
        };
        let out = g.steps[p].output;
        let r = g.root(out);
        if u.outputs.contains(&r) || g.tensors[out].elems() != total {
            continue;
        }
        // Its own reads must map onto the output's iteration space.
        if pn
            .reads
            .iter()
            .any(|(_, s)| read_onto(pn, s, &out_dims).is_none())
        {
            continue;
        }
        // Readers in the group read it element for element. A reader outside the group keeps
        // it a step of its own; the group then computes it again (a duplicate) if every reader
        // is an element-wise step, which may absorb it too, so that the step dies.
        let readers = u.readers.get(&r).map(|v| v.as_slice()).unwrap_or(&[]);
        let reads_ok = !readers.is_empty()
            && readers.iter().filter(|rd| members.contains(rd)).all(|rd| {
                nodes[*rd].as_ref().is_some_and(|n| {
                    n.reads.iter().all(|(t, s)| {
                        g.root(*t) != r
                            || (g.tensors[*t].elems() == total
                                && read_onto(n, s, &out_dims)
                                    .is_some_and(|st| is_identity(&out_dims, &st)))
                    })
                })
            });
        let all_in = readers.iter().all(|rd| members.contains(rd));
        if !reads_ok || (!all_in && !readers.iter().all(|rd| nodes[*rd].is_some())) {
            continue;
        }
        members.insert(p);
        if check_each && compile_group(g, nodes, &members, &out_dims, producer_of).is_none() {
            members.remove(&p);
            continue;
        }
        push_producers(p, &mut heap);
    }
    if members.len() < 2 {
        return None;
    }
    // The steps the group replaces: the root, and members all of whose readers it replaces.
    let mut exclusive = std::collections::BTreeSet::from([root]);
    for &m in members.iter().rev() {
        let r = g.root(g.steps[m].output);
        let readers = u.readers.get(&r).map(|v| v.as_slice()).unwrap_or(&[]);
        if m != root && !readers.is_empty() && readers.iter().all(|x| exclusive.contains(x)) {
            exclusive.insert(m);
        }
    }
    let exclusive: Vec<usize> = exclusive.into_iter().collect();
    let members: Vec<usize> = members.into_iter().collect();
    let (prog, operands) = compile_group(
        g,
        nodes,
        &members.iter().copied().collect(),
        &out_dims,
        producer_of,
    )?;
    let mut bc = mote::ops::Bcast::<PROGRAM_OPERANDS> {
        rank: out_dims.len(),
        ..Default::default()
    };
    bc.dims[..out_dims.len()].copy_from_slice(&out_dims);
    let mut inputs = [None; 4];
    for (j, (t, st)) in operands.iter().enumerate() {
        bc.strides[j][..st.len()].copy_from_slice(st);
        inputs[j] = Some(*t);
    }
    let rs = &g.steps[root];
    Some(EwGroup {
        exclusive,
        step: StepDesc {
            op: Op::Elementwise { bc, prog },
            inputs,
            output: rs.output,
            origin: rs.origin.clone(),
        },
    })
}

/// A value of the program being compiled.
#[derive(Clone, Copy, PartialEq, Debug)]
enum EwVal {
    /// Operand slot.
    Operand(u8),
    /// The result of a member step.
    Member(usize),
    /// A scalar constant.
    Const(u32),
}

/// Compiles the members (ascending step indices, the last is the root) into a program and its
/// operands `(tensor, strides over out_dims)`; `None` when it needs more than
/// `PROGRAM_OPERANDS` operands, `PROGRAM_MAX_INSTRS` instructions or `PROGRAM_REGS` registers.
#[allow(clippy::type_complexity)]
fn compile_group(
    g: &Graph,
    nodes: &[Option<EwNode>],
    members: &std::collections::BTreeSet<usize>,
    out_dims: &[usize],
    producer_of: &dyn Fn(TId) -> Option<usize>,
) -> Option<(Program, Vec<(TId, Vec<usize>)>)> {
    let mut operands: Vec<(TId, Vec<usize>)> = vec![];
    // Values each member reads, then what each member's value is (`Same` casts pass theirs on).
    let mut srcs: HashMap<usize, Vec<EwVal>> = HashMap::new();
    let mut value: HashMap<usize, EwVal> = HashMap::new();
    for &m in members {
        let n = nodes[m].as_ref()?;
        let mut v = vec![];
        for (t, s) in &n.reads {
            let inner = producer_of(*t).filter(|p| members.contains(p));
            let val = if let Some(p) = inner {
                *value.get(&p)?
            } else if let Some(c) = scalar(g, *t) {
                EwVal::Const(c.to_bits())
            } else {
                let st = read_onto(n, s, out_dims)?;
                let key = (*t, st);
                let j = match operands.iter().position(|o| *o == key) {
                    Some(j) => j,
                    None => {
                        operands.push(key);
                        operands.len() - 1
                    }
                };
                EwVal::Operand(u8::try_from(j).ok()?)
            };
            v.push(val);
        }
        let own = match n.kind {
            EwKind::Same => *v.first()?,
            _ => EwVal::Member(m),
        };
        value.insert(m, own);
        srcs.insert(m, v);
    }
    if operands.len() > PROGRAM_OPERANDS || operands.is_empty() {
        return None;
    }
    let order: Vec<usize> = members
        .iter()
        .copied()
        .filter(|m| !matches!(nodes[*m].as_ref().map(|n| n.kind), Some(EwKind::Same)))
        .collect();
    let root = *members.iter().next_back()?;
    let result = *value.get(&root)?;
    // Last instruction (position in `order`) reading each member's value.
    let mut last_use: HashMap<usize, usize> = HashMap::new();
    for (k, m) in order.iter().enumerate() {
        for v in &srcs[m] {
            if let EwVal::Member(p) = v {
                last_use.insert(*p, k);
            }
        }
    }
    let mut prog = Program {
        n_in: operands.len(),
        ..Default::default()
    };
    let emit = |ins: Instr, prog: &mut Program| -> Option<()> {
        if prog.len >= PROGRAM_MAX_INSTRS {
            return None;
        }
        prog.instrs[prog.len] = ins;
        prog.len += 1;
        Some(())
    };
    let mut free: Vec<u8> = (0..PROGRAM_REGS as u8)
        .rev()
        .map(|r| r + PROGRAM_REG0)
        .collect();
    let mut reg_of: HashMap<usize, u8> = HashMap::new();
    for (k, &m) in order.iter().enumerate() {
        let n = nodes[m].as_ref()?;
        let mut slots = vec![];
        let mut dying = vec![];
        for v in &srcs[&m] {
            let s = match *v {
                EwVal::Operand(j) => j,
                EwVal::Member(p) => {
                    let r = *reg_of.get(&p)?;
                    if last_use.get(&p) == Some(&k) && !dying.contains(&r) {
                        dying.push(r);
                    }
                    r
                }
                EwVal::Const(bits) => {
                    let r = free.pop()?;
                    emit(
                        Instr::Const {
                            dst: r,
                            value: f32::from_bits(bits),
                        },
                        &mut prog,
                    )?;
                    dying.push(r);
                    r
                }
            };
            slots.push(s);
        }
        // The destination reuses the first source's register when it dies here.
        let dst = match slots.first() {
            Some(s) if dying.contains(s) => {
                dying.retain(|r| r != s);
                *s
            }
            _ => match free.pop() {
                Some(r) => r,
                None => dying.pop()?,
            },
        };
        free.extend(dying);
        reg_of.insert(m, dst);
        let at = |i: usize| slots.get(i).copied();
        let ins = match n.kind {
            EwKind::Unary(op) => Instr::Unary { dst, a: at(0)?, op },
            EwKind::Binary(op) => Instr::Binary {
                dst,
                a: at(0)?,
                b: at(1)?,
                op,
            },
            EwKind::Compare(op) => Instr::Compare {
                dst,
                a: at(0)?,
                b: at(1)?,
                op,
            },
            EwKind::Logic(op) => Instr::Logic {
                dst,
                a: at(0)?,
                b: at(1).or(at(0))?,
                op,
            },
            EwKind::Where => Instr::Where {
                dst,
                cond: at(0)?,
                a: at(1)?,
                b: at(2)?,
            },
            EwKind::NonZero => Instr::NonZero { dst, a: at(0)? },
            EwKind::Same => return None,
        };
        emit(ins, &mut prog)?;
    }
    // The result must be the last instruction's destination.
    let last_dst = prog.instrs().last().map(|i| i.dst());
    let want = match result {
        EwVal::Member(p) => reg_of.get(&p).copied(),
        _ => None,
    };
    if want.is_none() || want != last_dst {
        let a = match result {
            EwVal::Operand(j) => j,
            EwVal::Member(p) => *reg_of.get(&p)?,
            EwVal::Const(_) => return None,
        };
        let dst = free.pop().unwrap_or(a.max(PROGRAM_REG0));
        emit(
            Instr::Unary {
                dst,
                a,
                op: UnaryOp::Identity,
            },
            &mut prog,
        )?;
    }
    prog.check().ok()?;
    Some((prog, operands))
}
