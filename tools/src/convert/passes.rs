//! Graph clean-up and fusion on lowered steps. Every rewrite here is exact up to fp32 rounding.

use anyhow::Result;
use mote::ops::{CopyGeom, Op};
use mote::DType;
use mote_targets::{Activation, BinaryOp, UnaryOp};
use std::collections::HashMap;

use super::ir::{Graph, StepDesc, TId};

/// Runs every pass to a fixed point.
pub fn optimize(g: &mut Graph) -> Result<()> {
    // Lowering-time rewrites (the FFT convolution) leave the steps they replace behind; drop
    // them first so they cannot hold a tensor's "only reader" slot.
    remove_dead(g);
    fuse_gelu(g);
    fuse_silu(g);
    fuse_layernorm_axis(g);
    fuse_matmul_bias(g)?;
    binary_to_affine(g)?;
    fold_copies_into_matmul(g);
    loop {
        let before = g.steps.len();
        merge_affine_into_conv(g)?;
        merge_affine_into_matmul(g)?;
        fold_scale_into_matmul(g);
        fuse_activation(g);
        remove_dead(g);
        if g.steps.len() == before {
            break;
        }
    }
    Ok(())
}

/// Uses of each storage root: step indices that read it, and whether a graph output is on it.
struct Uses {
    readers: HashMap<TId, Vec<usize>>,
    outputs: Vec<TId>,
}

impl Uses {
    fn of(g: &Graph) -> Uses {
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
    fn only_reader(&self, g: &Graph, t: TId) -> Option<usize> {
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

fn producer(g: &Graph, t: TId) -> Option<usize> {
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
    let dims = &c.dims[..c.rank];
    if dims.iter().product::<usize>() != len {
        return None;
    }
    let mut map = vec![-1isize; len];
    let mut idx = vec![0usize; c.rank];
    for _ in 0..len {
        let (mut src, mut dst) = (c.src_off as isize, c.dst_off as isize);
        for d in 0..c.rank {
            src += idx[d] as isize * c.src_strides[d];
            dst += idx[d] as isize * c.dst_strides[d];
        }
        let slot = map.get_mut(usize::try_from(dst).ok()?)?;
        if *slot >= 0 || src < 0 {
            return None;
        }
        *slot = src;
        for d in (0..c.rank).rev() {
            idx[d] += 1;
            if idx[d] < dims[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    Some(map)
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
