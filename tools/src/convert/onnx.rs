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

/// Static shape of a graph input, or an error naming the dynamic dimension.
pub fn static_shape(v: &pb::ValueInfoProto) -> Result<(DType, Vec<usize>)> {
    use pb::tensor_shape_proto::dimension::Value;
    use pb::type_proto::Value as TV;
    let Some(TV::TensorType(t)) = v.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        bail!("graph input {:?} is not a tensor", v.name)
    };
    let dtype = dtype_of(t.elem_type).with_context(|| format!("graph input {:?}", v.name))?;
    let shape = t
        .shape
        .as_ref()
        .ok_or_else(|| anyhow!("graph input {:?} has no shape", v.name))?;
    let mut dims = vec![];
    for d in &shape.dim {
        match &d.value {
            Some(Value::DimValue(x)) if *x >= 0 => dims.push(*x as usize),
            Some(Value::DimParam(p)) => bail!(
                "graph input {:?} has a dynamic dimension {p:?}; export with static shapes (mote plans memory ahead)",
                v.name
            ),
            _ => bail!("graph input {:?} has an unknown dimension; export with static shapes", v.name),
        }
    }
    Ok((dtype, dims))
}
