//! Shared helpers for the integration tests: convert, run, compare against stored references.

use anyhow::{anyhow, bail, Context, Result};
use mote::{AlignedBytes, Model, OwnedSession};
use mote_tools::convert::{convert, Options};
use mote_tools::npy::{self, Array};
use std::path::{Path, PathBuf};

/// The workspace root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The shared conformance fixtures (`../shared/fixtures` beside the checkout), if present.
pub fn shared_fixtures() -> Option<PathBuf> {
    let p = repo_root().join("../shared/fixtures");
    p.is_dir().then_some(p)
}

/// Converts an ONNX file to `.mote` bytes in an aligned buffer.
pub fn convert_file(onnx: &Path) -> Result<AlignedBytes> {
    let c = convert(onnx, &Options::default())?;
    Ok(AlignedBytes::copy_from(&c.bytes))
}

/// Runs a model once on the given inputs (in graph-input order) and returns every output.
pub fn run_model(model: &Model<'_>, inputs: &[Array]) -> Result<Vec<Array>> {
    let mut owned = OwnedSession::new(model)?;
    let mut s = owned.session()?;
    if inputs.len() != model.input_count() {
        bail!(
            "{} inputs given, the model has {}",
            inputs.len(),
            model.input_count()
        );
    }
    for (i, a) in inputs.iter().enumerate() {
        let t = model.input(i)?;
        if a.shape != t.shape() || a.dtype != t.dtype {
            bail!(
                "input {i} is {:?} {:?}, model wants {:?} {:?}",
                a.dtype,
                a.shape,
                t.dtype,
                t.shape()
            );
        }
        s.input_bytes_mut(i)?.copy_from_slice(&a.data);
    }
    s.run()?;
    (0..model.output_count())
        .map(|i| {
            let t = model.output(i)?;
            Ok(Array {
                dtype: t.dtype,
                shape: t.shape().to_vec(),
                data: s.output_bytes(i)?.to_vec(),
            })
        })
        .collect()
}

/// Float32 values of an array (integers converted).
pub fn as_f64(a: &Array) -> Vec<f64> {
    match a.dtype {
        mote::DType::F32 => a
            .data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
            .collect(),
        mote::DType::I64 => a
            .data
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f64)
            .collect(),
        mote::DType::I32 => a
            .data
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
            .collect(),
        _ => a.data.iter().map(|&b| b as i8 as f64).collect(),
    }
}

/// Max absolute difference, after checking shapes (and exact equality for integer outputs).
/// Fails when the difference exceeds `rel × max(1, max|ref|)`.
pub fn compare(got: &Array, want: &Array, rel: f64) -> Result<f64> {
    if got.shape != want.shape {
        bail!("shape {:?} != reference {:?}", got.shape, want.shape);
    }
    let (g, w) = (as_f64(got), as_f64(want));
    let scale = w.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    let mut max = 0.0f64;
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        let d = if a.is_nan() && b.is_nan() {
            0.0
        } else {
            (a - b).abs()
        };
        if d.is_nan() || d > rel * scale {
            bail!(
                "element {i}: got {a}, reference {b} (tolerance {})",
                rel * scale
            );
        }
        max = max.max(d);
    }
    let integer = |d: mote::DType| {
        matches!(
            d,
            mote::DType::I64
                | mote::DType::I32
                | mote::DType::I8
                | mote::DType::U8
                | mote::DType::Bool
        )
    };
    if (integer(got.dtype) || integer(want.dtype)) && max != 0.0 {
        bail!("integer output differs (max abs diff {max})");
    }
    Ok(max)
}

/// Reads `dir/prefix_<i>.npy` for i = 0.. until one is missing.
pub fn read_numbered(dir: &Path, prefix: &str) -> Result<Vec<Array>> {
    let mut v = vec![];
    for i in 0.. {
        let p = dir.join(format!("{prefix}_{i}.npy"));
        if !p.exists() {
            break;
        }
        v.push(npy::read(&p).with_context(|| format!("reading {}", p.display()))?);
    }
    if v.is_empty() {
        return Err(anyhow!("no {prefix}_0.npy in {}", dir.display()));
    }
    Ok(v)
}
