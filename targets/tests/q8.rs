//! The int8 kernels (`kernels::{qgemm, qgemm_f32out, qdwconv2d, quantize_u8, dequantize_u8}`)
//! against the scalar reference of the contract (`mote_targets::q8`), bit for bit: every int8
//! matrix kernel this CPU runs ([`QgemmKernel::new`] for each kind under each kernel set), over
//! random shapes, zero points, multipliers and shifts (negative shifts, multiplier 0, fused
//! clamps), strided and transposed operands, and the edge sizes around the tiles (8 rows;
//! 8 / 48 / 4 / 12 columns; `k` around the quads of 4). Runs natively and on aarch64 under
//! QEMU (`.ci/run`: cortex-a72 has no dot product, cortex-a76 and `max` have it).

mod common;

use common::Rng;
use mote_targets::kernels::{self, QgemmKernel, QgemmKind};
use mote_targets::q8::{self, QMat, QOut, Requant};
use mote_targets::{Conv2dGeom, Isa, IsaKind};
use proptest::prelude::*;

/// Every (kernel set, int8 kernel) pair this CPU runs.
fn kernels_under_test() -> Vec<(Isa, QgemmKernel)> {
    let mut v = Vec::new();
    for isa in IsaKind::ALL.into_iter().filter_map(Isa::new) {
        for kind in QgemmKind::ALL {
            if let Some(k) = QgemmKernel::new(isa, kind) {
                v.push((isa, k));
            }
        }
    }
    v
}

#[test]
fn the_expected_int8_kernels_run() {
    let found: Vec<String> = kernels_under_test()
        .iter()
        .map(|(i, k)| format!("{}/{:?}", i.name(), k.kind()))
        .collect();
    eprintln!("int8 kernels under test: {found:?}");
    #[cfg(target_arch = "x86_64")]
    {
        let has = |f: &str| found.iter().any(|s| s == f);
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            assert!(has("avx2/Avx2"));
            let avx2 = Isa::by_name("avx2").unwrap();
            assert_eq!(QgemmKernel::best(avx2).kind(), QgemmKind::Avx2);
        }
        if std::is_x86_feature_detected!("avx512f") {
            let avx512 = Isa::by_name("avx512").unwrap();
            // What `kernels::qgemm(avx512, ..)` runs: VNNI exactly when the CPU has it.
            let want = if std::is_x86_feature_detected!("avx512vnni") {
                QgemmKind::Avx512Vnni
            } else {
                QgemmKind::Avx2
            };
            assert_eq!(QgemmKernel::best(avx512).kind(), want);
            assert!(
                has("avx512/Avx2"),
                "the AVX-512 fallback without VNNI is tested"
            );
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        let neon = Isa::by_name("neon").unwrap();
        assert!(QgemmKernel::new(neon, QgemmKind::Neon).is_some());
        let dot = QgemmKernel::new(neon, QgemmKind::NeonDot).is_some();
        // Without the `std` feature the library cannot detect FEAT_DotProd at run time; the
        // CI runs (`--workspace`) enable it.
        eprintln!(
            "dotprod: CPU {}, kernel {}",
            std::arch::is_aarch64_feature_detected!("dotprod"),
            dot
        );
        if dot {
            assert!(std::arch::is_aarch64_feature_detected!("dotprod"));
            assert_eq!(QgemmKernel::best(neon).kind(), QgemmKind::NeonDot);
        }
    }
    assert_eq!(QgemmKernel::best(Isa::GENERIC).kind(), QgemmKind::Reference);
}

// ---------------------------------------------------------------------------------------------
// qgemm

/// One qgemm problem: weights, activations in some layout, requantization, output layout.
#[derive(Debug)]
struct Case {
    m: usize,
    n: usize,
    k: usize,
    packed: Vec<i8>,
    x: Vec<u8>,
    x_off: usize,
    x_rs: usize,
    x_cs: usize,
    x_zp: u8,
    bias: Vec<i32>,
    mult: Vec<i32>,
    shift: Vec<i8>,
    scale: Vec<f32>,
    out_zp: u8,
    lo: u8,
    hi: u8,
    dst: QOut,
    out_len: usize,
}

