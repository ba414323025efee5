//! Channel mixes spelled as layout shuffles become one small grouped 1x1 convolution.
//!
//! Exporters write some per-position channel mixes as chains of transposes, reshapes, slices,
//! constant multiplies and concats: SpaRTAN's complex modulation (`view_as_complex(x) · c` on
//! an NHWC view, a 2×2 mix per channel pair) takes nine ONNX nodes and eight mote steps. Such a
//! chain is a linear (affine) map of one tensor. [`fuse_channel_mix`] finds these chains, reads
//! the map off the chain itself (it runs the chain's steps with the reference kernels on probe
//! inputs), proves that the map is the same small mix at every position, and replaces the chain
//! by one `Conv2d` 1x1 with small groups (or a `ChannelAffine` when no channels mix).
//! [`fold_mix_into_conv`] then folds such a mix into the convolution that reads it when that
//! convolution's groups contain the mix's groups.
//!
//! Nothing is matched by op spelling: any chain of copies, additions, subtractions, negations
//! and multiplications or divisions by constants qualifies, and the proof is a check of the
//! recovered map against the chain on a pseudo-random input (the chain is affine, so a map
//! that reproduces it on a random input within rounding is the map).

use anyhow::Result;
use mote::ops::Op;
use mote::DType;
use mote_targets::{Activation, BinaryOp, Conv2dGeom, UnaryOp};
use std::collections::{BTreeSet, HashMap, HashSet};

use super::ir::{Data, Graph, StepDesc, TId};
use super::passes::{producer, Uses};

/// Most steps one chain may hold (a bound on the probing work).
const MAX_CHAIN: usize = 64;
/// Widest channel group a mix may have: beyond this a grouped 1x1 convolution runs as a GEMM
/// and costs more than the copies it replaces.
const MAX_GROUP: usize = mote_targets::kernels::DIRECT_MAX_GROUP_CHANNELS;
/// Most chains probed per end tensor (each costs three runs of its steps).
const MAX_TRIES: usize = 4;
/// Most channels probed (the recovered map is `c × c`).
const MAX_CHANNELS: usize = 4096;
/// Seed of the random input the recovered mix is proven on.
const PROOF_SEED: u64 = 0x006d_6978;
/// Relative tolerance of the random-input proof: far above the rounding of a chain of a few
/// f32 operations, far below any real difference.
const PROOF_TOL: f64 = 1e-5;

/// An element-wise or copy step that is an affine function of its non-constant operands.
fn affine_step(g: &Graph, s: &StepDesc) -> bool {
    let all_f32 = s
        .inputs
        .iter()
        .flatten()
        .all(|&t| g.tensors[t].dtype == DType::F32)
        && g.tensors[s.output].dtype == DType::F32;
    let konst = |k: usize| s.inputs[k].is_some_and(|t| g.is_const(t));
    all_f32
        && match s.op {
            Op::Copy(_) => true,
            Op::Binary {
                op: BinaryOp::Add | BinaryOp::Sub,
                ..
            } => true,
            Op::Binary {
                op: BinaryOp::Mul, ..
            } => konst(0) || konst(1),
            Op::Binary {
                op: BinaryOp::Div, ..
            } => konst(1),
            Op::Unary {
                op: UnaryOp::Neg | UnaryOp::Affine { .. },
            } => true,
            _ => false,
        }
}

/// A chain of affine steps from one tensor `x` to `y` (storage roots).
struct Chain {
    steps: Vec<usize>,
    x: TId,
}

/// The affine steps that `y` depends on, walking back until a step that is not affine, a
/// graph output, or `stop`: the steps, the tensors they write (other than `y`) and the tensors
/// the walk stopped at.
struct Walk {
    steps: BTreeSet<usize>,
    inner: Vec<TId>,
    inputs: BTreeSet<TId>,
}

fn walk(
    g: &Graph,
    writers: &HashMap<TId, Vec<usize>>,
    outputs: &HashSet<TId>,
    y: TId,
    stop: Option<TId>,
) -> Option<Walk> {
    let mut w = Walk {
        steps: BTreeSet::new(),
        inner: Vec::new(),
        inputs: BTreeSet::new(),
    };
    let mut seen = HashSet::new();
    let mut stack = vec![y];
    while let Some(t) = stack.pop() {
        if !seen.insert(t) {
            continue;
        }
        let ws = writers.get(&t).filter(|ws| {
            Some(t) != stop
                && ws.iter().all(|&i| affine_step(g, &g.steps[i]))
                && (t == y || !outputs.contains(&t))
        });
        let Some(ws) = ws else {
            if t == y {
                return None;
            }
            w.inputs.insert(t);
            continue;
        };
        if t != y {
            w.inner.push(t);
        }
        for &i in ws {
            w.steps.insert(i);
            if w.steps.len() > MAX_CHAIN {
                return None;
            }
            for &u in g.steps[i].inputs.iter().flatten() {
                if !g.is_const(u) {
                    stack.push(g.root(u));
                }
            }
        }
    }
    Some(w)
}

