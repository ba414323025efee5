//! Every ISA kernel set this CPU supports against the scalar reference (its twin): GEMM,
//! convolutions (plain and panel weights), unary functions with their documented error
//! bounds, softmax. Random shapes by proptest plus the edge sizes around the tile sizes
//! (`MR = 6`, `NR = 16 / 64`, `KC = 256`).

mod common;

use common::{erf64, simd_isas, Rng};
use mote_targets::gemm::MR;
use mote_targets::generic;
use mote_targets::generic::gemm::MatRef;
use mote_targets::kernels::{self, ConvWeights};
use mote_targets::{Activation, Conv2dGeom, Isa, UnaryOp};
use proptest::prelude::*;

const ACTS: [Activation; 6] = [
    Activation::None,
    Activation::Relu,
    Activation::Clip { lo: -1.0, hi: 1.5 },
    Activation::Sigmoid,
    Activation::Gelu,
    Activation::Silu,
];

#[test]
fn this_cpu_has_the_expected_kernel_sets() {
    // On the x86-64 machines this project tests on, AVX2 is always present; the test names
    // what it found so a run on a machine without it shows what was (not) covered.
    let names: Vec<&str> = simd_isas().iter().map(|i| i.name()).collect();
    eprintln!("SIMD kernel sets under test: {names:?}");
    #[cfg(target_arch = "aarch64")]
    assert!(names.contains(&"neon"));
    #[cfg(target_arch = "x86_64")]
    {
        assert_eq!(
            names.contains(&"avx2"),
            std::is_x86_feature_detected!("avx2")
                && std::is_x86_feature_detected!("fma")
                && std::is_x86_feature_detected!("f16c")
        );
        assert_eq!(
            names.contains(&"avx512"),
            std::is_x86_feature_detected!("avx512f")
        );
    }
    assert_eq!(Isa::by_name("generic"), Ok(Isa::GENERIC));
    assert!(Isa::by_name("sse9").is_err());
}

/// Asserts `|got - want| <= tol[i]` element-wise.
fn assert_close(what: &str, got: &[f32], want: &[f32], tol: &[f32]) {
    assert_eq!(got.len(), want.len());
    for i in 0..got.len() {
        let (g, w) = (got[i], want[i]);
        let ok = (g.is_nan() && w.is_nan()) || (g - w).abs() <= tol[i] || g == w;
        assert!(
            ok,
            "{what}: element {i}: got {g:e}, want {w:e}, tolerance {:e}",
            tol[i]
        );
    }
}

// ---------------------------------------------------------------------------------------------
// GEMM

struct Mat {
    data: Vec<f32>,
    offset: usize,
    rs: usize,
    cs: usize,
}

impl Mat {
    fn new(rng: &mut Rng, rows: usize, cols: usize, col_major: bool, pad: usize) -> Mat {
        let (rs, cs) = if col_major {
            (1, rows + pad)
        } else {
            (cols + pad, 1)
        };
        let offset = pad;
        let len = offset + rows.max(1) * rs + cols.max(1) * cs;
        Mat {
            data: rng.vec(len, -2.0, 2.0),
            offset,
            rs,
            cs,
        }
    }
    fn view(&self) -> MatRef<'_> {
        MatRef {
            data: &self.data,
            offset: self.offset,
            rs: self.rs,
            cs: self.cs,
        }
    }
    fn at(&self, r: usize, c: usize) -> f32 {
        self.data[self.offset + r * self.rs + c * self.cs]
    }
}

