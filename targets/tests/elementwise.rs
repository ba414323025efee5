//! Broadcasting element-wise kernels against a naive multi-index loop.

mod common;

use common::{assert_same, layout, same, unravel};
use mote_targets::generic::elementwise::{
    binary, binary_f32, channel_affine_f32, compare_f32, logic_u8, where_select,
};
use mote_targets::generic::math;
use mote_targets::{BinaryOp, CompareOp};
use proptest::prelude::*;

/// An operand of a broadcast op: its backing buffer and one stride per output dim.
#[derive(Clone, Debug)]
struct Operand<T> {
    data: Vec<T>,
    strides: Vec<usize>,
}

/// Output dims: rank 0..=4, sizes mostly 1..=4, sometimes 0.
fn dims() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(
        prop_oneof![1 => Just(0usize), 12 => 1usize..=4, 2 => 5usize..=9],
        0..=4,
    )
}

/// An operand for output `dims`: each axis is broadcast (stride 0) or real, the whole operand
/// may be a scalar, and the real axes use an arbitrary (permuted / gapped) layout.
fn operand<T: std::fmt::Debug + Clone + 'static>(
    dims: Vec<usize>,
    elem: impl Strategy<Value = T> + Clone + 'static,
) -> impl Strategy<Value = Operand<T>> {
    let rank = dims.len();
    (
        proptest::collection::vec(prop_oneof![3 => Just(false), 1 => Just(true)], rank),
        prop_oneof![5 => Just(false), 1 => Just(true)],
    )
        .prop_flat_map(move |(bcast, scalar)| {
            let odims: Vec<usize> = dims
                .iter()
                .zip(&bcast)
                .map(|(&d, &b)| if b || scalar { 1 } else { d })
                .collect();
            let elem = elem.clone();
            layout(odims.clone()).prop_flat_map(move |l| {
                let strides: Vec<usize> = l
                    .strides
                    .iter()
                    .zip(&odims)
                    .zip(&bcast)
                    .map(|((&s, _), &b)| if b || scalar { 0 } else { s })
                    .collect();
                proptest::collection::vec(elem.clone(), l.len).prop_map(move |data| Operand {
                    data,
                    strides: strides.clone(),
                })
            })
        })
}

/// Naive reference: flat output position -> multi-index -> operand offsets.
fn naive2<A: Copy, B: Copy, O>(
    dims: &[usize],
    a: &Operand<A>,
    b: &Operand<B>,
    f: impl Fn(A, B) -> O,
) -> Vec<O> {
    let total: usize = dims.iter().product();
    (0..total)
        .map(|flat| {
            let idx = unravel(flat, dims);
            let ia: usize = idx.iter().zip(&a.strides).map(|(i, s)| i * s).sum();
            let ib: usize = idx.iter().zip(&b.strides).map(|(i, s)| i * s).sum();
            f(a.data[ia], b.data[ib])
        })
        .collect()
}

const BIN_OPS: [BinaryOp; 7] = [
    BinaryOp::Add,
    BinaryOp::Sub,
    BinaryOp::Mul,
    BinaryOp::Div,
    BinaryOp::Pow,
    BinaryOp::Max,
    BinaryOp::Min,
];
const CMP_OPS: [CompareOp; 5] = [
    CompareOp::Equal,
    CompareOp::Less,
    CompareOp::LessOrEqual,
    CompareOp::Greater,
    CompareOp::GreaterOrEqual,
];

