//! Static memory planning: tensor lifetimes over the step list, packed greedily by size into
//! one arena (the strategy of TFLite's greedy arena planner). Views share their root's storage.

use super::ir::{Graph, TId};
use mote::format::{align_up, DATA_ALIGN};
use std::collections::HashMap;

/// Arena offset of every storage root, and the arena size.
#[derive(Debug, Default)]
pub struct Plan {
    /// Offset of each root tensor that lives in the arena.
    pub offsets: HashMap<TId, usize>,
    /// Total arena bytes.
    pub arena_size: usize,
}

/// Plans the arena. Graph inputs live for the whole run (so callers may set them once and so
/// outputs never overwrite them); graph outputs live from their first write to the end.
pub fn plan(g: &Graph) -> Plan {
    let n = g.steps.len();
    let mut life: HashMap<TId, (usize, usize)> = HashMap::new();
    let touch = |t: TId, at: usize, life: &mut HashMap<TId, (usize, usize)>| {
        let e = life.entry(t).or_insert((at, at));
        e.0 = e.0.min(at);
        e.1 = e.1.max(at);
    };
    for &t in &g.inputs {
        touch(g.root(t), 0, &mut life);
        touch(g.root(t), n + 1, &mut life);
    }
    for (i, s) in g.steps.iter().enumerate() {
        touch(g.root(s.output), i + 1, &mut life);
        for t in s.inputs.iter().flatten() {
            if !g.is_const(*t) {
                touch(g.root(*t), i + 1, &mut life);
            }
        }
    }
    for &t in &g.outputs {
        touch(g.root(t), n + 1, &mut life);
    }
    let mut items: Vec<(TId, usize, (usize, usize))> = life
        .into_iter()
        .map(|(t, l)| {
            (
                t,
                align_up(g.tensors[t].bytes().max(1) as u64, DATA_ALIGN as u64) as usize,
                l,
            )
        })
        .collect();
    // Largest first; ties by first use then id so the plan is deterministic.
    items.sort_by(|a, b| b.1.cmp(&a.1).then(a.2 .0.cmp(&b.2 .0)).then(a.0.cmp(&b.0)));
    let mut placed: Vec<(usize, usize, (usize, usize))> = vec![];
    let mut plan = Plan::default();
    for (t, size, l) in items {
        let mut conflicts: Vec<(usize, usize)> = placed
            .iter()
            .filter(|p| p.2 .0 <= l.1 && l.0 <= p.2 .1)
            .map(|p| (p.0, p.1))
            .collect();
        conflicts.sort_unstable();
        let mut at = 0usize;
        for (off, sz) in conflicts {
            if at + size <= off {
                break;
            }
            at = at.max(off + sz);
        }
        placed.push((at, size, l));
        plan.offsets.insert(t, at);
        plan.arena_size = plan.arena_size.max(at + size);
    }
    plan
}

/// Lets element-wise steps write over their operand 0 when nothing reads that operand later
/// (the in-place reuse of TFLite's planner): the output becomes a view of the operand's
/// storage. Graph inputs are never overwritten and graph outputs keep storage of their own.
pub fn assign_in_place(g: &mut Graph) {
    let n = g.steps.len();
    for i in 0..n {
        let s = &g.steps[i];
        if !s.op.in_place_ok() {
            continue;
        }
        let Some(x) = s.inputs[0] else { continue };
        let (rx, ro) = (g.root(x), g.root(s.output));
        let (tx, to) = (&g.tensors[x], &g.tensors[s.output]);
        if g.is_const(x) || rx == ro || tx.bytes() != to.bytes() || tx.dtype != to.dtype {
            continue;
        }
        // Recomputed per step: an output made in place earlier now lives in its operand's root.
        let protected = |t: TId| g.inputs.iter().chain(&g.outputs).any(|&u| g.root(u) == t);
        if protected(rx) || g.inputs.iter().any(|&t| g.root(t) == ro) {
            continue;
        }
        if s.inputs[1..].iter().flatten().any(|&t| g.root(t) == rx) {
            continue;
        }
        let read_later = g.steps[i + 1..]
            .iter()
            .any(|t| t.inputs.iter().flatten().any(|&u| g.root(u) == rx));
        let other_writer = g
            .steps
            .iter()
            .enumerate()
            .any(|(j, t)| j != i && g.root(t.output) == ro);
        if read_later || other_writer {
            continue;
        }
        // A graph output may take over the operand's storage only if that storage then lives
        // for the graph output alone.
        g.tensors[ro].alias_of = Some(rx);
    }
}
