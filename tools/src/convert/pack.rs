//! Weight packing for a target's kernels: the last pass before writing, so that the runtime
//! reads weights in place in the order its micro-kernels want and never repacks.

use super::ir::{Graph, TId};
use anyhow::Result;
use mote::ops::Op;
use mote_targets::profile::{LAYOUT_PANEL6, LAYOUT_REFERENCE};
use std::collections::HashMap;

/// Packs the graph's weights for `layout` and returns the layout the file gets: a graph that
/// cannot be packed (a GEMM convolution whose weight is computed at run time) keeps the
/// reference layout, which every kernel set reads too.
pub fn pack_weights(g: &mut Graph, layout: u32) -> Result<u32> {
    if layout != LAYOUT_PANEL6 {
        return Ok(LAYOUT_REFERENCE);
    }
    let convs: Vec<usize> = (0..g.steps.len())
        .filter(|&i| match g.steps[i].op {
            Op::Conv2d { g: geom, .. } => mote::ops::conv_packed(layout, &geom),
            _ => false,
        })
        .collect();
    if convs
        .iter()
        .any(|&i| g.steps[i].inputs[1].is_none_or(|w| !g.is_const(w)))
    {
        log::info!("a convolution weight is computed at run time: weights stay unpacked");
        return Ok(LAYOUT_REFERENCE);
    }
    // One packed copy per (weight, geometry): a weight shared by several identical convs is
    // stored once.
    let mut done: HashMap<(TId, [usize; 6]), TId> = HashMap::new();
    for i in convs {
        let Op::Conv2d { g: geom, .. } = g.steps[i].op else {
            continue;
        };
        let Some(w) = g.steps[i].inputs[1] else {
            continue;
        };
        let key = (w, [geom.c_out, geom.c_in, geom.kh, geom.kw, geom.groups, 0]);
        let packed = match done.get(&key) {
            Some(&t) => t,
            None => {
                let plain = g.f32_values(w)?;
                let mut out = vec![0f32; mote_targets::kernels::conv_panels_len(&geom)];
                mote_targets::kernels::pack_conv_weights(&geom, &plain, &mut out);
                let name = format!("{}::panels", g.tensors[w].name);
                let t = g.const_f32(name, vec![out.len()], &out)?;
                done.insert(key, t);
                t
            }
        };
        g.steps[i].inputs[1] = Some(packed);
    }
    Ok(LAYOUT_PANEL6)
}
