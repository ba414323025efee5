//! fp16 weights: the binary16 -> f32 conversion of every kernel set against the `half` crate
//! for all 65 536 inputs, and every GEMM / convolution path over fp16 operands against the
//! same path over the widened f32 values (bit-identical: widening is exact and the
//! arithmetic is the f32 kernel's), on the scalar reference and on every SIMD set this CPU
//! has. The f32 paths themselves are tested against the scalar twin in `isa.rs`.

mod common;

use common::{assert_same, simd_isas, Rng};
use half::f16;
use mote_targets::gemm::{KC, MR};
use mote_targets::generic;
use mote_targets::generic::gemm::MatRef;
use mote_targets::kernels::{self, ConvWeights};
use mote_targets::{Activation, Conv2dGeom, Isa};
use proptest::prelude::*;

/// The scalar reference first, then every SIMD set.
fn all_isas() -> Vec<Isa> {
    let mut v = vec![Isa::GENERIC];
    v.extend(simd_isas());
    v
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn scalar_conversion_matches_half_for_every_value() {
    for h in 0..=u16::MAX {
        let want = f16::from_bits(h).to_f32();
        let got = mote_targets::fp16::f16_to_f32(h);
        assert_eq!(
            got.to_bits(),
            want.to_bits(),
            "{h:#06x}: got {got:e}, half gives {want:e}"
        );
    }
}

#[test]
fn every_kernel_set_converts_every_value_like_half() {
    let all: Vec<u16> = (0..=u16::MAX).collect();
    let want: Vec<f32> = all.iter().map(|&h| f16::from_bits(h).to_f32()).collect();
    for isa in all_isas() {
        let mut got = vec![0f32; all.len()];
        kernels::convert_f16_f32(isa, &all, &mut got);
        for (h, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.to_bits(), w.to_bits(), "{}: {h:#06x}", isa.name());
        }
        // Every length and start around the vector widths: the tails are exact and nothing
        // past the end is written.
        for start in [0usize, 1, 3] {
            for n in 0..40 {
                let src = &all[0x3c00 + start..0x3c00 + start + n];
                let mut got = vec![-7.0f32; n + 1];
                kernels::convert_f16_f32(isa, src, &mut got[..n]);
                assert_eq!(bits(&got[..n]), bits(&want[0x3c00 + start..][..n]));
                assert_eq!(got[n], -7.0, "{}: wrote past the end", isa.name());
            }
        }
    }
}

/// Binary16 bits of values drawn uniformly in `[lo, hi)`, plus their exact widenings.
fn f16_vec(rng: &mut Rng, n: usize, lo: f32, hi: f32) -> (Vec<u16>, Vec<f32>) {
    let h: Vec<u16> = rng
        .vec(n, lo, hi)
        .into_iter()
        .map(|x| f16::from_f32(x).to_bits())
        .collect();
    let w = h.iter().map(|&b| f16::from_bits(b).to_f32()).collect();
    (h, w)
}

const ACTS: [Activation; 4] = [
    Activation::None,
    Activation::Relu,
    Activation::Sigmoid,
    Activation::Gelu,
];