/// A multiplier and shift for row sums of `k` products: mostly a realistic factor (outputs
/// spread over the byte range), sometimes 0, an extreme shift, any `i32` multiplier, or a
/// tie-heavy power of two.
fn requant_params(rng: &mut Rng, k: usize) -> (i32, i8) {
    match rng.below(10) {
        0 => (0, rng.below(61) as i8 - 30),
        1 => (rng.next_u64() as i32, rng.below(61) as i8 - 30),
        2 => (
            (1 << 30) + rng.below(1 << 30) as i32,
            [-128i8, -31, -30, -29, 29, 30, 31, 127][rng.below(8)],
        ),
        // Powers of two and small shifts: many exact halves, where the rounding rule shows.
        3 => ([1 << 30, 3 << 29][rng.below(2)], rng.below(9) as i8),
        _ => {
            let spread = (k.max(1) as f64).sqrt() * 127.0 * 100.0;
            let real = (0.05 + rng.f32(0.0, 4.0) as f64) / spread;
            q8::quantize_multiplier(real).unwrap()
        }
    }
}

impl Case {
    /// `layout`: bit 0 transposes x (column-major), bit 1 the output; `pad` widens strides.
    fn new(m: usize, n: usize, k: usize, seed: u64, layout: u8, pad: usize) -> Case {
        let mut rng = Rng(seed | 1);
        let w: Vec<i8> = (0..m * k)
            .map(|_| (rng.below(255) as i32 - 127) as i8)
            .collect();
        let mut packed = vec![0i8; q8::qgemm_packed_len(m, k)];
        q8::pack_qgemm_weights(&w, m, k, &mut packed);
        let (x_rs, x_cs) = if layout & 1 != 0 {
            (1, k + pad)
        } else {
            (n + pad, 1)
        };
        let x_off = pad;
        // Ends right after the last element, so a kernel reading past it reads past the slice.
        let x_len = x_off + k.saturating_sub(1) * x_rs + n.saturating_sub(1) * x_cs + 1;
        let x_zp = [0u8, 128, 255, rng.below(256) as u8][rng.below(4)];
        // Mostly the full byte range; sometimes only the extremes; sometimes (`ties`) values
        // near the zero point, a small bias and power-of-two factors, so that the sums stay
        // small and land on exact halves of the rounding often without saturating.
        let mode = rng.below(5);
        let ties = mode == 0;
        let x: Vec<u8> = (0..x_len)
            .map(|_| match mode {
                0 => (x_zp as i32 + rng.below(5) as i32 - 2).clamp(0, 255) as u8,
                1 => [0u8, 255][rng.below(2)],
                _ => rng.below(256) as u8,
            })
            .collect();
        let bias_range = if ties { 1 << 7 } else { 1 << 20 };
        let bias: Vec<i32> = (0..m)
            .map(|_| rng.below(bias_range) as i32 - bias_range as i32 / 2)
            .collect();
        let (mut mult, mut shift) = (vec![], vec![]);
        for _ in 0..m {
            let (a, b) = if ties {
                ([1 << 30, 3 << 29][rng.below(2)], 3 + rng.below(6) as i8)
            } else {
                requant_params(&mut rng, k)
            };
            mult.push(a);
            shift.push(b);
        }
        let scale: Vec<f32> = (0..m).map(|_| rng.f32(-1e-3, 1e-3)).collect();
        let lo = rng.below(256) as u8;
        let hi = (lo as usize + rng.below(256 - lo as usize)) as u8;
        let (lo, hi) = if rng.below(3) == 0 {
            (0, 255)
        } else {
            (lo, hi)
        };
        let dst = if layout & 2 != 0 {
            QOut {
                offset: pad + 1,
                rs: 1,
                cs: m + pad,
            }
        } else {
            QOut {
                offset: pad + 1,
                rs: n + pad,
                cs: 1,
            }
        };
        let out_len = dst.offset + (m.max(1) - 1) * dst.rs + (n.max(1) - 1) * dst.cs + 1 + pad;
        Case {
            m,
            n,
            k,
            packed,
            x,
            x_off,
            x_rs,
            x_cs,
            x_zp,
            bias,
            mult,
            shift,
            scale,
            out_zp: rng.below(256) as u8,
            lo,
            hi,
            dst,
            out_len,
        }
    }

