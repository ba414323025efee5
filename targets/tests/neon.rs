//! The NEON kernels (`kernels::*` with `Isa::by_name("neon")`) against the scalar reference:
//! GEMM over edge and random shapes, strides, bias, alpha and every activation; convolutions
//! (1x1, padded, strided, dilated, grouped, depthwise) with plain and panel weights; the unary
//! functions; softmax. Runs on aarch64 only (under QEMU in CI: `.ci/run`).
#![cfg(target_arch = "aarch64")]

mod common;

use common::Rng;
use mote_targets::generic;
use mote_targets::generic::gemm::MatRef;
use mote_targets::kernels::{self, ConvWeights};
use mote_targets::{Activation, Conv2dGeom, Isa, UnaryOp};
use proptest::prelude::*;

const ACTS: [Activation; 5] = [
    Activation::None,
    Activation::Relu,
    Activation::Clip { lo: -1.0, hi: 1.5 },
    Activation::Sigmoid,
    Activation::Gelu,
];

fn neon() -> Isa {
    Isa::by_name("neon").expect("NEON is available on every aarch64 CPU")
}

/// Error allowed for a sum of products whose absolute terms add up to `mag`: the f32
/// roundings of both orders (fused or not) plus the activation's approximation and its slope
/// (at most 1.13, GELU).
fn sum_tol(mag: f64) -> f64 {
    2e-5 * (1.0 + mag)
}

// ---------------------------------------------------------------------------------------------
// GEMM

/// A strided `rows x cols` matrix ending exactly at the end of its buffer, so that a kernel
/// reading past the last valid column of the last row reads past the slice.
#[derive(Clone, Debug)]
struct Mat {
    data: Vec<f32>,
    offset: usize,
    rs: usize,
    cs: usize,
}

impl Mat {
    fn new(
        rng: &mut Rng,
        rows: usize,
        cols: usize,
        col_major: bool,
        pad: usize,
        off: usize,
    ) -> Mat {
        let (rs, cs) = if col_major {
            (1, rows + pad)
        } else {
            (cols + pad, 1)
        };
        // The reference slices B rows even when they are empty: keep them in the buffer.
        let len = if rows == 0 || cols == 0 {
            off + rows.max(1) * rs + cols.max(1) * cs
        } else {
            off + (rows - 1) * rs + (cols - 1) * cs + 1
        };
        Mat {
            data: rng.vec(len, -2.0, 2.0),
            offset: off,
            rs,
            cs,
        }
    }
    fn at(&self, r: usize, c: usize) -> f32 {
        self.data[self.offset + r * self.rs + c * self.cs]
    }
    fn view(&self) -> MatRef<'_> {
        MatRef {
            data: &self.data,
            offset: self.offset,
            rs: self.rs,
            cs: self.cs,
        }
    }
}

/// Sizes around the tile edges (MR = 6, NR = 16), random ones, and (for `k`) chunk edges
/// around KC = 256 so that the accumulating pass runs.
fn size(big: bool) -> BoxedStrategy<usize> {
    let edges = prop::sample::select(vec![0usize, 1, 5, 6, 7, 15, 16, 17]);
    if big {
        prop_oneof![
            4 => edges,
            4 => 1usize..=40,
            1 => prop::sample::select(vec![255usize, 256, 257, 513]),
        ]
        .boxed()
    } else {
        prop_oneof![4 => edges, 4 => 1usize..=40].boxed()
    }
}

#[derive(Clone, Debug)]
struct GemmCase {
    m: usize,
    n: usize,
    k: usize,
    a_cm: bool,
    b_cm: bool,
    pad: usize,
    off: usize,
    alpha: f32,
    bias: bool,
    act: usize,
    ldo_extra: usize,
    seed: u64,
}

