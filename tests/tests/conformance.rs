//! The conformance fixtures in `../shared/fixtures` (when that folder exists) convert, run and
//! match their stored onnxruntime outputs within 1e-4 × max(1, max|ref|).

use mote::{Model, OwnedSession};
use mote_tests::{
    available_isas, compare, convert_file, convert_file_for, read_npz, run_model, run_model_isa,
    shared_fixtures,
};
use mote_tools::npy::{self, Array};

const TOL: f64 = 1e-4;

fn fixtures() -> Option<std::path::PathBuf> {
    let d = shared_fixtures();
    if d.is_none() {
        println!("../shared/fixtures is not present: conformance fixtures skipped");
    }
    d
}

fn one_shot(name: &str) {
    let Some(dir) = fixtures() else { return };
    let bytes = convert_file(&dir.join(format!("{name}.onnx"))).expect("convert");
    let model = Model::from_bytes(bytes.as_slice()).expect("valid .mote");
    let input = npy::read(&dir.join(format!("{name}.input.npy"))).expect("input");
    let want = npy::read(&dir.join(format!("{name}.output.npy"))).expect("output");
    let got = run_model(&model, &[input]).expect("run");
    let d = compare(&got[0], &want, TOL).unwrap_or_else(|e| panic!("{name}: {e}"));
    println!(
        "{name}: max abs diff {d:.3e}, arena {} bytes, weights {} bytes, {} steps",
        model.arena_size(),
        model.weights_size(),
        model.step_count()
    );
}

/// Every one-shot fixture on every kernel set this CPU has, from files with plain weights
/// (`generic`) and with panel-packed weights (`x86-64-v4`, read by every kernel set).
#[test]
fn every_kernel_set_and_layout() {
    let Some(dir) = fixtures() else { return };
    let isas = available_isas();
    // Every SIMD set the CPU has must be among them (the test covers what it claims).
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        assert!(isas.iter().any(|i| i.name() == "avx2"));
    }
    #[cfg(target_arch = "aarch64")]
    assert!(isas.iter().any(|i| i.name() == "neon"));
    for name in [
        "emov2_1m",
        "spartan_t",
        "ecoformer_pvtv2_b0",
        "lmuformer_seq_tdconv",
    ] {
        let input = npy::read(&dir.join(format!("{name}.input.npy"))).expect("input");
        let want = npy::read(&dir.join(format!("{name}.output.npy"))).expect("output");
        for target in ["generic", "x86-64-v4"] {
            let bytes =
                convert_file_for(&dir.join(format!("{name}.onnx")), target).expect("convert");
            let model = Model::from_bytes(bytes.as_slice()).expect("valid .mote");
            for &isa in &isas {
                let got = run_model_isa(&model, std::slice::from_ref(&input), isa).expect("run");
                let d = compare(&got[0], &want, TOL)
                    .unwrap_or_else(|e| panic!("{name} {target} {}: {e}", isa.name()));
                println!(
                    "{name}: layout {} on {}: max abs diff {d:.3e}",
                    model.layout(),
                    isa.name()
                );
            }
        }
    }
}

#[test]
fn emov2_1m() {
    one_shot("emov2_1m");
}

#[test]
fn spartan_t() {
    one_shot("spartan_t");
}

#[test]
fn ecoformer_pvtv2_b0() {
    one_shot("ecoformer_pvtv2_b0");
}

#[test]
fn lmuformer_seq_tdconv() {
    one_shot("lmuformer_seq_tdconv");
}

/// Slice `t` of the leading axis of a stacked float32 array.
fn row(a: &Array, t: usize) -> Vec<u8> {
    let per = a.data.len() / a.shape[0];
    a.data[t * per..(t + 1) * per].to_vec()
}