    fn xm(&self) -> QMat<'_> {
        QMat {
            data: &self.x,
            offset: self.x_off,
            rs: self.x_rs,
            cs: self.x_cs,
        }
    }

    fn rq(&self) -> Requant<'_> {
        Requant {
            bias: &self.bias,
            multiplier: &self.mult,
            shift: &self.shift,
            out_zp: self.out_zp,
            lo: self.lo,
            hi: self.hi,
        }
    }

    /// Runs `kernel` and the reference on the same pre-filled outputs (so a stray write
    /// shows) and compares every byte / bit.
    fn check(&self, isa: Isa, kernel: QgemmKernel) {
        let what = format!(
            "{}/{:?} m={} n={} k={} x=({},{}) dst=({},{})",
            isa.name(),
            kernel.kind(),
            self.m,
            self.n,
            self.k,
            self.x_rs,
            self.x_cs,
            self.dst.rs,
            self.dst.cs
        );
        let fill: Vec<u8> = (0..self.out_len).map(|i| (i * 7 + 3) as u8).collect();
        let mut want = fill.clone();
        q8::qgemm(
            self.m,
            self.n,
            self.k,
            &self.packed,
            self.xm(),
            self.x_zp,
            &self.rq(),
            &mut want,
            self.dst,
            &mut [],
        );
        let mut scratch = vec![0xa5u8; q8::qgemm_scratch_len(self.k, self.n)];
        let mut got = fill.clone();
        kernels::qgemm_with(
            kernel,
            self.m,
            self.n,
            self.k,
            &self.packed,
            self.xm(),
            self.x_zp,
            &self.rq(),
            &mut got,
            self.dst,
            &mut scratch,
        );
        if got != want {
            let i = (0..got.len()).find(|&i| got[i] != want[i]).unwrap();
            panic!("{what}: byte {i}: got {}, want {}", got[i], want[i]);
        }
        // The dispatching entry point runs the best kernel of `isa`.
        if QgemmKernel::best(isa) == kernel {
            let mut got = fill.clone();
            kernels::qgemm(
                isa,
                self.m,
                self.n,
                self.k,
                &self.packed,
                self.xm(),
                self.x_zp,
                &self.rq(),
                &mut got,
                self.dst,
                &mut scratch,
            );
            assert!(got == want, "{what}: kernels::qgemm");
        }

        let ffill: Vec<f32> = (0..self.out_len).map(|i| i as f32 * -0.5).collect();
        let mut fwant = ffill.clone();
        q8::qgemm_f32out(
            self.m,
            self.n,
            self.k,
            &self.packed,
            self.xm(),
            self.x_zp,
            &self.bias,
            &self.scale,
            &mut fwant,
            self.dst,
            &mut [],
        );
        let mut fgot = ffill.clone();
        kernels::qgemm_f32out_with(
            kernel,
            self.m,
            self.n,
            self.k,
            &self.packed,
            self.xm(),
            self.x_zp,
            &self.bias,
            &self.scale,
            &mut fgot,
            self.dst,
            &mut scratch,
        );
        for i in 0..fgot.len() {
            assert!(
                fgot[i].to_bits() == fwant[i].to_bits(),
                "{what}: f32out element {i}: got {:e}, want {:e}",
                fgot[i],
                fwant[i]
            );
        }
        if QgemmKernel::best(isa) == kernel {
            let mut fgot = ffill;
            kernels::qgemm_f32out(
                isa,
                self.m,
                self.n,
                self.k,
                &self.packed,
                self.xm(),
                self.x_zp,
                &self.bias,
                &self.scale,
                &mut fgot,
                self.dst,
                &mut scratch,
            );
            assert!(
                fgot.iter()
                    .zip(&fwant)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{what}: kernels::qgemm_f32out"
            );
        }
    }
}

#[test]
fn qgemm_edge_sizes() {
    let kernels = kernels_under_test();
    let ms = [1, 2, 7, 8, 9, 15, 16, 17];
    let ns = [1, 3, 4, 5, 7, 8, 9, 11, 12, 13, 15, 16, 17, 47, 48, 49, 97];
    let ks = [0, 1, 3, 4, 5, 8, 13, 64];
    let mut seed = 1u64;
    for &m in &ms {
        for &n in &ns {
            for &k in &ks {
                seed += 1;
                let layout = (seed % 4) as u8;
                let case = Case::new(m, n, k, seed * 0x9e37_79b9, layout, (seed % 3) as usize);
                for &(isa, kernel) in &kernels {
                    case.check(isa, kernel);
                }
            }
        }
    }
}

