//! The converter's fusions really happen: each pattern below becomes the stated number of
//! steps (the op fixtures test that the fused result still matches onnxruntime).

use mote::Model;
use mote_tests::{convert_file, repo_root};

fn steps(case: &str) -> Vec<&'static str> {
    let bytes =
        convert_file(&repo_root().join(format!("tests/fixtures/ops/{case}/model.onnx"))).unwrap();
    let m = Model::from_bytes(bytes.as_slice()).unwrap();
    (0..m.step_count())
        .map(|i| m.step(i).unwrap().op.name())
        .collect()
}

#[test]
fn batchnorm_folds_into_conv_and_gemm() {
    assert_eq!(steps("bn_after_conv"), ["Conv2d"]);
    assert_eq!(steps("gemm_bn"), ["MatMul"]);
    // Not foldable (no producer): a per-channel affine step stays.
    assert_eq!(steps("bn_rank4"), ["ChannelAffine"]);
}

#[test]
fn bias_and_activation_fuse_into_the_producer() {
    assert_eq!(steps("matmul_add_bias_relu"), ["MatMul"]);
    assert_eq!(steps("matmul_add_bias_first"), ["MatMul"]);
    assert_eq!(steps("conv2d_relu"), ["Conv2d"]);
    assert_eq!(steps("conv2d_clip6"), ["Conv2d"]);
}

#[test]
fn gelu_patterns_become_one_step() {
    for case in ["gelu_erf_div", "gelu_erf_mulsqrt", "gelu_erf_half_first"] {
        assert_eq!(steps(case), ["Unary"], "{case}");
    }
}

#[test]
fn shape_only_ops_cost_nothing() {
    for case in [
        "reshape_zero_neg1",
        "flatten_axis1",
        "squeeze_axes",
        "unsqueeze_axes",
        "shape_gather_concat_reshape",
        "identity",
    ] {
        let s = steps(case);
        // Only the copy that gives a graph output its own storage may remain.
        assert!(
            s.iter().all(|&o| o == "Copy") && s.len() <= 1,
            "{case}: {s:?}"
        );
    }
    assert!(steps("constant_of_shape").len() <= 1);
}

#[test]
fn composite_block_is_five_steps() {
    // Conv+BN+Relu, depthwise conv, residual add, global pool, (flatten: free), Gemm.
    assert_eq!(
        steps("block_composite"),
        ["Conv2d", "DepthwiseConv2d", "Binary", "Reduce", "MatMul"]
    );
}

#[test]
fn layernorm_over_nchw_channels_drops_both_transposes() {
    assert_eq!(steps("layernorm_nchw_channels"), ["LayerNormAxis"]);
    assert_eq!(steps("layernorm_nchw_channels_nobias"), ["LayerNormAxis"]);
    // A second transpose that does not undo the first keeps all three steps.
    assert_eq!(
        steps("layernorm_nhwc_not_inverse"),
        ["Copy", "LayerNorm", "Copy"]
    );
}

#[test]
fn channel_mix_chains_become_one_step_or_fold() {
    // SpaRTAN's complex modulation (transpose, reshape, slices, four products, sub, add,
    // concat, transpose): one grouped 1x1 conv, folded into a conv whose groups hold pairs.
    assert_eq!(
        steps("complex_mul_then_depthwise"),
        ["Conv2d", "DepthwiseConv2d"]
    );
    assert_eq!(steps("complex_mul_then_grouped"), ["Conv2d"]);
    assert_eq!(steps("complex_mul_output"), ["Conv2d"]);
    // Linear chains that are not one channel mix at every position keep their copies: only
    // the per-channel scale and shift after the transpose become one step.
    assert_eq!(
        steps("linear_chain_moves_positions"),
        ["Copy", "ChannelAffine"]
    );
    assert_eq!(
        steps("linear_chain_positional_scale"),
        ["Copy", "Binary", "Copy"]
    );
}

#[test]
fn consecutive_copies_compose() {
    assert_eq!(steps("transpose_reshape_transpose"), ["Copy"]);
    // A per-window scale between the partition and its inverse: linear, but not one channel
    // mix at every position, and the copies do not touch, so all three steps stay.
    assert_eq!(
        steps("window_partition_roundtrip_scaled"),
        ["Copy", "Binary", "Copy"]
    );
}

#[test]
fn copies_that_cancel_around_an_activation_disappear() {
    assert_eq!(steps("transpose_relu_transpose_back"), ["Unary"]);
    assert_eq!(steps("conv1d_transpose_relu_transpose_back"), ["Conv2d"]);
    assert_eq!(
        steps("transpose_relu_other_transpose"),
        ["Copy", "Unary", "Copy"]
    );
}

#[test]
fn elementwise_then_trailing_reduce_is_one_step() {
    assert_eq!(steps("ew_reduce_sqdist"), ["ElementwiseReduce"]);
    // Reduced over a middle axis: the program's results are stored and reduced apart.
    assert_eq!(
        steps("ew_reduce_mean_middle_axis"),
        ["Elementwise", "Reduce"]
    );
}

#[test]
fn silu_becomes_one_step_or_the_conv_epilogue() {
    assert_eq!(steps("silu_after_conv"), ["Conv2d"]);
    assert_eq!(steps("silu_sigmoid_first"), ["Unary"]);
    // The sigmoid is also a graph output: nothing to fuse.
    assert_eq!(steps("silu_sigmoid_also_output"), ["Unary", "Binary"]);
}

#[test]
fn permuting_copies_fold_into_matmul_strides() {
    assert_eq!(steps("matmul_transposed_key"), ["MatMul"]);
    assert_eq!(steps("matmul_head_split_permute"), ["MatMul"]);
}

#[test]
fn a_constant_scale_after_matmul_becomes_its_alpha() {
    assert_eq!(steps("matmul_scaled_scores"), ["MatMul", "Softmax"]);
}
