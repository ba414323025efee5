//! The model zoo's own fixtures (`models/<family>/`, made by each family's `export.py` from
//! the reference definitions in `model.py`): each converts, runs on every kernel set this CPU
//! has, from plain (`generic`) and panel-packed (`x86-64-v4`) weights, and matches its stored
//! onnxruntime output within 1e-4 × max(1, max|ref|). Needs nothing outside the repository.

use mote::{Model, OwnedSession};
use mote_tests::{available_isas, compare, convert_file_for, repo_root, run_model_isa};
use mote_tools::npy::{self, Array};
use std::path::PathBuf;

const TOL: f64 = 1e-4;

/// Every fixture with a test below: (family folder, fixture name).
const ONE_SHOT: &[(&str, &str)] = &[
    ("emov2", "emov2_tiny"),
    ("spartan", "spartan_tiny"),
    ("ecoformer", "ecoformer_tiny"),
    ("lmuformer", "lmuformer_seq"),
    ("lmuformer", "lmuformer_fft"),
    ("lmuformer", "lmuformer_fft_long"),
];
const STEP: &[(&str, &str)] = &[
    ("lmuformer", "lmuformer_step"),
    ("lmuformer", "lmuformer_spiking_step"),
];

fn dir(family: &str) -> PathBuf {
    repo_root().join("models").join(family)
}

fn read(family: &str, file: &str) -> Array {
    let p = dir(family).join(file);
    npy::read(&p).unwrap_or_else(|e| panic!("{}: {e:#}", p.display()))
}

/// Converted `.mote` bytes for both weight layouts.
fn converted(family: &str, name: &str) -> Vec<(&'static str, mote::AlignedBytes)> {
    let onnx = dir(family).join(format!("{name}.onnx"));
    ["generic", "x86-64-v4"]
        .into_iter()
        .map(|target| {
            let b = convert_file_for(&onnx, target)
                .unwrap_or_else(|e| panic!("{name}: conversion for {target} failed: {e:#}"));
            (target, b)
        })
        .collect()
}

fn one_shot(family: &str, name: &str) {
    let input = read(family, &format!("{name}.input.npy"));
    let want = read(family, &format!("{name}.output.npy"));
    for (target, bytes) in converted(family, name) {
        let model = Model::from_bytes(bytes.as_slice()).expect("valid .mote");
        for isa in available_isas() {
            let got = run_model_isa(&model, std::slice::from_ref(&input), isa)
                .unwrap_or_else(|e| panic!("{name} {target} {}: {e:#}", isa.name()));
            let d = compare(&got[0], &want, TOL)
                .unwrap_or_else(|e| panic!("{name} {target} {}: {e:#}", isa.name()));
            println!(
                "{name}: {target} on {}: max abs diff {d:.3e}, {} steps",
                isa.name(),
                model.step_count()
            );
        }
    }
}

/// Row `t` of the leading axis.
fn row(a: &Array, t: usize) -> Array {
    let per = a.data.len() / a.shape[0];
    Array {
        dtype: a.dtype,
        shape: a.shape[1..].to_vec(),
        data: a.data[t * per..(t + 1) * per].to_vec(),
    }
}