#[test]
fn qgemm_long_reduction_at_the_limits() {
    // k = MAX_QK with every product at its extreme: the sum reaches ±2^31 · (1 − ε), the bias
    // pushes it to the wrap, and the requantization sees the largest accumulators.
    let k = q8::MAX_QK;
    let (m, n) = (9, 17);
    for (wv, xv, zp) in [
        (127i8, 255u8, 0u8),
        (-127, 255, 0),
        (127, 0, 255),
        (-127, 0, 128),
    ] {
        let w = vec![wv; m * k];
        let mut packed = vec![0i8; q8::qgemm_packed_len(m, k)];
        q8::pack_qgemm_weights(&w, m, k, &mut packed);
        let x = vec![xv; k * n];
        let bias: Vec<i32> = (0..m as i32)
            .map(|i| i * 40_000_000 - 200_000_000)
            .collect();
        let mult: Vec<i32> = (0..m as i32).map(|i| (1 << 30) + i * 77_777_777).collect();
        let shift: Vec<i8> = (0..m as i8).map(|i| i * 3 - 5).collect();
        let rq = Requant {
            bias: &bias,
            multiplier: &mult,
            shift: &shift,
            out_zp: 100,
            lo: 0,
            hi: 255,
        };
        let xm = QMat {
            data: &x,
            offset: 0,
            rs: n,
            cs: 1,
        };
        let dst = QOut {
            offset: 0,
            rs: n,
            cs: 1,
        };
        let mut want = vec![0u8; m * n];
        q8::qgemm(m, n, k, &packed, xm, zp, &rq, &mut want, dst, &mut []);
        let mut scratch = vec![0u8; q8::qgemm_scratch_len(k, n)];
        for (isa, kernel) in kernels_under_test() {
            let mut got = vec![0u8; m * n];
            kernels::qgemm_with(
                kernel,
                m,
                n,
                k,
                &packed,
                xm,
                zp,
                &rq,
                &mut got,
                dst,
                &mut scratch,
            );
            assert_eq!(
                got,
                want,
                "{}/{:?} w={wv} x={xv}",
                isa.name(),
                kernel.kind()
            );
        }
    }
}

