//! Minimal `.npy` (format 1.0/2.0/3.0) reading and writing for little-endian numeric arrays.

use anyhow::{anyhow, bail, Context, Result};
use mote::DType;
use std::path::Path;

/// An array read from or written to `.npy`.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<usize>,
    /// Little-endian element bytes, row-major.
    pub data: Vec<u8>,
}

fn descr(d: DType) -> &'static str {
    match d {
        DType::F32 => "<f4",
        DType::F16 => "<f2",
        DType::I8 => "|i1",
        DType::U8 => "|u1",
        DType::I32 => "<i4",
        DType::I64 => "<i8",
        DType::Bool => "|b1",
    }
}

/// Parses `.npy` bytes. float64 arrays are converted to float32.
pub fn parse(b: &[u8]) -> Result<Array> {
    if b.len() < 10 || &b[..6] != b"\x93NUMPY" {
        bail!("not a .npy file (bad magic)");
    }
    let major = b[6];
    let (hlen, start) = match major {
        1 => (u16::from_le_bytes([b[8], b[9]]) as usize, 10),
        2 | 3 => {
            if b.len() < 12 {
                bail!("truncated .npy header");
            }
            (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12)
        }
        v => bail!(".npy format version {v} is not supported"),
    };
    let header = b
        .get(start..start + hlen)
        .ok_or_else(|| anyhow!("truncated .npy header"))?;
    let header = std::str::from_utf8(header).context(".npy header is not text")?;
    let field = |key: &str| -> Result<&str> {
        let k = header
            .find(&format!("'{key}'"))
            .ok_or_else(|| anyhow!(".npy header has no {key}"))?;
        let rest = &header[k + key.len() + 2..];
        let colon = rest.find(':').ok_or_else(|| anyhow!("bad .npy header"))?;
        Ok(rest[colon + 1..].trim_start())
    };
    let d = field("descr")?;
    let d = d
        .strip_prefix('\'')
        .and_then(|s| s.split('\'').next())
        .ok_or_else(|| anyhow!("bad descr"))?;
    if field("fortran_order")?.starts_with("True") {
        bail!("Fortran-ordered .npy arrays are not supported");
    }
    let s = field("shape")?;
    let s = s
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| anyhow!("bad shape"))?;
    let shape: Vec<usize> = s
        .split(',')
        .map(|x| x.trim())
        .filter(|x| !x.is_empty())
        .map(|x| {
            x.parse::<usize>()
                .map_err(|_| anyhow!("bad shape entry {x:?}"))
        })
        .collect::<Result<_>>()?;
    let n: usize = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| anyhow!("shape overflows"))?;
    let body = &b[start + hlen..];
    let (dtype, data) = match d {
        "<f8" => {
            let raw = body
                .get(..n * 8)
                .ok_or_else(|| anyhow!(".npy data is shorter than its shape"))?;
            let v: Vec<u8> = raw
                .chunks_exact(8)
                .flat_map(|c| {
                    (f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32).to_le_bytes()
                })
                .collect();
            (DType::F32, v)
        }
        _ => {
            let dt = match d {
                "<f4" => DType::F32,
                "<f2" => DType::F16,
                "|i1" | "<i1" => DType::I8,
                "|u1" | "<u1" => DType::U8,
                "<i4" => DType::I32,
                "<i8" => DType::I64,
                "|b1" | "<b1" => DType::Bool,
                other => bail!(
                    ".npy element type {other:?} is not supported (use float32 or an integer type)"
                ),
            };
            let raw = body
                .get(..n * dt.size())
                .ok_or_else(|| anyhow!(".npy data is shorter than its shape"))?;
            (dt, raw.to_vec())
        }
    };
    Ok(Array { dtype, shape, data })
}

/// Reads a `.npy` file.
pub fn read(path: &Path) -> Result<Array> {
    let b = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&b).with_context(|| format!("in {}", path.display()))
}

/// Encodes an array as `.npy` 1.0.
pub fn encode(a: &Array) -> Vec<u8> {
    let shape = match a.shape.len() {
        0 => "()".to_string(),
        1 => format!("({},)", a.shape[0]),
        _ => format!(
            "({})",
            a.shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut h = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}",
        descr(a.dtype)
    );
    let total = 10 + h.len() + 1;
    h.push_str(&" ".repeat((64 - total % 64) % 64));
    h.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(&a.data);
    out
}

/// Writes a `.npy` file.
pub fn write(path: &Path, a: &Array) -> Result<()> {
    std::fs::write(path, encode(a)).with_context(|| format!("cannot write {}", path.display()))
}
