//! `--quant fp16` on real models: every zoo fixture (`models/*/`) and every conformance fixture
//! (`../shared/fixtures`, when present) converts with fp16 weights, its file shrinks by the
//! bytes the pass saved (to at most 0.52 × the f32 `.mote` where the weights dominate the file
//! and all of them became fp16), and its outputs stay within cosine similarity 0.9999 of the
//! fp32 reference outputs stored beside it (computed offline by onnxruntime), on every kernel
//! set this CPU has, from plain (`generic`) and panel-packed (`x86-64-v4`) weights. The
//! profiles that default to fp16 (`rpi5`, `jetson-orin`) get it without `--quant`.

use mote::{DType, Model, OwnedSession};
use mote_tests::{as_f64, available_isas, repo_root, run_model_isa, shared_fixtures};
use mote_tools::convert::{convert, Converted, Options, Quant};
use mote_tools::npy::{self, Array};
use std::path::{Path, PathBuf};

const MAX_SIZE_RATIO: f64 = 0.52;
const MIN_COSINE: f64 = 0.9999;

fn convert_with(onnx: &Path, target: &str, quant: Option<Quant>) -> Converted {
    convert(
        onnx,
        &Options {
            target: target.into(),
            quant,
            ..Options::default()
        },
    )
    .unwrap_or_else(|e| panic!("{}: {target} {quant:?}: {e:#}", onnx.display()))
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    if na == 0.0 && nb == 0.0 {
        1.0
    } else {
        dot / (na * nb)
    }
}

/// Float16 constants in a file.
fn f16_consts(m: &Model<'_>) -> usize {
    (0..m.tensor_count() as u32)
        .filter(|&i| m.tensor(i).is_ok_and(|t| t.dtype == DType::F16))
        .count()
}

/// Converts `onnx` both ways for `target`, checks the size bound, and returns the fp16 file.
fn fp16_file(name: &str, onnx: &Path, target: &str) -> mote::AlignedBytes {
    let f32c = convert_with(onnx, target, Some(Quant::F32));
    let f16c = convert_with(onnx, target, Some(Quant::Fp16));
    let ratio = f16c.bytes.len() as f64 / f32c.bytes.len() as f64;
    let rep = f16c.fp16.expect("the fp16 pass ran");
    println!(
        "{name} {target}: .mote f32 {} bytes, fp16 {} bytes (ratio {ratio:.3}), {} weights fp16, {} kept f32, {} steps kept upstream of a discrete op",
        f32c.bytes.len(),
        f16c.bytes.len(),
        rep.converted,
        rep.kept_f32,
        rep.kept_upstream_of_discrete
    );
    assert!(rep.converted > 0, "{name}: no weight became fp16");
    // The file shrinks by what the pass saved, up to the 64-byte alignment of each constant.
    let saved = f32c.bytes.len() - f16c.bytes.len();
    assert!(
        saved + 64 * rep.converted >= rep.bytes_saved,
        "{name} {target}: {saved} bytes smaller, the pass saved {}",
        rep.bytes_saved
    );
    // Where the weights dominate the file and none had to stay f32 (the conformance models),
    // the file is at most 0.52 x the f32 one.
    let dominated = rep.bytes_saved * 2 >= f32c.bytes.len() * 97 / 100;
    if dominated && rep.kept_f32 == 0 && rep.kept_upstream_of_discrete == 0 {
        assert!(
            ratio <= MAX_SIZE_RATIO,
            "{name} {target}: fp16 file is {ratio:.3} x the f32 file (bound {MAX_SIZE_RATIO})"
        );
    }
    let bytes = mote::AlignedBytes::copy_from(&f16c.bytes);
    let m = Model::from_bytes(bytes.as_slice()).expect("valid fp16 .mote");
    assert_eq!(
        f16_consts(&m),
        rep.converted,
        "{name}: float16 constants in the file"
    );
    bytes
}

fn one_shot(name: &str, dir: &Path, targets: &[&str]) {
    let onnx = dir.join(format!("{name}.onnx"));
    let input = npy::read(&dir.join(format!("{name}.input.npy"))).expect("input");
    let want = npy::read(&dir.join(format!("{name}.output.npy"))).expect("output");
    let w = as_f64(&want);
    for &target in targets {
        let bytes = fp16_file(name, &onnx, target);
        let model = Model::from_bytes(bytes.as_slice()).expect("valid");
        for isa in available_isas() {
            let got = run_model_isa(&model, std::slice::from_ref(&input), isa)
                .unwrap_or_else(|e| panic!("{name} {target} {}: {e:#}", isa.name()));
            assert_eq!(got[0].shape, want.shape, "{name}: output shape");
            let c = cosine(&as_f64(&got[0]), &w);
            println!("{name} {target} {}: cosine to fp32 {c:.8}", isa.name());
            assert!(
                c >= MIN_COSINE,
                "{name} {target} {}: cosine {c} < {MIN_COSINE}",
                isa.name()
            );
        }
    }
}