#[allow(clippy::too_many_arguments)]
fn check_gemm(
    seed: u64,
    m: usize,
    n: usize,
    k: usize,
    a_cm: bool,
    b_cm: bool,
    bias: bool,
    act: Activation,
    alpha: f32,
) {
    let mut rng = Rng(seed | 1);
    let a = Mat::new(&mut rng, m, k, a_cm, 1);
    let b = Mat::new(&mut rng, k, n, b_cm, 2);
    let bias_v = rng.vec(n, -1.0, 1.0);
    let bias = bias.then_some(&bias_v[..]);
    let ldo = n + 3;
    let len = 5 + m * ldo;
    let mut want = vec![7.0f32; len];
    generic::gemm::gemm_f32(
        m,
        n,
        k,
        alpha,
        a.view(),
        b.view(),
        bias,
        act,
        &mut want,
        5,
        ldo,
    );
    // Tolerance: rounding of a k-term dot product (FMA vs mul+add, another order), plus the
    // vector activations' bounds.
    let mut tol = vec![0f32; len];
    for i in 0..m {
        for j in 0..n {
            let s: f32 = (0..k).map(|p| (a.at(i, p) * b.at(p, j)).abs()).sum();
            let x = alpha.abs() * s + bias.map_or(0.0, |v| v[j].abs());
            tol[5 + i * ldo + j] = 2e-6 * (1.0 + x);
        }
    }
    for isa in simd_isas() {
        let mut got = vec![7.0f32; len];
        kernels::gemm_f32(
            isa,
            m,
            n,
            k,
            alpha,
            a.view(),
            b.view(),
            bias,
            act,
            &mut got,
            5,
            ldo,
        );
        let what = format!("{} gemm m={m} n={n} k={k} act={act:?}", isa.name());
        assert_close(&what, &got, &want, &tol);
    }
}

