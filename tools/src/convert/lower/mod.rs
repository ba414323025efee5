//! Lowering: ONNX nodes -> mote steps, with shape inference and constant folding as it goes.
//!
//! Every node is lowered in graph order. Its operands' shapes are known (graph inputs have
//! static shapes; every step's output shape is computed here), so each step gets its full
//! geometry. Shape-only ops (Shape, Reshape, Squeeze, ...) produce constants or views and cost
//! nothing at run time. An op or attribute we cannot lower exactly is an error that names the
//! node, never an approximation.

use anyhow::{anyhow, bail, Context, Result};
use mote::ops::{Bcast, CopyGeom, MatMulGeom, Op};
use mote::DType;
use mote_targets::{
    Activation, BinaryOp, CompareOp, Conv2dGeom, PadMode, Pool2dGeom, PoolKind, ReduceOp, UnaryOp,
    MAX_RANK,
};
use std::collections::HashMap;
use std::path::Path;
use tract_onnx::pb;

use super::ir::{strides_of, Data, Graph, TId};
use super::onnx::{dtype_of, load_tensor, static_shape, Attrs};
use super::Options;

mod data;
mod dft;
mod elementwise;
mod fftconv;
mod linalg;
mod spatial;

/// Lowers a whole ONNX graph. `opts.input_shapes` fixes the shapes of graph inputs (see
/// [`static_shape`]); naming an input the graph does not have, or one input twice, is an error.
pub fn lower_model(proto: &pb::ModelProto, model_dir: &Path, opts: &Options) -> Result<Graph> {
    let g = proto
        .graph
        .as_ref()
        .ok_or_else(|| anyhow!("the ONNX file has no graph"))?;
    let mut opset = 18;
    for o in &proto.opset_import {
        if o.domain.is_empty() || o.domain == "ai.onnx" {
            if o.version < 7 {
                bail!(
                    "ONNX opset {} is too old (mote reads opset 7 and later)",
                    o.version
                );
            }
            opset = o.version;
        }
    }
    let mut l = Lowerer {
        g: Graph::default(),
        names: HashMap::new(),
        opset,
    };
    for init in &g.initializer {
        let (dtype, shape, data) = load_tensor(init, model_dir)?;
        let t = l.g.add_const(init.name.clone(), dtype, shape, data)?;
        l.names.insert(init.name.clone(), t);
    }
    let real_inputs: Vec<&str> = g
        .input
        .iter()
        .map(|v| v.name.as_str())
        .filter(|n| !l.names.contains_key(*n))
        .collect();
    let mut overrides: HashMap<&str, &[usize]> = HashMap::new();
    for (name, shape) in &opts.input_shapes {
        if !real_inputs.contains(&name.as_str()) {
            bail!(
                "--input-shape {name}: the model has no graph input named {name:?} (inputs: {})",
                real_inputs.join(", ")
            );
        }
        if overrides.insert(name, shape).is_some() {
            bail!("--input-shape {name}: given more than once");
        }
    }
    for v in &g.input {
        if l.names.contains_key(&v.name) {
            continue; // an initializer listed as an input (old exporters): a constant.
        }
        let (dtype, shape) = static_shape(v, overrides.get(v.name.as_str()).copied())?;
        let t = l.g.add(v.name.clone(), dtype, shape);
        l.names.insert(v.name.clone(), t);
        l.g.inputs.push(t);
    }
    // The FFT-convolution fusion rewrites at lowering time, where the ONNX structure is still
    // at hand; like the passes, it only runs when optimizing.
    let fft_plan = if opts.optimize {
        fftconv::FftPlan::of(g)
    } else {
        fftconv::FftPlan::default()
    };
    for (idx, node) in g.node.iter().enumerate() {
        l.node(node).with_context(|| {
            let shapes: Vec<String> = node
                .input
                .iter()
                .map(|n| match l.names.get(n) {
                    Some(&t) => format!(
                        "{n}: {:?} {}",
                        l.g.tensors[t].shape,
                        l.g.tensors[t].dtype.name()
                    ),
                    None if n.is_empty() => "(absent)".into(),
                    None => format!("{n}: ?"),
                })
                .collect();
            format!(
                "cannot convert node {:?} (op {}) with inputs [{}]",
                node.name,
                node.op_type,
                shapes.join(", ")
            )
        })?;
        l.fuse_fft_conv(g, &fft_plan, idx);
    }
    for v in &g.output {
        let t = *l
            .names
            .get(&v.name)
            .ok_or_else(|| anyhow!("graph output {:?} is never computed", v.name))?;
        l.g.outputs.push(t);
        l.g.output_names.push(v.name.clone());
    }
    Ok(l.finish())
}

