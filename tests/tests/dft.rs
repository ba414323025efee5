//! ONNX `DFT`: every fixture in `tests/fixtures/dft` converts, runs and matches onnxruntime
//! (1e-4 × max(1, max|ref|)); the LMU memory written as an FFT convolution becomes one Conv step;
//! DFT graphs that are no such convolution keep the general (matrix product) lowering.

use mote::Model;
use mote_tests::{available_isas, check_case_dir, check_fixture_dir, convert_file, repo_root};
use std::path::PathBuf;

fn dir(case: &str) -> PathBuf {
    repo_root().join("tests/fixtures/dft").join(case)
}

fn steps(case: &str) -> Vec<&'static str> {
    let bytes = convert_file(&dir(case).join("model.onnx")).unwrap();
    let m = Model::from_bytes(bytes.as_slice()).unwrap();
    (0..m.step_count())
        .map(|i| m.step(i).unwrap().op.name())
        .collect()
}

#[test]
fn every_dft_fixture_matches_onnxruntime() {
    let (n, failures) = check_fixture_dir(&repo_root().join("tests/fixtures/dft"), 1e-4).unwrap();
    assert!(n >= 30, "only {n} cases listed");
    assert!(
        failures.is_empty(),
        "{} of {n} DFT fixtures failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The FFT memory runs on every kernel set and weight layout (the conv it becomes is packed).
#[test]
fn lmu_fft_memory_on_every_kernel_set_and_layout() {
    for case in ["lmu_fft", "lmu_fft_depthwise", "lmu_fft_long"] {
        for isa in available_isas() {
            for target in ["generic", "x86-64-v4"] {
                let d = check_case_dir(&dir(case), target, isa, 1e-4)
                    .unwrap_or_else(|e| panic!("{case} {target} {}: {e:#}", isa.name()));
                println!("{case} {target} {}: max abs diff {d:.2e}", isa.name());
            }
        }
    }
}

#[test]
fn lmu_fft_memory_becomes_a_causal_conv() {
    // Linear + ReLU (one MatMul), then the memory: 20 ONNX nodes, three of them DFTs.
    assert_eq!(steps("lmu_fft"), ["MatMul", "Conv2d"]);
    assert_eq!(steps("lmu_fft_long"), ["MatMul", "Conv2d"]);
    // L = 32 taps (H reversed), L - 1 zeros on the left, one input channel, `order` = 12 outputs.
    let bytes = convert_file(&dir("lmu_fft").join("model.onnx")).unwrap();
    let m = Model::from_bytes(bytes.as_slice()).unwrap();
    let mote::ops::Op::Conv2d { g, .. } = m.step(1).unwrap().op else {
        panic!("step 1 is not a conv");
    };
    assert_eq!(
        (g.c_in, g.c_out, g.kw, g.pad_left, g.w_in, g.w_out),
        (1, 12, 32, 31, 32, 32)
    );
    // The time-domain export of the same memory gives the same steps.
    assert_eq!(steps("lmu_tdconv"), ["MatMul", "Conv2d"]);
    // One H row per channel: the transpose to [B, C, L] stays, the memory is depthwise.
    assert_eq!(
        steps("lmu_fft_depthwise"),
        ["MatMul", "Copy", "DepthwiseConv2d"]
    );
    // A spectrum computed in the graph by a DFT of a constant, no zero Pad (dft_length pads).
    assert_eq!(steps("fftconv_inline_spectrum"), ["Conv2d"]);
    // Groups x outputs per group, all n samples kept.
    assert_eq!(steps("fftconv_grouped_no_slice"), ["Conv2d"]);
    // n < 2L - 1: the circular wrap-around is part of the kernel.
    assert_eq!(steps("fftconv_circular_wrap"), ["DepthwiseConv2d"]);
}

#[test]
fn dft_graphs_that_are_no_convolution_keep_the_matrix_lowering() {
    // Two run-time spectra multiplied: three DFTs as matrix products, no Conv.
    let s = steps("two_signal_circular");
    assert!(!s.contains(&"Conv2d"), "{s:?}");
    assert_eq!(s.iter().filter(|&&o| o == "MatMul").count(), 5, "{s:?}");
    // A power spectrum: one DFT MatMul and the reduction.
    assert_eq!(steps("dft17_rfft_mag"), ["MatMul", "Reduce"]);
    // A DFT of a constant folds: only the Add runs.
    assert_eq!(steps("dft17_const_folded"), ["Binary"]);
    // Axis not last: the axis is brought last and back around the product.
    assert_eq!(
        steps("dft17_real_onesided_axis1_inner"),
        ["Copy", "MatMul", "Copy"]
    );
}

#[test]
fn dft_with_run_time_parameters_is_refused_by_name() {
    let path = repo_root().join("tests/fixtures/dft_errors/runtime_dft_length.onnx");
    let Err(err) = convert_file(&path) else {
        panic!("a run-time dft_length must be refused");
    };
    let msg = format!("{err:#}");
    assert!(
        msg.contains("DFT")
            && msg.contains("dft_length must be a constant")
            && msg.contains("spectrum_node"),
        "{msg}"
    );
}
