//! Reading ONNX: the protobuf (through `tract-onnx`), tensors including external data, and a
//! small attribute API for lowering.

use anyhow::{anyhow, bail, Context, Result};
use mote::DType;
use std::path::Path;
use tract_onnx::pb;
use tract_onnx::prelude::Framework;

use super::ir::Data;

/// Parses the model protobuf.
pub fn load_proto(path: &Path) -> Result<pb::ModelProto> {
    tract_onnx::onnx()
        .proto_model_for_path(path)
        .map_err(|e| anyhow!("cannot read ONNX model {}: {e:#}", path.display()))
}

/// Maps an ONNX element type to a mote dtype.
pub fn dtype_of(onnx_type: i32) -> Result<DType> {
    use pb::tensor_proto::DataType as T;
    Ok(
        match T::try_from(onnx_type)
            .map_err(|_| anyhow!("unknown ONNX element type {onnx_type}"))?
        {
            T::Float => DType::F32,
            T::Int64 => DType::I64,
            T::Int32 => DType::I32,
            T::Int8 => DType::I8,
            T::Uint8 => DType::U8,
            T::Bool => DType::Bool,
            T::Float16 => DType::F16,
            T::Double => DType::F32,
            other => bail!("ONNX element type {other:?} is not supported"),
        },
    )
}

/// Loads a tensor (inline or external data) as (dtype, shape, bytes). Doubles become f32.
pub fn load_tensor(t: &pb::TensorProto, model_dir: &Path) -> Result<(DType, Vec<usize>, Data)> {
    let resolver = tract_onnx::data_resolver::default();
    let dir = model_dir
        .to_str()
        .ok_or_else(|| anyhow!("model path is not UTF-8"))?;
    let tt = tract_onnx::tensor::load_tensor(&*resolver, t, Some(dir))
        .map_err(|e| anyhow!("cannot load tensor {:?}: {e:#}", t.name))?;
    let shape = tt.shape().to_vec();
    use tract_onnx::prelude::DatumType as D;
    let (dtype, data) = match tt.datum_type() {
        D::F32 => (DType::F32, Data::from_bytes(tt.as_bytes())),
        D::F64 => {
            let c = tt.cast_to::<f32>().map_err(|e| anyhow!("{e}"))?;
            (DType::F32, Data::from_bytes(c.as_bytes()))
        }
        D::I64 => (DType::I64, Data::from_bytes(tt.as_bytes())),
        D::I32 => (DType::I32, Data::from_bytes(tt.as_bytes())),
        D::I8 => (DType::I8, Data::from_bytes(tt.as_bytes())),
        D::U8 => (DType::U8, Data::from_bytes(tt.as_bytes())),
        D::Bool => (DType::Bool, Data::from_bytes(tt.as_bytes())),
        D::F16 => (DType::F16, Data::from_bytes(tt.as_bytes())),
        other => bail!(
            "tensor {:?} has element type {other:?}, which mote does not support",
            t.name
        ),
    };
    Ok((dtype, shape, data))
}

/// A node's attributes, by name.
#[derive(Debug)]
pub struct Attrs<'a> {
    node: &'a pb::NodeProto,
}

impl<'a> Attrs<'a> {
    /// Wraps a node.
    pub fn new(node: &'a pb::NodeProto) -> Self {
        Attrs { node }
    }
    fn get(&self, name: &str) -> Option<&'a pb::AttributeProto> {
        self.node.attribute.iter().find(|a| a.name == name)
    }
    /// Integer attribute.
    pub fn int(&self, name: &str) -> Option<i64> {
        self.get(name).map(|a| a.i)
    }
    /// Integer attribute with a default.
    pub fn int_or(&self, name: &str, d: i64) -> i64 {
        self.int(name).unwrap_or(d)
    }
    /// Float attribute with a default.
    pub fn float_or(&self, name: &str, d: f32) -> f32 {
        self.get(name).map(|a| a.f).unwrap_or(d)
    }
    /// Integer list attribute.
    pub fn ints(&self, name: &str) -> Option<Vec<i64>> {
        self.get(name).map(|a| a.ints.clone())
    }
    /// String attribute.
    pub fn string(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(|a| String::from_utf8_lossy(&a.s).into_owned())
    }
    /// Tensor attribute.
    pub fn tensor(&self, name: &str) -> Option<&'a pb::TensorProto> {
        self.get(name).and_then(|a| a.t.as_ref())
    }
    /// Names of all attributes present.
    pub fn names(&self) -> Vec<&'a str> {
        self.node
            .attribute
            .iter()
            .map(|a| a.name.as_str())
            .collect()
    }
}