/// Output sizes, strides, dilations and leading pads of a windowed op, per spatial axis.
pub(super) type Spatial = (Vec<usize>, Vec<usize>, Vec<usize>, Vec<usize>);

pub(super) struct Lowerer {
    pub(super) g: Graph,
    pub(super) names: HashMap<String, TId>,
    /// Default-domain opset the model was exported with (attribute semantics differ by opset).
    pub(super) opset: i64,
}

/// Merges adjacent dims that every operand walks contiguously, and drops size-1 dims.
pub(super) fn compact(dims: &[usize], strides: &mut [Vec<isize>]) -> Vec<usize> {
    let mut od: Vec<usize> = vec![];
    let mut os: Vec<Vec<isize>> = vec![vec![]; strides.len()];
    for (k, &d) in dims.iter().enumerate() {
        if d == 1 {
            continue;
        }
        if let Some(&last) = od.last() {
            let mergeable = strides
                .iter()
                .enumerate()
                .all(|(i, s)| os[i].last().copied() == Some(s[k] * d as isize));
            if mergeable {
                let n = od.len() - 1;
                od[n] = last * d;
                for (i, s) in strides.iter().enumerate() {
                    let m = os[i].len() - 1;
                    os[i][m] = s[k];
                }
                continue;
            }
        }
        od.push(d);
        for (i, s) in strides.iter().enumerate() {
            os[i].push(s[k]);
        }
    }
    for (s, o) in strides.iter_mut().zip(os) {
        *s = o;
    }
    od
}

/// Broadcast shape of several shapes (numpy rules).
pub fn broadcast_shape(shapes: &[&[usize]]) -> Result<Vec<usize>> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![1usize; rank];
    for s in shapes {
        for (i, &d) in s.iter().enumerate() {
            let o = &mut out[rank - s.len() + i];
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                bail!("shapes {:?} cannot be broadcast together", shapes);
            }
        }
    }
    Ok(out)
}

/// Element strides of `shape` broadcast to `out` (0 on broadcast dims).
pub(super) fn bstrides(shape: &[usize], out: &[usize]) -> Vec<isize> {
    let st = strides_of(shape);
    let off = out.len() - shape.len();
    (0..out.len())
        .map(|k| {
            if k < off || shape[k - off] == 1 {
                0
            } else {
                st[k - off] as isize
            }
        })
        .collect()
}

pub(super) fn make_bcast<const N: usize>(out: &[usize], ins: [&[usize]; N]) -> Result<Bcast<N>> {
    let mut strides: Vec<Vec<isize>> = ins.iter().map(|s| bstrides(s, out)).collect();
    let dims = compact(out, &mut strides);
    if dims.len() > MAX_RANK {
        bail!(
            "broadcast over rank {} (mote handles up to {MAX_RANK})",
            dims.len()
        );
    }
    let mut b = Bcast::<N> {
        rank: dims.len(),
        ..Default::default()
    };
    b.dims[..dims.len()].copy_from_slice(&dims);
    for i in 0..N {
        for (k, &s) in strides[i].iter().enumerate() {
            b.strides[i][k] = s as usize;
        }
    }
    Ok(b)
}

/// A strided copy, compacted.
pub fn make_copy(
    dims: &[usize],
    src_off: usize,
    src: &[isize],
    dst_off: usize,
    dst: &[isize],
) -> Result<Op> {
    let mut strides = vec![src.to_vec(), dst.to_vec()];
    let d = compact(dims, &mut strides);
    if d.len() > MAX_RANK {
        bail!("copy over rank {} (mote handles up to {MAX_RANK})", d.len());
    }
    let mut c = CopyGeom {
        rank: d.len(),
        src_off,
        dst_off,
        ..Default::default()
    };
    c.dims[..d.len()].copy_from_slice(&d);
    for k in 0..d.len() {
        c.src_strides[k] = strides[0][k];
        c.dst_strides[k] = strides[1][k];
    }
    Ok(Op::Copy(c))
}

