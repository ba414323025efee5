//! `mote compare`: how far a converted `.mote` model is from its ONNX original.
//!
//! The reference is the ONNX model run in fp32 by tract-onnx (an engine independent of mote's
//! kernels); the converted model runs on mote's runtime, with the kernel set of this machine
//! (or `MOTE_FORCE_ISA`). Both get the same inputs: the `.npy` files given, or seeded
//! random-normal inputs of the model's input shapes. For every graph output, and for every step
//! output whose tensor keeps the name of an ONNX node output (fusion keeps the name of the last
//! fused node), it reports the [`Metrics`].

use crate::npy::Array;
use anyhow::{anyhow, bail, Context, Result};
use mote::{DType, Model, OwnedSession};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use tract_onnx::prelude::*;

/// Accuracy of `test` against `reference`, both flattened and in f64.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metrics {
    /// Elements compared.
    pub elems: usize,
    /// `max |test - reference|` (NaN when either side has a NaN).
    pub max_abs: f64,
    /// Signal-to-quantization-noise ratio, `10 log10(sum ref^2 / sum (test - ref)^2)` in dB:
    /// `+inf` when the two are identical.
    pub sqnr_db: f64,
    /// Cosine similarity `ref . test / (|ref| |test|)`: 1 for two zero vectors, 0 when only
    /// one is zero.
    pub cosine: f64,
    /// Classifier-like outputs (see [`classes_of`]): the fraction of rows whose arg-max
    /// agrees.
    pub top1: Option<f64>,
    /// Classifier-like outputs with at least 5 classes: the fraction of rows whose reference
    /// arg-max is among the 5 largest values of `test`.
    pub top5: Option<f64>,
}

/// The class count of a classifier-like output: the last dimension, when it is at least 2
/// and the shape is `[N, classes]` or `[N, T, classes]` (scores per item or per time step).
pub fn classes_of(shape: &[usize]) -> Option<usize> {
    match shape {
        [_, c] | [_, _, c] if *c >= 2 => Some(*c),
        _ => None,
    }
}

/// Computes the [`Metrics`]; `classes` rows the values for the top-k agreement.
pub fn metrics(reference: &[f32], test: &[f32], classes: Option<usize>) -> Metrics {
    assert_eq!(reference.len(), test.len(), "metrics of unequal lengths");
    let (mut max_abs, mut sig, mut noise, mut dot, mut nr, mut nt) =
        (0f64, 0f64, 0f64, 0f64, 0f64, 0f64);
    for (&r, &t) in reference.iter().zip(test) {
        let (r, t) = (r as f64, t as f64);
        let d = (t - r).abs();
        max_abs = if d.is_nan() { f64::NAN } else { max_abs.max(d) };
        sig += r * r;
        noise += (t - r) * (t - r);
        dot += r * t;
        nr += r * r;
        nt += t * t;
    }
    let sqnr_db = if noise == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (sig / noise).log10()
    };
    let cosine = match (nr == 0.0, nt == 0.0) {
        (true, true) => 1.0,
        (true, false) | (false, true) => 0.0,
        _ => dot / (nr.sqrt() * nt.sqrt()),
    };
    let (mut top1, mut top5) = (None, None);
    if let Some(c) =
        classes.filter(|&c| c >= 2 && !reference.is_empty() && reference.len().is_multiple_of(c))
    {
        let rows = reference.len() / c;
        let (mut a1, mut a5) = (0usize, 0usize);
        for (r, t) in reference.chunks(c).zip(test.chunks(c)) {
            let want = argmax(r);
            a1 += usize::from(argmax(t) == want);
            // Rank of the reference's class among the test scores: how many beat it.
            let beat = t.iter().filter(|&&v| v > t[want]).count();
            a5 += usize::from(beat < 5);
        }
        top1 = Some(a1 as f64 / rows as f64);
        if c >= 5 {
            top5 = Some(a5 as f64 / rows as f64);
        }
    }
    Metrics {
        elems: reference.len(),
        max_abs,
        sqnr_db,
        cosine,
        top1,
        top5,
    }
}

/// Index of the first largest value (NaN never wins).
fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] || v[best].is_nan() && !x.is_nan() {
            best = i;
        }
    }
    best
}

