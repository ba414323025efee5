//! The in-place element-wise kernels give bit-identical results to their out-of-place twins.

use mote_targets::generic::{activation, elementwise};
use mote_targets::{BinaryOp, UnaryOp};
use proptest::prelude::*;

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter()
        .map(|x| if x.is_nan() { u32::MAX } else { x.to_bits() })
        .collect()
}

fn row_major(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for k in (0..dims.len().saturating_sub(1)).rev() {
        s[k] = s[k + 1] * dims[k + 1];
    }
    s
}

const UNARY: [UnaryOp; 8] = [
    UnaryOp::Relu,
    UnaryOp::Gelu,
    UnaryOp::Sigmoid,
    UnaryOp::Exp,
    UnaryOp::Sign,
    UnaryOp::Clip { lo: -0.5, hi: 0.7 },
    UnaryOp::Affine { k: 0.3, c: -1.0 },
    UnaryOp::PowConst { exp: 2.0 },
];

const BINARY: [BinaryOp; 7] = [
    BinaryOp::Add,
    BinaryOp::Sub,
    BinaryOp::Mul,
    BinaryOp::Div,
    BinaryOp::Pow,
    BinaryOp::Max,
    BinaryOp::Min,
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn unary_in_place_matches(x in prop::collection::vec(-5f32..5.0, 0..700), k in 0usize..8) {
        let op = UNARY[k];
        let mut want = vec![0f32; x.len()];
        activation::unary_f32(op, &x, &mut want);
        let mut got = x.clone();
        activation::unary_inplace_f32(op, &mut got);
        prop_assert_eq!(bits(&got), bits(&want));
    }

    #[test]
    fn binary_in_place_matches(d0 in 1usize..5, d1 in 1usize..6, d2 in 1usize..9, mask in 0u8..8, k in 0usize..7, seed in 0u64..1000) {
        let dims = [d0, d1, d2];
        let n: usize = dims.iter().product();
        let mut rng = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let mut next = || { rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1); ((rng >> 33) as f32 / (1u64 << 31) as f32) * 4.0 - 2.0 };
        let a: Vec<f32> = (0..n).map(|_| next()).collect();
        // b broadcasts over the dims whose mask bit is set.
        let bdims: Vec<usize> = dims.iter().enumerate().map(|(i, &d)| if mask & (1 << i) != 0 { 1 } else { d }).collect();
        let b: Vec<f32> = (0..bdims.iter().product::<usize>()).map(|_| next()).collect();
        let bs: Vec<usize> = row_major(&bdims).iter().zip(&bdims).map(|(&s, &d)| if d == 1 { 0 } else { s }).collect();
        let op = BINARY[k];
        let mut want = vec![0f32; n];
        elementwise::binary_f32(op, &dims, &a, &row_major(&dims), &b, &bs, &mut want);
        let mut got = a.clone();
        elementwise::binary_inplace_f32(op, &dims, &mut got, &b, &bs);
        prop_assert_eq!(bits(&got), bits(&want));
    }

    #[test]
    fn channel_affine_in_place_matches(outer in 0usize..3, c in 0usize..5, inner in 0usize..9) {
        let n = outer * c * inner;
        let x: Vec<f32> = (0..n).map(|i| i as f32 * 0.37 - 3.0).collect();
        let s: Vec<f32> = (0..c).map(|i| 0.5 + i as f32).collect();
        let b: Vec<f32> = (0..c).map(|i| i as f32 * -0.25).collect();
        let mut want = vec![0f32; n];
        elementwise::channel_affine_f32(outer, c, inner, &x, &s, &b, &mut want);
        let mut got = x.clone();
        elementwise::channel_affine_inplace_f32(outer, c, inner, &mut got, &s, &b);
        prop_assert_eq!(bits(&got), bits(&want));
    }
}

#[test]
fn binary_in_place_scalar_and_empty() {
    let mut x = vec![1.0f32, 2.0, 3.0];
    elementwise::binary_inplace_f32(BinaryOp::Mul, &[3], &mut x, &[2.0], &[0]);
    assert_eq!(x, [2.0, 4.0, 6.0]);
    let mut e: Vec<f32> = vec![];
    elementwise::binary_inplace_f32(BinaryOp::Add, &[0, 3], &mut e, &[1.0], &[0, 0]);
    let mut s = vec![5.0f32];
    elementwise::binary_inplace_f32(BinaryOp::Sub, &[], &mut s, &[2.0], &[]);
    assert_eq!(s, [3.0]);
}