/// Chains of affine steps that end at `y` and start from a single tensor whose intermediate
/// results nothing else reads, longest first (at most [`MAX_TRIES`]).
fn chains_to(
    g: &Graph,
    writers: &HashMap<TId, Vec<usize>>,
    readers: &HashMap<TId, Vec<usize>>,
    outputs: &HashSet<TId>,
    y: TId,
) -> Vec<Chain> {
    let mut found = Vec::new();
    let Some(full) = walk(g, writers, outputs, y, None) else {
        return found;
    };
    // Where the whole walk has several inputs, cut it at one of its tensors, earliest first.
    let mut cuts = full.inner.clone();
    cuts.sort_by_key(|t| writers.get(t).and_then(|w| w.first().copied()));
    let cut_walks = cuts
        .into_iter()
        .filter_map(|stop| walk(g, writers, outputs, y, Some(stop)));
    for w in std::iter::once(full).chain(cut_walks) {
        let x = match *w.inputs.iter().collect::<Vec<_>>() {
            [&x] => x,
            _ => continue,
        };
        let private = w.inner.iter().all(|t| {
            !readers
                .get(t)
                .is_some_and(|rs| rs.iter().any(|r| !w.steps.contains(r)))
        });
        let (tx, ty) = (&g.tensors[x], &g.tensors[y]);
        if private && w.steps.len() >= 2 && tx.dtype == DType::F32 && tx.elems() == ty.elems() {
            found.push(Chain {
                steps: w.steps.into_iter().collect(),
                x,
            });
            if found.len() == MAX_TRIES {
                break;
            }
        }
    }
    found
}

/// Runs the chain's steps with the reference kernels on `xv` as `x`; returns `y`.
fn run_chain(g: &Graph, c: &Chain, y: TId, xv: &[f32]) -> Option<Vec<f32>> {
    let mut vals: HashMap<TId, Data> = HashMap::new();
    vals.insert(c.x, Data::from_f32(xv));
    for &i in &c.steps {
        let s = &g.steps[i];
        let out = g.root(s.output);
        let mut buf = vals
            .remove(&out)
            .unwrap_or_else(|| Data::zeroed(g.tensors[out].bytes()));
        let value = |t: TId| g.value(t).or_else(|| vals.get(&g.root(t)));
        g.eval_op(
            &s.op,
            &s.inputs,
            value,
            g.tensors[s.output].dtype,
            buf.bytes_mut(),
        )
        .ok()?;
        vals.insert(out, buf);
    }
    Some(vals.remove(&y)?.f32s().ok()?.to_vec())
}

/// A per-position channel mix `y[b, o, p] = bias[o] + Σ_j w[o, j] x[b, j, p]` whose matrix is
/// block-diagonal with blocks of `group` channels: `w` holds the blocks, `[c, group]`.
struct Mix {
    c: usize,
    group: usize,
    w: Vec<f32>,
    bias: Vec<f32>,
}