pub(super) fn norm_axis(axis: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r.max(1) {
        bail!("axis {axis} is out of range for rank {rank}");
    }
    Ok(a as usize)
}

impl Lowerer {
    fn finish(self) -> Graph {
        self.g
    }

    pub(super) fn inp(&self, node: &pb::NodeProto, i: usize) -> Result<TId> {
        let name = node
            .input
            .get(i)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| anyhow!("missing input {i}"))?;
        self.names
            .get(name)
            .copied()
            .ok_or_else(|| anyhow!("input {name:?} is not computed before this node"))
    }
    pub(super) fn opt(&self, node: &pb::NodeProto, i: usize) -> Result<Option<TId>> {
        match node.input.get(i) {
            Some(n) if !n.is_empty() => Ok(Some(self.inp(node, i)?)),
            _ => Ok(None),
        }
    }
    pub(super) fn shape(&self, t: TId) -> Vec<usize> {
        self.g.tensors[t].shape.clone()
    }
    pub(super) fn dtype(&self, t: TId) -> DType {
        self.g.tensors[t].dtype
    }
    pub(super) fn ints(&self, t: TId) -> Result<Vec<i64>> {
        let d = self.g.value(t).ok_or_else(|| {
            anyhow!("{:?} must be a constant (computed at conversion time), but depends on the graph inputs", self.g.tensors[t].name)
        })?;
        match self.dtype(t) {
            DType::I64 => Ok(d.i64s()?.to_vec()),
            DType::I32 => Ok(mote::view::cast::<i32>(d.bytes())?
                .iter()
                .map(|&x| x as i64)
                .collect()),
            other => bail!(
                "{:?} must be an integer tensor, found {}",
                self.g.tensors[t].name,
                other.name()
            ),
        }
    }
    pub(super) fn floats(&self, t: TId) -> Result<Vec<f32>> {
        let d = self
            .g
            .value(t)
            .ok_or_else(|| anyhow!("{:?} must be a constant", self.g.tensors[t].name))?;
        match self.dtype(t) {
            DType::F32 => Ok(d.f32s()?.to_vec()),
            DType::I64 => Ok(d.i64s()?.iter().map(|&x| x as f32).collect()),
            other => bail!(
                "{:?} must be a float constant, found {}",
                self.g.tensors[t].name,
                other.name()
            ),
        }
    }
    pub(super) fn new_out(
        &mut self,
        node: &pb::NodeProto,
        i: usize,
        dtype: DType,
        shape: Vec<usize>,
    ) -> Result<TId> {
        let name = node
            .output
            .get(i)
            .ok_or_else(|| anyhow!("missing output {i}"))?
            .clone();
        let t = self.g.add(name.clone(), dtype, shape);
        self.names.insert(name, t);
        Ok(t)
    }
    pub(super) fn set_out(&mut self, node: &pb::NodeProto, i: usize, t: TId) -> Result<()> {
        let name = node
            .output
            .get(i)
            .ok_or_else(|| anyhow!("missing output {i}"))?
            .clone();
        self.names.insert(name, t);
        Ok(())
    }
    pub(super) fn tmp(
        &mut self,
        node: &pb::NodeProto,
        what: &str,
        dtype: DType,
        shape: Vec<usize>,
    ) -> TId {
        let n = format!("{}::{what}#{}", node.name, self.g.tensors.len());
        self.g.add(n, dtype, shape)
    }
    pub(super) fn only_outputs(&self, node: &pb::NodeProto, n: usize) -> Result<()> {
        if node.output.iter().skip(n).any(|o| !o.is_empty()) {
            bail!(
                "only the first {n} output(s) of {} are supported",
                node.op_type
            );
        }
        Ok(())
    }
    pub(super) fn const_out(
        &mut self,
        node: &pb::NodeProto,
        dtype: DType,
        shape: Vec<usize>,
        data: Data,
    ) -> Result<()> {
        let name = node
            .output
            .first()
            .ok_or_else(|| anyhow!("node has no output"))?
            .clone();
        let t = self.g.add_const(name.clone(), dtype, shape, data)?;
        self.names.insert(name, t);
        Ok(())
    }

    fn node(&mut self, node: &pb::NodeProto) -> Result<()> {
        if !(node.domain.is_empty() || node.domain == "ai.onnx" || node.domain == "mote") {
            bail!("operator domain {:?} is not supported", node.domain);
        }
        let a = Attrs::new(node);
        let name = node.name.as_str();
        match node.op_type.as_str() {
            "Identity" | "Dropout" => {
                self.only_outputs(node, 1)?;
                let x = self.inp(node, 0)?;
                self.set_out(node, 0, x)
            }
            "Constant" => {
                if let Some(t) = a.tensor("value") {
                    let (dt, sh, d) = load_tensor(t, Path::new("."))?;
                    self.const_out(node, dt, sh, d)
                } else if let Some(f) = a
                    .names()
                    .iter()
                    .find(|n| **n == "value_float")
                    .map(|_| a.float_or("value_float", 0.0))
                {
                    self.const_out(node, DType::F32, vec![], Data::from_f32(&[f]))
                } else if let Some(fs) = node.attribute.iter().find(|x| x.name == "value_floats") {
                    self.const_out(
                        node,
                        DType::F32,
                        vec![fs.floats.len()],
                        Data::from_f32(&fs.floats),
                    )
                } else if let Some(i) = a.int("value_int") {
                    self.const_out(node, DType::I64, vec![], Data::from_i64(&[i]))
                } else if let Some(is) = a.ints("value_ints") {
                    self.const_out(node, DType::I64, vec![is.len()], Data::from_i64(&is))
                } else {
                    bail!(
                        "Constant without a supported value attribute ({:?})",
                        a.names()
                    )
                }
            }
            "Shape" => {
                let s = self.shape(self.inp(node, 0)?);
                let r = s.len() as i64;
                let clampi = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
                let st = clampi(a.int_or("start", 0));
                let en = clampi(a.int_or("end", r));
                let v: Vec<i64> = s[st..en.max(st)].iter().map(|&d| d as i64).collect();
                self.const_out(node, DType::I64, vec![v.len()], Data::from_i64(&v))
            }
            "Size" => {
                let n = self.g.tensors[self.inp(node, 0)?].elems() as i64;
                self.const_out(node, DType::I64, vec![], Data::from_i64(&[n]))
            }
            "ConstantOfShape" => {
                let shape: Vec<usize> = self
                    .ints(self.inp(node, 0)?)?
                    .iter()
                    .map(|&d| d.max(0) as usize)
                    .collect();
                let (dt, _, v) = match a.tensor("value") {
                    Some(t) => load_tensor(t, Path::new("."))?,
                    None => (DType::F32, vec![1], Data::from_f32(&[0.0])),
                };
                let n: usize = shape.iter().product();
                let mut d = Data::zeroed(n * dt.size());
                for c in d.bytes_mut().chunks_mut(dt.size()) {
                    c.copy_from_slice(v.bytes());
                }
                self.const_out(node, dt, shape, d)
            }
            "Range" => {
                let (s, l, d) = (self.inp(node, 0)?, self.inp(node, 1)?, self.inp(node, 2)?);
                if self.dtype(s) == DType::F32 {
                    let (s, l, d) = (self.floats(s)?[0], self.floats(l)?[0], self.floats(d)?[0]);
                    let n = (((l - s) / d).ceil().max(0.0)) as usize;
                    let v: Vec<f32> = (0..n).map(|i| s + i as f32 * d).collect();
                    self.const_out(node, DType::F32, vec![n], Data::from_f32(&v))
                } else {
                    let (s, l, d) = (self.ints(s)?[0], self.ints(l)?[0], self.ints(d)?[0]);
                    if d == 0 {
                        bail!("Range with delta 0");
                    }
                    let n = ((l - s) as f64 / d as f64).ceil().max(0.0) as usize;
                    let v: Vec<i64> = (0..n as i64).map(|i| s + i * d).collect();
                    let dt = self.dtype(self.inp(node, 0)?);
                    let data = if dt == DType::I32 {
                        let v32: Vec<i32> = v.iter().map(|&x| x as i32).collect();
                        Data::from_bytes(mote::view::bytes_of(&v32))
                    } else {
                        Data::from_i64(&v)
                    };
                    self.const_out(node, dt, vec![n], data)
                }
            }
            "Reshape" => {
                let x = self.inp(node, 0)?;
                let spec = self.ints(self.inp(node, 1)?)?;
                let xs = self.shape(x);
                let allowzero = a.int_or("allowzero", 0) != 0;
                let mut out: Vec<i64> = spec
                    .iter()
                    .enumerate()
                    .map(|(i, &d)| {
                        if d == 0 && !allowzero {
                            xs.get(i).map(|&v| v as i64).unwrap_or(0)
                        } else {
                            d
                        }
                    })
                    .collect();
                let known: i64 = out.iter().filter(|&&d| d >= 0).product();
                let total = xs.iter().product::<usize>() as i64;
                if let Some(p) = out.iter().position(|&d| d == -1) {
                    if known == 0 || total % known != 0 {
                        bail!("cannot infer -1 in reshape of {xs:?} to {spec:?}");
                    }
                    out[p] = total / known;
                }
                if out.iter().any(|&d| d < 0) {
                    bail!("bad reshape target {spec:?}");
                }
                let shape: Vec<usize> = out.iter().map(|&d| d as usize).collect();
                let t = self.g.alias(node.output[0].clone(), x, shape)?;
                self.set_out(node, 0, t)
            }
            "Flatten" => {
                let x = self.inp(node, 0)?;
                let xs = self.shape(x);
                let ax = a.int_or("axis", 1);
                let ax = if ax < 0 { ax + xs.len() as i64 } else { ax } as usize;
                if ax > xs.len() {
                    bail!("Flatten axis out of range");
                }
                let shape = vec![xs[..ax].iter().product(), xs[ax..].iter().product()];
                let t = self.g.alias(node.output[0].clone(), x, shape)?;
                self.set_out(node, 0, t)
            }
            "Squeeze" | "Unsqueeze" => {
                let x = self.inp(node, 0)?;
                let xs = self.shape(x);
                let axes = match self.opt(node, 1)? {
                    Some(t) => Some(self.ints(t)?),
                    None => a.ints("axes"),
                };
                let shape = if node.op_type == "Squeeze" {
                    match axes {
                        None => xs.iter().copied().filter(|&d| d != 1).collect(),
                        Some(ax) => {
                            let ax: Vec<usize> = ax
                                .iter()
                                .map(|&v| norm_axis(v, xs.len()))
                                .collect::<Result<_>>()?;
                            for &k in &ax {
                                if xs[k] != 1 {
                                    bail!("Squeeze of axis {k} whose size is {}", xs[k]);
                                }
                            }
                            xs.iter()
                                .enumerate()
                                .filter(|(i, _)| !ax.contains(i))
                                .map(|(_, &d)| d)
                                .collect()
                        }
                    }
                } else {
                    let ax = axes.ok_or_else(|| anyhow!("Unsqueeze without axes"))?;
                    let r = xs.len() + ax.len();
                    let mut ax: Vec<usize> =
                        ax.iter().map(|&v| norm_axis(v, r)).collect::<Result<_>>()?;
                    ax.sort();
                    let mut it = xs.iter();
                    (0..r)
                        .map(|i| {
                            if ax.contains(&i) {
                                1
                            } else {
                                *it.next().unwrap_or(&1)
                            }
                        })
                        .collect()
                };
                let t = self.g.alias(node.output[0].clone(), x, shape)?;
                self.set_out(node, 0, t)
            }
            "Cast" => {
                let x = self.inp(node, 0)?;
                let to = dtype_of(a.int("to").ok_or_else(|| anyhow!("Cast without 'to'"))? as i32)?;
                if to == self.dtype(x) {
                    return self.set_out(node, 0, x);
                }
                let o = self.new_out(node, 0, to, self.shape(x))?;
                self.g.emit(Op::Cast, &[Some(x)], o, name)
            }
            "Add" | "Sub" | "Mul" | "Div" | "Pow" | "Max" | "Min" | "Sum" | "Mean" | "Mod" => {
                if node.input.len() > 2 || matches!(node.op_type.as_str(), "Sum" | "Mean") {
                    self.variadic(node)
                } else {
                    self.binary(node)
                }
            }
            "Equal" | "Less" | "LessOrEqual" | "Greater" | "GreaterOrEqual" => self.compare(node),
            "And" | "Or" | "Xor" | "Not" => self.logic(node),
            "Where" => {
                let (c, x, y) = (self.inp(node, 0)?, self.inp(node, 1)?, self.inp(node, 2)?);
                let (cs, xs, ys) = (self.shape(c), self.shape(x), self.shape(y));
                let out = broadcast_shape(&[&cs, &xs, &ys])?;
                if self.dtype(x) != self.dtype(y) {
                    bail!("Where branches have different dtypes");
                }
                let bc = make_bcast(&out, [&cs, &xs, &ys])?;
                let o = self.new_out(node, 0, self.dtype(x), out)?;
                self.g
                    .emit(Op::Where { bc }, &[Some(c), Some(x), Some(y)], o, name)
            }
            "Relu" => self.unary(node, UnaryOp::Relu),
            "Sigmoid" => self.unary(node, UnaryOp::Sigmoid),
            "Tanh" => self.unary(node, UnaryOp::Tanh),
            "Erf" => self.unary(node, UnaryOp::Erf),
            "Exp" => self.unary(node, UnaryOp::Exp),
            "Log" => self.unary(node, UnaryOp::Log),
            "Neg" => self.unary(node, UnaryOp::Neg),
            "Abs" => self.unary(node, UnaryOp::Abs),
            "Sqrt" => self.unary(node, UnaryOp::Sqrt),
            "Reciprocal" => self.unary(node, UnaryOp::Reciprocal),
            "Sign" => self.unary(node, UnaryOp::Sign),
            "Floor" => self.unary(node, UnaryOp::Floor),
            "Ceil" => self.unary(node, UnaryOp::Ceil),
            "Round" => self.unary(node, UnaryOp::Round),
            "Softplus" => self.unary(node, UnaryOp::Softplus),
            "HardSwish" => self.unary(node, UnaryOp::HardSwish),
            "Gelu" | "MoteGelu" => {
                if a.string("approximate").is_some_and(|s| s != "none") {
                    bail!(
                        "Gelu with approximate={:?} is not supported",
                        a.string("approximate")
                    );
                }
                self.unary(node, UnaryOp::Gelu)
            }
            "LeakyRelu" => self.unary(
                node,
                UnaryOp::LeakyRelu {
                    alpha: a.float_or("alpha", 0.01),
                },
            ),
            "HardSigmoid" => self.unary(
                node,
                UnaryOp::HardSigmoid {
                    alpha: a.float_or("alpha", 0.2),
                    beta: a.float_or("beta", 0.5),
                },
            ),
            "Clip" => {
                let lo = match self.opt(node, 1)? {
                    Some(t) => self.floats(t)?[0],
                    None => a.float_or("min", f32::NEG_INFINITY),
                };
                let hi = match self.opt(node, 2)? {
                    Some(t) => self.floats(t)?[0],
                    None => a.float_or("max", f32::INFINITY),
                };
                self.unary(node, UnaryOp::Clip { lo, hi })
            }
            "Conv" => self.conv(node, &a),
            "BatchNormalization" => self.batchnorm(node, &a),
            "Gemm" => self.gemm(node, &a),
            "MatMul" => {
                let (x, y) = (self.inp(node, 0)?, self.inp(node, 1)?);
                let o = self.matmul(node, x, y, None, 1.0)?;
                self.set_out(node, 0, o)
            }
            "Einsum" => self.einsum(node, &a),
            "Softmax" | "LogSoftmax" => {
                let x = self.inp(node, 0)?;
                let xs = self.shape(x);
                let log = node.op_type == "LogSoftmax";
                let op = if self.opset < 13 {
                    // Before opset 13 the input is coerced to 2-D at `axis` (default 1) and the
                    // softmax runs over the whole trailing block.
                    let ax = norm_axis(a.int_or("axis", 1), xs.len() + 1)?.min(xs.len());
                    Op::Softmax {
                        outer: xs[..ax].iter().product(),
                        axis: xs[ax..].iter().product(),
                        inner: 1,
                        log,
                    }
                } else {
                    let ax = norm_axis(a.int_or("axis", -1), xs.len())?;
                    Op::Softmax {
                        outer: xs[..ax].iter().product(),
                        axis: xs[ax],
                        inner: xs[ax + 1..].iter().product(),
                        log,
                    }
                };
                let o = self.new_out(node, 0, DType::F32, xs)?;
                self.g.emit(op, &[Some(x)], o, name)
            }
            "LayerNormalization" => {
                self.only_outputs(node, 1)?;
                let x = self.inp(node, 0)?;
                let xs = self.shape(x);
                let ax = norm_axis(a.int_or("axis", -1), xs.len())?;
                let size: usize = xs[ax..].iter().product();
                let scale = self.inp(node, 1)?;
                let bias = self.opt(node, 2)?;
                for t in [Some(scale), bias].into_iter().flatten() {
                    if self.g.tensors[t].elems() != size {
                        bail!("LayerNormalization scale/bias must cover the whole normalized shape {:?}", &xs[ax..]);
                    }
                }
                let op = Op::LayerNorm {
                    outer: xs[..ax].iter().product(),
                    size,
                    eps: a.float_or("epsilon", 1e-5),
                };
                let o = self.new_out(node, 0, DType::F32, xs)?;
                self.g.emit(op, &[Some(x), Some(scale), bias], o, name)
            }
            "InstanceNormalization" => {
                let (x, s, b) = (self.inp(node, 0)?, self.inp(node, 1)?, self.inp(node, 2)?);
                let xs = self.shape(x);
                if xs.len() < 2 {
                    bail!("InstanceNormalization needs rank >= 2");
                }
                let op = Op::InstanceNorm {
                    n: xs[0],
                    c: xs[1],
                    spatial: xs[2..].iter().product(),
                    eps: a.float_or("epsilon", 1e-5),
                };
                let o = self.new_out(node, 0, DType::F32, xs)?;
                self.g.emit(op, &[Some(x), Some(s), Some(b)], o, name)
            }
            "ReduceMean" | "ReduceSum" | "ReduceMax" | "ReduceMin" | "ReduceProd" | "ReduceL1"
            | "ReduceL2" | "ReduceSumSquare" => self.reduce(node, &a),
            "GlobalAveragePool" | "GlobalMaxPool" => {
                let x = self.inp(node, 0)?;
                let xs = self.shape(x);
                let axes: Vec<usize> = (2..xs.len()).collect();
                let op = if node.op_type == "GlobalMaxPool" {
                    ReduceOp::Max
                } else {
                    ReduceOp::Mean
                };
                let o = self.reduce_to(node, x, &axes, true, op, 0)?;
                self.set_out(node, 0, o)
            }
            "ArgMax" | "ArgMin" => {
                let x = self.inp(node, 0)?;
                let xs = self.shape(x);
                let ax = norm_axis(a.int_or("axis", 0), xs.len())?;
                let keep = a.int_or("keepdims", 1) != 0;
                let mut os = xs.clone();
                if keep {
                    os[ax] = 1;
                } else {
                    os.remove(ax);
                }
                let op = Op::ArgMax {
                    outer: xs[..ax].iter().product(),
                    axis: xs[ax],
                    inner: xs[ax + 1..].iter().product(),
                    min: node.op_type == "ArgMin",
                    select_last: a.int_or("select_last_index", 0) != 0,
                };
                let o = self.new_out(node, 0, DType::I64, os)?;
                self.g.emit(op, &[Some(x)], o, name)
            }
            "Gather" => {
                let (x, i) = (self.inp(node, 0)?, self.inp(node, 1)?);
                let xs = self.shape(x);
                let ax = norm_axis(a.int_or("axis", 0), xs.len())?;
                let i = self.as_i64(node, i)?;
                let is = self.shape(i);
                let mut os = xs[..ax].to_vec();
                os.extend(&is);
                os.extend(&xs[ax + 1..]);
                let op = Op::Gather {
                    outer: xs[..ax].iter().product(),
                    axis: xs[ax],
                    inner: xs[ax + 1..].iter().product(),
                };
                let o = self.new_out(node, 0, self.dtype(x), os)?;
                self.g.emit(op, &[Some(x), Some(i)], o, name)
            }
            "GatherElements" => {
                let (x, i) = (self.inp(node, 0)?, self.inp(node, 1)?);
                let xs = self.shape(x);
                let i = self.as_i64(node, i)?;
                let is = self.shape(i);
                if is.len() != xs.len() || xs.len() > MAX_RANK {
                    bail!("GatherElements needs data and indices of the same rank (<= 8)");
                }
                let ax = norm_axis(a.int_or("axis", 0), xs.len())?;
                let mut dd = [0usize; MAX_RANK];
                let mut id = [0usize; MAX_RANK];
                dd[..xs.len()].copy_from_slice(&xs);
                id[..is.len()].copy_from_slice(&is);
                let op = Op::GatherElements {
                    rank: xs.len(),
                    data_dims: dd,
                    idx_dims: id,
                    axis: ax,
                };
                let o = self.new_out(node, 0, self.dtype(x), is)?;
                self.g.emit(op, &[Some(x), Some(i)], o, name)
            }
            "Transpose" => {
                let x = self.inp(node, 0)?;
                let xs = self.shape(x);
                let perm: Vec<usize> = match a.ints("perm") {
                    Some(p) => p
                        .iter()
                        .map(|&v| norm_axis(v, xs.len()))
                        .collect::<Result<_>>()?,
                    None => (0..xs.len()).rev().collect(),
                };
                let o = self.transpose(node, x, &perm, Some(0))?;
                self.set_out(node, 0, o)
            }
            "Concat" => {
                let ins: Vec<TId> = (0..node.input.len())
                    .map(|i| self.inp(node, i))
                    .collect::<Result<_>>()?;
                let s0 = self.shape(ins[0]);
                let ax = norm_axis(
                    a.int("axis")
                        .ok_or_else(|| anyhow!("Concat without axis"))?,
                    s0.len(),
                )?;
                let mut os = s0.clone();
                os[ax] = 0;
                for &t in &ins {
                    let s = self.shape(t);
                    if s.len() != s0.len()
                        || s.iter().enumerate().any(|(k, &d)| k != ax && d != s0[k])
                    {
                        bail!("Concat inputs have mismatched shapes");
                    }
                    os[ax] += s[ax];
                }
                let dt = self.dtype(ins[0]);
                let o = self.new_out(node, 0, dt, os.clone())?;
                let dst_st: Vec<isize> = strides_of(&os).iter().map(|&s| s as isize).collect();
                let mut steps = vec![];
                let mut at = 0usize;
                for &t in &ins {
                    let s = self.shape(t);
                    if s[ax] > 0 {
                        let src_st: Vec<isize> =
                            strides_of(&s).iter().map(|&v| v as isize).collect();
                        steps.push((
                            make_copy(&s, 0, &src_st, at * dst_st[ax] as usize, &dst_st)?,
                            vec![Some(t)],
                        ));
                    }
                    at += s[ax];
                }
                self.g.emit_group(&steps, o, name)
            }
            "Split" => self.split(node, &a),
            "Slice" => self.slice(node),
            "Expand" => {
                let x = self.inp(node, 0)?;
                let tgt: Vec<usize> = self
                    .ints(self.inp(node, 1)?)?
                    .iter()
                    .map(|&d| d as usize)
                    .collect();
                let xs = self.shape(x);
                let os = broadcast_shape(&[&xs, &tgt])?;
                let src = bstrides(&xs, &os);
                let dst: Vec<isize> = strides_of(&os).iter().map(|&v| v as isize).collect();
                let op = make_copy(&os, 0, &src, 0, &dst)?;
                let o = self.new_out(node, 0, self.dtype(x), os)?;
                self.g.emit(op, &[Some(x)], o, name)
            }
            "Tile" => {
                let x = self.inp(node, 0)?;
                let reps = self.ints(self.inp(node, 1)?)?;
                let xs = self.shape(x);
                if reps.len() != xs.len() {
                    bail!("Tile repeats length differs from the rank");
                }
                let xst = strides_of(&xs);
                let mut dims = vec![];
                let mut src = vec![];
                let mut os = vec![];
                for k in 0..xs.len() {
                    dims.push(reps[k].max(0) as usize);
                    src.push(0isize);
                    dims.push(xs[k]);
                    src.push(xst[k] as isize);
                    os.push(xs[k] * reps[k].max(0) as usize);
                }
                let dst: Vec<isize> = strides_of(&dims).iter().map(|&v| v as isize).collect();
                let op = make_copy(&dims, 0, &src, 0, &dst)?;
                let o = self.new_out(node, 0, self.dtype(x), os)?;
                self.g.emit(op, &[Some(x)], o, name)
            }
            "Pad" => self.pad(node, &a),
            "DFT" => self.dft(node),
            "ScatterND" => self.scatter_nd(node, &a),
            "Resize" | "Upsample" => self.resize(node, &a),
            "MaxPool" | "AveragePool" => self.pool(node, &a),
            other => bail!("ONNX operator {other} is not supported by mote"),
        }
    }
}
