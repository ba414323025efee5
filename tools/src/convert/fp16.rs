//! `--quant fp16`: the large weights become IEEE binary16 constants (dtype 2 in the file), in
//! the layout the f32 kernels read (panels or plain, as packed); the kernels widen them to f32
//! while they load a tile, so compute stays f32 and the file roughly halves.
//!
//! Which constants: the weight of every convolution (GEMM convolutions, and depthwise /
//! small-group ones whose direct kernel widens them per block of channels:
//! `mote_targets::kernels::conv_direct_f16_fits`) and every constant matrix operand of a
//! MatMul (MatMul, Gemm, Linear, folded attention projections). Everything else stays f32:
//! biases, normalization scales, element-wise constants (small, and read by f32-only kernels).
//! Weights upstream of a discrete decision (ArgMax/ArgMin, a comparison) stay f32: a rounding
//! there can flip the decision and change the output far more than rounding anywhere else
//! (SpaRTAN's spatial routing picks positions with an ArgMax; with its stem in fp16 the logits
//! fell to cosine 0.996 of fp32, `mote compare` shows the jump at the ArgMax).
//!
//! A weight stays f32 when binary16 cannot hold it: a finite value beyond the binary16 range
//! (|x| > 65504) would become infinite, and a tensor whose values sit mostly below the normal
//! range (2^-14: layer scales folded into a convolution make such weights) would lose more
//! than a few bits — the rule is a relative RMS rounding error above [`MAX_REL_RMS_ERROR`],
//! four times what round-to-nearest on normal binary16 values can cause (2^-11 relative).

use super::ir::{Data, Graph, TId};
use anyhow::Result;
use mote::ops::Op;
use mote::DType;
use mote_targets::program::Instr;
use std::collections::{HashMap, HashSet};

/// What the pass changed.
#[derive(Debug, Default, Clone, Copy)]
pub struct Fp16Report {
    /// Constants now stored as binary16.
    pub converted: usize,
    /// Constants that stayed f32 because binary16 cannot hold them (see the module docs).
    pub kept_f32: usize,
    /// Steps whose weights stayed f32 because they feed a discrete decision.
    pub kept_upstream_of_discrete: usize,
    /// Bytes saved (f32 bytes minus binary16 bytes of the converted constants).
    pub bytes_saved: usize,
}

/// Whether a step's operand `slot` is a weight this pass stores as binary16.
fn is_fp16_weight(op: &Op, slot: usize) -> bool {
    match op {
        Op::Conv2d { g, .. } => {
            slot == 1
                && (mote_targets::kernels::conv_uses_panels(g)
                    || mote_targets::kernels::conv_direct_f16_fits(g))
        }
        Op::MatMul(_) => slot == 0 || slot == 1,
        _ => false,
    }
}

/// Largest relative RMS error (`|w16 - w| / |w|`) a weight may get from binary16 rounding.
pub const MAX_REL_RMS_ERROR: f64 = 4.0 / 2048.0;

/// Rounds `v` to binary16 (round to nearest, ties to even); `None` when a finite value would
/// overflow to infinity or the tensor's relative RMS error exceeds [`MAX_REL_RMS_ERROR`].
pub fn to_f16_bits(v: &[f32]) -> Option<Vec<u16>> {
    let max = half::f16::MAX.to_f32();
    if v.iter().any(|x| x.is_finite() && x.abs() > max) {
        return None;
    }
    let bits: Vec<u16> = v
        .iter()
        .map(|&x| half::f16::from_f32(x).to_bits())
        .collect();
    let (mut sig, mut err) = (0f64, 0f64);
    for (&x, &h) in v.iter().zip(&bits) {
        if x.is_finite() {
            let d = half::f16::from_bits(h).to_f64() - x as f64;
            sig += (x as f64) * (x as f64);
            err += d * d;
        }
    }
    if err > MAX_REL_RMS_ERROR * MAX_REL_RMS_ERROR * sig {
        return None;
    }
    Some(bits)
}

/// Replaces the selected f32 weights of `g` by binary16 copies (one copy per constant, however
/// many steps read it). Run after packing: the values keep their packed order.
pub fn weights_to_fp16(g: &mut Graph) -> Result<Fp16Report> {
    let mut rep = Fp16Report::default();
    // Storage roots that reach a discrete step, found by walking the steps backwards.
    let mut feeds_discrete: HashSet<TId> = HashSet::new();
    let mut keep = vec![false; g.steps.len()];
    for i in (0..g.steps.len()).rev() {
        let s = &g.steps[i];
        // Comparisons fused into an element-wise program decide just the same.
        let discrete = match &s.op {
            Op::ArgMax { .. } | Op::Compare { .. } => true,
            Op::Elementwise { prog, .. } | Op::ElementwiseReduce { prog, .. } => {
                prog.instrs().iter().any(|i| {
                    matches!(
                        i,
                        Instr::Compare { .. } | Instr::NonZero { .. } | Instr::Logic { .. }
                    )
                })
            }
            _ => false,
        };
        if discrete || feeds_discrete.contains(&g.root(s.output)) {
            keep[i] = true;
            for t in s.inputs.iter().flatten() {
                feeds_discrete.insert(g.root(*t));
            }
        }
    }
    let mut done: HashMap<TId, Option<TId>> = HashMap::new();
    for i in 0..g.steps.len() {
        if keep[i] && matches!(g.steps[i].op, Op::Conv2d { .. } | Op::MatMul(_)) {
            rep.kept_upstream_of_discrete += 1;
            continue;
        }
        for slot in 0..2 {
            let Some(t) = g.steps[i].inputs[slot] else {
                continue;
            };
            if !is_fp16_weight(&g.steps[i].op, slot)
                || !g.is_const(t)
                || g.tensors[t].dtype != DType::F32
            {
                continue;
            }
            let half_t = match done.get(&t) {
                Some(&h) => h,
                None => {
                    let v = g.f32_values(t)?;
                    let h = match to_f16_bits(&v) {
                        Some(bits) => {
                            let te = &g.tensors[t];
                            let (name, shape) = (te.name.clone(), te.shape.clone());
                            let data = Data::from_bytes(mote::view::bytes_of(&bits));
                            rep.converted += 1;
                            rep.bytes_saved += v.len() * 2;
                            Some(g.add_const(name, DType::F16, shape, data)?)
                        }
                        None => {
                            log::info!(
                                "{}: fp16 cannot hold it (range or precision), it stays f32",
                                g.tensors[t].name
                            );
                            rep.kept_f32 += 1;
                            None
                        }
                    };
                    done.insert(t, h);
                    h
                }
            };
            if let Some(h) = half_t {
                g.steps[i].inputs[slot] = Some(h);
            }
        }
    }
    Ok(rep)
}
