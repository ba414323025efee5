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
    convert_file_for(onnx, "generic")
}

/// Converts an ONNX file for a target profile (which picks the packed weight layout).
pub fn convert_file_for(onnx: &Path, target: &str) -> Result<AlignedBytes> {
    let c = convert(
        onnx,
        &Options {
            target: target.into(),
            ..Options::default()
        },
    )?;
    Ok(AlignedBytes::copy_from(&c.bytes))
}

/// Every kernel set this CPU supports, the reference first.
pub fn available_isas() -> Vec<mote_targets::Isa> {
    mote_targets::IsaKind::ALL
        .into_iter()
        .filter_map(mote_targets::Isa::new)
        .collect()
}

/// Runs a model once on the given inputs (in graph-input order) and returns every output.
pub fn run_model(model: &Model<'_>, inputs: &[Array]) -> Result<Vec<Array>> {
    run_model_isa(model, inputs, mote::exec::default_isa()?)
}

/// [`run_model`] on an explicit kernel set.
pub fn run_model_isa(
    model: &Model<'_>,
    inputs: &[Array],
    isa: mote_targets::Isa,
) -> Result<Vec<Array>> {
    run_model_with(model, inputs, isa, None)
}

/// [`run_model_isa`], splitting steps over `pool` when given.
pub fn run_model_with(
    model: &Model<'_>,
    inputs: &[Array],
    isa: mote_targets::Isa,
    pool: Option<&mote::ThreadPool>,
) -> Result<Vec<Array>> {
    let mut owned = OwnedSession::new(model)?;
    let mut s = owned.session_with_isa(isa)?;
    if let Some(p) = pool {
        s = s.with_pool(p);
    }
    if s.isa() != isa {
        bail!("session runs {} instead of {}", s.isa().name(), isa.name());
    }
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

/// Converts `dir/model.onnx` (for `target`), runs it on `dir/input_<i>.npy` with kernel set
/// `isa` and compares every output with `dir/output_<i>.npy` within `rel`; returns the worst
/// absolute difference.
pub fn check_case_dir(dir: &Path, target: &str, isa: mote_targets::Isa, rel: f64) -> Result<f64> {
    let bytes = convert_file_for(&dir.join("model.onnx"), target)?;
    let model = Model::from_bytes(bytes.as_slice())?;
    let inputs = read_numbered(dir, "input")?;
    let want = read_numbered(dir, "output")?;
    let got = run_model_isa(&model, &inputs, isa)?;
    if got.len() != want.len() {
        bail!("{} outputs, {} references", got.len(), want.len());
    }
    let mut worst = 0.0f64;
    for (k, (g, w)) in got.iter().zip(&want).enumerate() {
        worst = worst.max(compare(g, w, rel).map_err(|e| anyhow!("output {k}: {e}"))?);
    }
    Ok(worst)
}

/// Every case listed in `dir/cases.txt` (one directory each, see [`check_case_dir`]) on the
/// default kernel set, generic weight layout. Returns the number of cases and the failures.
pub fn check_fixture_dir(dir: &Path, rel: f64) -> Result<(usize, Vec<String>)> {
    let cases = std::fs::read_to_string(dir.join("cases.txt"))
        .with_context(|| format!("reading {}", dir.join("cases.txt").display()))?;
    let isa = mote::exec::default_isa()?;
    let mut failures = vec![];
    let mut n = 0;
    for case in cases.lines().map(str::trim).filter(|c| !c.is_empty()) {
        n += 1;
        match check_case_dir(&dir.join(case), "generic", isa, rel) {
            Ok(d) => println!("{case}: ok (max abs diff {d:.2e})"),
            Err(e) => failures.push(format!("{case}: {e:#}")),
        }
    }
    Ok((n, failures))
}

/// CRC-32 (IEEE 802.3, reflected, as zip uses).
fn crc32(data: &[u8]) -> u32 {
    let mut table = [0u32; 256];
    for (i, t) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
        *t = c;
    }
    !data.iter().fold(!0u32, |c, &b| {
        table[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8)
    })
}