/// One declared dimension of a graph input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    Static(usize),
    /// A symbolic (`dim_param`) or unknown size; the string is the symbol, or `?` if none.
    Dynamic(String),
}

impl std::fmt::Display for Dim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dim::Static(d) => write!(f, "{d}"),
            Dim::Dynamic(p) => write!(f, "{p}"),
        }
    }
}

fn dims_str(dims: &[Dim]) -> String {
    let v: Vec<String> = dims.iter().map(Dim::to_string).collect();
    format!("[{}]", v.join(", "))
}

/// Element type and declared dimensions of a graph input (`None`: no shape, not even a rank).
pub fn declared_shape(v: &pb::ValueInfoProto) -> Result<(DType, Option<Vec<Dim>>)> {
    use pb::tensor_shape_proto::dimension::Value;
    use pb::type_proto::Value as TV;
    let Some(TV::TensorType(t)) = v.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        bail!("graph input {:?} is not a tensor", v.name)
    };
    let dtype = dtype_of(t.elem_type).with_context(|| format!("graph input {:?}", v.name))?;
    let dims = t.shape.as_ref().map(|shape| {
        shape
            .dim
            .iter()
            .map(|d| match &d.value {
                Some(Value::DimValue(x)) if *x >= 0 => Dim::Static(*x as usize),
                Some(Value::DimParam(p)) if !p.is_empty() => Dim::Dynamic(p.clone()),
                _ => Dim::Dynamic("?".into()),
            })
            .collect()
    });
    Ok((dtype, dims))
}

/// Static shape of a graph input: its declared shape, or `shape_override` where one is given.
///
/// An override must have the declared rank and agree with every declared static dimension; it
/// fixes the dynamic ones (and gives the whole shape of an input declared without one). A
/// dynamic dimension without an override is an error that names the `--input-shape` flag to
/// pass (mote plans memory ahead, so every shape must be known).
pub fn static_shape(
    v: &pb::ValueInfoProto,
    shape_override: Option<&[usize]>,
) -> Result<(DType, Vec<usize>)> {
    let (dtype, dims) = declared_shape(v)?;
    let Some(dims) = dims else {
        return match shape_override {
            Some(o) if o.iter().all(|&x| x > 0) => Ok((dtype, o.to_vec())),
            Some(o) => bail!(
                "--input-shape {}: the override {o:?} has a 0 dimension (sizes must be at least 1)",
                v.name
            ),
            None => bail!(
                "graph input {:?} has no declared shape; pass --input-shape {}=D0,D1,... or export with static shapes",
                v.name,
                v.name
            ),
        };
    };
    if let Some(o) = shape_override {
        if o.len() != dims.len() {
            bail!(
                "--input-shape {}: graph input {:?} has rank {} (declared shape {}), the override {o:?} has rank {}",
                v.name,
                v.name,
                dims.len(),
                dims_str(&dims),
                o.len()
            );
        }
        for (k, (d, &x)) in dims.iter().zip(o).enumerate() {
            if x == 0 {
                bail!(
                    "--input-shape {}: dimension {k} of the override {o:?} is 0 (sizes must be at least 1)",
                    v.name
                );
            }
            if let Dim::Static(s) = d {
                if *s != x {
                    bail!(
                        "--input-shape {}: graph input {:?} has declared shape {}, the override {o:?} differs in dimension {k} ({x} vs the static {s})",
                        v.name,
                        v.name,
                        dims_str(&dims)
                    );
                }
            }
        }
        return Ok((dtype, o.to_vec()));
    }
    let mut shape = vec![];
    for d in &dims {
        match d {
            Dim::Static(x) => shape.push(*x),
            Dim::Dynamic(p) => {
                let spec = |fill: Option<&str>| -> String {
                    let parts: Vec<String> = dims
                        .iter()
                        .map(|d| match (d, fill) {
                            (Dim::Static(x), _) => x.to_string(),
                            (Dim::Dynamic(_), Some(f)) => f.to_string(),
                            (Dim::Dynamic(p), None) => p.clone(),
                        })
                        .collect();
                    format!("--input-shape {}={}", v.name, parts.join(","))
                };
                let mut names: Vec<&str> = vec![];
                for d in &dims {
                    if let Dim::Dynamic(p) = d {
                        if !names.contains(&p.as_str()) {
                            names.push(p);
                        }
                    }
                }
                bail!(
                    "graph input {:?} has a dynamic dimension {p:?} (declared shape {}); mote plans memory ahead and needs static shapes: pass {} with {} replaced by the size to convert for (e.g. {}), or export with static shapes",
                    v.name,
                    dims_str(&dims),
                    spec(None),
                    names.join(", "),
                    spec(Some("1"))
                )
            }
        }
    }
    Ok((dtype, shape))
}