/// What `mote compare` is asked.
#[derive(Debug, Clone, Default)]
pub struct CompareOptions {
    /// `-i` inputs: `FILE.npy` in graph-input order, or `NAME=FILE.npy`. Empty: random inputs.
    pub inputs: Vec<String>,
    /// Random input sets when no inputs are given (at least 1).
    pub random_sets: usize,
    /// Seed of the random inputs.
    pub seed: u64,
    /// Also compare the intermediate tensors that map back to ONNX node outputs.
    pub layers: bool,
}

/// One compared tensor.
#[derive(Debug, Clone)]
pub struct Compared {
    /// Its name (the ONNX name).
    pub name: String,
    /// Its shape in the `.mote` file.
    pub shape: Vec<usize>,
    /// The numbers.
    pub metrics: Metrics,
}

/// The whole report.
#[derive(Debug, Clone)]
pub struct Report {
    /// Input sets run.
    pub sets: usize,
    /// Whether the inputs were random (none given).
    pub random: bool,
    /// Seed of the random inputs.
    pub seed: u64,
    /// The `.mote` kernel set that ran.
    pub isa: &'static str,
    /// Float16 constants in the `.mote` file, and all constants.
    pub f16_consts: (usize, usize),
    /// Per graph output.
    pub outputs: Vec<Compared>,
    /// Per matched intermediate tensor, in step order.
    pub layers: Vec<Compared>,
    /// Step outputs whose name is no ONNX tensor (fused away or made by the converter), or
    /// whose element count differs.
    pub layers_unmatched: usize,
    /// Why no layers were compared, when tract could not expose the intermediate tensors.
    pub layers_note: Option<String>,
}

/// Seeded standard-normal values (splitmix64 + Box-Muller).
fn normal(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed ^ 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let u1 = next().max(1e-300);
            let u2 = next();
            ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
        })
        .collect()
}