/// Streams every call of a step fixture (state fed back) and compares all calls' logits.
fn streaming(name: &str, dir: &Path, targets: &[&str]) {
    let onnx = dir.join(format!("{name}.onnx"));
    let xs = npy::read(&dir.join(format!("{name}.input.npy"))).expect("input");
    let valid = npy::read(&dir.join(format!("{name}.valid.npy"))).expect("valid");
    let want = npy::read(&dir.join(format!("{name}.output.npy"))).expect("output");
    let calls = xs.shape[0];
    let row = |a: &Array, t: usize| {
        let per = a.data.len() / a.shape[0];
        a.data[t * per..(t + 1) * per].to_vec()
    };
    for &target in targets {
        let bytes = fp16_file(name, &onnx, target);
        let model = Model::from_bytes(bytes.as_slice()).expect("valid");
        let x_in = model.input_index("x_t").expect("x_t");
        let v_in = model.input_index("valid").expect("valid");
        let logits = model.output_index("logits").expect("logits");
        let mut pairs = vec![];
        for i in 0..model.input_count() {
            let n = model.input(i).unwrap().name;
            if let Some(base) = n.strip_suffix("_in") {
                pairs.push((i, model.output_index(&format!("{base}_out")).unwrap()));
            }
        }
        for isa in available_isas() {
            let mut owned = OwnedSession::new(&model).unwrap();
            let mut s = owned.session_with_isa(isa).unwrap();
            for &(i, _) in &pairs {
                s.input_bytes_mut(i).unwrap().fill(0);
            }
            let mut got = vec![];
            for t in 0..calls {
                s.input_bytes_mut(x_in)
                    .unwrap()
                    .copy_from_slice(&row(&xs, t));
                s.input_bytes_mut(v_in)
                    .unwrap()
                    .copy_from_slice(&row(&valid, t));
                s.run().unwrap();
                got.extend_from_slice(s.output_bytes(logits).unwrap());
                for &(i, o) in &pairs {
                    let out = s.output_bytes(o).unwrap().to_vec();
                    s.input_bytes_mut(i).unwrap().copy_from_slice(&out);
                }
            }
            let got = Array {
                dtype: DType::F32,
                shape: want.shape.clone(),
                data: got,
            };
            let c = cosine(&as_f64(&got), &as_f64(&want));
            println!(
                "{name} {target} {}: {calls} calls, cosine {c:.8}",
                isa.name()
            );
            assert!(
                c >= MIN_COSINE,
                "{name} {target} {}: cosine {c}",
                isa.name()
            );
        }
    }
}

fn zoo(family: &str) -> PathBuf {
    repo_root().join("models").join(family)
}

const BOTH: &[&str] = &["generic", "x86-64-v4"];

#[test]
fn zoo_fixtures_fp16() {
    one_shot("demo", &zoo("demo"), BOTH);
    one_shot("emov2_tiny", &zoo("emov2"), BOTH);
    one_shot("spartan_tiny", &zoo("spartan"), BOTH);
    one_shot("ecoformer_tiny", &zoo("ecoformer"), BOTH);
    for name in ["lmuformer_seq", "lmuformer_fft", "lmuformer_fft_long"] {
        one_shot(name, &zoo("lmuformer"), BOTH);
    }
    for name in ["lmuformer_step", "lmuformer_spiking_step"] {
        streaming(name, &zoo("lmuformer"), BOTH);
    }
}

#[test]
fn conformance_fixtures_fp16() {
    let Some(dir) = shared_fixtures() else {
        println!("../shared/fixtures is not present: skipped");
        return;
    };
    for name in [
        "emov2_1m",
        "spartan_t",
        "ecoformer_pvtv2_b0",
        "lmuformer_seq_tdconv",
    ] {
        one_shot(name, &dir, &["x86-64-v4"]);
    }
    for name in ["lmuformer_step", "lmuformer_spiking_step"] {
        streaming(name, &dir, &["x86-64-v4"]);
    }
}

/// `rpi5` and `jetson-orin` store fp16 weights unless `--quant` says otherwise; the others f32.
#[test]
fn profiles_default_to_their_weight_precision() {
    let onnx = zoo("demo").join("demo.onnx");
    for (target, want) in [
        ("rpi5", Quant::Fp16),
        ("jetson-orin", Quant::Fp16),
        ("rpi4", Quant::F32),
        ("x86-64-v4", Quant::F32),
        ("generic", Quant::F32),
    ] {
        let c = convert_with(&onnx, target, None);
        assert_eq!(c.quant, want, "{target}");
        let bytes = mote::AlignedBytes::copy_from(&c.bytes);
        let m = Model::from_bytes(bytes.as_slice()).unwrap();
        assert_eq!(f16_consts(&m) > 0, want == Quant::Fp16, "{target}");
    }
    let c = convert_with(&onnx, "rpi5", Some(Quant::F32));
    let bytes = mote::AlignedBytes::copy_from(&c.bytes);
    assert_eq!(f16_consts(&Model::from_bytes(bytes.as_slice()).unwrap()), 0);
    let e = convert(
        &onnx,
        &Options {
            quant: Some(Quant::Int8),
            ..Options::default()
        },
    )
    .err()
    .map(|e| format!("{e:#}"))
    .expect("int8 is refused here");
    assert!(e.contains("int8"), "{e}");
}