fn two_operands() -> impl Strategy<Value = (Vec<usize>, Operand<f32>, Operand<f32>)> {
    dims().prop_flat_map(|d| {
        (
            Just(d.clone()),
            operand(d.clone(), common::value()),
            operand(d, common::value()),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn binary_f32_matches_naive((d, a, b) in two_operands(), which in 0..BIN_OPS.len()) {
        let op = BIN_OPS[which];
        let want = naive2(&d, &a, &b, |x, y| binary(x, y, op));
        let mut got = vec![f32::from_bits(0x7fc0_dead); want.len()];
        binary_f32(op, &d, &a.data, &a.strides, &b.data, &b.strides, &mut got);
        assert_same(&got, &want);
    }

    #[test]
    fn compare_f32_matches_naive((d, a, b) in two_operands(), which in 0..CMP_OPS.len()) {
        let op = CMP_OPS[which];
        let f = |x: f32, y: f32| -> u8 {
            (match op {
                CompareOp::Equal => x == y,
                CompareOp::Less => x < y,
                CompareOp::LessOrEqual => x <= y,
                CompareOp::Greater => x > y,
                CompareOp::GreaterOrEqual => x >= y,
            }) as u8
        };
        let want = naive2(&d, &a, &b, f);
        let mut got = vec![7u8; want.len()];
        compare_f32(op, &d, &a.data, &a.strides, &b.data, &b.strides, &mut got);
        prop_assert_eq!(got, want);
    }

    #[test]
    fn logic_u8_matches_naive(
        (d, a, b) in dims().prop_flat_map(|d| (Just(d.clone()), operand(d.clone(), 0u8..3), operand(d, 0u8..3))),
        kind in 0u8..3,
    ) {
        let f = |x: u8, y: u8| -> u8 {
            let (x, y) = (x != 0, y != 0);
            (match kind { 0 => x && y, 1 => x || y, _ => x ^ y }) as u8
        };
        let want = naive2(&d, &a, &b, f);
        let mut got = vec![7u8; want.len()];
        logic_u8(kind, &d, &a.data, &a.strides, &b.data, &b.strides, &mut got);
        prop_assert_eq!(got, want);
    }

    #[test]
    fn where_select_matches_naive(
        (d, c, x, y) in dims().prop_flat_map(|d| (
            Just(d.clone()),
            operand(d.clone(), 0u8..3),
            operand(d.clone(), any::<i64>()),
            operand(d, any::<i64>()),
        )),
    ) {
        let total: usize = d.iter().product();
        let want: Vec<i64> = (0..total).map(|flat| {
            let idx = unravel(flat, &d);
            let at = |s: &[usize]| idx.iter().zip(s).map(|(i, s)| i * s).sum::<usize>();
            if c.data[at(&c.strides)] != 0 { x.data[at(&x.strides)] } else { y.data[at(&y.strides)] }
        }).collect();
        let mut got = vec![-1i64; total];
        where_select(&d, &c.data, &c.strides, &x.data, &x.strides, &y.data, &y.strides, &mut got);
        prop_assert_eq!(got, want);
    }

    #[test]
    fn channel_affine_matches_naive(outer in 0usize..4, channels in 0usize..5, inner in 0usize..7, seed in any::<u64>()) {
        let mut rng = common::Rng(seed | 1);
        let n = outer * channels * inner;
        let x = rng.vec(n, -5.0, 5.0);
        let scale = rng.vec(channels, -2.0, 2.0);
        let bias = rng.vec(channels, -2.0, 2.0);
        let mut got = vec![f32::NAN; n];
        channel_affine_f32(outer, channels, inner, &x, &scale, &bias, &mut got);
        for o in 0..outer {
            for c in 0..channels {
                for i in 0..inner {
                    let p = (o * channels + c) * inner + i;
                    prop_assert!(same(got[p], x[p] * scale[c] + bias[c]));
                }
            }
        }
    }
}

#[test]
fn binary_scalar_semantics() {
    let vals = [
        0.0f32,
        -0.0,
        1.0,
        -1.0,
        2.5,
        -3.0,
        1e30,
        -1e-30,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
    ];
    for &a in &vals {
        for &b in &vals {
            assert!(same(binary(a, b, BinaryOp::Add), a + b));
            assert!(same(binary(a, b, BinaryOp::Sub), a - b));
            assert!(same(binary(a, b, BinaryOp::Mul), a * b));
            assert!(same(binary(a, b, BinaryOp::Div), a / b));
            assert!(same(binary(a, b, BinaryOp::Pow), math::powf(a, b)));
            let (mx, mn) = (binary(a, b, BinaryOp::Max), binary(a, b, BinaryOp::Min));
            if a.is_nan() || b.is_nan() {
                // numpy maximum/minimum propagate NaN.
                assert!(mx.is_nan() && mn.is_nan(), "max/min({a}, {b})");
            } else {
                assert_eq!(mx, a.max(b));
                assert_eq!(mn, a.min(b));
            }
        }
    }
    assert!(same(binary(-0.0, 0.0, BinaryOp::Max), 0.0));
    assert!(same(binary(0.0, -0.0, BinaryOp::Max), 0.0));
    assert!(same(binary(-0.0, 0.0, BinaryOp::Min), -0.0));
    assert!(same(binary(0.0, -0.0, BinaryOp::Min), -0.0));
    assert_eq!(binary(2.0, 10.0, BinaryOp::Pow), 1024.0);
    assert_eq!(binary(-2.0, 3.0, BinaryOp::Pow), -8.0);
    assert!(binary(-2.0, 0.5, BinaryOp::Pow).is_nan());
}

#[test]
fn fixed_broadcasts() {
    // [2, 3] + [3] (row broadcast) and + [2, 1] (column broadcast).
    let a = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
    let row = [10.0f32, 20.0, 30.0];
    let col = [100.0f32, 200.0];
    let mut out = [0.0f32; 6];
    binary_f32(BinaryOp::Add, &[2, 3], &a, &[3, 1], &row, &[0, 1], &mut out);
    assert_eq!(out, [11.0, 22.0, 33.0, 14.0, 25.0, 36.0]);
    binary_f32(BinaryOp::Sub, &[2, 3], &a, &[3, 1], &col, &[1, 0], &mut out);
    assert_eq!(out, [-99.0, -98.0, -97.0, -196.0, -195.0, -194.0]);
    // Scalar on the left.
    binary_f32(
        BinaryOp::Div,
        &[2, 3],
        &[6.0],
        &[0, 0],
        &a,
        &[3, 1],
        &mut out,
    );
    assert_eq!(out, [6.0, 3.0, 2.0, 1.5, 1.2, 1.0]);
    // Transposed operand: a^T viewed as [3, 2].
    let mut t = [0.0f32; 6];
    binary_f32(BinaryOp::Mul, &[3, 2], &a, &[1, 3], &[1.0], &[0, 0], &mut t);
    assert_eq!(t, [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    // Rank 0.
    let mut one = [0.0f32];
    binary_f32(BinaryOp::Max, &[], &[f32::NAN], &[], &[1.0], &[], &mut one);
    assert!(one[0].is_nan());
    // A zero-sized dim writes nothing.
    let mut none: [f32; 0] = [];
    binary_f32(
        BinaryOp::Add,
        &[3, 0, 2],
        &[],
        &[0, 2, 1],
        &[],
        &[0, 0, 0],
        &mut none,
    );
    let mut c = [9u8; 6];
    compare_f32(
        CompareOp::Less,
        &[2, 3],
        &a,
        &[3, 1],
        &[3.5],
        &[0, 0],
        &mut c,
    );
    assert_eq!(c, [1, 1, 1, 0, 0, 0]);
    let mut w = [0.0f32; 6];
    where_select(
        &[2, 3],
        &[1, 0],
        &[1, 0],
        &a,
        &[3, 1],
        &[-1.0],
        &[0, 0],
        &mut w,
    );
    assert_eq!(w, [1.0, 2.0, 3.0, -1.0, -1.0, -1.0]);
    let mut l = [9u8; 4];
    logic_u8(2, &[2, 2], &[0, 1], &[1, 0], &[0, 2], &[0, 1], &mut l);
    assert_eq!(l, [0, 1, 1, 0]);
}

#[test]
fn max_rank_broadcast() {
    // [2; 8] + [2, 1, 2, 1, 2, 1, 2, 1] broadcast, against the naive loop.
    let dims = [2usize; mote_targets::MAX_RANK];
    let a = Operand {
        data: (0..256).map(|v| v as f32).collect(),
        strides: common::row_major(&dims),
    };
    let bd = [2usize, 1, 2, 1, 2, 1, 2, 1];
    let bs = common::row_major(&bd);
    let b = Operand {
        data: (0..16).map(|v| v as f32 * 1000.0).collect(),
        strides: bs
            .iter()
            .zip(&bd)
            .map(|(&s, &d)| if d == 1 { 0 } else { s })
            .collect(),
    };
    let want = naive2(&dims, &a, &b, |x, y| x + y);
    let mut got = vec![0.0f32; 256];
    binary_f32(
        BinaryOp::Add,
        &dims,
        &a.data,
        &a.strides,
        &b.data,
        &b.strides,
        &mut got,
    );
    assert_same(&got, &want);
}