/// The input sets: from the `-i` specs, or random.
fn input_sets(model: &Model<'_>, opts: &CompareOptions) -> Result<Vec<Vec<Array>>> {
    let n = model.input_count();
    if opts.inputs.is_empty() {
        let mut sets = vec![];
        for s in 0..opts.random_sets.max(1) {
            let mut set = vec![];
            for i in 0..n {
                let t = model.input(i)?;
                if t.dtype != DType::F32 {
                    bail!(
                        "input {:?} is {}: random inputs are float32 only, pass it with -i",
                        t.name,
                        t.dtype.name()
                    );
                }
                let v = normal(
                    opts.seed.wrapping_add(1000 * s as u64 + i as u64),
                    t.elems(),
                );
                set.push(Array {
                    dtype: DType::F32,
                    shape: t.shape().to_vec(),
                    data: mote::view::bytes_of(&v).to_vec(),
                });
            }
            sets.push(set);
        }
        return Ok(sets);
    }
    let mut set: Vec<Option<Array>> = vec![None; n];
    let mut next = 0usize;
    for spec in &opts.inputs {
        let (idx, file) = match spec.split_once('=') {
            Some((name, file)) if model.input_index(name).is_ok() => {
                (model.input_index(name)?, file)
            }
            _ => {
                while next < n && set[next].is_some() {
                    next += 1;
                }
                (next, spec.as_str())
            }
        };
        let t = model
            .input(idx)
            .map_err(|_| anyhow!("more -i files than the model has inputs ({n})"))?;
        let a = crate::npy::read(Path::new(file))?;
        if a.shape != t.shape() || a.dtype != t.dtype {
            bail!(
                "input {:?} ({file}) is {} {:?}, the model expects {} {:?}",
                t.name,
                a.dtype.name(),
                a.shape,
                t.dtype.name(),
                t.shape()
            );
        }
        set[idx] = Some(a);
    }
    let set = set
        .into_iter()
        .enumerate()
        .map(|(i, a)| {
            a.ok_or_else(|| {
                anyhow!(
                    "no -i file for input {:?}",
                    model.input(i).map(|t| t.name).unwrap_or("?")
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(vec![set])
}

fn datum(d: DType) -> DatumType {
    match d {
        DType::F32 => DatumType::F32,
        DType::F16 => DatumType::F16,
        DType::I8 => DatumType::I8,
        DType::U8 => DatumType::U8,
        DType::I32 => DatumType::I32,
        DType::I64 => DatumType::I64,
        DType::Bool => DatumType::Bool,
    }
}

/// A tract model of `onnx` with `model`'s input shapes whose outputs are `names` (ONNX tensor
/// names; the first ones the graph outputs).
/// The runnable model and the `.mote` input index of each of its inputs.
type Plan = (Arc<TypedRunnableModel>, Vec<usize>);

fn tract_plan(onnx: &Path, model: &Model<'_>, names: &[String]) -> Result<Plan> {
    let mut m = tract_onnx::onnx()
        .model_for_path(onnx)
        .map_err(|e| anyhow!("tract cannot read {}: {e:#}", onnx.display()))?;
    let ins = m.input_outlets()?.to_vec();
    let mut order = vec![];
    for (k, o) in ins.iter().enumerate() {
        let name = m.node(o.node).name.clone();
        let idx = model.input_index(&name).with_context(|| {
            format!("the .mote file has no input {name:?} (the ONNX model has)")
        })?;
        let t = model.input(idx)?;
        m.set_input_fact(k, InferenceFact::dt_shape(datum(t.dtype), t.shape()))?;
        order.push(idx);
    }
    let outlets = names
        .iter()
        .map(|n| {
            m.find_outlet_label(n)
                .ok_or_else(|| anyhow!("tract has no tensor {n:?}"))
        })
        .collect::<Result<Vec<_>>>()?;
    m.select_output_outlets(&outlets)?;
    let plan = m
        .into_optimized()
        .and_then(|t| t.into_runnable())
        .map_err(|e| anyhow!("tract cannot run {}: {e:#}", onnx.display()))?;
    Ok((plan, order))
}

/// Runs the tract plan on one input set (ordered as tract's inputs); outputs as f32.
fn tract_run((plan, order): &Plan, set: &[Array]) -> Result<Vec<Vec<f32>>> {
    let mut ins: TVec<TValue> = tvec![];
    for &i in order {
        ins.push(tract_tensor(&set[i])?.into_tvalue());
    }
    let outs = plan
        .run(ins)
        .map_err(|e| anyhow!("tract run failed: {e:#}"))?;
    outs.iter()
        .map(|t| {
            let f = t.cast_to::<f32>().map_err(|e| anyhow!("{e}"))?;
            let v = f.to_plain_array_view::<f32>().map_err(|e| anyhow!("{e}"))?;
            Ok(v.iter().copied().collect())
        })
        .collect()
}

/// A tract tensor of the `.npy` array.
fn tract_tensor(a: &Array) -> Result<Tensor> {
    let s = &a.shape;
    // The bytes of a Vec<u8> carry no alignment: decode them.
    fn le<const N: usize, T>(b: &[u8], f: fn([u8; N]) -> T) -> Vec<T> {
        b.chunks_exact(N)
            .map(|c| f(c.try_into().unwrap_or([0; N])))
            .collect()
    }
    let t = match a.dtype {
        DType::F32 => Tensor::from_shape(s, &le(&a.data, f32::from_le_bytes)),
        DType::I64 => Tensor::from_shape(s, &le(&a.data, i64::from_le_bytes)),
        DType::I32 => Tensor::from_shape(s, &le(&a.data, i32::from_le_bytes)),
        DType::I8 => Tensor::from_shape(s, &le(&a.data, i8::from_le_bytes)),
        DType::U8 => Tensor::from_shape(s, &a.data[..]),
        DType::Bool => {
            let b: Vec<bool> = a.data.iter().map(|&x| x != 0).collect();
            Tensor::from_shape(s, &b)
        }
        DType::F16 => bail!("float16 inputs are not supported by compare"),
    };
    t.map_err(|e| anyhow!("{e}"))
}

/// A tensor's values as f32 (float32 and float16 read as such, integers converted).
fn as_f32(dtype: DType, b: &[u8]) -> Option<Vec<f32>> {
    let v = match dtype {
        DType::F32 => mote::view::cast::<f32>(b).ok()?.to_vec(),
        DType::F16 => mote::view::cast::<u16>(b)
            .ok()?
            .iter()
            .map(|&h| mote_targets::fp16::f16_to_f32(h))
            .collect(),
        DType::I64 => mote::view::cast::<i64>(b)
            .ok()?
            .iter()
            .map(|&x| x as f32)
            .collect(),
        DType::I32 => mote::view::cast::<i32>(b)
            .ok()?
            .iter()
            .map(|&x| x as f32)
            .collect(),
        DType::I8 => b.iter().map(|&x| x as i8 as f32).collect(),
        DType::U8 | DType::Bool => b.iter().map(|&x| x as f32).collect(),
    };
    Some(v)
}

/// Compares `onnx` (reference, tract fp32) with the converted `model`.
pub fn compare(onnx: &Path, model: &Model<'_>, opts: &CompareOptions) -> Result<Report> {
    let sets = input_sets(model, opts)?;
    // Graph outputs by name; intermediate candidates: step outputs (f32, in step order, each
    // once) that are not graph outputs.
    let out_names: Vec<String> = (0..model.output_count())
        .map(|i| Ok(model.output(i)?.name.to_string()))
        .collect::<Result<_>>()?;
    let mut consts = (0usize, 0usize);
    for id in 0..model.tensor_count() as u32 {
        let t = model.tensor(id)?;
        if t.storage == mote::format::Storage::Const {
            consts.1 += 1;
            consts.0 += usize::from(t.dtype == DType::F16);
        }
    }
    let mut step_tensors: Vec<u32> = vec![];
    if opts.layers {
        let mut seen = std::collections::HashSet::new();
        for i in 0..model.step_count() {
            let id = model.step(i)?.output;
            let t = model.tensor(id)?;
            if !out_names.iter().any(|n| n == t.name) && seen.insert(t.name.to_string()) {
                step_tensors.push(id);
            }
        }
    }
    // Which of them tract knows, with the same element count.
    let probe = tract_onnx::onnx()
        .model_for_path(onnx)
        .map_err(|e| anyhow!("tract cannot read {}: {e:#}", onnx.display()))?;
    let mut layer_ids: Vec<u32> = vec![];
    let mut unmatched = 0usize;
    for &id in &step_tensors {
        let t = model.tensor(id)?;
        if probe.find_outlet_label(t.name).is_some() {
            layer_ids.push(id);
        } else {
            unmatched += 1;
        }
    }
    drop(probe);
    let mut names = out_names.clone();
    names.extend(
        layer_ids
            .iter()
            .map(|&id| model.tensor(id).map(|t| t.name.to_string()))
            .collect::<mote::Result<Vec<_>>>()?,
    );
    let (plan, layers_note) = match tract_plan(onnx, model, &names) {
        Ok(p) => (p, None),
        Err(e) if !layer_ids.is_empty() => {
            let note = format!("tract could not expose the intermediate tensors ({e:#})");
            unmatched += layer_ids.len();
            layer_ids.clear();
            names.truncate(out_names.len());
            (tract_plan(onnx, model, &names)?, Some(note))
        }
        Err(e) => return Err(e),
    };
    let mut owned = OwnedSession::new(model)?;
    let mut refs: Vec<Vec<f32>> = vec![vec![]; names.len()];
    let mut tests: Vec<Vec<f32>> = vec![vec![]; names.len()];
    let mut isa = "generic";
    let slot_of: HashMap<u32, usize> = layer_ids
        .iter()
        .enumerate()
        .map(|(k, &id)| (id, out_names.len() + k))
        .collect();
    for set in &sets {
        let r = tract_run(&plan, set)?;
        let mut s = owned.session()?;
        isa = s.isa().name();
        for (i, a) in set.iter().enumerate() {
            s.input_bytes_mut(i)?.copy_from_slice(&a.data);
        }
        let mut last: HashMap<u32, Vec<u8>> = HashMap::new();
        s.run_inspected(|_, _, id, bytes| {
            if slot_of.contains_key(&id) {
                last.insert(id, bytes.to_vec());
            }
        })?;
        for k in 0..out_names.len() {
            let t = model.output(k)?;
            let v = as_f32(t.dtype, s.output_bytes(k)?).context("output bytes")?;
            tests[k].extend(v);
        }
        for (&id, &k) in &slot_of {
            let t = model.tensor(id)?;
            let v = last
                .get(&id)
                .and_then(|b| as_f32(t.dtype, b))
                .unwrap_or_default();
            tests[k].extend(v);
        }
        for (k, v) in r.into_iter().enumerate() {
            refs[k].extend(v);
        }
    }
    let mut outputs = vec![];
    let mut layers = vec![];
    for (k, name) in names.iter().enumerate() {
        let shape: Vec<usize> = if k < out_names.len() {
            model.output(k)?.shape().to_vec()
        } else {
            model
                .tensor(layer_ids[k - out_names.len()])?
                .shape()
                .to_vec()
        };
        if refs[k].len() != tests[k].len() {
            if k < out_names.len() {
                bail!(
                    "output {name:?}: the reference has {} values, the .mote model {}",
                    refs[k].len() / sets.len(),
                    tests[k].len() / sets.len()
                );
            }
            unmatched += 1;
            continue;
        }
        let c = Compared {
            name: name.clone(),
            metrics: metrics(&refs[k], &tests[k], classes_of(&shape)),
            shape,
        };
        if k < out_names.len() {
            outputs.push(c);
        } else {
            layers.push(c);
        }
    }
    Ok(Report {
        sets: sets.len(),
        random: opts.inputs.is_empty(),
        seed: opts.seed,
        isa,
        f16_consts: consts,
        outputs,
        layers,
        layers_unmatched: unmatched,
        layers_note,
    })
}

fn num(x: f64) -> String {
    if x.is_finite() {
        format!("{x:e}")
    } else if x.is_nan() {
        "\"nan\"".into()
    } else if x > 0.0 {
        "\"inf\"".into()
    } else {
        "\"-inf\"".into()
    }
}

fn opt(x: Option<f64>) -> String {
    x.map_or("null".into(), num)
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn json_item(c: &Compared) -> String {
    let m = &c.metrics;
    format!(
        "{{\"name\":{},\"shape\":{:?},\"elems\":{},\"max_abs\":{},\"sqnr_db\":{},\"cosine\":{},\"top1\":{},\"top5\":{}}}",
        json_str(&c.name),
        c.shape,
        m.elems,
        num(m.max_abs),
        num(m.sqnr_db),
        num(m.cosine),
        opt(m.top1),
        opt(m.top5)
    )
}

impl Report {
    /// The report as one JSON object. Non-finite numbers are the strings `"inf"`, `"-inf"`,
    /// `"nan"` (an SQNR of `"inf"`: identical outputs); absent top-k agreements are `null`.
    pub fn to_json(&self) -> String {
        let outs: Vec<String> = self.outputs.iter().map(json_item).collect();
        let layers: Vec<String> = self.layers.iter().map(json_item).collect();
        format!(
            "{{\"reference\":\"tract-onnx fp32\",\"isa\":{},\"inputs\":{{\"random\":{},\"sets\":{},\"seed\":{}}},\"f16_consts\":{},\"consts\":{},\"outputs\":[{}],\"layers\":{{\"matched\":{},\"unmatched\":{},\"note\":{},\"items\":[{}]}}}}",
            json_str(self.isa),
            self.random,
            self.sets,
            self.seed,
            self.f16_consts.0,
            self.f16_consts.1,
            outs.join(","),
            self.layers.len(),
            self.layers_unmatched,
            self.layers_note.as_deref().map_or("null".into(), json_str),
            layers.join(",")
        )
    }

    /// The report as text: one line per output and per matched layer.
    pub fn to_text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "reference: tract-onnx fp32; converted: mote ({} kernels), {} of {} constants float16",
            self.isa, self.f16_consts.0, self.f16_consts.1
        );
        if self.random {
            let _ = writeln!(
                o,
                "inputs: {} set(s) of seeded random-normal values (seed {}), no -i given",
                self.sets, self.seed
            );
        } else {
            let _ = writeln!(o, "inputs: the given .npy files");
        }
        let row = |o: &mut String, c: &Compared| {
            let m = &c.metrics;
            let pct = |x: Option<f64>| x.map_or("-".into(), |v| format!("{:.1}%", 100.0 * v));
            let _ = writeln!(
                o,
                "  {:<40} {:>9} {:>10.3e} {:>9.2} {:>12.8} {:>7} {:>7}",
                c.name,
                m.elems,
                m.max_abs,
                m.sqnr_db,
                m.cosine,
                pct(m.top1),
                pct(m.top5)
            );
        };
        let head = format!(
            "  {:<40} {:>9} {:>10} {:>9} {:>12} {:>7} {:>7}",
            "name", "elems", "max_abs", "SQNR dB", "cosine", "top1", "top5"
        );
        let _ = writeln!(o, "outputs:\n{head}");
        for c in &self.outputs {
            row(&mut o, c);
        }
        let _ = writeln!(
            o,
            "layers: {} step outputs matched an ONNX tensor, {} did not (fused away, made by the converter, or another size)",
            self.layers.len(),
            self.layers_unmatched
        );
        if let Some(n) = &self.layers_note {
            let _ = writeln!(o, "  note: {n}");
        }
        if !self.layers.is_empty() {
            let _ = writeln!(o, "{head}");
            for c in &self.layers {
                row(&mut o, c);
            }
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::{classes_of, metrics};

    #[test]
    fn identical_vectors() {
        let v = [0.5f32, -2.0, 3.25, 0.0, 1e-3];
        let m = metrics(&v, &v, None);
        assert_eq!(m.elems, 5);
        assert_eq!(m.max_abs, 0.0);
        assert_eq!(m.sqnr_db, f64::INFINITY);
        assert!((m.cosine - 1.0).abs() < 1e-15);
        assert_eq!((m.top1, m.top5), (None, None));
    }

    #[test]
    fn known_perturbation() {
        // |ref|^2 = 25, noise = 0.5^2 = 0.25: SQNR = 10 log10(100) = 20 dB.
        let m = metrics(&[3.0, 4.0], &[3.0, 4.5], None);
        assert_eq!(m.max_abs, 0.5);
        assert!((m.sqnr_db - 20.0).abs() < 1e-12, "{}", m.sqnr_db);
        let cos = (3.0 * 3.0 + 4.0 * 4.5) / (5.0 * (9.0f64 + 20.25).sqrt());
        assert!((m.cosine - cos).abs() < 1e-15);
        // A scaled copy: cosine 1, noise equal to the signal (0 dB).
        let m = metrics(&[1.0, -2.0, 2.0], &[2.0, -4.0, 4.0], None);
        assert!((m.cosine - 1.0).abs() < 1e-15);
        assert!(m.sqnr_db.abs() < 1e-12);
        assert_eq!(m.max_abs, 2.0);
        // Zero vectors.
        assert_eq!(metrics(&[0.0, 0.0], &[0.0, 0.0], None).cosine, 1.0);
        assert_eq!(metrics(&[0.0, 0.0], &[1.0, 0.0], None).cosine, 0.0);
        assert_eq!(
            metrics(&[0.0, 0.0], &[1.0, 0.0], None).sqnr_db,
            f64::NEG_INFINITY
        );
        // A NaN shows in the max error.
        assert!(metrics(&[1.0], &[f32::NAN], None).max_abs.is_nan());
    }

    #[test]
    fn top_k_agreement() {
        let reference = [
            0.0, 1.0, 2.0, 3.0, 4.0, 5.0, // class 5
            5.0, 4.0, 3.0, 2.0, 1.0, 0.0, // class 0
            0.0, 1.0, 2.0, 3.0, 4.0, 5.0, // class 5
        ];
        let test = [
            0.0, 1.0, 2.0, 3.0, 5.0, 4.0, // top-1 4, class 5 second: top-5 hit
            5.0, 4.0, 3.0, 2.0, 1.0, 0.0, // agrees
            5.0, 4.0, 3.0, 2.0, 1.0, 0.0, // class 5 last of 6: top-5 miss
        ];
        let m = metrics(&reference, &test, Some(6));
        assert_eq!(m.top1, Some(1.0 / 3.0));
        assert_eq!(m.top5, Some(2.0 / 3.0));
        // Fewer than 5 classes: top-1 only.
        let m = metrics(&[1.0, 0.0, 0.0, 1.0], &[1.0, 0.0, 1.0, 0.0], Some(2));
        assert_eq!((m.top1, m.top5), (Some(0.5), None));
    }

    #[test]
    fn classifier_like_shapes() {
        assert_eq!(classes_of(&[1, 10]), Some(10));
        assert_eq!(classes_of(&[2, 7, 4]), Some(4));
        assert_eq!(classes_of(&[10]), None);
        assert_eq!(classes_of(&[4, 1]), None);
        assert_eq!(classes_of(&[1, 3, 224, 224]), None);
    }
}