#[test]
fn qgemm_short_scratch_or_aliased_output_runs_the_reference() {
    let case = Case::new(9, 20, 12, 77, 0, 0);
    for (isa, kernel) in kernels_under_test() {
        // Scratch one byte short.
        let mut want = vec![0u8; case.out_len];
        q8::qgemm(
            case.m,
            case.n,
            case.k,
            &case.packed,
            case.xm(),
            case.x_zp,
            &case.rq(),
            &mut want,
            case.dst,
            &mut [],
        );
        let mut scratch = vec![0u8; q8::qgemm_scratch_len(case.k, case.n) - 1];
        let mut got = vec![0u8; case.out_len];
        kernels::qgemm_with(
            kernel,
            case.m,
            case.n,
            case.k,
            &case.packed,
            case.xm(),
            case.x_zp,
            &case.rq(),
            &mut got,
            case.dst,
            &mut scratch,
        );
        assert_eq!(
            got,
            want,
            "{}/{:?}: short scratch",
            isa.name(),
            kernel.kind()
        );
        // Every row written to the same place: the last row wins, as in the reference.
        let dst = QOut {
            offset: 0,
            rs: 0,
            cs: 1,
        };
        let mut want = vec![0u8; case.n];
        q8::qgemm(
            case.m,
            case.n,
            case.k,
            &case.packed,
            case.xm(),
            case.x_zp,
            &case.rq(),
            &mut want,
            dst,
            &mut [],
        );
        let mut scratch = vec![0u8; q8::qgemm_scratch_len(case.k, case.n)];
        let mut got = vec![0u8; case.n];
        kernels::qgemm_with(
            kernel,
            case.m,
            case.n,
            case.k,
            &case.packed,
            case.xm(),
            case.x_zp,
            &case.rq(),
            &mut got,
            dst,
            &mut scratch,
        );
        assert_eq!(
            got,
            want,
            "{}/{:?}: aliased rows",
            isa.name(),
            kernel.kind()
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn qgemm_random(
        m in 1usize..40,
        n in 1usize..130,
        k in 0usize..90,
        seed in any::<u64>(),
        layout in 0u8..4,
        pad in 0usize..3,
    ) {
        let case = Case::new(m, n, k, seed, layout, pad);
        for (isa, kernel) in kernels_under_test() {
            case.check(isa, kernel);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// quantize / dequantize / depthwise

fn isas() -> Vec<Isa> {
    IsaKind::ALL.into_iter().filter_map(Isa::new).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn quantize_and_dequantize_match(
        len in 0usize..200,
        seed in any::<u64>(),
        scale_exp in -12i32..8,
        zp in any::<u8>(),
    ) {
        let mut rng = Rng(seed | 1);
        let scale = rng.f32(1.0, 2.0) * 2f32.powi(scale_exp);
        // Values around the representable range, exact halves, NaN, infinities, zeros.
        let x: Vec<f32> = (0..len)
            .map(|_| match rng.below(12) {
                0 => f32::NAN,
                1 => [f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0][rng.below(4)],
                2 => (rng.below(600) as f32 - 300.0 + 0.5) * scale,
                3 => f32::from_bits(rng.next_u64() as u32),
                _ => rng.f32(-300.0, 300.0) * scale,
            })
            .collect();
        let q: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
        for isa in isas() {
            let mut want = vec![0u8; len];
            q8::quantize_u8(&x, scale, zp, &mut want);
            let mut got = vec![0u8; len];
            kernels::quantize_u8(isa, &x, scale, zp, &mut got);
            prop_assert_eq!(&got, &want, "{} quantize", isa.name());
            let mut fwant = vec![0f32; len];
            q8::dequantize_u8(&q, scale, zp, &mut fwant);
            let mut fgot = vec![0f32; len];
            kernels::dequantize_u8(isa, &q, scale, zp, &mut fgot);
            for i in 0..len {
                prop_assert_eq!(fgot[i].to_bits(), fwant[i].to_bits(), "{} dequantize {}", isa.name(), i);
            }
        }
    }

    #[test]
    fn qdwconv2d_matches(
        c in 1usize..20,
        h in 1usize..14,
        w in 1usize..40,
        kk in prop::sample::select(vec![1usize, 3, 5, 7]),
        stride in 1usize..3,
        pad in 0usize..4,
        seed in any::<u64>(),
    ) {
        let mut rng = Rng(seed | 1);
        let pad = pad.min(kk - 1);
        let h_out = (h + 2 * pad).saturating_sub(kk) / stride + 1;
        let w_out = (w + 2 * pad).saturating_sub(kk) / stride + 1;
        prop_assume!(h + 2 * pad >= kk && w + 2 * pad >= kk);
        let g = Conv2dGeom {
            n: 1 + rng.below(2),
            c_in: c,
            h_in: h,
            w_in: w,
            c_out: c,
            h_out,
            w_out,
            kh: kk,
            kw: kk,
            stride_h: stride,
            stride_w: stride,
            dil_h: 1,
            dil_w: 1,
            pad_top: pad,
            pad_left: pad,
            groups: c,
        };
        let x: Vec<u8> = (0..g.n * c * h * w).map(|_| rng.below(256) as u8).collect();
        let wt: Vec<i8> = (0..c * kk * kk).map(|_| (rng.below(255) as i32 - 127) as i8).collect();
        let bias: Vec<i32> = (0..c).map(|_| rng.below(1 << 16) as i32 - (1 << 15)).collect();
        let (mut mult, mut shift) = (vec![], vec![]);
        for _ in 0..c {
            let (a, b) = requant_params(&mut rng, kk * kk);
            mult.push(a);
            shift.push(b);
        }
        let lo = rng.below(128) as u8;
        let rq = Requant {
            bias: &bias,
            multiplier: &mult,
            shift: &shift,
            out_zp: rng.below(256) as u8,
            lo,
            hi: lo + rng.below(128) as u8,
        };
        let x_zp = rng.below(256) as u8;
        let len = g.n * c * h_out * w_out;
        let mut want = vec![0u8; len];
        q8::qdwconv2d(&g, &x, x_zp, &wt, &rq, &mut want);
        for isa in isas() {
            let mut got = vec![0u8; len];
            kernels::qdwconv2d(isa, &g, &x, x_zp, &wt, &rq, &mut got);
            prop_assert_eq!(&got, &want, "{}", isa.name());
        }
    }
}
