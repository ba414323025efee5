//! The converter's graph: tensors (constant, arena, or views of another tensor) and the mote
//! steps that compute them. Lowering emits steps here; every step whose operands are all
//! constant is evaluated on the spot with the runtime's own kernels (constant folding).

use anyhow::{anyhow, bail, Result};
use mote::ops::{Op, Operand};
use mote::DType;

/// Index of a tensor in [`Graph::tensors`].
pub type TId = usize;

/// Owned, 8-byte aligned tensor bytes.
#[derive(Clone, Debug, Default)]
pub struct Data {
    words: Vec<u64>,
    len: usize,
}

impl Data {
    /// Zeroed bytes.
    pub fn zeroed(len: usize) -> Data {
        Data {
            words: vec![0; len.div_ceil(8)],
            len,
        }
    }
    /// Copies bytes.
    pub fn from_bytes(b: &[u8]) -> Data {
        let mut d = Data::zeroed(b.len());
        d.bytes_mut().copy_from_slice(b);
        d
    }
    /// From f32 values.
    pub fn from_f32(v: &[f32]) -> Data {
        Data::from_bytes(mote::view::bytes_of(v))
    }
    /// From i64 values.
    pub fn from_i64(v: &[i64]) -> Data {
        Data::from_bytes(mote::view::bytes_of(v))
    }
    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        &mote::view::bytes_of(&self.words)[..self.len]
    }
    /// The bytes, mutable.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        let len = self.len;
        &mut mote::view::bytes_of_mut(&mut self.words)[..len]
    }
    /// As f32 values.
    pub fn f32s(&self) -> Result<&[f32]> {
        Ok(mote::view::cast::<f32>(self.bytes())?)
    }
    /// As i64 values.
    pub fn i64s(&self) -> Result<&[i64]> {
        Ok(mote::view::cast::<i64>(self.bytes())?)
    }
}

/// A tensor of the graph.
#[derive(Clone, Debug)]
pub struct Tensor {
    /// ONNX name (or a derived name for tensors the converter makes).
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<usize>,
    /// Value, when known at conversion time.
    pub value: Option<Data>,
    /// This tensor is a reshaped view of another tensor's storage (Reshape, Squeeze, ...).
    pub alias_of: Option<TId>,
}

impl Tensor {
    /// Number of elements.
    pub fn elems(&self) -> usize {
        self.shape.iter().product()
    }
    /// Byte size.
    pub fn bytes(&self) -> usize {
        self.elems() * self.dtype.size()
    }
}

/// One step: an op, its operands and the tensor it writes.
#[derive(Clone, Debug)]
pub struct StepDesc {
    /// The op.
    pub op: Op,
    /// Operands.
    pub inputs: [Option<TId>; 4],
    /// Output tensor.
    pub output: TId,
    /// The ONNX node this step comes from.
    pub origin: String,
}

/// The graph under conversion.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    /// All tensors.
    pub tensors: Vec<Tensor>,
    /// Steps in execution order.
    pub steps: Vec<StepDesc>,
    /// Graph inputs.
    pub inputs: Vec<TId>,
    /// Graph outputs.
    pub outputs: Vec<TId>,
    /// ONNX names of the graph outputs (a tensor may be reachable under another name).
    pub output_names: Vec<String>,
}

impl Graph {
    /// Adds a tensor whose value is computed at run time.
    pub fn add(&mut self, name: impl Into<String>, dtype: DType, shape: Vec<usize>) -> TId {
        self.tensors.push(Tensor {
            name: name.into(),
            dtype,
            shape,
            value: None,
            alias_of: None,
        });
        self.tensors.len() - 1
    }

    /// Adds a constant.
    pub fn add_const(
        &mut self,
        name: impl Into<String>,
        dtype: DType,
        shape: Vec<usize>,
        data: Data,
    ) -> Result<TId> {
        let n: usize = shape.iter().product();
        if data.bytes().len() != n * dtype.size() {
            bail!(
                "internal: constant data length {} does not match shape {:?} of {}",
                data.bytes().len(),
                shape,
                dtype.name()
            );
        }
        self.tensors.push(Tensor {
            name: name.into(),
            dtype,
            shape,
            value: Some(data),
            alias_of: None,
        });
        Ok(self.tensors.len() - 1)
    }

    /// f32 constant.
    pub fn const_f32(
        &mut self,
        name: impl Into<String>,
        shape: Vec<usize>,
        v: &[f32],
    ) -> Result<TId> {
        self.add_const(name, DType::F32, shape, Data::from_f32(v))
    }