fn gemm_case() -> impl Strategy<Value = GemmCase> {
    (
        (size(false), size(false), size(true)),
        (any::<bool>(), any::<bool>(), 0usize..3, 0usize..3),
        (
            prop::sample::select(vec![1.0f32, 0.5, -2.0]),
            any::<bool>(),
            0..ACTS.len(),
            0usize..5,
            any::<u64>(),
        ),
    )
        .prop_map(
            |((m, n, k), (a_cm, b_cm, pad, off), (alpha, bias, act, ldo_extra, seed))| GemmCase {
                m,
                n,
                k,
                a_cm,
                b_cm,
                pad,
                off,
                alpha,
                bias,
                act,
                ldo_extra,
                seed,
            },
        )
}

fn check_gemm(c: &GemmCase) -> Result<(), TestCaseError> {
    let mut rng = Rng(c.seed | 1);
    let a = Mat::new(&mut rng, c.m, c.k, c.a_cm, c.pad, c.off);
    let b = Mat::new(&mut rng, c.k, c.n, c.b_cm, c.pad, c.off);
    let bias = rng.vec(c.n, -1.0, 1.0);
    let bias = c.bias.then_some(&bias[..]);
    let act = ACTS[c.act];
    let ldo = c.n + c.ldo_extra;
    let sentinel = f32::from_bits(0x7fc0_beef);
    let len = c.off + c.m * ldo + 2;
    let mut got = vec![sentinel; len];
    let mut want = vec![sentinel; len];
    kernels::gemm_f32(
        neon(),
        c.m,
        c.n,
        c.k,
        c.alpha,
        a.view(),
        b.view(),
        bias,
        act,
        &mut got,
        c.off,
        ldo,
    );
    generic::gemm::gemm_f32(
        c.m,
        c.n,
        c.k,
        c.alpha,
        a.view(),
        b.view(),
        bias,
        act,
        &mut want,
        c.off,
        ldo,
    );
    for idx in 0..len {
        let (g, w) = (got[idx], want[idx]);
        let in_tile =
            c.n > 0 && idx >= c.off && (idx - c.off) % ldo < c.n && (idx - c.off) / ldo < c.m;
        if !in_tile {
            prop_assert!(
                g.to_bits() == sentinel.to_bits(),
                "wrote outside C at {}",
                idx
            );
            continue;
        }
        let (i, j) = ((idx - c.off) / ldo, (idx - c.off) % ldo);
        let mut mag = 0f64;
        for p in 0..c.k {
            mag += (a.at(i, p) as f64 * b.at(p, j) as f64).abs();
        }
        mag = mag * c.alpha.abs() as f64 + bias.map_or(0.0, |bs| bs[j].abs() as f64);
        let d = (g as f64 - w as f64).abs();
        prop_assert!(
            d <= sum_tol(mag),
            "({}, {}) of {}x{}x{}: got {} want {} (mag {})",
            i,
            j,
            c.m,
            c.n,
            c.k,
            g,
            w,
            mag
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(160))]

    #[test]
    fn gemm_matches_reference(c in gemm_case()) {
        check_gemm(&c)?;
    }
}

#[test]
fn gemm_edge_sizes() {
    // Every combination of tile-edge sizes, row-major and column-major, each activation once.
    let edges = [0usize, 1, 5, 6, 7, 15, 16, 17];
    let mut t = 0;
    for &m in &edges {
        for &n in &edges {
            for &k in &[0usize, 1, 7, 17] {
                t += 1;
                let c = GemmCase {
                    m,
                    n,
                    k,
                    a_cm: t % 2 == 0,
                    b_cm: t % 3 == 0,
                    pad: t % 2,
                    off: t % 3,
                    alpha: if t % 4 == 0 { -2.0 } else { 1.0 },
                    bias: t % 5 != 0,
                    act: t % ACTS.len(),
                    ldo_extra: t % 4,
                    seed: t as u64,
                };
                check_gemm(&c).unwrap();
            }
        }
    }
}