/// Reads the map of `chain` off probe runs, taking `y` as `[n, c, positions]` (its first two
/// dims are batch and channels), and proves it on a pseudo-random input.
fn recover_mix(g: &Graph, chain: &Chain, y: TId) -> Option<Mix> {
    let shape = &g.tensors[y].shape;
    let (n, c) = (*shape.first()?, *shape.get(1)?);
    let len = g.tensors[y].elems();
    if n == 0 || !(2..=MAX_CHANNELS).contains(&c) || !len.is_multiple_of(n * c) || len == 0 {
        return None;
    }
    let sp = len / (n * c);
    let positions = n * sp;
    let at = |pos: usize, ch: usize| (pos / sp * c + ch) * sp + pos % sp;

    // The constant term: the chain on zeros, the same at every position.
    let y0 = run_chain(g, chain, y, &vec![0.0; len])?;
    let bias: Vec<f32> = (0..c).map(|o| y0[at(0, o)]).collect();
    if (0..positions).any(|p| (0..c).any(|o| y0[at(p, o)] != bias[o])) {
        return None;
    }
    // Columns of the matrix: position p holds the unit vector of channel r·positions + p.
    let mut m = vec![0f32; c * c];
    for r in 0..c.div_ceil(positions) {
        let mut xv = vec![0.0; len];
        let col = |p: usize| r * positions + p;
        for p in (0..positions).filter(|&p| col(p) < c) {
            xv[at(p, col(p))] = 1.0;
        }
        let yv = run_chain(g, chain, y, &xv)?;
        for p in (0..positions).filter(|&p| col(p) < c) {
            for o in 0..c {
                m[o * c + col(p)] = yv[at(p, o)] - bias[o];
            }
        }
    }
    if m.iter().chain(&bias).any(|v| !v.is_finite()) {
        return None;
    }
    // The narrowest block structure the matrix has.
    let group = (1..=MAX_GROUP.min(c)).find(|&gs| {
        c % gs == 0 && (0..c).all(|o| (0..c).all(|j| o / gs == j / gs || m[o * c + j] == 0.0))
    })?;
    let identity = bias.iter().all(|&b| b == 0.0)
        && (0..c).all(|o| (0..c).all(|j| m[o * c + j] == if o == j { 1.0 } else { 0.0 }));
    if identity {
        return None;
    }
    let w: Vec<f32> = (0..c)
        .flat_map(|o| {
            let base = o / group * group;
            m[o * c + base..o * c + base + group].to_vec()
        })
        .collect();

    // The proof: the chain and the mix agree on a pseudo-random input.
    let mut rng = super::quant::Normal::new(PROOF_SEED);
    let xv: Vec<f32> = (0..len).map(|_| rng.next()).collect();
    let yv = run_chain(g, chain, y, &xv)?;
    for p in 0..positions {
        for o in 0..c {
            let base = o / group * group;
            let (mut acc, mut mag) = (bias[o] as f64, (bias[o] as f64).abs());
            for k in 0..group {
                let t = w[o * group + k] as f64 * xv[at(p, base + k)] as f64;
                acc += t;
                mag += t.abs();
            }
            if (yv[at(p, o)] as f64 - acc).abs() > PROOF_TOL * mag + 1e-30 {
                return None;
            }
        }
    }
    Some(Mix { c, group, w, bias })
}

/// The step that computes `mix` from `x` into `y`.
fn mix_step(g: &mut Graph, mix: &Mix, x: TId, y: TId, origin: &str) -> Result<StepDesc> {
    let shape = g.tensors[y].shape.clone();
    let n = shape[0];
    let sp = g.tensors[y].elems() / (n * mix.c);
    let has_bias = mix.bias.iter().any(|&b| b != 0.0);
    if mix.group == 1 {
        let scale = g.const_f32(format!("{origin}::mix_scale"), vec![mix.c], &mix.w)?;
        let bias = g.const_f32(format!("{origin}::mix_bias"), vec![mix.c], &mix.bias)?;
        return Ok(StepDesc {
            op: Op::ChannelAffine {
                outer: n,
                c: mix.c,
                inner: sp,
            },
            inputs: [Some(x), Some(scale), Some(bias), None],
            output: y,
            origin: origin.to_string(),
        });
    }
    let (h, w) = match shape[..] {
        [_, _, h, w] => (h, w),
        _ => (1, sp),
    };
    let geom = Conv2dGeom {
        n,
        c_in: mix.c,
        h_in: h,
        w_in: w,
        c_out: mix.c,
        h_out: h,
        w_out: w,
        kh: 1,
        kw: 1,
        stride_h: 1,
        stride_w: 1,
        dil_h: 1,
        dil_w: 1,
        pad_top: 0,
        pad_left: 0,
        groups: mix.c / mix.group,
    };
    let wt = g.const_f32(
        format!("{origin}::mix_weight"),
        vec![mix.c, mix.group, 1, 1],
        &mix.w,
    )?;
    let bias = if has_bias {
        Some(g.const_f32(format!("{origin}::mix_bias"), vec![mix.c], &mix.bias)?)
    } else {
        None
    };
    Ok(StepDesc {
        op: Op::Conv2d {
            g: geom,
            act: Activation::None,
        },
        inputs: [Some(x), Some(wt), bias, None],
        output: y,
        origin: origin.to_string(),
    })
}