    /// A view of `of` with another shape (same element count). Constants are copied instead.
    pub fn alias(&mut self, name: impl Into<String>, of: TId, shape: Vec<usize>) -> Result<TId> {
        let src = &self.tensors[of];
        if shape.iter().product::<usize>() != src.elems() {
            bail!(
                "reshape of {:?} ({} elements) to {:?}",
                src.shape,
                src.elems(),
                shape
            );
        }
        let dtype = src.dtype;
        if let Some(v) = src.value.clone() {
            return self.add_const(name, dtype, shape, v);
        }
        let root = self.root(of);
        self.tensors.push(Tensor {
            name: name.into(),
            dtype,
            shape,
            value: None,
            alias_of: Some(root),
        });
        Ok(self.tensors.len() - 1)
    }

    /// The tensor whose storage `t` uses.
    pub fn root(&self, t: TId) -> TId {
        let mut t = t;
        while let Some(a) = self.tensors[t].alias_of {
            t = a;
        }
        t
    }

    /// Value of a constant tensor.
    pub fn value(&self, t: TId) -> Option<&Data> {
        self.tensors[t].value.as_ref()
    }

    /// The values of a float32 constant.
    pub fn f32_values(&self, t: TId) -> Result<Vec<f32>> {
        let d = self
            .value(t)
            .ok_or_else(|| anyhow!("internal: {:?} is not a constant", self.tensors[t].name))?;
        Ok(d.f32s()?.to_vec())
    }

    /// Whether `t` is known at conversion time.
    pub fn is_const(&self, t: TId) -> bool {
        self.tensors[t].value.is_some()
    }

    /// Emits one step; folds it if every operand is constant.
    pub fn emit(
        &mut self,
        op: Op,
        inputs: &[Option<TId>],
        output: TId,
        origin: &str,
    ) -> Result<()> {
        self.emit_group(&[(op, inputs.to_vec())], output, origin)
    }

    /// Emits steps that together write `output` (e.g. one copy per Concat input). Folds them all
    /// when every operand of every step is constant.
    pub fn emit_group(
        &mut self,
        steps: &[(Op, Vec<Option<TId>>)],
        output: TId,
        origin: &str,
    ) -> Result<()> {
        let mut ins_fixed = Vec::with_capacity(steps.len());
        for (op, ins) in steps {
            if ins.len() > 4 {
                bail!("internal: more than 4 operands");
            }
            let mut a = [None; 4];
            for (d, s) in a.iter_mut().zip(ins) {
                *d = *s;
            }
            let mut operands = [None; 4];
            for (d, s) in operands.iter_mut().zip(a.iter()) {
                *d = s.map(|t| Operand {
                    dtype: self.tensors[t].dtype,
                    elems: self.tensors[t].elems(),
                });
            }
            let out = &self.tensors[output];
            op.validate(
                mote_targets::profile::LAYOUT_REFERENCE,
                &operands,
                &Operand {
                    dtype: out.dtype,
                    elems: out.elems(),
                },
            )
            .map_err(|e| anyhow!("internal: lowered {} step is inconsistent: {e}", op.name()))?;
            ins_fixed.push((*op, a));
        }
        let all_const = ins_fixed
            .iter()
            .all(|(_, a)| a.iter().flatten().all(|&t| self.is_const(t)));
        if all_const {
            let mut data = Data::zeroed(self.tensors[output].bytes());
            let dtype = self.tensors[output].dtype;
            for (op, a) in &ins_fixed {
                self.eval_op(op, a, |t| self.value(t), dtype, data.bytes_mut())
                    .map_err(|e| anyhow!("constant folding failed in {origin}: {e}"))?;
            }
            self.tensors[output].value = Some(data);
        } else {
            for (op, inputs) in ins_fixed {
                self.steps.push(StepDesc {
                    op,
                    inputs,
                    output,
                    origin: origin.to_string(),
                });
            }
        }
        Ok(())
    }
}

impl Graph {
    /// Runs `op` with the runtime's reference kernels into `out` (of `out_dtype`), reading
    /// operand `t` from `value(t)`: constant folding, and probing a chain of steps on chosen
    /// inputs.
    pub fn eval_op<'v>(
        &self,
        op: &Op,
        inputs: &[Option<TId>; 4],
        value: impl Fn(TId) -> Option<&'v Data>,
        out_dtype: DType,
        out: &mut [u8],
    ) -> Result<()> {
        let mut srcs: [Option<(DType, &[u8])>; 4] = [None; 4];
        for (s, t) in srcs.iter_mut().zip(inputs.iter()) {
            if let Some(t) = *t {
                let d =
                    value(t).ok_or_else(|| anyhow!("no value for {:?}", self.tensors[t].name))?;
                *s = Some((self.tensors[t].dtype, d.bytes()));
            }
        }
        mote::exec::eval(mote::exec::Ctx::REFERENCE, op, &srcs, out_dtype, out)
            .map_err(|e| anyhow!("{e:?}"))
    }
}

/// Row-major strides of `shape`, in elements.
pub fn strides_of(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}