#[test]
fn gemm_nan_propagates_by_row() {
    // A NaN in row 0 of A poisons row 0 of C only, through every activation.
    for act in ACTS {
        let (m, n, k) = (7, 17, 3);
        let mut a = vec![1.0f32; m * k];
        a[1] = f32::NAN;
        let b = vec![0.5f32; k * n];
        let mut out = vec![0f32; m * n];
        let av = MatRef {
            data: &a,
            offset: 0,
            rs: k,
            cs: 1,
        };
        let bv = MatRef {
            data: &b,
            offset: 0,
            rs: n,
            cs: 1,
        };
        kernels::gemm_f32(neon(), m, n, k, 1.0, av, bv, None, act, &mut out, 0, n);
        assert!(
            out[..n].iter().all(|v| v.is_nan()),
            "{act:?}: {:?}",
            &out[..n]
        );
        assert!(out[n..].iter().all(|v| !v.is_nan()), "{act:?}");
    }
}

#[test]
fn neon_path_runs() {
    // The NEON GEMM fuses multiply-adds and the NEON exp uses another polynomial, so some
    // results differ from the reference in the last bit: proof that the NEON path ran.
    let mut rng = Rng(7);
    let (m, n, k) = (6, 16, 64);
    let a = rng.vec(m * k, -1.0, 1.0);
    let b = rng.vec(k * n, -1.0, 1.0);
    let (mut got, mut want) = (vec![0f32; m * n], vec![0f32; m * n]);
    let av = MatRef {
        data: &a,
        offset: 0,
        rs: k,
        cs: 1,
    };
    let bv = MatRef {
        data: &b,
        offset: 0,
        rs: n,
        cs: 1,
    };
    let act = Activation::None;
    kernels::gemm_f32(neon(), m, n, k, 1.0, av, bv, None, act, &mut got, 0, n);
    generic::gemm::gemm_f32(m, n, k, 1.0, av, bv, None, act, &mut want, 0, n);
    assert!(
        got.iter().zip(&want).any(|(g, w)| g != w),
        "gemm: no NEON rounding"
    );

    let x = rng.vec(256, -20.0, 20.0);
    let (mut got, mut want) = (vec![0f32; 256], vec![0f32; 256]);
    kernels::unary_f32(neon(), UnaryOp::Exp, &x, &mut got);
    generic::activation::unary_f32(UnaryOp::Exp, &x, &mut want);
    assert!(
        got.iter().zip(&want).any(|(g, w)| g != w),
        "exp: no NEON rounding"
    );
}

// ---------------------------------------------------------------------------------------------
// Convolution

fn out_size(
    n_in: usize,
    k: usize,
    stride: usize,
    dil: usize,
    lo: usize,
    hi: usize,
) -> Option<usize> {
    let span = dil * (k - 1) + 1;
    let padded = n_in + lo + hi;
    (padded >= span).then(|| (padded - span) / stride + 1)
}

fn conv_geom() -> impl Strategy<Value = (Conv2dGeom, usize)> {
    (
        (1usize..=2, 1usize..=3, 1usize..=4, 1usize..=8, 0usize..3),
        (
            1usize..=11,
            1usize..=11,
            prop::sample::select(vec![1usize, 3, 5]),
            prop::sample::select(vec![1usize, 3]),
        ),
        (1usize..=2, 1usize..=2, 1usize..=2, 1usize..=2),
        (0usize..=2, 0usize..=2, 0usize..=2, 0usize..=2),
        0..ACTS.len(),
    )
        .prop_filter_map(
            "no output",
            |(
                (n, groups, cig, cog, kind),
                (h_in, w_in, kh, kw),
                (sh, sw, dh, dw),
                (pt, pl, pb, pr),
                act,
            )| {
                // kind 0: dense; 1: grouped; 2: depthwise (one channel per group, multiplier 1).
                let (groups, cig, cog) = match kind {
                    0 => (1, cig, cog),
                    1 => (groups.max(2), cig, cog),
                    _ => (groups.max(2) * cig, 1, 1),
                };
                let h_out = out_size(h_in, kh, sh, dh, pt, pb)?;
                let w_out = out_size(w_in, kw, sw, dw, pl, pr)?;
                Some((
                    Conv2dGeom {
                        n,
                        c_in: groups * cig,
                        h_in,
                        w_in,
                        c_out: groups * cog,
                        h_out,
                        w_out,
                        kh,
                        kw,
                        stride_h: sh,
                        stride_w: sw,
                        dil_h: dh,
                        dil_w: dw,
                        pad_top: pt,
                        pad_left: pl,
                        groups,
                    },
                    act,
                ))
            },
        )
}