/// Runs one GEMM with (optionally) binary16 A and/or B against the same GEMM over the widened
/// values, on every kernel set.
#[allow(clippy::too_many_arguments)]
fn check_gemm(
    seed: u64,
    m: usize,
    n: usize,
    k: usize,
    (a16, b16): (bool, bool),
    b_cm: bool,
    bias: bool,
    act: Activation,
) {
    let mut rng = Rng(seed | 1);
    let (a_rs, a_cs) = (k + 1, 1);
    let (b_rs, b_cs) = if b_cm { (1, k + 2) } else { (n + 2, 1) };
    let a_len = 1 + m.max(1) * a_rs + k.max(1);
    let b_len = 2 + k.max(1) * b_rs + n.max(1) * b_cs;
    let (ah, aw) = f16_vec(&mut rng, a_len, -2.0, 2.0);
    let (bh, bw) = f16_vec(&mut rng, b_len, -2.0, 2.0);
    let bias_v = rng.vec(n, -1.0, 1.0);
    let bias = bias.then_some(&bias_v[..]);
    let ldo = n + 3;
    let len = 5 + m * ldo;
    for isa in all_isas() {
        let mut want = vec![7.0f32; len];
        let a = MatRef {
            data: &aw[..],
            offset: 1,
            rs: a_rs,
            cs: a_cs,
        };
        let b = MatRef {
            data: &bw[..],
            offset: 2,
            rs: b_rs,
            cs: b_cs,
        };
        kernels::gemm_f32(isa, m, n, k, 0.75, a, b, bias, act, &mut want, 5, ldo);
        let mut got = vec![7.0f32; len];
        let ah = MatRef {
            data: &ah[..],
            offset: 1,
            rs: a_rs,
            cs: a_cs,
        };
        let bh = MatRef {
            data: &bh[..],
            offset: 2,
            rs: b_rs,
            cs: b_cs,
        };
        let o = &mut got;
        match (a16, b16) {
            (true, true) => kernels::gemm_f32(isa, m, n, k, 0.75, ah, bh, bias, act, o, 5, ldo),
            (true, false) => kernels::gemm_f32(isa, m, n, k, 0.75, ah, b, bias, act, o, 5, ldo),
            (false, true) => kernels::gemm_f32(isa, m, n, k, 0.75, a, bh, bias, act, o, 5, ldo),
            (false, false) => unreachable!(),
        }
        assert_same(&got, &want);
    }
}

#[test]
fn gemm_f16_edge_sizes() {
    let mut seed = 11;
    for m in [1, MR - 1, MR, MR + 1, 13] {
        for n in [1, 15, 16, 17, 63, 64, 65] {
            for k in [0, 1, 7, KC - 1, KC, KC + 1] {
                seed += 1;
                let which = [(false, true), (true, false), (true, true)][seed as usize % 3];
                let act = ACTS[seed as usize % ACTS.len()];
                check_gemm(seed, m, n, k, which, seed % 5 == 0, seed % 2 == 0, act);
            }
        }
    }
    check_gemm(3, 0, 5, 4, (true, true), false, true, Activation::None);
    check_gemm(3, 4, 0, 4, (true, true), false, true, Activation::None);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn gemm_f16_matches_widened(
        seed in any::<u64>(),
        m in 1usize..20,
        n in 1usize..90,
        k in 0usize..300,
        which in 0usize..3,
        b_cm in any::<bool>(),
        bias in any::<bool>(),
        act in 0usize..4,
    ) {
        let which = [(false, true), (true, false), (true, true)][which];
        check_gemm(seed, m, n, k, which, b_cm, bias, ACTS[act]);
    }
}

fn conv_out(inp: usize, k: usize, s: usize, d: usize, pad: usize) -> usize {
    (inp + 2 * pad - d * (k - 1) - 1) / s + 1
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
    pad: usize,
) -> Conv2dGeom {
    Conv2dGeom {
        n,
        c_in,
        h_in: hw.0,
        w_in: hw.1,
        c_out,
        h_out: conv_out(hw.0, k.0, s, 1, pad),
        w_out: conv_out(hw.1, k.1, s, 1, pad),
        kh: k.0,
        kw: k.1,
        stride_h: s,
        stride_w: s,
        dil_h: 1,
        dil_w: 1,
        pad_top: pad,
        pad_left: pad,
        groups,
    }
}

