//! The int8 runtime ops (Quantize, Dequantize, QConv2d, QMatMul) against an independent
//! re-implementation (integer sums in i64, requantization by exact rational rounding in i128,
//! ONNX rounding in f64), and malformed parameters refused with typed errors, never a panic.

use mote::exec::{eval, eval_scratch, Ctx};
use mote::ops::{code, Op, Operand, ParamReader, QOut, QParams};
use mote::{AlignedBytes, DType};
use mote_targets::q8;
use mote_targets::{Activation, Conv2dGeom};

// ---------------------------------------------------------------------------------------------
// A small seeded generator
// ---------------------------------------------------------------------------------------------

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn u8s(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    fn i8s(&mut self, n: usize) -> Vec<i8> {
        (0..n)
            .map(|_| (self.below(255) as i32 - 127) as i8)
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Independent reference: integer sums in i64, requantization by floor division in i128
// ---------------------------------------------------------------------------------------------

/// `clamp(zp + floor(acc × m / 2^t + 1/2), lo, hi)`, `t = 31 + shift` — the contract's
/// rounding written as exact rational arithmetic.
fn requant_ref(acc: i64, m: i32, shift: i8, zp: u8, lo: u8, hi: u8) -> u8 {
    let t = (31 + shift as i32).clamp(1, 61) as u32;
    let num = acc as i128 * m as i128 * 2 + (1i128 << t);
    let v = num.div_euclid(1i128 << (t + 1));
    (v + zp as i128).clamp(lo as i128, hi as i128) as u8
}

struct RqData {
    bias: Vec<i32>,
    mult: Vec<i32>,
    shift: Vec<i8>,
    scale: Vec<f32>,
}

impl RqData {
    fn random(r: &mut Rng, c: usize) -> RqData {
        RqData {
            bias: (0..c).map(|_| r.below(20001) as i32 - 10000).collect(),
            mult: (0..c)
                .map(|_| {
                    q8::quantize_multiplier(1e-4 + r.below(1000) as f64 * 1e-5)
                        .unwrap()
                        .0
                })
                .collect(),
            shift: (0..c).map(|_| 8 + r.below(8) as i8).collect(),
            scale: (0..c).map(|_| 1e-3 * (1 + r.below(100)) as f32).collect(),
        }
    }
    fn blob(&self, q: &QParams) -> Vec<u8> {
        let mut b: Vec<u8> = self.bias.iter().flat_map(|v| v.to_le_bytes()).collect();
        match q.out {
            QOut::U8 { .. } => {
                b.extend(self.mult.iter().flat_map(|v| v.to_le_bytes()));
                b.extend(self.shift.iter().map(|&v| v as u8));
            }
            QOut::F32 { .. } => b.extend(self.scale.iter().flat_map(|v| v.to_le_bytes())),
        }
        b
    }
    /// Output `c` of accumulator `acc` (bias included), as the bytes the op writes.
    fn out(&self, q: &QParams, c: usize, acc: i64) -> Vec<u8> {
        match q.out {
            QOut::U8 { zp, lo, hi } => {
                vec![requant_ref(acc, self.mult[c], self.shift[c], zp, lo, hi)]
            }
            QOut::F32 { act } => {
                let v = (acc as i32) as f32 * self.scale[c];
                if act == Activation::None {
                    v.to_le_bytes().to_vec()
                } else {
                    (act_ref(act, v as f64) as f32).to_le_bytes().to_vec()
                }
            }
        }
    }
}

/// The activations in f64, written from their definitions (erf: Abramowitz–Stegun 7.1.26,
/// |error| < 1.5e-7).
fn act_ref(act: Activation, x: f64) -> f64 {
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
    let erf = |x: f64| {
        let t = 1.0 / (1.0 + 0.3275911 * x.abs());
        let y = 1.0
            - t * (0.254829592
                + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
                * (-x * x).exp();
        y.copysign(x)
    };
    match act {
        Activation::None => x,
        Activation::Relu => x.max(0.0),
        Activation::Clip { lo, hi } => x.max(lo as f64).min(hi as f64),
        Activation::Sigmoid => sigmoid(x),
        Activation::Gelu => 0.5 * x * (1.0 + erf(x / 2f64.sqrt())),
        Activation::Silu => x * sigmoid(x),
    }
}

/// The outputs agree: bit for bit, except f32 outputs with an activation, which the kernels
/// compute within their documented error bounds (here 1e-5 relative to max(1, |want|)).
fn assert_outputs(got: &[u8], want: &[u8], q: &QParams, what: &str) {
    match q.out {
        QOut::F32 { act } if act != Activation::None => {
            assert_eq!(got.len(), want.len(), "{what}");
            for (i, (g, w)) in got.chunks_exact(4).zip(want.chunks_exact(4)).enumerate() {
                let g = f32::from_le_bytes(g.try_into().unwrap());
                let w = f32::from_le_bytes(w.try_into().unwrap());
                assert!(
                    (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                    "{what}: element {i}: {g} against {w}"
                );
            }
        }
        _ => assert_eq!(got, want, "{what}"),
    }
}

/// The output kinds every int8 layer test covers: `u8`, and `f32` with each activation.
const F32_ACTS: [Activation; 6] = [
    Activation::None,
    Activation::Relu,
    Activation::Clip { lo: -0.5, hi: 2.0 },
    Activation::Sigmoid,
    Activation::Gelu,
    Activation::Silu,
];

/// Aligned copies of byte operands (the kernels read i32/f32 out of them).
fn aligned(b: &[u8]) -> AlignedBytes {
    AlignedBytes::copy_from(b)
}

fn run_op(op: &Op, ins: [Option<(DType, &[u8])>; 4], out_dtype: DType, out_len: usize) -> Vec<u8> {
    let operands = ins.map(|o| {
        o.map(|(d, b)| Operand {
            dtype: d,
            elems: b.len() / d.size(),
        })
    });
    let scratch_len = op.q_scratch_len().unwrap_or(0);
    let mut with_scratch = operands;
    if op.scratch_slot().is_some() && scratch_len > 0 {
        with_scratch[3] = Some(Operand {
            dtype: DType::U8,
            elems: scratch_len,
        });
    }
    let out_op = Operand {
        dtype: out_dtype,
        elems: out_len,
    };
    op.validate(0, &with_scratch, &out_op)
        .unwrap_or_else(|e| panic!("{op:?}: {e}"));
    let nbytes = out_len * out_dtype.size();
    let mut words = vec![u128::from_le_bytes([0xAA; 16]); nbytes.div_ceil(16)];
    let out_b = &mut mote::view::bytes_of_mut(&mut words)[..nbytes];
    // Scratch starts as garbage: the result must not depend on it.
    let mut scratch = vec![0x5Au8; scratch_len];
    if op.scratch_slot().is_some() {
        eval_scratch(Ctx::REFERENCE, op, &ins, &mut scratch, out_b).unwrap();
    } else {
        eval(Ctx::REFERENCE, op, &ins, out_dtype, out_b).unwrap();
    }
    out_b.to_vec()
}

#[allow(clippy::too_many_arguments)]
fn conv_case(r: &mut Rng, g: Conv2dGeom, q: QParams) {
    let dw = mote::ops::q_depthwise(&g);
    let cpg = g.c_in / g.groups;
    let mg = g.c_out / g.groups;
    let k = cpg * g.kh * g.kw;
    let x = r.u8s(g.n * g.c_in * g.h_in * g.w_in);
    let w = r.i8s(g.c_out * k);
    let rq = RqData::random(r, g.c_out);
    let packed: Vec<u8> = if dw {
        w.iter().map(|&v| v as u8).collect()
    } else {
        let plen = q8::qgemm_packed_len(mg, k);
        let mut p = vec![0i8; plen * g.groups];
        for grp in 0..g.groups {
            q8::pack_qgemm_weights(
                &w[grp * mg * k..(grp + 1) * mg * k],
                mg,
                k,
                &mut p[grp * plen..(grp + 1) * plen],
            );
        }
        p.iter().map(|&v| v as u8).collect()
    };
    let (xa, wa, ra) = (aligned(&x), aligned(&packed), aligned(&rq.blob(&q)));
    let op = Op::QConv2d { g, q };
    let out_dtype = match q.out {
        QOut::U8 { .. } => DType::U8,
        QOut::F32 { .. } => DType::F32,
    };
    let n_out = g.n * g.c_out * g.h_out * g.w_out;
    let got = run_op(
        &op,
        [
            Some((DType::U8, xa.as_slice())),
            Some((DType::I8, wa.as_slice())),
            Some((DType::I8, ra.as_slice())),
            None,
        ],
        out_dtype,
        n_out,
    );
    let mut want = vec![];
    for b in 0..g.n {
        for co in 0..g.c_out {
            let grp = co / mg;
            for oy in 0..g.h_out {
                for ox in 0..g.w_out {
                    let mut acc = rq.bias[co] as i64;
                    for ci in 0..cpg {
                        for ty in 0..g.kh {
                            for tx in 0..g.kw {
                                let iy = (oy * g.stride_h + ty * g.dil_h) as i64 - g.pad_top as i64;
                                let ix =
                                    (ox * g.stride_w + tx * g.dil_w) as i64 - g.pad_left as i64;
                                if iy < 0 || ix < 0 || iy >= g.h_in as i64 || ix >= g.w_in as i64 {
                                    continue;
                                }
                                let xi = ((b * g.c_in + grp * cpg + ci) * g.h_in + iy as usize)
                                    * g.w_in
                                    + ix as usize;
                                let wi = co * k + (ci * g.kh + ty) * g.kw + tx;
                                acc += w[wi] as i64 * (x[xi] as i64 - q.x_zp as i64);
                            }
                        }
                    }
                    want.extend(rq.out(&q, co, acc));
                }
            }
        }
    }
    assert_outputs(&got, &want, &q, &format!("{g:?} {q:?}"));
}

fn geom(
    n: usize,
    c_in: usize,
    c_out: usize,
    groups: usize,
    hw: (usize, usize),
    k: (usize, usize),
    stride: usize,
    dil: usize,
    pad: usize,
) -> Conv2dGeom {
    let h_out = (hw.0 + 2 * pad - dil * (k.0 - 1) - 1) / stride + 1;
    let w_out = (hw.1 + 2 * pad - dil * (k.1 - 1) - 1) / stride + 1;
    Conv2dGeom {
        n,
        c_in,
        h_in: hw.0,
        w_in: hw.1,
        c_out,
        h_out,
        w_out,
        kh: k.0,
        kw: k.1,
        stride_h: stride,
        stride_w: stride,
        dil_h: dil,
        dil_w: dil,
        pad_top: pad,
        pad_left: pad,
        groups,
    }
}

/// Random words; `f32_act` `Some(act)` asks for an f32 output with that activation.
fn qp(r: &mut Rng, f32_act: Option<Activation>) -> QParams {
    let lo = r.below(60) as u8;
    QParams {
        x_zp: r.next() as u8,
        out: if let Some(act) = f32_act {
            QOut::F32 { act }
        } else {
            QOut::U8 {
                zp: r.next() as u8,
                lo,
                hi: lo + 100 + r.below(96) as u8,
            }
        },
    }
}

#[test]
fn qconv2d_matches_the_integer_reference() {
    let mut r = Rng(0x1234_5678_9abc_def1);
    let cases = [
        geom(1, 3, 16, 1, (9, 11), (3, 3), 1, 1, 1), // dense, padded
        geom(2, 8, 12, 1, (7, 6), (1, 1), 1, 1, 0),  // pointwise, read in place
        geom(1, 8, 10, 1, (7, 7), (1, 1), 2, 1, 0),  // pointwise strided (im2col)
        geom(1, 12, 12, 12, (9, 8), (3, 3), 2, 1, 1), // depthwise
        geom(2, 6, 6, 6, (8, 9), (5, 5), 1, 2, 2),   // depthwise, dilated
        geom(1, 8, 12, 4, (6, 7), (3, 3), 1, 1, 1),  // grouped
        geom(1, 4, 8, 4, (5, 5), (3, 3), 1, 1, 1),   // channel multiplier 2 (grouped GEMMs)
        geom(1, 5, 9, 1, (6, 5), (2, 3), 1, 2, 2),   // odd kernel, dilation, k not a multiple of 4
    ];
    for g in cases {
        for f32_act in [None].into_iter().chain(F32_ACTS.map(Some)) {
            if f32_act.is_some() && mote::ops::q_depthwise(&g) {
                continue;
            }
            let q = qp(&mut r, f32_act);
            conv_case(&mut r, g, q);
        }
    }
}

#[test]
fn qmatmul_matches_the_integer_reference() {
    let mut r = Rng(0xfeed_beef_0123_4567);
    for (p, n, k, transposed) in [(5, 9, 13, false), (1, 16, 64, false), (7, 3, 20, true)] {
        for f32_act in [None].into_iter().chain(F32_ACTS.map(Some)) {
            let f32_out = f32_act.is_some();
            let q = qp(&mut r, f32_act);
            let x = r.u8s(p * k);
            let (a_rs, a_cs) = if transposed { (1, p) } else { (k, 1) };
            // W[c, j]; the op stores its transpose [n, k] packed.
            let w = r.i8s(k * n);
            let wt: Vec<i8> = (0..n)
                .flat_map(|j| (0..k).map(move |c| (j, c)))
                .map(|(j, c)| w[c * n + j])
                .collect();
            let mut packed = vec![0i8; q8::qgemm_packed_len(n, k)];
            q8::pack_qgemm_weights(&wt, n, k, &mut packed);
            let pb: Vec<u8> = packed.iter().map(|&v| v as u8).collect();
            let rq = RqData::random(&mut r, n);
            let (xa, wa, ra) = (aligned(&x), aligned(&pb), aligned(&rq.blob(&q)));
            let op = Op::QMatMul {
                p,
                n,
                k,
                a_rs,
                a_cs,
                q,
            };
            let out_dtype = if f32_out { DType::F32 } else { DType::U8 };
            let got = run_op(
                &op,
                [
                    Some((DType::U8, xa.as_slice())),
                    Some((DType::I8, wa.as_slice())),
                    Some((DType::I8, ra.as_slice())),
                    None,
                ],
                out_dtype,
                p * n,
            );
            let mut want = vec![];
            for row in 0..p {
                for j in 0..n {
                    let mut acc = rq.bias[j] as i64;
                    for c in 0..k {
                        let xv = x[row * a_rs + c * a_cs] as i64 - q.x_zp as i64;
                        acc += w[c * n + j] as i64 * xv;
                    }
                    want.extend(rq.out(&q, j, acc));
                }
            }
            assert_outputs(
                &got,
                &want,
                &q,
                &format!("p {p} n {n} k {k} transposed {transposed} {q:?}"),
            );
        }
    }
}

#[test]
fn quantize_and_dequantize_follow_onnx() {
    let mut r = Rng(99);
    let x: Vec<f32> = (0..4000)
        .map(|i| match i % 50 {
            0 => f32::NAN,
            1 => 1e9,
            2 => -1e9,
            3 => 2.5 * 0.05, // a tie
            _ => (r.below(20001) as f32 - 10000.0) * 1e-3,
        })
        .collect();
    for (scale, zp) in [(0.05f32, 128u8), (0.013, 3), (1.0, 250)] {
        let xb: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
        let xa = aligned(&xb);
        let got = run_op(
            &Op::Quantize { scale, zp },
            [Some((DType::F32, xa.as_slice())), None, None, None],
            DType::U8,
            x.len(),
        );
        for (i, (&v, &g)) in x.iter().zip(&got).enumerate() {
            let want = if v.is_nan() {
                zp
            } else {
                // f64 division then round-half-even, as numpy / onnxruntime do for f32 input.
                let q = (v / scale) as f64;
                let r = q.round();
                let r = if (q - q.trunc()).abs() == 0.5 {
                    2.0 * (q / 2.0).round()
                } else {
                    r
                };
                (r + zp as f64).clamp(0.0, 255.0) as u8
            };
            assert_eq!(g, want, "x[{i}] = {v} scale {scale} zp {zp}");
        }
        let qa = aligned(&got);
        let back = run_op(
            &Op::Dequantize { scale, zp },
            [Some((DType::U8, qa.as_slice())), None, None, None],
            DType::F32,
            x.len(),
        );
        for (b, &q) in back.chunks_exact(4).zip(&got) {
            let v = f32::from_le_bytes(b.try_into().unwrap());
            assert_eq!(v, ((q as f64 - zp as f64) * scale as f64) as f32);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Malformed parameters: typed errors, never a panic
// ---------------------------------------------------------------------------------------------

fn decode(op: u16, words: &[u32]) -> Result<Op, &'static str> {
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let mut r = ParamReader::new(&bytes, 0, words.len() as u32)?;
    Op::decode(op, &mut r)
}

#[test]
fn int8_params_round_trip_and_bad_words_are_refused() {
    let g = geom(1, 8, 16, 1, (6, 6), (3, 3), 1, 1, 1);
    let q = QParams {
        x_zp: 7,
        out: QOut::U8 {
            zp: 100,
            lo: 100,
            hi: 255,
        },
    };
    for op in [
        Op::Quantize { scale: 0.5, zp: 3 },
        Op::Dequantize {
            scale: 0.25,
            zp: 255,
        },
        Op::QConv2d { g, q },
        Op::QConv2d {
            g,
            q: QParams {
                x_zp: 0,
                out: QOut::F32 {
                    act: Activation::None,
                },
            },
        },
        Op::QConv2d {
            g,
            q: QParams {
                x_zp: 0,
                out: QOut::F32 {
                    act: Activation::Clip { lo: -1.0, hi: 6.0 },
                },
            },
        },
        Op::QMatMul {
            p: 3,
            n: 4,
            k: 5,
            a_rs: 5,
            a_cs: 1,
            q,
        },
    ] {
        let mut w = vec![];
        op.encode(&mut |x| w.push(x));
        assert_eq!(decode(op.code(), &w), Ok(op));
        assert_eq!(
            decode(op.code(), &w[..w.len() - 1]),
            Err("parameter list is too short")
        );
        let mut long = w.clone();
        long.push(0);
        assert_eq!(decode(op.code(), &long), Err("parameter list is too long"));
    }
    let bad = |op: u16, w: &[u32]| decode(op, w).expect_err("refused");
    for s in [0f32, -1.0, f32::NAN, f32::INFINITY] {
        assert_eq!(
            bad(code::QUANTIZE, &[s.to_bits(), 0]),
            "quantization scale must be positive and finite"
        );
    }
    assert_eq!(
        bad(code::DEQUANTIZE, &[1f32.to_bits(), 256]),
        "zero point or bound above 255"
    );
    // QMatMul words: p n k a_rs a_cs x_zp kind zp lo hi.
    assert_eq!(
        bad(code::QMATMUL, &[1, 1, 1, 1, 1, 0, 0, 0, 9, 8]),
        "int8 output bounds are inverted (lo > hi)"
    );
    // An f32 output's three words are an activation: kind 6 does not exist.
    assert_eq!(
        bad(code::QMATMUL, &[1, 1, 1, 1, 1, 0, 1, 6, 0, 0]),
        "parameter enum value out of range"
    );
    assert_eq!(
        bad(code::QMATMUL, &[1, 1, 1, 1, 1, 0, 2, 0, 0, 0]),
        "parameter enum value out of range"
    );
    // Validation: depthwise has no f32 form; the scratch must be there and large enough.
    let dwg = geom(1, 4, 4, 4, (5, 5), (3, 3), 1, 1, 1);
    let f32q = QParams {
        x_zp: 0,
        out: QOut::F32 {
            act: Activation::None,
        },
    };
    let o = |dtype, elems| Some(Operand { dtype, elems });
    let e = Op::QConv2d { g: dwg, q: f32q }
        .validate(
            0,
            &[o(DType::U8, 100), o(DType::I8, 36), o(DType::I8, 32), None],
            &Operand {
                dtype: DType::F32,
                elems: 100,
            },
        )
        .unwrap_err();
    assert_eq!(e, "a depthwise int8 conv has no f32 output form");
    let op = Op::QConv2d { g, q };
    let need = op.q_scratch_len().unwrap();
    let wlen = q8::qgemm_packed_len(16, 72);
    let ins = |s| {
        [
            o(DType::U8, 288),
            o(DType::I8, wlen),
            o(DType::I8, 9 * 16),
            s,
        ]
    };
    let out = Operand {
        dtype: DType::U8,
        elems: 16 * 36,
    };
    assert_eq!(op.validate(0, &ins(o(DType::U8, need)), &out), Ok(()));
    assert_eq!(
        op.validate(0, &ins(o(DType::U8, need - 1)), &out),
        Err("int8 layer scratch is smaller than its kernels need")
    );
    assert_eq!(
        op.validate(0, &ins(None), &out),
        Err("int8 layer scratch operand is missing")
    );
    assert_eq!(
        op.validate(
            0,
            &ins(o(DType::U8, need)),
            &Operand {
                dtype: DType::F32,
                elems: 16 * 36
            }
        ),
        Err("int8 layer output dtype differs from its output kind")
    );
}

#[test]
fn random_int8_param_words_never_panic() {
    let mut r = Rng(0x5eed);
    let interesting = [
        0u32,
        1,
        2,
        3,
        4,
        7,
        8,
        9,
        255,
        256,
        0x7fff_ffff,
        0x8000_0000,
        u32::MAX,
    ];
    let mut accepted = 0;
    for i in 0..40_000 {
        let op = [
            code::QUANTIZE,
            code::DEQUANTIZE,
            code::QCONV2D,
            code::QMATMUL,
        ][i % 4];
        let len = match op {
            code::QUANTIZE | code::DEQUANTIZE => 2,
            code::QCONV2D => 21,
            _ => 10,
        } + r.below(3)
            - 1;
        let words: Vec<u32> = (0..len)
            .map(|_| match r.below(3) {
                0 => interesting[r.below(interesting.len())],
                1 => r.below(40) as u32,
                _ => r.next() as u32,
            })
            .collect();
        let Ok(op) = decode(op, &words) else { continue };
        let dts = [DType::U8, DType::I8, DType::F32, DType::I32];
        let mut ins = [None; 4];
        for s in ins.iter_mut() {
            if r.below(5) > 0 {
                *s = Some(Operand {
                    dtype: dts[r.below(4)],
                    elems: [0, 1, 9, 64, 1 << 20, usize::MAX][r.below(6)],
                });
            }
        }
        let out = Operand {
            dtype: dts[r.below(4)],
            elems: [0, 1, 64, usize::MAX][r.below(4)],
        };
        if op.validate(0, &ins, &out).is_ok() {
            accepted += 1;
        }
    }
    println!("{accepted} random int8 steps validated");
}