/// Runs the NEON convolution with plain and with panel weights and checks both against the
/// reference.
fn check_conv(
    g: &Conv2dGeom,
    act: Activation,
    with_bias: bool,
    seed: u64,
) -> Result<(), TestCaseError> {
    let mut rng = Rng(seed | 1);
    let input = rng.vec(g.n * g.c_in * g.h_in * g.w_in, -2.0, 2.0);
    let wlen = g.c_out * (g.c_in / g.groups) * g.kh * g.kw;
    let weight = rng.vec(wlen, -1.0, 1.0);
    let bias = rng.vec(g.c_out, -1.0, 1.0);
    let bias = with_bias.then_some(&bias[..]);
    let olen = g.n * g.c_out * g.h_out * g.w_out;
    let mut want = vec![0f32; olen];
    generic::conv::conv2d_f32(g, &input, &weight, bias, act, &mut want);
    // Magnitudes: the reference over |input|, |weight|, plus |bias|.
    let ia: Vec<f32> = input.iter().map(|v| v.abs()).collect();
    let wa: Vec<f32> = weight.iter().map(|v| v.abs()).collect();
    let mut mag = vec![0f32; olen];
    generic::conv::conv2d_f32(g, &ia, &wa, None, Activation::None, &mut mag);
    let plane = g.h_out * g.w_out;
    let mut panels = vec![0f32; kernels::conv_panels_len(g)];
    kernels::pack_conv_weights(g, &weight, &mut panels);
    for (name, w) in [
        ("plain", ConvWeights::Plain(&weight)),
        ("panels", ConvWeights::Panels(&panels)),
    ] {
        let mut got = vec![f32::NAN; olen];
        kernels::conv2d_f32(neon(), g, &input, w, bias, act, &mut got);
        for idx in 0..olen {
            let co = idx / plane % g.c_out;
            let m = mag[idx] as f64 + bias.map_or(0.0, |b| b[co].abs() as f64);
            let d = (got[idx] as f64 - want[idx] as f64).abs();
            prop_assert!(
                d <= sum_tol(m),
                "{} weights, {:?}, {:?}, output {}: got {} want {}",
                name,
                g,
                act,
                idx,
                got[idx],
                want[idx]
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn conv2d_matches_reference((g, act) in conv_geom(), with_bias in any::<bool>(), seed in any::<u64>()) {
        check_conv(&g, ACTS[act], with_bias, seed)?;
    }
}

#[test]
fn conv2d_fixed_geometries() {
    let base = Conv2dGeom {
        n: 1,
        c_in: 8,
        h_in: 9,
        w_in: 9,
        c_out: 13,
        h_out: 9,
        w_out: 9,
        kh: 1,
        kw: 1,
        stride_h: 1,
        stride_w: 1,
        dil_h: 1,
        dil_w: 1,
        pad_top: 0,
        pad_left: 0,
        groups: 1,
    };
    let geoms = [
        // 1x1, stride 1, unpadded: B read in place from the input planes.
        base,
        // 3x3, pad 1.
        Conv2dGeom {
            kh: 3,
            kw: 3,
            pad_top: 1,
            pad_left: 1,
            ..base
        },
        // 3x3, pad 1, stride 2.
        Conv2dGeom {
            kh: 3,
            kw: 3,
            pad_top: 1,
            pad_left: 1,
            stride_h: 2,
            stride_w: 2,
            h_out: 5,
            w_out: 5,
            ..base
        },
        // Depthwise 3x3, pad 1, and stride 2.
        Conv2dGeom {
            c_in: 12,
            c_out: 12,
            groups: 12,
            kh: 3,
            kw: 3,
            pad_top: 1,
            pad_left: 1,
            ..base
        },
        Conv2dGeom {
            c_in: 12,
            c_out: 12,
            groups: 12,
            kh: 3,
            kw: 3,
            pad_top: 1,
            pad_left: 1,
            stride_h: 2,
            stride_w: 2,
            h_out: 5,
            w_out: 5,
            ..base
        },
        // Depthwise 5x5, dilation 2.
        Conv2dGeom {
            c_in: 6,
            c_out: 6,
            groups: 6,
            kh: 5,
            kw: 5,
            dil_h: 2,
            dil_w: 2,
            pad_top: 4,
            pad_left: 4,
            ..base
        },
        // Grouped 3x3.
        Conv2dGeom {
            c_in: 8,
            c_out: 12,
            groups: 4,
            kh: 3,
            kw: 3,
            pad_top: 1,
            pad_left: 1,
            ..base
        },
        // k = 32 * 9 = 288 > KC: two chunks, the second accumulating.
        Conv2dGeom {
            c_in: 32,
            c_out: 7,
            kh: 3,
            kw: 3,
            pad_top: 1,
            pad_left: 1,
            ..base
        },
        // 1x1 with k = 300 in place.
        Conv2dGeom {
            c_in: 300,
            c_out: 6,
            h_in: 4,
            w_in: 5,
            h_out: 4,
            w_out: 5,
            ..base
        },
    ];
    for (t, g) in geoms.iter().enumerate() {
        for (i, act) in ACTS.into_iter().enumerate() {
            check_conv(g, act, (t + i) % 2 == 0, (t * 8 + i) as u64).unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Unary functions and softmax

/// Every vectorized op plus some that fall back to the reference.
const OPS: [UnaryOp; 20] = [
    UnaryOp::Identity,
    UnaryOp::Relu,
    UnaryOp::Clip { lo: -1.0, hi: 6.0 },
    UnaryOp::Sigmoid,
    UnaryOp::Gelu,
    UnaryOp::Erf,
    UnaryOp::Exp,
    UnaryOp::Silu,
    UnaryOp::Tanh,
    UnaryOp::Neg,
    UnaryOp::Abs,
    UnaryOp::Affine { k: 0.3, c: -1.25 },
    UnaryOp::LeakyRelu { alpha: 0.1 },
    UnaryOp::HardSigmoid {
        alpha: 0.2,
        beta: 0.5,
    },
    UnaryOp::HardSwish,
    UnaryOp::Log,
    UnaryOp::Sqrt,
    UnaryOp::Round,
    UnaryOp::Softplus,
    UnaryOp::PowConst { exp: 3.0 },
];

/// Allowed `|got - want|` for `op` at input `x` (the bounds of `aarch64/math.rs` plus the
/// reference's own error); 0 means equal (`-0 == 0`).
fn unary_tol(op: UnaryOp, x: f32, want: f32) -> f64 {
    let big = (x.abs() as f64).max(1.0);
    match op {
        UnaryOp::Exp => 4e-7 * want.abs() as f64 + f32::MIN_POSITIVE as f64,
        UnaryOp::Erf => 6e-7,
        UnaryOp::Sigmoid => 5e-7,
        UnaryOp::Tanh => 8e-7,
        UnaryOp::Gelu | UnaryOp::Silu => 7e-7 * big,
        UnaryOp::HardSwish => 2.5e-7 * big,
        _ => 0.0,
    }
}

fn unary_value() -> impl Strategy<Value = f32> {
    prop_oneof![
        6 => -10.0f32..10.0,
        2 => -110.0f32..110.0,
        1 => prop::sample::select(vec![
            0.0f32, -0.0, 1.0, -1.0, 88.7, 88.8, -87.4, -104.5, -16.0, -151.0,
            f32::INFINITY, f32::NEG_INFINITY, f32::NAN,
        ]),
    ]
}

fn check_unary(op: UnaryOp, x: &[f32], got: &[f32], want: &[f32]) -> Result<(), TestCaseError> {
    for i in 0..x.len() {
        let (g, w) = (got[i], want[i]);
        let ok = if w.is_nan() || g.is_nan() {
            w.is_nan() && g.is_nan()
        } else if w.is_infinite() || g.is_infinite() {
            g == w
        } else {
            (g as f64 - w as f64).abs() <= unary_tol(op, x[i], w)
        };
        prop_assert!(
            ok,
            "{:?}({:e}) at {}: got {:e} want {:e}",
            op,
            x[i],
            i,
            g,
            w
        );
    }
    Ok(())
}

#[test]
fn unary_special_values() {
    // Infinities, NaN, signed zeros, the exp clamp and overflow edges and the GELU/SiLU
    // cut-offs, all in whole vectors (and once more through the scalar tail).
    let specials = [
        f32::NEG_INFINITY,
        f32::INFINITY,
        f32::NAN,
        0.0,
        -0.0,
        1e-30,
        -1e-30,
        88.72,
        88.73,
        89.5,
        -87.3,
        -103.9,
        -104.5,
        -14.0,
        -15.5,
        -149.0,
        -151.0,
        -5.7,
        4.5,
        f32::MAX,
        f32::MIN,
    ];
    let mut x = specials.to_vec();
    x.extend_from_slice(&specials[..3]);
    for op in OPS {
        let mut want = vec![0f32; x.len()];
        generic::activation::unary_f32(op, &x, &mut want);
        let mut got = vec![0f32; x.len()];
        kernels::unary_f32(neon(), op, &x, &mut got);
        check_unary(op, &x, &got, &want).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn unary_matches_reference(
        op in prop::sample::select(OPS.to_vec()),
        x in prop::collection::vec(unary_value(), 0..70),
    ) {
        let mut want = vec![0f32; x.len()];
        generic::activation::unary_f32(op, &x, &mut want);
        let mut got = vec![f32::NAN; x.len()];
        kernels::unary_f32(neon(), op, &x, &mut got);
        check_unary(op, &x, &got, &want)?;
        let mut inplace = x.clone();
        kernels::unary_inplace_f32(neon(), op, &mut inplace);
        check_unary(op, &x, &inplace, &want)?;
    }

    #[test]
    fn softmax_matches_reference(
        outer in 0usize..4,
        axis in 1usize..40,
        inner in 1usize..3,
        log in any::<bool>(),
        seed in any::<u64>(),
        special in 0usize..8,
    ) {
        let mut rng = Rng(seed | 1);
        let len = outer * axis * inner;
        let mut x = rng.vec(len, -20.0, 20.0);
        // Now and then a NaN (poisons its row) or -inf (gives 0 / -inf).
        if len > 0 && special < 2 {
            let at = (seed as usize / 8) % len;
            x[at] = [f32::NAN, f32::NEG_INFINITY][special];
        }
        let mut want = vec![0f32; len];
        generic::norm::softmax_f32(outer, axis, inner, log, &x, &mut want);
        let mut got = vec![0f32; len];
        kernels::softmax_f32(neon(), outer, axis, inner, log, &x, &mut got);
        for i in 0..len {
            let (g, w) = (got[i], want[i]);
            let ok = if w.is_nan() || g.is_nan() {
                w.is_nan() && g.is_nan()
            } else if w.is_infinite() {
                g == w
            } else {
                let d = (g as f64 - w as f64).abs();
                if log { d <= 2e-6 * (1.0 + w.abs() as f64) } else { d <= 2e-6 * w.abs() as f64 + 1e-30 }
            };
            prop_assert!(ok, "softmax {}x{}x{} log {} at {}: got {:e} want {:e}", outer, axis, inner, log, i, g, w);
        }
    }
}