/// fp16 weights (plain and panels) against the widened f32 weights on every kernel set:
/// bit-identical, except that fp16 plain weights of direct (depthwise, small-group)
/// geometries too large for the widening buffer run the GEMM path rather than the direct
/// kernel, and are compared with the scalar twin within the GEMM tolerance of `isa.rs`.
fn check_conv(seed: u64, g: Conv2dGeom, bias: bool, act: Activation) {
    let mut rng = Rng(seed | 1);
    let x = rng.vec(g.n * g.c_in * g.h_in * g.w_in, -2.0, 2.0);
    let (wh, ww) = f16_vec(
        &mut rng,
        g.c_out * (g.c_in / g.groups) * g.kh * g.kw,
        -1.0,
        1.0,
    );
    let b = rng.vec(g.c_out, -1.0, 1.0);
    let bias = bias.then_some(&b[..]);
    let olen = g.n * g.c_out * g.h_out * g.w_out;
    let mut ph = vec![0u16; kernels::conv_panels_len(&g)];
    let mut pw = vec![0f32; ph.len()];
    kernels::pack_conv_weights(&g, &ww, &mut pw);
    for (h, w) in ph.iter_mut().zip(&pw) {
        *h = f16::from_f32(*w).to_bits();
    }
    let mut scalar = vec![0f32; olen];
    generic::conv::conv2d_f32(&g, &x, &ww, bias, act, &mut scalar);
    let taps = (g.c_in / g.groups * g.kh * g.kw) as f32;
    for isa in all_isas() {
        let run = |w: ConvWeights<'_>| {
            let mut o = vec![f32::NAN; olen];
            kernels::conv2d_f32(isa, &g, &x, w, bias, act, &mut o);
            o
        };
        let plain16 = run(ConvWeights::PlainF16(&wh));
        if kernels::conv_is_direct(&g) && !kernels::conv_direct_f16_fits(&g) {
            for (i, (p, s)) in plain16.iter().zip(&scalar).enumerate() {
                let tol = 2e-6 * (1.0 + 2.0 * taps + 1.0);
                assert!(
                    (p - s).abs() <= tol,
                    "{} {g:?}: {i}: {p} vs {s}",
                    isa.name()
                );
            }
        } else {
            assert_same(&plain16, &run(ConvWeights::Plain(&ww)));
        }
        // Panels take the same path for both precisions (the GEMM, or the AVX-512
        // matrix-vector kernel for one output position), direct geometries included.
        assert_same(
            &run(ConvWeights::PanelsF16(&ph)),
            &run(ConvWeights::Panels(&pw)),
        );
    }
}

#[test]
fn conv_f16_edge_cases() {
    let cases = [
        geom(1, 7, 13, 1, (5, 13), (1, 1), 1, 0),
        geom(2, 16, 6, 1, (8, 8), (1, 1), 1, 0),
        geom(1, 3, 8, 1, (17, 15), (3, 3), 2, 1),
        geom(1, 4, 9, 1, (8, 10), (2, 2), 2, 0),
        geom(1, 6, 5, 1, (1, 70), (1, 3), 1, 0),
        geom(1, 6, 6, 6, (11, 12), (3, 3), 1, 1),
        geom(1, 8, 12, 4, (7, 6), (3, 3), 1, 1),
        geom(1, 16, 24, 2, (6, 6), (3, 3), 1, 1),
        // Depthwise over many channels (several widened blocks, an odd count), and one whose
        // taps do not fit the buffer (the GEMM path).
        geom(2, 1001, 1001, 1001, (5, 7), (3, 3), 1, 1),
        geom(1, 3, 3, 3, (40, 40), (40, 35), 1, 0),
        // Block sizes that would leave one group last.
        geom(1, 5, 5, 5, (40, 26), (40, 25), 1, 0),
        // One output position (the f32 panels take the AVX-512 matrix-vector path).
        geom(1, 6, 13, 1, (1, 3), (1, 3), 1, 0),
        geom(2, 300, 7, 1, (1, 3), (1, 3), 1, 0),
        // Several 64-column tiles and 256-step chunks.
        geom(1, 30, 7, 1, (9, 31), (3, 3), 1, 1),
    ];
    for (i, g) in cases.into_iter().enumerate() {
        for (j, act) in ACTS.into_iter().enumerate() {
            check_conv((i * 10 + j) as u64, g, (i + j) % 2 == 0, act);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn conv_f16_matches_widened(
        seed in any::<u64>(),
        n in 1usize..3,
        cg in 1usize..8,
        og in 1usize..15,
        groups in 1usize..3,
        h in 1usize..9,
        w in 1usize..20,
        k in 1usize..4,
        s in 1usize..3,
        pad in 0usize..2,
        bias in any::<bool>(),
        act in 0usize..4,
    ) {
        let (kh, kw) = (k.min(h + 2 * pad), k.min(w + 2 * pad));
        let g = geom(n, cg * groups, og * groups, groups, (h, w), (kh, kw), s, pad);
        check_conv(seed, g, bias, ACTS[act]);
    }
}
