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
    row_major_matmul_weights(g)?;
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

/// A MatMul whose constant B is read transposed (`Gemm(transB=1)`, `Linear` weights, column
/// stride > 1) gets a row-major copy: every GEMM kernel reads B rows as vectors, and a
/// transposed B would be gathered tile by tile on every run. Any layout: it only changes the
/// strides, which every kernel set reads.
fn row_major_matmul_weights(g: &mut Graph) -> Result<()> {
    let mut done: HashMap<(TId, usize, usize, usize, usize), TId> = HashMap::new();
    for i in 0..g.steps.len() {
        let Op::MatMul(mut m) = g.steps[i].op else {
            continue;
        };
        let Some(b) = g.steps[i].inputs[1] else {
            continue;
        };
        let batched = m.b_bs[..m.batch_rank].iter().any(|&s| s != 0);
        if !g.is_const(b) || batched || m.b_cs == 1 || m.n <= 1 || m.k == 0 {
            continue;
        }
        let key = (b, m.k, m.n, m.b_rs, m.b_cs);
        let t = match done.get(&key) {
            Some(&t) => t,
            None => {
                let v = g.f32_values(b)?;
                let mut out = vec![0f32; m.k * m.n];
                for p in 0..m.k {
                    for j in 0..m.n {
                        out[p * m.n + j] = v[p * m.b_rs + j * m.b_cs];
                    }
                }
                let name = format!("{}::row_major", g.tensors[b].name);
                let t = g.const_f32(name, vec![m.k, m.n], &out)?;
                done.insert(key, t);
                t
            }
        };
        m.b_rs = m.n;
        m.b_cs = 1;
        m.b_bs = [0; 6];
        g.steps[i].op = Op::MatMul(m);
        g.steps[i].inputs[1] = Some(t);
    }
    Ok(())
}
