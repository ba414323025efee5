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
    for node in &g.node {
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
type Spatial = (Vec<usize>, Vec<usize>, Vec<usize>, Vec<usize>);

struct Lowerer {
    g: Graph,
    names: HashMap<String, TId>,
    /// Default-domain opset the model was exported with (attribute semantics differ by opset).
    opset: i64,
}

/// Merges adjacent dims that every operand walks contiguously, and drops size-1 dims.
fn compact(dims: &[usize], strides: &mut [Vec<isize>]) -> Vec<usize> {
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
fn bstrides(shape: &[usize], out: &[usize]) -> Vec<isize> {
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

fn make_bcast<const N: usize>(out: &[usize], ins: [&[usize]; N]) -> Result<Bcast<N>> {
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

fn norm_axis(axis: i64, rank: usize) -> Result<usize> {
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

    fn inp(&self, node: &pb::NodeProto, i: usize) -> Result<TId> {
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
    fn opt(&self, node: &pb::NodeProto, i: usize) -> Result<Option<TId>> {
        match node.input.get(i) {
            Some(n) if !n.is_empty() => Ok(Some(self.inp(node, i)?)),
            _ => Ok(None),
        }
    }
    fn shape(&self, t: TId) -> Vec<usize> {
        self.g.tensors[t].shape.clone()
    }
    fn dtype(&self, t: TId) -> DType {
        self.g.tensors[t].dtype
    }
    fn ints(&self, t: TId) -> Result<Vec<i64>> {
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
    fn floats(&self, t: TId) -> Result<Vec<f32>> {
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
    fn new_out(
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
    fn set_out(&mut self, node: &pb::NodeProto, i: usize, t: TId) -> Result<()> {
        let name = node
            .output
            .get(i)
            .ok_or_else(|| anyhow!("missing output {i}"))?
            .clone();
        self.names.insert(name, t);
        Ok(())
    }
    fn tmp(&mut self, node: &pb::NodeProto, what: &str, dtype: DType, shape: Vec<usize>) -> TId {
        let n = format!("{}::{what}#{}", node.name, self.g.tensors.len());
        self.g.add(n, dtype, shape)
    }
    fn only_outputs(&self, node: &pb::NodeProto, n: usize) -> Result<()> {
        if node.output.iter().skip(n).any(|o| !o.is_empty()) {
            bail!(
                "only the first {n} output(s) of {} are supported",
                node.op_type
            );
        }
        Ok(())
    }
    fn const_out(
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
            "ScatterND" => self.scatter_nd(node, &a),
            "Resize" | "Upsample" => self.resize(node, &a),
            "MaxPool" | "AveragePool" => self.pool(node, &a),
            other => bail!("ONNX operator {other} is not supported by mote"),
        }
    }

    fn as_i64(&mut self, node: &pb::NodeProto, i: TId) -> Result<TId> {
        match self.dtype(i) {
            DType::I64 => Ok(i),
            DType::I32 => {
                let o = self.tmp(node, "idx64", DType::I64, self.shape(i));
                self.g.emit(Op::Cast, &[Some(i)], o, &node.name)?;
                Ok(o)
            }
            other => bail!("indices must be int64 or int32, found {}", other.name()),
        }
    }

    fn unary(&mut self, node: &pb::NodeProto, op: UnaryOp) -> Result<()> {
        let x = self.inp(node, 0)?;
        if self.dtype(x) != DType::F32 {
            if self.g.is_const(x)
                && matches!(op, UnaryOp::Neg | UnaryOp::Abs)
                && self.dtype(x) == DType::I64
            {
                let v: Vec<i64> = self
                    .ints(x)?
                    .iter()
                    .map(|&v| if op == UnaryOp::Neg { -v } else { v.abs() })
                    .collect();
                return self.const_out(node, DType::I64, self.shape(x), Data::from_i64(&v));
            }
            bail!(
                "{} on {} tensors is not supported (float32 only)",
                node.op_type,
                self.dtype(x).name()
            );
        }
        let o = self.new_out(node, 0, DType::F32, self.shape(x))?;
        self.g.emit(Op::Unary { op }, &[Some(x)], o, &node.name)
    }

    fn int_binary(&mut self, node: &pb::NodeProto, x: TId, y: TId) -> Result<()> {
        let (xv, yv) = (self.ints(x)?, self.ints(y)?);
        let (xs, ys) = (self.shape(x), self.shape(y));
        let os = broadcast_shape(&[&xs, &ys])?;
        let (sx, sy) = (bstrides(&xs, &os), bstrides(&ys, &os));
        let n: usize = os.iter().product();
        let ost = strides_of(&os);
        let mut out = Vec::with_capacity(n);
        for flat in 0..n {
            let (mut ix, mut iy) = (0isize, 0isize);
            for k in 0..os.len() {
                let c = (flat / ost[k] % os[k]) as isize;
                ix += c * sx[k];
                iy += c * sy[k];
            }
            let (p, q) = (xv[ix as usize], yv[iy as usize]);
            out.push(match node.op_type.as_str() {
                "Add" => p.wrapping_add(q),
                "Sub" => p.wrapping_sub(q),
                "Mul" => p.wrapping_mul(q),
                "Div" => {
                    if q == 0 {
                        bail!("integer division by zero");
                    }
                    p.wrapping_div(q)
                }
                "Max" => p.max(q),
                "Min" => p.min(q),
                "Pow" => p.wrapping_pow(q.clamp(0, 64) as u32),
                "Mod" => {
                    if q == 0 {
                        bail!("integer modulo by zero");
                    }
                    ((p % q) + q) % q
                }
                other => bail!("integer {other}"),
            });
        }
        self.const_out(node, DType::I64, os, Data::from_i64(&out))
    }

    fn binary(&mut self, node: &pb::NodeProto) -> Result<()> {
        let n_in = node.input.len();
        if n_in < 2 {
            let x = self.inp(node, 0)?;
            return self.set_out(node, 0, x);
        }
        if n_in > 2 {
            bail!(
                "variadic {} with {n_in} inputs is not supported",
                node.op_type
            );
        }
        let (x, y) = (self.inp(node, 0)?, self.inp(node, 1)?);
        let (dx, dy) = (self.dtype(x), self.dtype(y));
        if matches!(dx, DType::I64 | DType::I32) && matches!(dy, DType::I64 | DType::I32) {
            if self.g.is_const(x) && self.g.is_const(y) {
                return self.int_binary(node, x, y);
            }
            bail!(
                "integer {} on run-time tensors is not supported",
                node.op_type
            );
        }
        if node.op_type == "Mod" {
            bail!(
                "Mod on {} tensors is only supported for integer constants",
                dx.name()
            );
        }
        if dx != DType::F32 || dy != DType::F32 {
            bail!(
                "{} on {} and {} is not supported",
                node.op_type,
                dx.name(),
                dy.name()
            );
        }
        let op = match node.op_type.as_str() {
            "Add" => BinaryOp::Add,
            "Sub" => BinaryOp::Sub,
            "Mul" => BinaryOp::Mul,
            "Div" => BinaryOp::Div,
            "Pow" => BinaryOp::Pow,
            "Max" => BinaryOp::Max,
            _ => BinaryOp::Min,
        };
        let (xs, ys) = (self.shape(x), self.shape(y));
        let os = broadcast_shape(&[&xs, &ys])?;
        // x ^ c with a scalar constant exponent is a unary op.
        if op == BinaryOp::Pow && self.g.is_const(y) && self.g.tensors[y].elems() == 1 && os == xs {
            let e = self.floats(y)?[0];
            let o = self.new_out(node, 0, DType::F32, os)?;
            return self.g.emit(
                Op::Unary {
                    op: UnaryOp::PowConst { exp: e },
                },
                &[Some(x)],
                o,
                &node.name,
            );
        }
        let bc = make_bcast(&os, [&xs, &ys])?;
        let o = self.new_out(node, 0, DType::F32, os)?;
        self.g
            .emit(Op::Binary { op, bc }, &[Some(x), Some(y)], o, &node.name)
    }

    /// Variadic Sum / Mean / Max / Min as a chain of binary steps.
    fn variadic(&mut self, node: &pb::NodeProto) -> Result<()> {
        let ins: Vec<TId> = (0..node.input.len())
            .map(|i| self.inp(node, i))
            .collect::<Result<_>>()?;
        let op = match node.op_type.as_str() {
            "Sum" | "Mean" => "Add",
            other => other,
        };
        if ins.len() == 1 && node.op_type != "Mean" {
            return self.set_out(node, 0, ins[0]);
        }
        let mut acc = ins[0];
        let last_binary = if node.op_type == "Mean" {
            ins.len()
        } else {
            ins.len() - 1
        };
        for (k, &t) in ins.iter().enumerate().skip(1) {
            let out_name = if k == last_binary {
                node.output[0].clone()
            } else {
                format!("{}::acc{k}#{}", node.name, self.g.tensors.len())
            };
            let step = pb::NodeProto {
                input: vec![
                    self.g.tensors[acc].name.clone(),
                    self.g.tensors[t].name.clone(),
                ],
                output: vec![out_name.clone()],
                name: node.name.clone(),
                op_type: op.to_string(),
                ..Default::default()
            };
            self.names.insert(self.g.tensors[acc].name.clone(), acc);
            self.names.insert(self.g.tensors[t].name.clone(), t);
            self.binary(&step)?;
            acc = self.names[&out_name];
        }
        if node.op_type == "Mean" {
            let xs = self.shape(acc);
            let o = self.new_out(node, 0, DType::F32, xs)?;
            let k = 1.0 / ins.len() as f32;
            self.g.emit(
                Op::Unary {
                    op: UnaryOp::Affine { k, c: 0.0 },
                },
                &[Some(acc)],
                o,
                &node.name,
            )?;
        }
        Ok(())
    }

    fn compare(&mut self, node: &pb::NodeProto) -> Result<()> {
        let (mut x, mut y) = (self.inp(node, 0)?, self.inp(node, 1)?);
        let op = match node.op_type.as_str() {
            "Equal" => CompareOp::Equal,
            "Less" => CompareOp::Less,
            "LessOrEqual" => CompareOp::LessOrEqual,
            "Greater" => CompareOp::Greater,
            _ => CompareOp::GreaterOrEqual,
        };
        // Integer comparisons: constants fold exactly; run-time integers are compared as f32
        // only when they are small enough to be exact there, which we cannot know: refuse.
        for t in [&mut x, &mut y] {
            if self.dtype(*t) != DType::F32 {
                if self.dtype(*t) == DType::Bool || !self.g.is_const(*t) {
                    bail!(
                        "{} on {} tensors is not supported",
                        node.op_type,
                        self.dtype(*t).name()
                    );
                }
                let v: Vec<f32> = self.ints(*t)?.iter().map(|&v| v as f32).collect();
                if self.ints(*t)?.iter().any(|&v| v.unsigned_abs() > 1 << 24) {
                    bail!("integer comparison with values beyond 2^24");
                }
                let s = self.shape(*t);
                *t = self.g.const_f32(format!("{}::as_f32", node.name), s, &v)?;
            }
        }
        let (xs, ys) = (self.shape(x), self.shape(y));
        let os = broadcast_shape(&[&xs, &ys])?;
        let bc = make_bcast(&os, [&xs, &ys])?;
        let o = self.new_out(node, 0, DType::Bool, os)?;
        self.g
            .emit(Op::Compare { op, bc }, &[Some(x), Some(y)], o, &node.name)
    }

    fn logic(&mut self, node: &pb::NodeProto) -> Result<()> {
        let x = self.inp(node, 0)?;
        if node.op_type == "Not" {
            let xs = self.shape(x);
            let bc = make_bcast(&xs, [&xs, &xs])?;
            let o = self.new_out(node, 0, DType::Bool, xs)?;
            return self
                .g
                .emit(Op::Logic { kind: 3, bc }, &[Some(x)], o, &node.name);
        }
        let y = self.inp(node, 1)?;
        let kind = match node.op_type.as_str() {
            "And" => 0,
            "Or" => 1,
            _ => 2,
        };
        let (xs, ys) = (self.shape(x), self.shape(y));
        let os = broadcast_shape(&[&xs, &ys])?;
        let bc = make_bcast(&os, [&xs, &ys])?;
        let o = self.new_out(node, 0, DType::Bool, os)?;
        self.g
            .emit(Op::Logic { kind, bc }, &[Some(x), Some(y)], o, &node.name)
    }

    /// Spatial attributes of Conv and pooling: (kernel, strides, dilations, pads_begin, pads_end).
    fn spatial(&self, a: &Attrs<'_>, in_sp: &[usize], kernel: &[usize]) -> Result<Spatial> {
        let r = in_sp.len();
        let strides: Vec<usize> = a
            .ints("strides")
            .map(|v| v.iter().map(|&x| x as usize).collect())
            .unwrap_or(vec![1; r]);
        let dil: Vec<usize> = a
            .ints("dilations")
            .map(|v| v.iter().map(|&x| x as usize).collect())
            .unwrap_or(vec![1; r]);
        if strides.len() != r || dil.len() != r || strides.contains(&0) || dil.contains(&0) {
            bail!("bad strides/dilations");
        }
        let auto = a.string("auto_pad").unwrap_or_else(|| "NOTSET".into());
        let ceil = a.int_or("ceil_mode", 0) != 0;
        let (mut pb_, mut pe) = (vec![0usize; r], vec![0usize; r]);
        match auto.as_str() {
            "NOTSET" => {
                if let Some(p) = a.ints("pads") {
                    if p.len() != 2 * r || p.iter().any(|&v| v < 0) {
                        bail!("bad pads {p:?}");
                    }
                    for k in 0..r {
                        pb_[k] = p[k] as usize;
                        pe[k] = p[k + r] as usize;
                    }
                }
            }
            "VALID" => {}
            "SAME_UPPER" | "SAME_LOWER" => {
                for k in 0..r {
                    let out = in_sp[k].div_ceil(strides[k]);
                    let need = ((out - 1) * strides[k] + (kernel[k] - 1) * dil[k] + 1)
                        .saturating_sub(in_sp[k]);
                    let small = need / 2;
                    if auto == "SAME_UPPER" {
                        pb_[k] = small;
                        pe[k] = need - small;
                    } else {
                        pe[k] = small;
                        pb_[k] = need - small;
                    }
                }
            }
            other => bail!("auto_pad {other} is not supported"),
        }
        let mut out = vec![];
        for k in 0..r {
            let span = (kernel[k] - 1) * dil[k] + 1;
            let padded = in_sp[k] + pb_[k] + pe[k];
            if padded < span {
                bail!("window larger than the padded input");
            }
            let o = if ceil {
                let mut o = (padded - span).div_ceil(strides[k]) + 1;
                // The last window must start inside the input or left padding (ONNX rule).
                if (o - 1) * strides[k] >= in_sp[k] + pb_[k] {
                    o -= 1;
                }
                o
            } else {
                (padded - span) / strides[k] + 1
            };
            out.push(o);
        }
        Ok((out, strides, dil, pb_))
    }

    fn conv(&mut self, node: &pb::NodeProto, a: &Attrs<'_>) -> Result<()> {
        let (x, w) = (self.inp(node, 0)?, self.inp(node, 1)?);
        let b = self.opt(node, 2)?;
        let (xs, ws) = (self.shape(x), self.shape(w));
        if !(xs.len() == 3 || xs.len() == 4) || ws.len() != xs.len() {
            bail!(
                "only 1-D and 2-D convolutions are supported (input rank {})",
                xs.len()
            );
        }
        let groups = a.int_or("group", 1) as usize;
        let sp = &xs[2..];
        let ks = &ws[2..];
        if let Some(k) = a.ints("kernel_shape") {
            if k.iter().map(|&v| v as usize).collect::<Vec<_>>() != ks {
                bail!("kernel_shape disagrees with the weight shape");
            }
        }
        if groups == 0 || xs[1] != ws[1] * groups {
            bail!(
                "input channels {} != weight channels {} x groups {groups}",
                xs[1],
                ws[1]
            );
        }
        let (out_sp, st, dil, pads) = self.spatial(a, sp, ks)?;
        let one_d = xs.len() == 3;
        let g = Conv2dGeom {
            n: xs[0],
            c_in: xs[1],
            h_in: if one_d { 1 } else { sp[0] },
            w_in: *sp.last().unwrap_or(&1),
            c_out: ws[0],
            h_out: if one_d { 1 } else { out_sp[0] },
            w_out: *out_sp.last().unwrap_or(&1),
            kh: if one_d { 1 } else { ks[0] },
            kw: *ks.last().unwrap_or(&1),
            stride_h: if one_d { 1 } else { st[0] },
            stride_w: *st.last().unwrap_or(&1),
            dil_h: if one_d { 1 } else { dil[0] },
            dil_w: *dil.last().unwrap_or(&1),
            pad_top: if one_d { 0 } else { pads[0] },
            pad_left: *pads.last().unwrap_or(&0),
            groups,
        };
        let mut os = vec![xs[0], ws[0]];
        os.extend(&out_sp);
        let o = self.new_out(node, 0, DType::F32, os)?;
        self.g.emit(
            Op::Conv2d {
                g,
                act: Activation::None,
            },
            &[Some(x), Some(w), b],
            o,
            &node.name,
        )
    }

    fn batchnorm(&mut self, node: &pb::NodeProto, a: &Attrs<'_>) -> Result<()> {
        self.only_outputs(node, 1)?;
        if a.int_or("training_mode", 0) != 0 {
            bail!("BatchNormalization in training mode");
        }
        let x = self.inp(node, 0)?;
        let xs = self.shape(x);
        let eps = a.float_or("epsilon", 1e-5);
        let v: Vec<Vec<f32>> = (1..5)
            .map(|i| self.floats(self.inp(node, i)?))
            .collect::<Result<_>>()?;
        let c = *xs
            .get(1)
            .ok_or_else(|| anyhow!("BatchNormalization needs rank >= 2"))?;
        if v.iter().any(|p| p.len() != c) {
            bail!("BatchNormalization parameters must have {c} elements");
        }
        // y = (x - mean) / sqrt(var + eps) * gamma + beta = x * s + (beta - mean * s)
        let s: Vec<f32> = (0..c)
            .map(|i| v[0][i] / (v[3][i] as f64 + eps as f64).sqrt() as f32)
            .collect();
        let bias: Vec<f32> = (0..c).map(|i| v[1][i] - v[2][i] * s[i]).collect();
        let st = self
            .g
            .const_f32(format!("{}::scale", node.name), vec![c], &s)?;
        let bt = self
            .g
            .const_f32(format!("{}::bias", node.name), vec![c], &bias)?;
        let op = Op::ChannelAffine {
            outer: xs[0],
            c,
            inner: xs[2..].iter().product(),
        };
        let o = self.new_out(node, 0, DType::F32, xs)?;
        self.g
            .emit(op, &[Some(x), Some(st), Some(bt)], o, &node.name)
    }

    fn gemm(&mut self, node: &pb::NodeProto, a: &Attrs<'_>) -> Result<()> {
        let (x, y) = (self.inp(node, 0)?, self.inp(node, 1)?);
        let c = self.opt(node, 2)?;
        let (ta, tb) = (a.int_or("transA", 0) != 0, a.int_or("transB", 0) != 0);
        let (alpha, beta) = (a.float_or("alpha", 1.0), a.float_or("beta", 1.0));
        let (xs, ys) = (self.shape(x), self.shape(y));
        if xs.len() != 2 || ys.len() != 2 {
            bail!("Gemm needs rank-2 operands");
        }
        let (m, k) = if ta { (xs[1], xs[0]) } else { (xs[0], xs[1]) };
        let (k2, n) = if tb { (ys[1], ys[0]) } else { (ys[0], ys[1]) };
        if k != k2 {
            bail!("Gemm inner dimensions differ ({k} vs {k2})");
        }
        let mut bias = None;
        let mut late_c = None;
        if let Some(c) = c {
            let cs = self.shape(c);
            if self.g.is_const(c) && self.g.tensors[c].elems() == n && cs.last() == Some(&n) {
                let v: Vec<f32> = self.floats(c)?.iter().map(|&v| v * beta).collect();
                bias = Some(
                    self.g
                        .const_f32(format!("{}::bias", node.name), vec![n], &v)?,
                );
            } else if beta != 0.0 {
                late_c = Some(c);
            }
        }
        let g = MatMulGeom {
            m,
            n,
            k,
            a_rs: if ta { 1 } else { xs[1] },
            a_cs: if ta { xs[1] } else { 1 },
            b_rs: if tb { 1 } else { ys[1] },
            b_cs: if tb { ys[1] } else { 1 },
            alpha,
            ..Default::default()
        };
        let out = if late_c.is_some() {
            self.tmp(node, "ab", DType::F32, vec![m, n])
        } else {
            self.new_out(node, 0, DType::F32, vec![m, n])?
        };
        self.g
            .emit(Op::MatMul(g), &[Some(x), Some(y), bias], out, &node.name)?;
        if let Some(c) = late_c {
            let mut c = c;
            if beta != 1.0 {
                let cs = self.shape(c);
                let t = self.tmp(node, "betac", DType::F32, cs);
                self.g.emit(
                    Op::Unary {
                        op: UnaryOp::Affine { k: beta, c: 0.0 },
                    },
                    &[Some(c)],
                    t,
                    &node.name,
                )?;
                c = t;
            }
            let cs = self.shape(c);
            let os = broadcast_shape(&[&[m, n], &cs])?;
            let bc = make_bcast(&os, [&[m, n], &cs])?;
            let o = self.new_out(node, 0, DType::F32, os)?;
            self.g.emit(
                Op::Binary {
                    op: BinaryOp::Add,
                    bc,
                },
                &[Some(out), Some(c)],
                o,
                &node.name,
            )?;
        }
        Ok(())
    }

    /// numpy-style matmul with optional per-column bias. Returns the output tensor (named after
    /// the node's first output).
    fn matmul(
        &mut self,
        node: &pb::NodeProto,
        x: TId,
        y: TId,
        bias: Option<TId>,
        alpha: f32,
    ) -> Result<TId> {
        let (mut xs, mut ys) = (self.shape(x), self.shape(y));
        if self.dtype(x) != DType::F32 || self.dtype(y) != DType::F32 {
            bail!("MatMul on non-float32 tensors");
        }
        let (x1, y1) = (xs.len() == 1, ys.len() == 1);
        if x1 {
            xs.insert(0, 1);
        }
        if y1 {
            ys.push(1);
        }
        if xs.is_empty() || ys.is_empty() {
            bail!("MatMul of a scalar");
        }
        let (m, k) = (xs[xs.len() - 2], xs[xs.len() - 1]);
        let (k2, n) = (ys[ys.len() - 2], ys[ys.len() - 1]);
        if k != k2 {
            bail!("MatMul inner dimensions differ ({k} vs {k2})");
        }
        let (xb, yb) = (&xs[..xs.len() - 2], &ys[..ys.len() - 2]);
        let batch = broadcast_shape(&[xb, yb])?;
        if batch.len() > 6 {
            bail!("MatMul with more than 6 batch dims");
        }
        let xst = bstrides(xb, &batch);
        let yst = bstrides(yb, &batch);
        let mut g = MatMulGeom {
            batch_rank: batch.len(),
            m,
            n,
            k,
            a_rs: k,
            a_cs: 1,
            b_rs: n,
            b_cs: 1,
            alpha,
            ..Default::default()
        };
        for i in 0..batch.len() {
            g.batch[i] = batch[i];
            g.a_bs[i] = xst[i] as usize * m * k;
            g.b_bs[i] = yst[i] as usize * k * n;
        }
        let mut os = batch.clone();
        if !x1 {
            os.push(m);
        }
        if !y1 {
            os.push(n);
        }
        let o = self.new_out(node, 0, DType::F32, os)?;
        self.g
            .emit(Op::MatMul(g), &[Some(x), Some(y), bias], o, &node.name)?;
        Ok(o)
    }

    fn transpose(
        &mut self,
        node: &pb::NodeProto,
        x: TId,
        perm: &[usize],
        out_index: Option<usize>,
    ) -> Result<TId> {
        let xs = self.shape(x);
        if perm.len() != xs.len() {
            bail!(
                "transpose permutation {perm:?} does not match rank {}",
                xs.len()
            );
        }
        let xst = strides_of(&xs);
        let os: Vec<usize> = perm.iter().map(|&p| xs[p]).collect();
        let src: Vec<isize> = perm.iter().map(|&p| xst[p] as isize).collect();
        let dst: Vec<isize> = strides_of(&os).iter().map(|&v| v as isize).collect();
        let op = make_copy(&os, 0, &src, 0, &dst)?;
        let o = match out_index {
            Some(i) => self.new_out(node, i, self.dtype(x), os)?,
            None => self.tmp(node, "transposed", self.dtype(x), os),
        };
        // An identity permutation (after dropping size-1 dims) is a view.
        if let Op::Copy(c) = op {
            let ident = (0..c.rank).all(|k| c.src_strides[k] == c.dst_strides[k]) && c.src_off == 0;
            if ident && !self.g.is_const(x) {
                let shape = self.g.tensors[o].shape.clone();
                let name = self.g.tensors[o].name.clone();
                let t = self.g.alias(name.clone(), x, shape)?;
                if out_index.is_some() {
                    self.names.insert(name, t);
                }
                return Ok(t);
            }
        }
        self.g.emit(op, &[Some(x)], o, &node.name)?;
        Ok(o)
    }

    fn einsum(&mut self, node: &pb::NodeProto, a: &Attrs<'_>) -> Result<()> {
        let eq: String = a
            .string("equation")
            .ok_or_else(|| anyhow!("Einsum without equation"))?
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let eq = self.expand_ellipsis(node, &eq)?;
        let (lhs, rhs) = match eq.split_once("->") {
            Some((l, r)) => (l.to_string(), r.to_string()),
            None => {
                let mut counts: HashMap<char, usize> = HashMap::new();
                for c in eq.chars().filter(|c| c.is_alphabetic()) {
                    *counts.entry(c).or_default() += 1;
                }
                let mut r: Vec<char> = counts
                    .into_iter()
                    .filter(|&(_, n)| n == 1)
                    .map(|(c, _)| c)
                    .collect();
                r.sort();
                (eq.clone(), r.into_iter().collect())
            }
        };
        let terms: Vec<Vec<char>> = lhs.split(',').map(|t| t.chars().collect()).collect();
        let out: Vec<char> = rhs.chars().collect();
        if terms.len() != node.input.len() || terms.is_empty() || terms.len() > 2 {
            bail!("Einsum {eq:?}: only one or two operands are supported");
        }
        let ins: Vec<TId> = (0..terms.len())
            .map(|i| self.inp(node, i))
            .collect::<Result<_>>()?;
        let mut size: HashMap<char, usize> = HashMap::new();
        for (t, &x) in terms.iter().zip(&ins) {
            let s = self.shape(x);
            if s.len() != t.len() {
                bail!("Einsum term {t:?} does not match operand rank {}", s.len());
            }
            let mut seen = vec![];
            for (&c, &d) in t.iter().zip(&s) {
                if seen.contains(&c) {
                    bail!("Einsum with a repeated index within one operand (diagonal) is not supported");
                }
                seen.push(c);
                match size.get(&c) {
                    Some(&e) if e != d && e != 1 && d != 1 => {
                        bail!("Einsum index {c} has sizes {e} and {d}")
                    }
                    Some(&e) if e >= d => {}
                    _ => {
                        size.insert(c, d);
                    }
                }
            }
        }
        // Sum away indices that appear in one operand only and not in the output.
        let mut terms = terms;
        let mut ins = ins;
        for i in 0..terms.len() {
            let lonely: Vec<usize> = terms[i]
                .iter()
                .enumerate()
                .filter(|(_, c)| {
                    !out.contains(c)
                        && !terms
                            .iter()
                            .enumerate()
                            .any(|(j, t)| j != i && t.contains(c))
                })
                .map(|(k, _)| k)
                .collect();
            if !lonely.is_empty() {
                let r = self.reduce_to(node, ins[i], &lonely, false, ReduceOp::Sum, usize::MAX)?;
                ins[i] = r;
                terms[i] = terms[i]
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| !lonely.contains(k))
                    .map(|(_, &c)| c)
                    .collect();
            }
        }
        let final_name = node.output[0].clone();
        if terms.len() == 1 {
            let perm: Vec<usize> = out
                .iter()
                .map(|c| {
                    terms[0]
                        .iter()
                        .position(|x| x == c)
                        .ok_or_else(|| anyhow!("output index {c} not in input"))
                })
                .collect::<Result<_>>()?;
            let o = self.transpose(node, ins[0], &perm, Some(0))?;
            self.names.insert(final_name, o);
            return Ok(());
        }
        let (ta, tb) = (&terms[0], &terms[1]);
        let contracted: Vec<char> = ta
            .iter()
            .copied()
            .filter(|c| tb.contains(c) && !out.contains(c))
            .collect();
        let os: Vec<usize> = out
            .iter()
            .map(|c| {
                size.get(c)
                    .copied()
                    .ok_or_else(|| anyhow!("unknown output index {c}"))
            })
            .collect::<Result<_>>()?;
        if contracted.is_empty() {
            // Element-wise product with broadcasting in the output's index order.
            let stride_of = |t: &Vec<char>, s: &[usize]| -> Vec<isize> {
                let st = strides_of(s);
                out.iter()
                    .map(|c| match t.iter().position(|x| x == c) {
                        Some(p) if s[p] != 1 => st[p] as isize,
                        _ => 0,
                    })
                    .collect()
            };
            let (sa, sb) = (
                stride_of(ta, &self.shape(ins[0])),
                stride_of(tb, &self.shape(ins[1])),
            );
            let mut strides = vec![sa, sb];
            let dims = compact(&os, &mut strides);
            let mut bc = Bcast::<2> {
                rank: dims.len(),
                ..Default::default()
            };
            bc.dims[..dims.len()].copy_from_slice(&dims);
            for i in 0..2 {
                for (k, &s) in strides[i].iter().enumerate() {
                    bc.strides[i][k] = s as usize;
                }
            }
            let o = self.new_out(node, 0, DType::F32, os)?;
            return self.g.emit(
                Op::Binary {
                    op: BinaryOp::Mul,
                    bc,
                },
                &[Some(ins[0]), Some(ins[1])],
                o,
                &node.name,
            );
        }
        let batch: Vec<char> = out
            .iter()
            .copied()
            .filter(|c| ta.contains(c) && tb.contains(c))
            .collect();
        let afree: Vec<char> = out
            .iter()
            .copied()
            .filter(|c| ta.contains(c) && !tb.contains(c))
            .collect();
        let bfree: Vec<char> = out
            .iter()
            .copied()
            .filter(|c| tb.contains(c) && !ta.contains(c))
            .collect();
        // Bring A to [batch, afree, contracted] and B to [batch, contracted, bfree].
        let order_a: Vec<char> = batch
            .iter()
            .chain(&afree)
            .chain(&contracted)
            .copied()
            .collect();
        let order_b: Vec<char> = batch
            .iter()
            .chain(&contracted)
            .chain(&bfree)
            .copied()
            .collect();
        let perm_a: Vec<usize> = order_a
            .iter()
            .map(|c| ta.iter().position(|x| x == c).unwrap_or(0))
            .collect();
        let perm_b: Vec<usize> = order_b
            .iter()
            .map(|c| tb.iter().position(|x| x == c).unwrap_or(0))
            .collect();
        let a2 = self.transpose(node, ins[0], &perm_a, None)?;
        let b2 = self.transpose(node, ins[1], &perm_b, None)?;
        let sz = |cs: &[char]| -> usize { cs.iter().map(|c| size[c]).product() };
        let (m, n, k) = (sz(&afree), sz(&bfree), sz(&contracted));
        let sa = self.shape(a2);
        let sb = self.shape(b2);
        let nb = batch.len();
        let mut ash = sa[..nb].to_vec();
        ash.extend([m, k]);
        let mut bsh = sb[..nb].to_vec();
        bsh.extend([k, n]);
        let a3 = self.g.alias(format!("{}::a", node.name), a2, ash)?;
        let b3 = self.g.alias(format!("{}::b", node.name), b2, bsh)?;
        let tmp_node = pb::NodeProto {
            output: vec![format!("{}::mm", node.name)],
            name: node.name.clone(),
            ..Default::default()
        };
        let mm = self.matmul(&tmp_node, a3, b3, None, 1.0)?;
        // Result is [batch, afree, bfree]; permute to the requested output order.
        let have: Vec<char> = batch.iter().chain(&afree).chain(&bfree).copied().collect();
        let mut hs: Vec<usize> = batch.iter().map(|c| size[c]).collect();
        hs.extend(afree.iter().map(|c| size[c]));
        hs.extend(bfree.iter().map(|c| size[c]));
        let mm = self.g.alias(format!("{}::mmv", node.name), mm, hs)?;
        let perm: Vec<usize> = out
            .iter()
            .map(|c| have.iter().position(|x| x == c).unwrap_or(0))
            .collect();
        let o = self.transpose(node, mm, &perm, Some(0))?;
        self.names.insert(final_name, o);
        Ok(())
    }

    /// Rewrites `...` in an Einsum equation into explicit fresh indices (right-aligned, so
    /// operands with fewer ellipsis dims broadcast as numpy does).
    fn expand_ellipsis(&self, node: &pb::NodeProto, eq: &str) -> Result<String> {
        if !eq.contains("...") {
            return Ok(eq.to_string());
        }
        let (lhs, rhs) = match eq.split_once("->") {
            Some((l, r)) => (l, Some(r)),
            None => (eq, None),
        };
        let fresh: Vec<char> = ('\u{3b1}'..='\u{3c9}')
            .filter(|c| !eq.contains(*c))
            .collect();
        let mut terms = vec![];
        let mut max_e = 0usize;
        for (i, t) in lhs.split(',').enumerate() {
            let rank = self.shape(self.inp(node, i)?).len();
            let letters = t.replace("...", "").chars().count();
            let e = if t.contains("...") {
                rank.checked_sub(letters).ok_or_else(|| {
                    anyhow!("Einsum term {t:?} has more indices than its operand's rank {rank}")
                })?
            } else {
                0
            };
            max_e = max_e.max(e);
            terms.push((t.to_string(), e));
        }
        if max_e > fresh.len() {
            bail!("Einsum ellipsis covers too many dims");
        }
        let ell = |e: usize| -> String { fresh[max_e - e..max_e].iter().collect() };
        let new_lhs: Vec<String> = terms
            .iter()
            .map(|(t, e)| t.replace("...", &ell(*e)))
            .collect();
        let new_rhs = match rhs {
            Some(r) => r.replace("...", &ell(max_e)),
            None => {
                let mut counts: HashMap<char, usize> = HashMap::new();
                for c in lhs.replace("...", "").chars().filter(|c| c.is_alphabetic()) {
                    *counts.entry(c).or_default() += 1;
                }
                let mut r: Vec<char> = counts
                    .into_iter()
                    .filter(|&(_, n)| n == 1)
                    .map(|(c, _)| c)
                    .collect();
                r.sort();
                ell(max_e) + &r.into_iter().collect::<String>()
            }
        };
        Ok(format!("{}->{}", new_lhs.join(","), new_rhs))
    }

    /// Reduces `x` over `axes`; `out_index` names the output (`usize::MAX` = temporary).
    fn reduce_to(
        &mut self,
        node: &pb::NodeProto,
        x: TId,
        axes: &[usize],
        keep: bool,
        op: ReduceOp,
        out_index: usize,
    ) -> Result<TId> {
        let xs = self.shape(x);
        if xs.len() > MAX_RANK {
            bail!("reduction over rank {}", xs.len());
        }
        if self.dtype(x) != DType::F32 {
            bail!("reduction of {} tensors", self.dtype(x).name());
        }
        let mut mask = 0u32;
        for &ax in axes {
            mask |= 1 << ax;
        }
        let os: Vec<usize> = xs
            .iter()
            .enumerate()
            .filter_map(|(k, &d)| {
                if mask & (1 << k) != 0 {
                    if keep {
                        Some(1)
                    } else {
                        None
                    }
                } else {
                    Some(d)
                }
            })
            .collect();
        let mut dims = [0usize; MAX_RANK];
        dims[..xs.len()].copy_from_slice(&xs);
        let o = if out_index == usize::MAX {
            self.tmp(node, "reduced", DType::F32, os)
        } else {
            self.new_out(node, out_index, DType::F32, os)?
        };
        self.g.emit(
            Op::Reduce {
                op,
                rank: xs.len(),
                dims,
                mask,
            },
            &[Some(x)],
            o,
            &node.name,
        )?;
        Ok(o)
    }

    fn reduce(&mut self, node: &pb::NodeProto, a: &Attrs<'_>) -> Result<()> {
        let x = self.inp(node, 0)?;
        let xs = self.shape(x);
        let axes = match self.opt(node, 1)? {
            Some(t) => Some(self.ints(t)?),
            None => a.ints("axes"),
        };
        let axes: Vec<usize> = match axes {
            Some(v) if !v.is_empty() => v
                .iter()
                .map(|&ax| norm_axis(ax, xs.len()))
                .collect::<Result<_>>()?,
            _ => {
                if a.int_or("noop_with_empty_axes", 0) != 0 {
                    return self.set_out(node, 0, x);
                }
                (0..xs.len()).collect()
            }
        };
        let op = match node.op_type.as_str() {
            "ReduceMean" => ReduceOp::Mean,
            "ReduceSum" => ReduceOp::Sum,
            "ReduceMax" => ReduceOp::Max,
            "ReduceMin" => ReduceOp::Min,
            "ReduceProd" => ReduceOp::Prod,
            "ReduceL1" => ReduceOp::L1,
            "ReduceL2" => ReduceOp::L2,
            _ => ReduceOp::SumSquare,
        };
        if self.dtype(x) == DType::I64 && self.g.is_const(x) {
            // Shape arithmetic (e.g. ReduceProd of a shape): fold in integers.
            let v = self.ints(x)?;
            if axes.len() != xs.len() {
                bail!("integer reduction over some axes");
            }
            let r = match op {
                ReduceOp::Sum => v.iter().sum(),
                ReduceOp::Prod => v.iter().product(),
                ReduceOp::Max => *v.iter().max().unwrap_or(&i64::MIN),
                ReduceOp::Min => *v.iter().min().unwrap_or(&i64::MAX),
                _ => bail!("integer {:?}", op),
            };
            let keep = a.int_or("keepdims", 1) != 0;
            let shape = if keep { vec![1; xs.len()] } else { vec![] };
            return self.const_out(node, DType::I64, shape, Data::from_i64(&[r]));
        }
        let keep = a.int_or("keepdims", 1) != 0;
        let o = self.reduce_to(node, x, &axes, keep, op, 0)?;
        self.set_out(node, 0, o)
    }

    /// Nearest-neighbour Resize/Upsample: one constant-index Gather per resized axis, with the
    /// source index of every output position computed by the ONNX coordinate rules (in f32, as
    /// onnxruntime does). Linear and cubic modes are refused.
    fn resize(&mut self, node: &pb::NodeProto, a: &Attrs<'_>) -> Result<()> {
        let x = self.inp(node, 0)?;
        let xs = self.shape(x);
        let mode = a.string("mode").unwrap_or_else(|| "nearest".into());
        if mode != "nearest" {
            bail!(
                "{} mode {mode:?} is not supported (only nearest)",
                node.op_type
            );
        }
        if a.int_or("antialias", 0) != 0 || a.ints("axes").is_some() {
            bail!("Resize with antialias or axes is not supported");
        }
        // Scales / sizes: Upsample and opset-10 Resize take scales as input 1; later Resize
        // takes (roi, scales, sizes) as inputs 1..3.
        let (scales, sizes) = if node.op_type == "Upsample" || self.opset < 11 {
            match self.opt(node, 1)? {
                Some(t) => (Some(self.floats(t)?), None),
                None => (
                    a.ints("scales")
                        .map(|v| v.iter().map(|&x| x as f32).collect()),
                    None,
                ),
            }
        } else {
            let sc = match self.opt(node, 2)? {
                Some(t) if self.g.tensors[t].elems() > 0 => Some(self.floats(t)?),
                _ => None,
            };
            let sz = match self.opt(node, 3)? {
                Some(t) if self.g.tensors[t].elems() > 0 => Some(self.ints(t)?),
                _ => None,
            };
            (sc, sz)
        };
        let r = xs.len();
        let (out, scale): (Vec<usize>, Vec<f32>) = match (scales, sizes) {
            (_, Some(sz)) if sz.len() == r => {
                let o: Vec<usize> = sz.iter().map(|&v| v.max(0) as usize).collect();
                let sc = o
                    .iter()
                    .zip(&xs)
                    .map(|(&o, &i)| o as f32 / i.max(1) as f32)
                    .collect();
                (o, sc)
            }
            (Some(sc), _) if sc.len() == r => {
                let o = sc
                    .iter()
                    .zip(&xs)
                    .map(|(&s, &i)| (i as f32 * s).floor().max(0.0) as usize)
                    .collect();
                (o, sc)
            }
            _ => bail!("{} needs scales or sizes for all {r} axes", node.op_type),
        };
        let ctm = a
            .string("coordinate_transformation_mode")
            .unwrap_or_else(|| {
                if node.op_type == "Upsample" || self.opset < 11 {
                    "asymmetric".into()
                } else {
                    "half_pixel".into()
                }
            });
        let legacy = node.op_type == "Upsample" || self.opset < 11;
        let nearest = a.string("nearest_mode").unwrap_or_else(|| {
            if legacy {
                "floor".into()
            } else {
                "round_prefer_floor".into()
            }
        });
        let mut cur = x;
        for k in 0..r {
            if out[k] == xs[k] && scale[k] == 1.0 {
                continue;
            }
            let (len_in, len_out, s) = (xs[k], out[k], scale[k]);
            let mut idx = Vec::with_capacity(len_out);
            for i in 0..len_out {
                let xi = i as f32;
                let orig = match ctm.as_str() {
                    "half_pixel" => (xi + 0.5) / s - 0.5,
                    "pytorch_half_pixel" => {
                        if len_out > 1 {
                            (xi + 0.5) / s - 0.5
                        } else {
                            0.0
                        }
                    }
                    "align_corners" => {
                        if len_out > 1 {
                            xi * (len_in as f32 - 1.0) / (len_out as f32 - 1.0)
                        } else {
                            0.0
                        }
                    }
                    "asymmetric" => xi / s,
                    "tf_half_pixel_for_nn" => (xi + 0.5) / s,
                    m => bail!("coordinate_transformation_mode {m:?} is not supported"),
                };
                let v = match nearest.as_str() {
                    "round_prefer_floor" => {
                        if orig.fract() == 0.5 || orig.fract() == -0.5 {
                            orig.floor()
                        } else {
                            orig.round()
                        }
                    }
                    "round_prefer_ceil" => {
                        if orig.fract() == 0.5 || orig.fract() == -0.5 {
                            orig.ceil()
                        } else {
                            orig.round()
                        }
                    }
                    "floor" => orig.floor(),
                    "ceil" => orig.ceil(),
                    m => bail!("nearest_mode {m:?} is not supported"),
                };
                idx.push((v.max(0.0) as i64).min(len_in as i64 - 1).max(0));
            }
            let it = self.g.add_const(
                format!("{}::idx{k}", node.name),
                DType::I64,
                vec![len_out],
                Data::from_i64(&idx),
            )?;
            let cs = self.shape(cur);
            let mut os = cs.clone();
            os[k] = len_out;
            let op = Op::Gather {
                outer: cs[..k].iter().product(),
                axis: cs[k],
                inner: cs[k + 1..].iter().product(),
            };
            let last = (k + 1..r).all(|j| out[j] == xs[j] && scale[j] == 1.0);
            let o = if last {
                self.new_out(node, 0, self.dtype(x), os)?
            } else {
                self.tmp(node, "resized", self.dtype(x), os)
            };
            self.g.emit(op, &[Some(cur), Some(it)], o, &node.name)?;
            cur = o;
        }
        if cur == x {
            return self.set_out(node, 0, x);
        }
        Ok(())
    }

    /// ScatterND on constants (e.g. attention masks built at export time) folds; on run-time
    /// tensors it is not supported.
    fn scatter_nd(&mut self, node: &pb::NodeProto, a: &Attrs<'_>) -> Result<()> {
        let (x, i, u) = (self.inp(node, 0)?, self.inp(node, 1)?, self.inp(node, 2)?);
        if a.string("reduction").is_some_and(|r| r != "none") {
            bail!("ScatterND with a reduction is not supported");
        }
        if !(self.g.is_const(x) && self.g.is_const(i) && self.g.is_const(u)) {
            bail!("ScatterND on run-time tensors is not supported (only constant inputs fold)");
        }
        let (xs, is) = (self.shape(x), self.shape(i));
        let idx = self.ints(i)?;
        let k = *is
            .last()
            .ok_or_else(|| anyhow!("ScatterND indices must have rank >= 1"))?;
        if k > xs.len() || self.dtype(x) != self.dtype(u) {
            bail!("ScatterND index depth {k} exceeds data rank {}", xs.len());
        }
        let es = self.dtype(x).size();
        let slice: usize = xs[k..].iter().product::<usize>() * es;
        let xst = strides_of(&xs);
        let mut data = self.g.value(x).cloned().unwrap_or_default();
        let upd = self.g.value(u).cloned().unwrap_or_default();
        let n = idx.len() / k.max(1);
        if upd.bytes().len() != n * slice {
            bail!("ScatterND updates have the wrong size");
        }
        for j in 0..n {
            let mut off = 0usize;
            for d in 0..k {
                let v = idx[j * k + d];
                let v = if v < 0 { v + xs[d] as i64 } else { v };
                if v < 0 || v >= xs[d] as i64 {
                    bail!(
                        "ScatterND index {} out of range for axis {d} of length {}",
                        idx[j * k + d],
                        xs[d]
                    );
                }
                off += v as usize * xst[d];
            }
            let at = off * es;
            data.bytes_mut()[at..at + slice]
                .copy_from_slice(&upd.bytes()[j * slice..(j + 1) * slice]);
        }
        let dt = self.dtype(x);
        self.const_out(node, dt, xs, data)
    }

    fn split(&mut self, node: &pb::NodeProto, a: &Attrs<'_>) -> Result<()> {
        let x = self.inp(node, 0)?;
        let xs = self.shape(x);
        let ax = norm_axis(a.int_or("axis", 0), xs.len())?;
        let n_out = node.output.len();
        let sizes: Vec<usize> = match self.opt(node, 1)? {
            Some(t) => self.ints(t)?.iter().map(|&v| v as usize).collect(),
            None => match a.ints("split") {
                Some(v) => v.iter().map(|&v| v as usize).collect(),
                None => {
                    let parts = a.int_or("num_outputs", n_out as i64) as usize;
                    let chunk = xs[ax].div_ceil(parts.max(1));
                    (0..parts)
                        .map(|i| chunk.min(xs[ax].saturating_sub(i * chunk)))
                        .collect()
                }
            },
        };
        if sizes.len() != n_out || sizes.iter().sum::<usize>() != xs[ax] {
            bail!(
                "Split sizes {sizes:?} do not match axis length {} and {n_out} outputs",
                xs[ax]
            );
        }
        let xst = strides_of(&xs);
        let src: Vec<isize> = xst.iter().map(|&v| v as isize).collect();
        let mut at = 0;
        for (i, &s) in sizes.iter().enumerate() {
            let mut os = xs.clone();
            os[ax] = s;
            let dst: Vec<isize> = strides_of(&os).iter().map(|&v| v as isize).collect();
            let op = make_copy(&os, at * xst[ax], &src, 0, &dst)?;
            let o = self.new_out(node, i, self.dtype(x), os)?;
            self.g.emit(op, &[Some(x)], o, &node.name)?;
            at += s;
        }
        Ok(())
    }

    fn slice(&mut self, node: &pb::NodeProto) -> Result<()> {
        let x = self.inp(node, 0)?;
        let xs = self.shape(x);
        let a = Attrs::new(node);
        let legacy = self.opt(node, 1)?.is_none();
        let (starts, ends) = if legacy {
            // Opset < 10: starts/ends/axes are attributes.
            (
                a.ints("starts")
                    .ok_or_else(|| anyhow!("Slice without starts"))?,
                a.ints("ends")
                    .ok_or_else(|| anyhow!("Slice without ends"))?,
            )
        } else {
            (
                self.ints(self.inp(node, 1)?)?,
                self.ints(self.inp(node, 2)?)?,
            )
        };
        let legacy_axes = if legacy { a.ints("axes") } else { None };
        let axes: Vec<usize> = match legacy_axes {
            Some(v) => v
                .iter()
                .map(|&ax| norm_axis(ax, xs.len()))
                .collect::<Result<_>>()?,
            None => match self.opt(node, 3)? {
                Some(t) => self
                    .ints(t)?
                    .iter()
                    .map(|&v| norm_axis(v, xs.len()))
                    .collect::<Result<_>>()?,
                None => (0..starts.len()).collect(),
            },
        };
        let steps = match self.opt(node, 4)? {
            Some(t) => self.ints(t)?,
            None => vec![1; starts.len()],
        };
        if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
            bail!("Slice starts/ends/axes/steps lengths differ");
        }
        let xst = strides_of(&xs);
        let mut os = xs.clone();
        let mut src: Vec<isize> = xst.iter().map(|&v| v as isize).collect();
        let mut off = 0usize;
        for i in 0..starts.len() {
            let (ax, step) = (axes[i], steps[i]);
            if step == 0 {
                bail!("Slice step 0");
            }
            let d = xs[ax] as i64;
            let fix = |v: i64| if v < 0 { v + d } else { v };
            let (s, e, len) = if step > 0 {
                let s = fix(starts[i]).clamp(0, d);
                let e = fix(ends[i]).clamp(0, d);
                (s, e, if e > s { (e - s + step - 1) / step } else { 0 })
            } else {
                let s = fix(starts[i]).clamp(-1, d - 1);
                let e = fix(ends[i]).clamp(-1, d - 1);
                (
                    s,
                    e,
                    if s > e {
                        (s - e + (-step) - 1) / (-step)
                    } else {
                        0
                    },
                )
            };
            let _ = e;
            os[ax] = len as usize;
            if len > 0 {
                off += s as usize * xst[ax];
            }
            src[ax] = xst[ax] as isize * step as isize;
        }
        let dst: Vec<isize> = strides_of(&os).iter().map(|&v| v as isize).collect();
        let op = make_copy(&os, off, &src, 0, &dst)?;
        let o = self.new_out(node, 0, self.dtype(x), os)?;
        self.g.emit(op, &[Some(x)], o, &node.name)
    }

    fn pad(&mut self, node: &pb::NodeProto, a: &Attrs<'_>) -> Result<()> {
        let x = self.inp(node, 0)?;
        let xs = self.shape(x);
        let r = xs.len();
        let pads = match self.opt(node, 1)? {
            Some(t) => self.ints(t)?,
            None => a.ints("pads").ok_or_else(|| anyhow!("Pad without pads"))?,
        };
        let axes: Vec<usize> = match self.opt(node, 3)? {
            Some(t) => self
                .ints(t)?
                .iter()
                .map(|&v| norm_axis(v, r))
                .collect::<Result<_>>()?,
            None => (0..r).collect(),
        };
        if pads.len() != 2 * axes.len() || r > MAX_RANK {
            bail!("Pad: {} pads for {} axes", pads.len(), axes.len());
        }
        let mut begin = [0isize; MAX_RANK];
        let mut end = [0i64; MAX_RANK];
        for (i, &ax) in axes.iter().enumerate() {
            begin[ax] = pads[i] as isize;
            end[ax] = pads[i + axes.len()];
        }
        let mode = match a.string("mode").as_deref().unwrap_or("constant") {
            "constant" => PadMode::Constant,
            "reflect" => PadMode::Reflect,
            "edge" => PadMode::Edge,
            m => bail!("Pad mode {m:?} is not supported"),
        };
        let dt = self.dtype(x);
        let value: u64 = match self.opt(node, 2)? {
            Some(t) => {
                let d = self
                    .g
                    .value(t)
                    .ok_or_else(|| anyhow!("Pad value must be constant"))?;
                let mut v = [0u8; 8];
                let n = dt.size().min(d.bytes().len());
                v[..n].copy_from_slice(&d.bytes()[..n]);
                u64::from_le_bytes(v)
            }
            None => match a.names().contains(&"value") {
                // Opset < 11: the fill value is a float attribute.
                true if dt == DType::F32 => a.float_or("value", 0.0).to_bits() as u64,
                _ => 0,
            },
        };
        let mut os = vec![];
        let mut in_dims = [0usize; MAX_RANK];
        let mut out_dims = [0usize; MAX_RANK];
        for k in 0..r {
            let o = xs[k] as i64 + begin[k] as i64 + end[k];
            if o < 0 {
                bail!("Pad crops more than axis {k} holds");
            }
            os.push(o as usize);
            in_dims[k] = xs[k];
            out_dims[k] = o as usize;
        }
        let op = Op::Pad {
            mode,
            rank: r,
            in_dims,
            out_dims,
            begin,
            value,
        };
        let o = self.new_out(node, 0, dt, os)?;
        self.g.emit(op, &[Some(x)], o, &node.name)
    }

    fn pool(&mut self, node: &pb::NodeProto, a: &Attrs<'_>) -> Result<()> {
        self.only_outputs(node, 1)?;
        let x = self.inp(node, 0)?;
        let xs = self.shape(x);
        if !(xs.len() == 3 || xs.len() == 4) {
            bail!("only 1-D and 2-D pooling is supported");
        }
        let ks: Vec<usize> = a
            .ints("kernel_shape")
            .ok_or_else(|| anyhow!("pool without kernel_shape"))?
            .iter()
            .map(|&v| v as usize)
            .collect();
        let sp = &xs[2..];
        if ks.len() != sp.len() || ks.contains(&0) {
            bail!("bad kernel_shape");
        }
        let (out_sp, st, dil, pads) = self.spatial(a, sp, &ks)?;
        let one_d = xs.len() == 3;
        let g = Pool2dGeom {
            planes: xs[0] * xs[1],
            h_in: if one_d { 1 } else { sp[0] },
            w_in: sp[sp.len() - 1],
            h_out: if one_d { 1 } else { out_sp[0] },
            w_out: out_sp[out_sp.len() - 1],
            kh: if one_d { 1 } else { ks[0] },
            kw: ks[ks.len() - 1],
            stride_h: if one_d { 1 } else { st[0] },
            stride_w: st[st.len() - 1],
            dil_h: if one_d { 1 } else { dil[0] },
            dil_w: dil[dil.len() - 1],
            pad_top: if one_d { 0 } else { pads[0] },
            pad_left: pads[pads.len() - 1],
        };
        let kind = if node.op_type == "MaxPool" {
            PoolKind::Max
        } else {
            let cip = a.int_or("count_include_pad", 0) != 0;
            if cip && a.int_or("ceil_mode", 0) != 0 {
                bail!("AveragePool with count_include_pad and ceil_mode together is not supported");
            }
            PoolKind::Avg {
                count_include_pad: cip,
            }
        };
        let mut os = vec![xs[0], xs[1]];
        os.extend(&out_sp);
        let o = self.new_out(node, 0, DType::F32, os)?;
        self.g
            .emit(Op::Pool2d { kind, g }, &[Some(x)], o, &node.name)
    }
}