#[test]
fn gemm_edge_sizes() {
    let mut seed = 1;
    for m in [1, MR - 1, MR, MR + 1, 13] {
        for n in [1, 15, 16, 17, 63, 64, 65, 130] {
            for k in [0, 1, 7, 255, 256, 257] {
                seed += 1;
                let act = ACTS[seed as usize % ACTS.len()];
                check_gemm(
                    seed,
                    m,
                    n,
                    k,
                    seed % 3 == 0,
                    seed % 5 == 0,
                    seed % 2 == 0,
                    act,
                    1.0,
                );
            }
        }
    }
    // Empty outputs write nothing.
    check_gemm(3, 0, 5, 4, false, false, true, Activation::None, 1.0);
    check_gemm(3, 4, 0, 4, false, false, true, Activation::None, 1.0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn gemm_matches_reference(
        seed in any::<u64>(),
        m in 1usize..20,
        n in 1usize..90,
        k in 0usize..300,
        a_cm in any::<bool>(),
        b_cm in any::<bool>(),
        bias in any::<bool>(),
        act in 0usize..5,
        alpha in prop_oneof![Just(1.0f32), -2.0f32..2.0],
    ) {
        check_gemm(seed, m, n, k, a_cm, b_cm, bias, ACTS[act], alpha);
    }
}

// ---------------------------------------------------------------------------------------------
// Convolutions

fn conv_out(inp: usize, k: usize, s: usize, d: usize, pad: usize) -> usize {
    (inp + 2 * pad - d * (k - 1) - 1) / s + 1
}

fn check_conv(seed: u64, g: Conv2dGeom, bias: bool, act: Activation) {
    let mut rng = Rng(seed | 1);
    let x = rng.vec(g.n * g.c_in * g.h_in * g.w_in, -2.0, 2.0);
    let wlen = g.c_out * (g.c_in / g.groups) * g.kh * g.kw;
    let w = rng.vec(wlen, -1.0, 1.0);
    let b = rng.vec(g.c_out, -1.0, 1.0);
    let bias = bias.then_some(&b[..]);
    let olen = g.n * g.c_out * g.h_out * g.w_out;
    let mut want = vec![0f32; olen];
    generic::conv::conv2d_f32(&g, &x, &w, bias, act, &mut want);
    let mut panels = vec![0f32; kernels::conv_panels_len(&g)];
    kernels::pack_conv_weights(&g, &w, &mut panels);
    // The reference reading panels is the reference.
    if kernels::conv_uses_panels(&g) {
        let mut got = vec![0f32; olen];
        kernels::conv2d_f32(
            Isa::GENERIC,
            &g,
            &x,
            ConvWeights::Panels(&panels),
            bias,
            act,
            &mut got,
        );
        assert_eq!(
            got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "generic conv over panel weights differs from plain: {g:?}"
        );
    }
    let taps = (g.c_in / g.groups * g.kh * g.kw) as f32;
    let tol: Vec<f32> = want
        .iter()
        .map(|_| 2e-6 * (1.0 + 2.0 * taps + 1.0))
        .collect();
    for isa in simd_isas() {
        let mut weights = vec![ConvWeights::Plain(&w)];
        if kernels::conv_uses_panels(&g) {
            weights.push(ConvWeights::Panels(&panels));
        }
        for wt in weights {
            let mut got = vec![f32::NAN; olen];
            kernels::conv2d_f32(isa, &g, &x, wt, bias, act, &mut got);
            let what = format!("{} conv {g:?} {wt:?} act={act:?}", isa.name())
                .chars()
                .take(400)
                .collect::<String>();
            assert_close(&what, &got, &want, &tol);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn geom(
    n: usize,
    c_in: usize,
    c_out: usize,
    groups: usize,
    hw: (usize, usize),
    k: (usize, usize),
    s: usize,
    d: usize,
    pad: usize,
) -> Conv2dGeom {
    Conv2dGeom {
        n,
        c_in,
        h_in: hw.0,
        w_in: hw.1,
        c_out,
        h_out: conv_out(hw.0, k.0, s, d, pad),
        w_out: conv_out(hw.1, k.1, s, d, pad),
        kh: k.0,
        kw: k.1,
        stride_h: s,
        stride_w: s,
        dil_h: d,
        dil_w: d,
        pad_top: pad,
        pad_left: pad,
        groups,
    }
}

#[test]
fn conv_edge_cases() {
    let cases = [
        // 1x1 stride 1: B read in place; channel counts around MR.
        geom(1, 7, 13, 1, (5, 13), (1, 1), 1, 1, 0),
        geom(2, 16, 6, 1, (8, 8), (1, 1), 1, 1, 0),
        // 3x3 stems, stride 2, padding; 2x2 stride-2 downsampling; 1-D kernel 3.
        geom(1, 3, 8, 1, (17, 15), (3, 3), 2, 1, 1),
        geom(1, 5, 7, 1, (9, 9), (3, 3), 1, 1, 1),
        geom(1, 4, 9, 1, (8, 10), (2, 2), 2, 1, 0),
        geom(1, 6, 5, 1, (1, 70), (1, 3), 1, 1, 0),
        geom(1, 6, 5, 1, (1, 70), (1, 3), 1, 2, 2),
        // Depthwise 3x3 / 5x5 / 7x7, strides 1 and 2, dilation 2.
        geom(1, 6, 6, 6, (11, 12), (3, 3), 1, 1, 1),
        geom(2, 5, 5, 5, (13, 9), (5, 5), 2, 1, 2),
        geom(1, 3, 3, 3, (20, 21), (7, 7), 1, 1, 3),
        geom(1, 4, 4, 4, (12, 12), (3, 3), 1, 2, 2),
        // Grouped, not depthwise.
        geom(1, 8, 12, 4, (7, 6), (3, 3), 1, 1, 1),
        // One output position (streaming temporal convs): the matrix-vector path.
        geom(1, 6, 13, 1, (1, 3), (1, 3), 1, 1, 0),
        geom(2, 300, 7, 1, (1, 3), (1, 3), 1, 1, 0),
        geom(1, 4, 6, 1, (3, 3), (3, 3), 1, 1, 0),
        // Wide images: several 64-column tiles; deep K: several 256-step chunks.
        geom(1, 30, 7, 1, (9, 31), (3, 3), 1, 1, 1),
    ];
    for (i, g) in cases.into_iter().enumerate() {
        for (j, act) in ACTS.into_iter().enumerate() {
            check_conv((i * 10 + j) as u64, g, (i + j) % 2 == 0, act);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn conv_matches_reference(
        seed in any::<u64>(),
        n in 1usize..3,
        cg in 1usize..6,
        og in 1usize..9,
        groups in 1usize..4,
        depthwise in any::<bool>(),
        h in 1usize..14,
        w in 1usize..20,
        kh in 1usize..6,
        kw in 1usize..6,
        s in 1usize..4,
        d in 1usize..3,
        pad in 0usize..3,
        bias in any::<bool>(),
        act in 0usize..5,
    ) {
        let (c_in, c_out, groups) = if depthwise {
            (cg + 1, cg + 1, cg + 1)
        } else {
            (cg * groups, og * groups, groups)
        };
        prop_assume!(h + 2 * pad > d * (kh - 1) && w + 2 * pad > d * (kw - 1));
        let mut g = geom(n, c_in, c_out, groups, (h, w), (kh, kw), s, d, pad);
        g.h_out = conv_out(h, kh, s, d, pad);
        g.w_out = conv_out(w, kw, s, d, pad);
        check_conv(seed, g, bias, ACTS[act]);
    }
}

// ---------------------------------------------------------------------------------------------
// Unary functions and softmax

const UNARY: [UnaryOp; 15] = [
    UnaryOp::Identity,
    UnaryOp::Relu,
    UnaryOp::Clip { lo: -0.5, hi: 2.0 },
    UnaryOp::Sigmoid,
    UnaryOp::Gelu,
    UnaryOp::Erf,
    UnaryOp::Exp,
    UnaryOp::Silu,
    UnaryOp::Tanh,
    UnaryOp::Neg,
    UnaryOp::Abs,
    UnaryOp::Affine { k: 1.5, c: -0.25 },
    UnaryOp::LeakyRelu { alpha: 0.1 },
    UnaryOp::HardSigmoid {
        alpha: 0.2,
        beta: 0.5,
    },
    UnaryOp::HardSwish,
];

/// The documented bound of the vector function against the exact (f64) result.
fn unary_tol(op: UnaryOp, x: f32, exact: f64) -> f64 {
    let ax = (x.abs() as f64).max(1.0);
    match op {
        UnaryOp::Exp => 3e-7 * exact.abs() + 1e-37,
        UnaryOp::Erf => 5e-7,
        UnaryOp::Sigmoid => 3e-7,
        UnaryOp::Gelu => 5e-7 * ax,
        UnaryOp::Silu => 4e-7 * ax,
        UnaryOp::Tanh => 6e-7,
        // Exact or one rounding (Affine's FMA rounds once, the reference twice).
        _ => 2.4e-7 * ax.max(exact.abs()),
    }
}

fn exact(op: UnaryOp, x: f32) -> f64 {
    if !x.is_finite() {
        // NaN propagation and the limits at infinity, as the reference takes them.
        return generic::activation::unary(x, op) as f64;
    }
    let x = x as f64;
    let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
    match op {
        UnaryOp::Identity => x,
        UnaryOp::Relu => x.max(0.0),
        UnaryOp::Clip { lo, hi } => x.max(lo as f64).min(hi as f64),
        UnaryOp::Sigmoid => sig(x),
        UnaryOp::Gelu => 0.5 * x * (1.0 + erf64(x / 2f64.sqrt())),
        UnaryOp::Erf => erf64(x),
        UnaryOp::Exp => x.exp(),
        UnaryOp::Silu => x * sig(x),
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Neg => -x,
        UnaryOp::Abs => x.abs(),
        UnaryOp::Affine { k, c } => x * k as f64 + c as f64,
        UnaryOp::LeakyRelu { alpha } => {
            if x >= 0.0 {
                x
            } else {
                alpha as f64 * x
            }
        }
        UnaryOp::HardSigmoid { alpha, beta } => (alpha as f64 * x + beta as f64).clamp(0.0, 1.0),
        UnaryOp::HardSwish => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
        _ => f64::NAN,
    }
}

fn check_unary(isa: Isa, op: UnaryOp, xs: &[f32]) {
    let mut got = vec![0f32; xs.len()];
    kernels::unary_f32(isa, op, xs, &mut got);
    let mut inplace = xs.to_vec();
    kernels::unary_inplace_f32(isa, op, &mut inplace);
    for (i, &x) in xs.iter().enumerate() {
        let e = exact(op, x);
        let g = got[i] as f64;
        let ok = if e.is_nan() {
            got[i].is_nan()
        } else if e.is_infinite() || e == 0.0 && x.is_infinite() {
            g == e || (g.abs() < 1e-30 && e == 0.0)
        } else if e.abs() > f32::MAX as f64 {
            got[i].is_infinite() && g.signum() == e.signum()
        } else {
            (g - e).abs() <= unary_tol(op, xs[i], e)
        };
        assert!(ok, "{} {op:?}({x:e}) = {g:e}, exact {e:e}", isa.name());
        assert_eq!(
            got[i].to_bits(),
            inplace[i].to_bits(),
            "{} {op:?}({x:e}): in place differs",
            isa.name()
        );
    }
}

#[test]
fn unary_bounds_on_dense_sweeps() {
    // Every op over [-12, 12] densely, exp over its whole finite range and beyond, and the
    // special values; lengths that leave vector tails.
    let mut sweep: Vec<f32> = (-120_000..=120_000).map(|i| i as f32 * 1e-4).collect();
    sweep.extend([
        0.0,
        -0.0,
        f32::NAN,
        1e-30,
        -1e-30,
        1e-8,
        30.0,
        -30.0,
        1e6,
        -1e6,
    ]);
    sweep.extend([f32::INFINITY, f32::NEG_INFINITY]);
    let exp_sweep: Vec<f32> = (-9000..=9000).map(|i| i as f32 * 0.01).collect();
    for isa in simd_isas() {
        for op in UNARY {
            check_unary(isa, op, &sweep);
            for len in [0, 1, 7, 8, 9, 15, 16, 17, 33] {
                check_unary(isa, op, &sweep[1000..1000 + len]);
            }
        }
        check_unary(isa, UnaryOp::Exp, &exp_sweep);
    }
}

#[test]
fn unsupported_unary_ops_fall_back_to_the_reference() {
    let xs: Vec<f32> = (0..37).map(|i| i as f32 * 0.3 + 0.05).collect();
    for isa in simd_isas() {
        for op in [
            UnaryOp::Log,
            UnaryOp::Sqrt,
            UnaryOp::Round,
            UnaryOp::Softplus,
        ] {
            let mut got = vec![0f32; xs.len()];
            let mut want = vec![0f32; xs.len()];
            kernels::unary_f32(isa, op, &xs, &mut got);
            generic::activation::unary_f32(op, &xs, &mut want);
            assert_eq!(got, want, "{} {op:?}", isa.name());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn softmax_matches_reference(
        seed in any::<u64>(),
        outer in 1usize..5,
        axis in 1usize..70,
        inner in 1usize..3,
        log in any::<bool>(),
        scale in 0.1f32..30.0,
    ) {
        let mut rng = Rng(seed | 1);
        let x = rng.vec(outer * axis * inner, -scale, scale);
        let mut want = vec![0f32; x.len()];
        generic::norm::softmax_f32(outer, axis, inner, log, &x, &mut want);
        let tol: Vec<f32> = want.iter().map(|w| 1e-6 * (1.0 + w.abs()) + 2e-7 * scale).collect();
        for isa in simd_isas() {
            let mut got = vec![0f32; x.len()];
            kernels::softmax_f32(isa, outer, axis, inner, log, &x, &mut got);
            assert_close(&format!("{} softmax", isa.name()), &got, &want, &tol);
        }
    }
}
