//! `Options::input_shapes` (`mote convert --input-shape`): a model exported with a dynamic batch
//! dimension converts once the batch is fixed, and matches onnxruntime; bad overrides are clear
//! errors. Fixture: `tests/fixtures/dynamic` (from `tests/fixtures/make_dynamic_fixture.py`).

use mote::{AlignedBytes, Model};
use mote_tests::{compare, read_numbered, repo_root, run_model};
use mote_tools::convert::{convert, Options};
use std::path::PathBuf;

fn model_path() -> PathBuf {
    repo_root().join("tests/fixtures/dynamic/model.onnx")
}

fn with_shapes(shapes: &[(&str, &[usize])]) -> Options {
    Options {
        input_shapes: shapes
            .iter()
            .map(|(n, s)| (n.to_string(), s.to_vec()))
            .collect(),
        ..Options::default()
    }
}

fn convert_err(shapes: &[(&str, &[usize])]) -> String {
    match convert(&model_path(), &with_shapes(shapes)) {
        Ok(_) => panic!("conversion with {shapes:?} should fail"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn dynamic_batch_without_override_names_the_flag() {
    let e = convert_err(&[]);
    assert!(
        e.contains("\"x\"") && e.contains("\"N\"") && e.contains("--input-shape x="),
        "{e}"
    );
}

#[test]
fn dynamic_batch_with_override_matches_onnxruntime() {
    let dir = repo_root().join("tests/fixtures/dynamic");
    let c = convert(&model_path(), &with_shapes(&[("x", &[2, 3, 8, 8])])).expect("convert");
    let bytes = AlignedBytes::copy_from(&c.bytes);
    let model = Model::from_bytes(bytes.as_slice()).expect("valid .mote");
    assert_eq!(model.input(0).unwrap().shape(), [2, 3, 8, 8]);
    let inputs = read_numbered(&dir, "input").expect("inputs");
    let want = read_numbered(&dir, "output").expect("outputs");
    let got = run_model(&model, &inputs).expect("run");
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        let d = compare(g, w, 1e-4).unwrap_or_else(|e| panic!("{e}"));
        println!("dynamic batch 2: max abs diff {d:.3e}");
    }
}

#[test]
fn override_with_wrong_rank_is_an_error() {
    let e = convert_err(&[("x", &[2, 3, 8])]);
    assert!(
        e.contains("\"x\"")
            && e.contains("rank 4")
            && e.contains("[N, 3, 8, 8]")
            && e.contains("[2, 3, 8]"),
        "{e}"
    );
}

#[test]
fn override_conflicting_with_a_static_dim_is_an_error() {
    let e = convert_err(&[("x", &[2, 4, 8, 8])]);
    assert!(
        e.contains("\"x\"") && e.contains("[N, 3, 8, 8]") && e.contains("[2, 4, 8, 8]"),
        "{e}"
    );
}

#[test]
fn override_of_an_unknown_input_lists_the_inputs() {
    let e = convert_err(&[("x", &[2, 3, 8, 8]), ("image", &[1, 3, 8, 8])]);
    assert!(e.contains("\"image\"") && e.contains("inputs: x"), "{e}");
    let e = convert_err(&[("x", &[2, 3, 8, 8]), ("x", &[1, 3, 8, 8])]);
    assert!(e.contains("more than once"), "{e}");
}

#[test]
fn override_of_a_static_input_must_agree() {
    // The op fixtures have static inputs: an identical override is accepted, another is not.
    let relu = repo_root().join("tests/fixtures/ops/relu/model.onnx");
    let declared = read_numbered(relu.parent().unwrap(), "input").expect("input")[0]
        .shape
        .clone();
    let proto_name = {
        let c = convert(&relu, &Options::default()).expect("convert");
        let bytes = AlignedBytes::copy_from(&c.bytes);
        let m = Model::from_bytes(bytes.as_slice()).expect("valid");
        m.input(0).unwrap().name.to_string()
    };
    let same = Options {
        input_shapes: vec![(proto_name.clone(), declared.clone())],
        ..Options::default()
    };
    convert(&relu, &same).expect("an override equal to the static shape converts");
    let mut other = declared.clone();
    other[0] += 1;
    let e = convert(
        &relu,
        &Options {
            input_shapes: vec![(proto_name, other)],
            ..Options::default()
        },
    )
    .err()
    .map(|e| format!("{e:#}"))
    .expect("a different static shape fails");
    assert!(e.contains("differs in dimension 0"), "{e}");
}