/// Replaces each chain of affine steps that computes a small per-position channel mix of one
/// tensor by the one step that computes the mix.
pub fn fuse_channel_mix(g: &mut Graph) -> Result<()> {
    let mut tried: HashSet<TId> = HashSet::new();
    'scan: loop {
        let mut writers: HashMap<TId, Vec<usize>> = HashMap::new();
        let mut readers: HashMap<TId, Vec<usize>> = HashMap::new();
        for (i, s) in g.steps.iter().enumerate() {
            writers.entry(g.root(s.output)).or_default().push(i);
            for &t in s.inputs.iter().flatten() {
                readers.entry(g.root(t)).or_default().push(i);
            }
        }
        let outputs: HashSet<TId> = g.outputs.iter().map(|&t| g.root(t)).collect();
        for i in 0..g.steps.len() {
            let y = g.root(g.steps[i].output);
            // The end of a chain: its last writer, read by something that is not affine.
            let last = writers.get(&y).and_then(|w| w.last()) == Some(&i);
            let ends = outputs.contains(&y)
                || readers
                    .get(&y)
                    .is_some_and(|rs| rs.iter().any(|&r| !affine_step(g, &g.steps[r])));
            if !last || !ends || !affine_step(g, &g.steps[i]) || !tried.insert(y) {
                continue;
            }
            let found = chains_to(g, &writers, &readers, &outputs, y)
                .into_iter()
                .find_map(|c| Some((recover_mix(g, &c, y)?, c)));
            let Some((mix, chain)) = found else {
                continue;
            };
            let origin = g.steps[i].origin.clone();
            let step = mix_step(g, &mix, chain.x, y, &origin)?;
            let drop: HashSet<usize> = chain.steps.iter().copied().collect();
            let old = std::mem::take(&mut g.steps);
            for (k, s) in old.into_iter().enumerate() {
                if k == i {
                    g.steps.push(step.clone());
                } else if !drop.contains(&k) {
                    g.steps.push(s);
                }
            }
            log::debug!(
                "channel mix: {} steps -> one {} (groups of {} channels) at {origin}",
                drop.len(),
                step.op.name(),
                mix.group
            );
            continue 'scan;
        }
        return Ok(());
    }
}

/// A bias-free grouped 1x1 convolution (a channel mix) read only by a convolution whose
/// groups each hold whole groups of the mix folds into that convolution's weights.
pub fn fold_mix_into_conv(g: &mut Graph) -> Result<()> {
    let mut i = 0;
    while i < g.steps.len() {
        let Some(FoldTarget { b, wa, wb, ga, gb }) = fold_target(g, i) else {
            i += 1;
            continue;
        };
        let wa = g.f32_values(wa)?;
        let wbv = g.f32_values(wb)?;
        let gs = ga.c_in / ga.groups;
        let (cig, cog, taps) = (gb.c_in / gb.groups, gb.c_out / gb.groups, gb.kh * gb.kw);
        // y = A x, z = B y: (B A)[o, i] = Σ_c B[o, c] A[c, i] over the mix group of i.
        let mut nw = vec![0f32; wbv.len()];
        for o in 0..gb.c_out {
            let first = o / cog * cig;
            for il in 0..cig {
                let base = (first + il) / gs * gs;
                for t in 0..taps {
                    let mut acc = 0f32;
                    for cl in 0..gs {
                        let ch = base + cl;
                        acc += wbv[(o * cig + ch - first) * taps + t]
                            * wa[ch * gs + (first + il - base)];
                    }
                    nw[(o * cig + il) * taps + t] = acc;
                }
            }
        }
        let origin = g.steps[b].origin.clone();
        let shape = g.tensors[wb].shape.clone();
        let wt = g.const_f32(format!("{origin}::w_mixed"), shape, &nw)?;
        g.steps[b].inputs[0] = g.steps[i].inputs[0];
        g.steps[b].inputs[1] = Some(wt);
        g.steps.remove(i);
    }
    Ok(())
}

/// A channel-mix step's reader `b`, both weights and both geometries.
struct FoldTarget {
    b: usize,
    wa: TId,
    wb: TId,
    ga: Conv2dGeom,
    gb: Conv2dGeom,
}

/// For a channel-mix step `a`: what it folds into, when it does.
fn fold_target(g: &Graph, a: usize) -> Option<FoldTarget> {
    let sa = &g.steps[a];
    let Op::Conv2d {
        g: ga,
        act: Activation::None,
    } = sa.op
    else {
        return None;
    };
    let pointwise = ga.kh == 1
        && ga.kw == 1
        && ga.stride_h == 1
        && ga.stride_w == 1
        && ga.pad_top == 0
        && ga.pad_left == 0
        && ga.c_in == ga.c_out
        && ga.h_in == ga.h_out
        && ga.w_in == ga.w_out
        && ga.groups > 0;
    let wa = sa.inputs[1]?;
    // A bias would meet the next conv's zero padding and not fold exactly.
    if !pointwise || sa.inputs[2].is_some() || !g.is_const(wa) {
        return None;
    }
    let y = sa.output;
    let b = Uses::of(g).only_reader(g, y)?;
    let sb = &g.steps[b];
    let Op::Conv2d { g: gb, .. } = sb.op else {
        return None;
    };
    let wb = sb.inputs[1]?;
    let gs = ga.c_in / ga.groups;
    let fits = g.root(sb.inputs[0]?) == g.root(y)
        && producer(g, y) == Some(a)
        && gb.n == ga.n
        && gb.c_in == ga.c_out
        && gb.h_in == ga.h_out
        && gb.w_in == ga.w_out
        && gb.groups > 0
        && (gb.c_in / gb.groups) % gs == 0
        && g.is_const(wb)
        && g.tensors[wb].dtype == DType::F32;
    fits.then_some(FoldTarget { b, wa, wb, ga, gb })
}