/// Streams all 133 calls, feeding every `<state>_out` back as `<state>_in`, and checks the
/// logits of every call.
fn streaming(name: &str) {
    let Some(dir) = fixtures() else { return };
    let bytes = convert_file(&dir.join(format!("{name}.onnx"))).expect("convert");
    let model = Model::from_bytes(bytes.as_slice()).expect("valid .mote");
    let xs = npy::read(&dir.join(format!("{name}.input.npy"))).expect("input");
    let valid = npy::read(&dir.join(format!("{name}.valid.npy"))).expect("valid");
    let want = npy::read(&dir.join(format!("{name}.output.npy"))).expect("output");
    let calls = xs.shape[0];
    assert_eq!(calls, 133);
    let x_in = model.input_index("x_t").expect("x_t");
    let v_in = model.input_index("valid").expect("valid");
    let logits = model.output_index("logits").expect("logits");
    // (input index, output index) of every state pair.
    let mut pairs = vec![];
    for i in 0..model.input_count() {
        let n = model.input(i).unwrap().name;
        if let Some(base) = n.strip_suffix("_in") {
            pairs.push((
                i,
                model
                    .output_index(&format!("{base}_out"))
                    .expect("state output"),
            ));
        }
    }
    assert!(!pairs.is_empty());
    let mut owned = OwnedSession::new(&model).unwrap();
    let mut s = owned.session().unwrap();
    for &(i, _) in &pairs {
        s.input_bytes_mut(i).unwrap().fill(0);
    }
    let mut worst = 0.0f64;
    for t in 0..calls {
        s.input_bytes_mut(x_in)
            .unwrap()
            .copy_from_slice(&row(&xs, t));
        s.input_bytes_mut(v_in)
            .unwrap()
            .copy_from_slice(&row(&valid, t));
        s.run().unwrap();
        let got = Array {
            dtype: mote::DType::F32,
            shape: vec![1, 35],
            data: s.output_bytes(logits).unwrap().to_vec(),
        };
        let w = Array {
            dtype: mote::DType::F32,
            shape: vec![1, 35],
            data: row(&want, t),
        };
        worst =
            worst.max(compare(&got, &w, TOL).unwrap_or_else(|e| panic!("{name} call {t}: {e}")));
        for &(i, o) in &pairs {
            let v = s.output_bytes(o).unwrap().to_vec();
            s.input_bytes_mut(i).unwrap().copy_from_slice(&v);
        }
    }
    println!(
        "{name}: 133 calls, worst logits diff {worst:.3e}, arena {} bytes, weights {} bytes",
        model.arena_size(),
        model.weights_size()
    );
}

#[test]
fn lmuformer_step_streams_133_calls() {
    streaming("lmuformer_step");
}

#[test]
fn lmuformer_spiking_step_streams_133_calls() {
    streaming("lmuformer_spiking_step");
}

/// Call 64 alone: every graph input set from `NAME.call64_ort.npz` (mid-stream, non-zero state),
/// one run, and every graph output (logits, feat and each `<state>_out`) compared to the member
/// of the same name.
fn single_call64(name: &str) {
    let Some(dir) = fixtures() else { return };
    let bytes = convert_file(&dir.join(format!("{name}.onnx"))).expect("convert");
    let model = Model::from_bytes(bytes.as_slice()).expect("valid .mote");
    let npz = dir.join(format!("{name}.call64_ort.npz"));
    let members = read_npz(&npz).unwrap_or_else(|e| panic!("{e:#}"));
    let get = |n: &str| -> &Array {
        members
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, a)| a)
            .unwrap_or_else(|| panic!("{} has no member {n:?}", npz.display()))
    };
    let inputs: Vec<Array> = (0..model.input_count())
        .map(|i| get(model.input(i).unwrap().name).clone())
        .collect();
    assert_eq!(
        members.len(),
        model.input_count() + model.output_count(),
        "the npz holds exactly the graph inputs and outputs"
    );
    let got = run_model(&model, &inputs).expect("run");
    let mut worst = 0.0f64;
    let mut failures = vec![];
    for (i, g) in got.iter().enumerate() {
        let out = model.output(i).unwrap().name;
        match compare(g, get(out), TOL) {
            Ok(d) => {
                println!("{name} call 64 {out}: max abs diff {d:.3e}");
                worst = worst.max(d);
            }
            Err(e) => failures.push(format!("{out}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{name} call 64: {} of {} outputs differ from onnxruntime:\n{}",
        failures.len(),
        got.len(),
        failures.join("\n")
    );
    println!(
        "{name}: call 64 alone, {} outputs, worst diff {worst:.3e}",
        got.len()
    );
}

#[test]
fn lmuformer_step_call64_alone() {
    single_call64("lmuformer_step");
}

#[test]
fn lmuformer_spiking_step_call64_alone() {
    single_call64("lmuformer_spiking_step");
}

/// Arena budgets (bytes, as planned when this test was written): a change that makes a plan
/// grow by more than 3 % fails here and must justify the new number.
#[test]
fn arena_sizes_stay_within_budget() {
    let mut cases: Vec<(std::path::PathBuf, usize)> = vec![(
        mote_tests::repo_root().join("models/demo/demo.onnx"),
        847_872,
    )];
    if let Some(dir) = fixtures() {
        for (name, budget) in [
            ("emov2_1m", 4_616_192), // 7_024_640 before the channel-LayerNorm and SiLU fusions
            ("spartan_t", 5_820_416),
            ("ecoformer_pvtv2_b0", 11_841_536),
            ("lmuformer_seq_tdconv", 1_245_184),
            ("lmuformer_step", 28_352),
            ("lmuformer_spiking_step", 63_296),
        ] {
            cases.push((dir.join(format!("{name}.onnx")), budget));
        }
    }
    for (path, budget) in cases {
        let bytes = convert_file(&path).unwrap();
        let arena = Model::from_bytes(bytes.as_slice()).unwrap().arena_size();
        println!("{}: arena {arena} bytes (budget {budget})", path.display());
        assert!(
            arena as f64 <= budget as f64 * 1.03,
            "{}: arena {arena} exceeds budget {budget} by more than 3 %",
            path.display()
        );
    }
}