/// Parses the members of an `.npz` archive (a zip of `NAME.npy` files, as `np.savez` writes
/// it), in archive order, named without the `.npy` suffix.
///
/// Only what `np.savez` produces is read: members stored uncompressed (method 0), sizes in the
/// local file headers (zip64 extra field included; numpy forces zip64). A compressed member
/// (`np.savez_compressed`), an encrypted one, or one whose sizes are deferred to a data
/// descriptor is a clear error. Each member's CRC-32 is checked.
pub fn parse_npz(b: &[u8]) -> Result<Vec<(String, Array)>> {
    const LOCAL: u32 = 0x0403_4b50;
    const CENTRAL: u32 = 0x0201_4b50;
    const END: u32 = 0x0605_4b50;
    let u16_at = |p: usize| -> Result<u16> {
        b.get(p..p + 2)
            .map(|s| u16::from_le_bytes([s[0], s[1]]))
            .ok_or_else(|| anyhow!("truncated zip archive (at byte {p})"))
    };
    let u32_at = |p: usize| -> Result<u32> {
        b.get(p..p + 4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
            .ok_or_else(|| anyhow!("truncated zip archive (at byte {p})"))
    };
    let mut out = vec![];
    let mut p = 0usize;
    loop {
        let sig = u32_at(p)?;
        if sig == CENTRAL || sig == END {
            break;
        }
        if sig != LOCAL {
            bail!(
                "not a zip archive, or a damaged one: no local file header at byte {p} (signature {sig:#010x})"
            );
        }
        let flags = u16_at(p + 6)?;
        let method = u16_at(p + 8)?;
        let crc = u32_at(p + 14)?;
        let mut stored_size = u32_at(p + 18)? as u64;
        let mut plain_size = u32_at(p + 22)? as u64;
        let name_len = u16_at(p + 26)? as usize;
        let extra_len = u16_at(p + 28)? as usize;
        let name_at = p + 30;
        let name = b
            .get(name_at..name_at + name_len)
            .ok_or_else(|| anyhow!("truncated zip archive (member name at byte {name_at})"))?;
        let name = String::from_utf8_lossy(name).into_owned();
        let extra = b
            .get(name_at + name_len..name_at + name_len + extra_len)
            .ok_or_else(|| anyhow!("truncated zip archive (extra field of {name:?})"))?;
        if flags & 1 != 0 {
            bail!("zip member {name:?} is encrypted");
        }
        if method != 0 {
            bail!(
                "zip member {name:?} is compressed (method {method}{}); only stored members (method 0, np.savez) are read",
                if method == 8 { ", deflate: np.savez_compressed" } else { "" }
            );
        }
        if flags & 8 != 0 {
            bail!(
                "zip member {name:?} defers its sizes to a data descriptor; only archives with sizes in the local headers (np.savez) are read"
            );
        }
        if stored_size == 0xFFFF_FFFF || plain_size == 0xFFFF_FFFF {
            // Zip64 extended information (header id 1): the 8-byte uncompressed then compressed
            // sizes, each present when its 32-bit field is 0xFFFFFFFF (APPNOTE 4.5.3).
            let mut q = 0usize;
            let mut found = false;
            while q + 4 <= extra.len() {
                let id = u16::from_le_bytes([extra[q], extra[q + 1]]);
                let len = u16::from_le_bytes([extra[q + 2], extra[q + 3]]) as usize;
                let body = extra
                    .get(q + 4..q + 4 + len)
                    .ok_or_else(|| anyhow!("zip member {name:?}: truncated extra field"))?;
                if id == 1 {
                    let mut r = 0usize;
                    let mut next = || -> Result<u64> {
                        let v = body
                            .get(r..r + 8)
                            .map(|s| u64::from_le_bytes(s.try_into().unwrap_or([0; 8])))
                            .ok_or_else(|| anyhow!("zip member {name:?}: short zip64 field"));
                        r += 8;
                        v
                    };
                    if plain_size == 0xFFFF_FFFF {
                        plain_size = next()?;
                    }
                    if stored_size == 0xFFFF_FFFF {
                        stored_size = next()?;
                    }
                    found = true;
                    break;
                }
                q += 4 + len;
            }
            if !found {
                bail!("zip member {name:?} has 32-bit sizes 0xFFFFFFFF but no zip64 extra field");
            }
        }
        if stored_size != plain_size {
            bail!("zip member {name:?} is stored but its sizes differ ({stored_size} vs {plain_size})");
        }
        let data_at = name_at + name_len + extra_len;
        let data = usize::try_from(stored_size)
            .ok()
            .and_then(|n| b.get(data_at..data_at.checked_add(n)?))
            .ok_or_else(|| {
                anyhow!("zip member {name:?} is truncated ({stored_size} bytes at {data_at})")
            })?;
        if crc32(data) != crc {
            bail!("zip member {name:?} fails its CRC-32 check");
        }
        let a = npy::parse(data).with_context(|| format!("zip member {name:?}"))?;
        let key = name.strip_suffix(".npy").unwrap_or(&name).to_string();
        out.push((key, a));
        p = data_at + data.len();
    }
    Ok(out)
}

/// Reads an `.npz` file: see [`parse_npz`].
pub fn read_npz(path: &Path) -> Result<Vec<(String, Array)>> {
    let b = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_npz(&b).with_context(|| format!("in {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stored zip member: local header (zip64 sizes when asked), name, extra, data.
    fn member(name: &str, data: &[u8], method: u16, zip64: bool) -> Vec<u8> {
        let mut h = vec![];
        h.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        h.extend_from_slice(&45u16.to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes());
        h.extend_from_slice(&method.to_le_bytes());
        h.extend_from_slice(&[0; 4]);
        h.extend_from_slice(&crc32(data).to_le_bytes());
        let n = data.len() as u32;
        let sz = if zip64 { 0xFFFF_FFFF } else { n };
        h.extend_from_slice(&sz.to_le_bytes());
        h.extend_from_slice(&sz.to_le_bytes());
        h.extend_from_slice(&(name.len() as u16).to_le_bytes());
        h.extend_from_slice(&(if zip64 { 20u16 } else { 0 }).to_le_bytes());
        h.extend_from_slice(name.as_bytes());
        if zip64 {
            h.extend_from_slice(&1u16.to_le_bytes());
            h.extend_from_slice(&16u16.to_le_bytes());
            h.extend_from_slice(&(n as u64).to_le_bytes());
            h.extend_from_slice(&(n as u64).to_le_bytes());
        }
        h.extend_from_slice(data);
        h
    }

    fn end() -> Vec<u8> {
        let mut e = 0x0605_4b50u32.to_le_bytes().to_vec();
        e.extend_from_slice(&[0; 18]);
        e
    }

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn npz_stored_members_read_with_and_without_zip64() {
        let a = Array {
            dtype: mote::DType::F32,
            shape: vec![2, 3],
            data: (0..24).collect(),
        };
        let b = Array {
            dtype: mote::DType::I64,
            shape: vec![1],
            data: 7i64.to_le_bytes().to_vec(),
        };
        let mut z = member("a.npy", &npy::encode(&a), 0, true);
        z.extend(member("b.npy", &npy::encode(&b), 0, false));
        z.extend(end());
        let got = parse_npz(&z).unwrap();
        assert_eq!(got, vec![("a".to_string(), a), ("b".to_string(), b)]);
    }

    #[test]
    fn npz_compressed_corrupt_or_not_zip_is_an_error() {
        let a = Array {
            dtype: mote::DType::U8,
            shape: vec![4],
            data: vec![1, 2, 3, 4],
        };
        let mut z = member("a.npy", &npy::encode(&a), 8, false);
        z.extend(end());
        let e = format!("{:#}", parse_npz(&z).unwrap_err());
        assert!(e.contains("compressed") && e.contains("\"a.npy\""), "{e}");

        let mut z = member("a.npy", &npy::encode(&a), 0, true);
        let n = z.len();
        z[n - 1] ^= 1;
        z.extend(end());
        let e = format!("{:#}", parse_npz(&z).unwrap_err());
        assert!(e.contains("CRC-32"), "{e}");

        let e = format!("{:#}", parse_npz(b"\x93NUMPY....").unwrap_err());
        assert!(e.contains("not a zip archive"), "{e}");
        let z = member("a.npy", &npy::encode(&a), 0, true);
        let e = format!("{:#}", parse_npz(&z[..z.len() - 2]).unwrap_err());
        assert!(e.contains("truncated"), "{e}");
    }
}
