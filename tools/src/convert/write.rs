//! Serialises a planned graph into a `.mote` file (format version 1, `engine/FORMAT.md`).

use anyhow::{anyhow, bail, Result};
use mote::format::{
    align_up, checksum, section, Header, SectionEntry, StepRecord, Storage, TensorRecord,
    CHECKSUM_AT, DATA_ALIGN, HEADER_LEN, MAX_RANK, NO_TENSOR, SECTION_ENTRY_LEN, VERSION_MAJOR,
    VERSION_MINOR,
};
use std::collections::HashMap;

use super::ir::{Graph, TId};
use super::plan::Plan;

/// Builds the file bytes.
pub fn write(g: &Graph, plan: &Plan, layout: u32) -> Result<Vec<u8>> {
    // Tensor table: every tensor a step or the IO table names, in first-use order.
    let mut ids: HashMap<TId, u32> = HashMap::new();
    let mut order: Vec<TId> = vec![];
    let want = |t: TId, ids: &mut HashMap<TId, u32>, order: &mut Vec<TId>| -> u32 {
        *ids.entry(t).or_insert_with(|| {
            order.push(t);
            (order.len() - 1) as u32
        })
    };
    for &t in g.inputs.iter().chain(&g.outputs) {
        want(t, &mut ids, &mut order);
    }
    for s in &g.steps {
        for t in s.inputs.iter().flatten() {
            want(*t, &mut ids, &mut order);
        }
        want(s.output, &mut ids, &mut order);
    }

    let mut strings: Vec<u8> = vec![];
    let mut weights: Vec<u8> = vec![];
    let mut tensors: Vec<u8> = vec![];
    for &t in &order {
        let te = &g.tensors[t];
        if te.shape.len() > MAX_RANK {
            bail!(
                "tensor {:?} has rank {} (mote supports up to {MAX_RANK})",
                te.name,
                te.shape.len()
            );
        }
        let mut dims = [0u32; MAX_RANK];
        for (d, &s) in dims.iter_mut().zip(&te.shape) {
            *d = u32::try_from(s)
                .map_err(|_| anyhow!("dimension {s} of {:?} is too large", te.name))?;
        }
        let (storage, offset) = match &te.value {
            Some(v) => {
                let at = align_up(weights.len() as u64, DATA_ALIGN as u64) as usize;
                weights.resize(at, 0);
                weights.extend_from_slice(v.bytes());
                (Storage::Const, at as u64)
            }
            None => {
                let r = g.root(t);
                let off = plan
                    .offsets
                    .get(&r)
                    .ok_or_else(|| anyhow!("internal: tensor {:?} has no arena slot", te.name))?;
                (Storage::Arena, *off as u64)
            }
        };
        let rec = TensorRecord {
            name_off: strings.len() as u32,
            name_len: te.name.len() as u32,
            dtype: te.dtype as u8,
            rank: te.shape.len() as u8,
            storage: storage as u8,
            dims,
            offset,
            byte_len: te.bytes() as u64,
        };
        strings.extend_from_slice(te.name.as_bytes());
        tensors.extend_from_slice(&rec.encode());
    }
    // Graph output names may differ from their tensors' names (an output that is a view, or
    // an Identity): IO records name tensors; give such outputs their own view record.
    let mut io: Vec<u8> = vec![];
    io.extend_from_slice(&(g.inputs.len() as u32).to_le_bytes());
    io.extend_from_slice(&(g.outputs.len() as u32).to_le_bytes());
    for &t in &g.inputs {
        io.extend_from_slice(&ids[&t].to_le_bytes());
    }
    for (k, &t) in g.outputs.iter().enumerate() {
        let name = g
            .output_names
            .get(k)
            .cloned()
            .unwrap_or_else(|| g.tensors[t].name.clone());
        let id = if name == g.tensors[t].name {
            ids[&t]
        } else {
            let mut rec = TensorRecord::parse(&tensors, ids[&t] as usize)?;
            rec.name_off = strings.len() as u32;
            rec.name_len = name.len() as u32;
            strings.extend_from_slice(name.as_bytes());
            tensors.extend_from_slice(&rec.encode());
            (tensors.len() / mote::format::TENSOR_RECORD_LEN - 1) as u32
        };
        io.extend_from_slice(&id.to_le_bytes());
    }

    let mut steps: Vec<u8> = vec![];
    let mut params: Vec<u8> = vec![];
    for s in &g.steps {
        let at = (params.len() / 4) as u32;
        let mut n = 0u32;
        s.op.encode(&mut |w| {
            params.extend_from_slice(&w.to_le_bytes());
            n += 1;
        });
        let mut inputs = [NO_TENSOR; 4];
        for (d, t) in inputs.iter_mut().zip(&s.inputs) {
            if let Some(t) = t {
                *d = ids[t];
            }
        }
        let rec = StepRecord {
            op: s.op.code(),
            inputs,
            output: ids[&s.output],
            params_at: at,
            params_len: n,
        };
        steps.extend_from_slice(&rec.encode());
    }

    let sections: [(u32, &[u8]); 6] = [
        (section::STRINGS, &strings),
        (section::TENSORS, &tensors),
        (section::STEPS, &steps),
        (section::PARAMS, &params),
        (section::IO, &io),
        (section::WEIGHTS, &weights),
    ];
    let mut out = vec![0u8; HEADER_LEN + sections.len() * SECTION_ENTRY_LEN];
    let mut table = vec![];
    for (kind, data) in sections {
        let align = if kind == section::WEIGHTS {
            DATA_ALIGN
        } else {
            8
        };
        let at = align_up(out.len() as u64, align as u64) as usize;
        out.resize(at, 0);
        out.extend_from_slice(data);
        table.push(SectionEntry {
            kind,
            offset: at as u64,
            len: data.len() as u64,
        });
    }
    for (i, e) in table.iter().enumerate() {
        let at = HEADER_LEN + i * SECTION_ENTRY_LEN;
        out[at..at + SECTION_ENTRY_LEN].copy_from_slice(&e.encode());
    }
    let header = Header {
        major: VERSION_MAJOR,
        minor: VERSION_MINOR,
        flags: 0,
        layout,
        section_count: table.len() as u32,
        file_len: out.len() as u64,
        arena_size: plan.arena_size as u64,
        checksum: 0,
    };
    out[..HEADER_LEN].copy_from_slice(&header.encode());
    let ck = checksum(&out);
    out[CHECKSUM_AT..CHECKSUM_AT + 8].copy_from_slice(&ck.to_le_bytes());
    Ok(out)
}