/// Streams every call of a step fixture from all-zero state, feeding each `<state>_out` back as
/// `<state>_in`, and compares the logits and the features of every call.
fn streaming(family: &str, name: &str) {
    let xs = read(family, &format!("{name}.input.npy"));
    let valid = read(family, &format!("{name}.valid.npy"));
    let want_logits = read(family, &format!("{name}.output.npy"));
    let want_feat = read(family, &format!("{name}.feat.npy"));
    let calls = xs.shape[0];
    assert!(calls > 5, "{name}: {calls} calls");
    for a in [&valid, &want_logits, &want_feat] {
        assert_eq!(
            a.shape[0], calls,
            "{name}: every per-call array has {calls} rows"
        );
    }
    for (target, bytes) in converted(family, name) {
        let model = Model::from_bytes(bytes.as_slice()).expect("valid .mote");
        let x_in = model.input_index("x_t").expect("x_t");
        let v_in = model.input_index("valid").expect("valid");
        let logits = model.output_index("logits").expect("logits");
        let feat = model.output_index("feat").expect("feat");
        let mut pairs = vec![];
        for i in 0..model.input_count() {
            let n = model.input(i).unwrap().name;
            if let Some(base) = n.strip_suffix("_in") {
                let o = model
                    .output_index(&format!("{base}_out"))
                    .unwrap_or_else(|e| panic!("{name}: {n} has no {base}_out: {e}"));
                pairs.push((i, o));
            }
        }
        assert_eq!(
            pairs.len() + 2,
            model.input_count(),
            "{name}: inputs are x_t, valid and the states"
        );
        for isa in available_isas() {
            let mut owned = OwnedSession::new(&model).unwrap();
            let mut s = owned.session_with_isa(isa).unwrap();
            assert_eq!(s.isa(), isa);
            for &(i, _) in &pairs {
                s.input_bytes_mut(i).unwrap().fill(0);
            }
            let mut worst = 0.0f64;
            for t in 0..calls {
                s.input_bytes_mut(x_in)
                    .unwrap()
                    .copy_from_slice(&row(&xs, t).data);
                s.input_bytes_mut(v_in)
                    .unwrap()
                    .copy_from_slice(&row(&valid, t).data);
                s.run().unwrap();
                for (o, want) in [(logits, &want_logits), (feat, &want_feat)] {
                    let w = row(want, t);
                    let got = Array {
                        dtype: mote::DType::F32,
                        shape: w.shape.clone(),
                        data: s.output_bytes(o).unwrap().to_vec(),
                    };
                    let d = compare(&got, &w, TOL).unwrap_or_else(|e| {
                        panic!(
                            "{name} {target} {} call {t} {}: {e:#}",
                            isa.name(),
                            model.output(o).unwrap().name
                        )
                    });
                    worst = worst.max(d);
                }
                for &(i, o) in &pairs {
                    let v = s.output_bytes(o).unwrap().to_vec();
                    s.input_bytes_mut(i).unwrap().copy_from_slice(&v);
                }
            }
            println!(
                "{name}: {target} on {}: {calls} calls, worst diff {worst:.3e}, {} steps",
                isa.name(),
                model.step_count()
            );
        }
    }
}

/// Every `NAME.onnx` under `models/<family>/` (the demo aside, covered elsewhere) has a test
/// here, so a new fixture cannot go untested.
#[test]
fn every_zoo_fixture_has_a_test() {
    let mut found = vec![];
    for entry in std::fs::read_dir(repo_root().join("models")).unwrap() {
        let path = entry.unwrap().path();
        let family = path.file_name().unwrap().to_string_lossy().into_owned();
        if !path.is_dir() || family == "demo" {
            continue;
        }
        for f in std::fs::read_dir(&path).unwrap() {
            let f = f.unwrap().file_name().to_string_lossy().into_owned();
            if let Some(name) = f.strip_suffix(".onnx") {
                found.push((family.clone(), name.to_string()));
            }
        }
    }
    found.sort();
    let mut listed: Vec<(String, String)> = ONE_SHOT
        .iter()
        .chain(STEP)
        .map(|(f, n)| (f.to_string(), n.to_string()))
        .collect();
    listed.sort();
    assert_eq!(found, listed, "fixtures on disk vs fixtures with a test");
}

#[test]
fn emov2_tiny() {
    one_shot("emov2", "emov2_tiny");
}

#[test]
fn spartan_tiny() {
    one_shot("spartan", "spartan_tiny");
}

#[test]
fn ecoformer_tiny() {
    one_shot("ecoformer", "ecoformer_tiny");
}

#[test]
fn lmuformer_seq_time_domain_memory() {
    one_shot("lmuformer", "lmuformer_seq");
}

#[test]
fn lmuformer_fft_memory() {
    one_shot("lmuformer", "lmuformer_fft");
}

/// The FFT memory with the impulse response's DFT left in the graph (3 DFT nodes, as in
/// full-size exports; `lmuformer_fft` has its spectrum folded into constants).
#[test]
fn lmuformer_fft_memory_dft_of_constant_in_graph() {
    one_shot("lmuformer", "lmuformer_fft_long");
}

#[test]
fn lmuformer_step_streams() {
    streaming("lmuformer", "lmuformer_step");
}

#[test]
fn lmuformer_spiking_step_streams() {
    streaming("lmuformer", "lmuformer_spiking_step");
}
