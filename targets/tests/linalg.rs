//! gemm, conv2d and pool2d against naive loops (bit for bit, same summation order) and against
//! f64 (within a rounding-error bound).

mod common;

use common::{assert_same, Rng};
use mote_targets::generic::activation::activate;
use mote_targets::generic::conv::conv2d_f32;
use mote_targets::generic::gemm::{gemm_f32, MatRef};
use mote_targets::generic::pool::pool2d_f32;
use mote_targets::{Activation, Conv2dGeom, Pool2dGeom, PoolKind};
use proptest::prelude::*;

const ACTS: [Activation; 5] = [
    Activation::None,
    Activation::Relu,
    Activation::Clip { lo: -1.0, hi: 1.5 },
    Activation::Sigmoid,
    Activation::Gelu,
];

// ---------------------------------------------------------------------------------------------
// gemm

/// A strided matrix of `rows x cols` in a buffer: row- or column-major, with padding and offset.
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
        offset: usize,
    ) -> Mat {
        let (rs, cs) = if col_major {
            (1, rows + pad)
        } else {
            (cols + pad, 1)
        };
        let len = offset + rows.max(1) * rs + cols.max(1) * cs;
        Mat {
            data: rng.vec(len, -2.0, 2.0),
            offset,
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
    let size = || prop_oneof![1 => Just(0usize), 8 => 1usize..=8, 2 => 9usize..=24];
    (
        size(),
        size(),
        size(),
        any::<bool>(),
        any::<bool>(),
        0usize..3,
        0usize..3,
        prop::sample::select(vec![1.0f32, 0.5, -2.0]),
        any::<bool>(),
        0..ACTS.len(),
        0usize..3,
        any::<u64>(),
    )
        .prop_map(
            |(m, n, k, a_cm, b_cm, pad, off, alpha, bias, act, ldo_extra, seed)| GemmCase {
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn gemm_matches_naive(c in gemm_case()) {
        let mut rng = Rng(c.seed | 1);
        let a = Mat::new(&mut rng, c.m, c.k, c.a_cm, c.pad, c.off);
        let b = Mat::new(&mut rng, c.k, c.n, c.b_cm, c.pad, c.off);
        let bias = rng.vec(c.n, -1.0, 1.0);
        let bias = if c.bias { Some(&bias[..]) } else { None };
        let act = ACTS[c.act];
        let ldo = c.n + c.ldo_extra;
        let out_off = c.off;
        let sentinel = f32::from_bits(0x7fc0_beef);
        let len = out_off + c.m * ldo + 2;
        let mut got = vec![sentinel; len];
        gemm_f32(c.m, c.n, c.k, c.alpha, a.view(), b.view(), bias, act, &mut got, out_off, ldo);

        let mut want = vec![sentinel; len];
        for i in 0..c.m {
            for j in 0..c.n {
                let mut acc = 0.0f32;
                for p in 0..c.k {
                    acc += a.at(i, p) * b.at(p, j);
                }
                let v = match bias { Some(bs) => c.alpha * acc + bs[j], None => c.alpha * acc };
                want[out_off + i * ldo + j] = activate(v, act);
            }
        }
        assert_same(&got, &want);

        // Accuracy against f64 (no activation): |err| <= (k + 2) eps sum |alpha a b| + |bias|.
        if act == Activation::None {
            for i in 0..c.m {
                for j in 0..c.n {
                    let mut exact = 0.0f64;
                    let mut mag = 0.0f64;
                    for p in 0..c.k {
                        let t = a.at(i, p) as f64 * b.at(p, j) as f64;
                        exact += t;
                        mag += t.abs();
                    }
                    exact *= c.alpha as f64;
                    mag *= (c.alpha as f64).abs();
                    if let Some(bs) = bias {
                        exact += bs[j] as f64;
                        mag += (bs[j] as f64).abs();
                    }
                    let err = (got[out_off + i * ldo + j] as f64 - exact).abs();
                    prop_assert!(err <= (c.k as f64 + 2.0) * f32::EPSILON as f64 * mag + 1e-30, "({}, {}): err {}", i, j, err);
                }
            }
        }
    }
}

#[test]
fn gemm_fixed() {
    // [2x3] x [3x2].
    let a = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
    let b = [7.0f32, 8.0, 9.0, 10.0, 11.0, 12.0];
    let mut out = [0.0f32; 4];
    let ar = MatRef {
        data: &a,
        offset: 0,
        rs: 3,
        cs: 1,
    };
    let br = MatRef {
        data: &b,
        offset: 0,
        rs: 2,
        cs: 1,
    };
    gemm_f32(
        2,
        2,
        3,
        1.0,
        ar,
        br,
        Some(&[1.0, -1.0]),
        Activation::None,
        &mut out,
        0,
        2,
    );
    assert_eq!(out, [59.0, 63.0, 140.0, 153.0]);
    // B transposed through its strides: b^T is [2x3] row-major == [3x2] with rs 1, cs 3.
    let bt = [7.0f32, 9.0, 11.0, 8.0, 10.0, 12.0];
    let btr = MatRef {
        data: &bt,
        offset: 0,
        rs: 1,
        cs: 3,
    };
    gemm_f32(
        2,
        2,
        3,
        0.5,
        ar,
        btr,
        None,
        Activation::Relu,
        &mut out,
        0,
        2,
    );
    assert_eq!(out, [29.0, 32.0, 69.5, 77.0]);
    // k == 0: act(bias), or act(0).
    let empty: MatRef<'_> = MatRef {
        data: &[],
        offset: 0,
        rs: 0,
        cs: 0,
    };
    gemm_f32(
        2,
        2,
        0,
        3.0,
        empty,
        empty,
        Some(&[-1.0, 2.0]),
        Activation::Relu,
        &mut out,
        0,
        2,
    );
    assert_eq!(out, [0.0, 2.0, 0.0, 2.0]);
    gemm_f32(
        2,
        2,
        0,
        3.0,
        empty,
        empty,
        None,
        Activation::Sigmoid,
        &mut out,
        0,
        2,
    );
    assert_eq!(out, [0.5; 4]);
    // m == 0 or n == 0 writes nothing.
    let mut out = [7.0f32; 4];
    gemm_f32(0, 2, 3, 1.0, ar, br, None, Activation::None, &mut out, 0, 2);
    gemm_f32(2, 0, 3, 1.0, ar, br, None, Activation::None, &mut out, 0, 2);
    assert_eq!(out, [7.0; 4]);
}

// ---------------------------------------------------------------------------------------------
// conv2d

/// Output size by the ONNX formula, or None when no window fits.
fn out_size(
    n_in: usize,
    k: usize,
    stride: usize,
    dil: usize,
    pa: usize,
    pb: usize,
) -> Option<usize> {
    let span = dil * (k - 1) + 1;
    let padded = n_in + pa + pb;
    (padded >= span).then(|| (padded - span) / stride + 1)
}

fn conv_geom() -> impl Strategy<Value = (Conv2dGeom, usize)> {
    (
        (
            0usize..=2,
            1usize..=3,
            1usize..=3,
            1usize..=3,
            any::<bool>(),
        ),
        (1usize..=7, 1usize..=7, 1usize..=3, 1usize..=3),
        (1usize..=3, 1usize..=3, 1usize..=2, 1usize..=2),
        (0usize..=2, 0usize..=2, 0usize..=2, 0usize..=2),
        0..ACTS.len(),
    )
        .prop_filter_map(
            "no output",
            |(
                (n, groups, cig, cog, depthwise),
                (h_in, w_in, kh, kw),
                (stride_h, stride_w, dil_h, dil_w),
                (pt, pl, pb, pr),
                act,
            )| {
                // Depthwise: one input channel per group (channel multiplier `cog`).
                let (groups, cig) = if depthwise {
                    (groups.max(2), 1)
                } else {
                    (groups, cig)
                };
                let h_out = out_size(h_in, kh, stride_h, dil_h, pt, pb)?;
                let w_out = out_size(w_in, kw, stride_w, dil_w, pl, pr)?;
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
                        stride_h,
                        stride_w,
                        dil_h,
                        dil_w,
                        pad_top: pt,
                        pad_left: pl,
                        groups,
                    },
                    act,
                ))
            },
        )
}

/// Naive convolution; `acc` is summed in (ci, kh, kw) order skipping padding, in f32, or in f64.
fn naive_conv<T: Copy + Default + std::ops::AddAssign + std::ops::Mul<Output = T>>(
    g: &Conv2dGeom,
    x: &[f32],
    w: &[f32],
    conv: impl Fn(f32) -> T,
) -> Vec<T> {
    let cig = g.c_in / g.groups;
    let cog = g.c_out / g.groups;
    let mut out = vec![T::default(); g.n * g.c_out * g.h_out * g.w_out];
    for b in 0..g.n {
        for co in 0..g.c_out {
            for oh in 0..g.h_out {
                for ow in 0..g.w_out {
                    let mut acc = T::default();
                    for ci in 0..cig {
                        let c = (co / cog) * cig + ci;
                        for ky in 0..g.kh {
                            for kx in 0..g.kw {
                                let ih =
                                    (oh * g.stride_h + ky * g.dil_h) as isize - g.pad_top as isize;
                                let iw =
                                    (ow * g.stride_w + kx * g.dil_w) as isize - g.pad_left as isize;
                                if ih < 0
                                    || iw < 0
                                    || ih >= g.h_in as isize
                                    || iw >= g.w_in as isize
                                {
                                    continue;
                                }
                                let xv = x[((b * g.c_in + c) * g.h_in + ih as usize) * g.w_in
                                    + iw as usize];
                                let wv = w[((co * cig + ci) * g.kh + ky) * g.kw + kx];
                                acc += conv(xv) * conv(wv);
                            }
                        }
                    }
                    out[((b * g.c_out + co) * g.h_out + oh) * g.w_out + ow] = acc;
                }
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn conv2d_matches_naive((g, act) in conv_geom(), with_bias in any::<bool>(), seed in any::<u64>()) {
        let mut rng = Rng(seed | 1);
        let x = rng.vec(g.n * g.c_in * g.h_in * g.w_in, -2.0, 2.0);
        let w = rng.vec(g.c_out * (g.c_in / g.groups) * g.kh * g.kw, -1.0, 1.0);
        let bias = rng.vec(g.c_out, -1.0, 1.0);
        let act = ACTS[act];
        let b = if with_bias { Some(&bias[..]) } else { None };
        let mut got = vec![f32::NAN; g.n * g.c_out * g.h_out * g.w_out];
        conv2d_f32(&g, &x, &w, b, act, &mut got);

        let plane = g.h_out * g.w_out;
        let acc32 = naive_conv(&g, &x, &w, |v| v);
        let want: Vec<f32> = acc32.iter().enumerate().map(|(i, &a)| {
            let co = (i / plane) % g.c_out;
            activate(if with_bias { a + bias[co] } else { a }, act)
        }).collect();
        assert_same(&got, &want);

        // f64 accuracy of the pre-activation value.
        if act == Activation::None {
            let exact = naive_conv(&g, &x, &w, |v| v as f64);
            let mag = naive_conv(&g, &x, &w, |v| (v as f64).abs());
            let taps = (g.c_in / g.groups * g.kh * g.kw) as f64;
            for i in 0..got.len() {
                let co = (i / plane) % g.c_out;
                let bv = if with_bias { bias[co] as f64 } else { 0.0 };
                let err = (got[i] as f64 - (exact[i] + bv)).abs();
                prop_assert!(err <= (taps + 2.0) * f32::EPSILON as f64 * (mag[i] + bv.abs()) + 1e-30);
            }
        }
    }
}

#[test]
fn conv_fixed() {
    // 3x3 input, 2x2 kernel of ones, pad 1 all round, stride 2 -> 2x2 output of window sums.
    let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let g = Conv2dGeom {
        n: 1,
        c_in: 1,
        h_in: 3,
        w_in: 3,
        c_out: 1,
        h_out: 2,
        w_out: 2,
        kh: 2,
        kw: 2,
        stride_h: 2,
        stride_w: 2,
        dil_h: 1,
        dil_w: 1,
        pad_top: 1,
        pad_left: 1,
        groups: 1,
    };
    let mut out = [0.0f32; 4];
    conv2d_f32(&g, &x, &[1.0; 4], Some(&[0.5]), Activation::None, &mut out);
    assert_eq!(out, [1.5, 5.5, 11.5, 28.5]);
    // Depthwise 1x1 with per-channel weights, ReLU.
    let g = Conv2dGeom {
        n: 1,
        c_in: 2,
        h_in: 1,
        w_in: 2,
        c_out: 2,
        h_out: 1,
        w_out: 2,
        kh: 1,
        kw: 1,
        stride_h: 1,
        stride_w: 1,
        dil_h: 1,
        dil_w: 1,
        pad_top: 0,
        pad_left: 0,
        groups: 2,
    };
    let mut out = [0.0f32; 4];
    conv2d_f32(
        &g,
        &[1.0, -2.0, 3.0, 4.0],
        &[2.0, -1.0],
        None,
        Activation::Relu,
        &mut out,
    );
    assert_eq!(out, [2.0, 0.0, 0.0, 0.0]);
    // Dilation 2 on a 1-D signal (h = 1): taps at t and t+2.
    let g = Conv2dGeom {
        n: 1,
        c_in: 1,
        h_in: 1,
        w_in: 5,
        c_out: 1,
        h_out: 1,
        w_out: 3,
        kh: 1,
        kw: 2,
        stride_h: 1,
        stride_w: 1,
        dil_h: 1,
        dil_w: 2,
        pad_top: 0,
        pad_left: 0,
        groups: 1,
    };
    let mut out = [0.0f32; 3];
    conv2d_f32(
        &g,
        &[1.0, 2.0, 3.0, 4.0, 5.0],
        &[1.0, 10.0],
        None,
        Activation::None,
        &mut out,
    );
    assert_eq!(out, [31.0, 42.0, 53.0]);
    // n == 0 writes nothing.
    let g = Conv2dGeom { n: 0, ..g };
    conv2d_f32(&g, &[], &[1.0, 10.0], None, Activation::None, &mut []);
}

// ---------------------------------------------------------------------------------------------
// pool2d

fn pool_geom() -> impl Strategy<Value = Pool2dGeom> {
    (
        0usize..=3,
        (1usize..=7, 1usize..=7, 1usize..=4, 1usize..=4),
        (1usize..=3, 1usize..=3, 1usize..=2, 1usize..=2),
        (0usize..=3, 0usize..=3, 0usize..=3, 0usize..=3),
        any::<bool>(),
    )
        .prop_filter_map(
            "no output",
            |(
                planes,
                (h_in, w_in, kh, kw),
                (stride_h, stride_w, dil_h, dil_w),
                (pt, pl, pb, pr),
                ceil,
            )| {
                // ONNX requires pads smaller than the kernel.
                if pt >= kh || pb >= kh || pl >= kw || pr >= kw {
                    return None;
                }
                let size =
                    |n: usize, k: usize, s: usize, d: usize, a: usize, b: usize| -> Option<usize> {
                        let span = d * (k - 1) + 1;
                        let padded = n + a + b;
                        if padded < span {
                            return None;
                        }
                        let mut o = if ceil {
                            (padded - span).div_ceil(s) + 1
                        } else {
                            (padded - span) / s + 1
                        };
                        // The last window must start inside the input or the leading padding.
                        if ceil && (o - 1) * s >= n + a {
                            o -= 1;
                        }
                        Some(o)
                    };
                let h_out = size(h_in, kh, stride_h, dil_h, pt, pb)?;
                let w_out = size(w_in, kw, stride_w, dil_w, pl, pr)?;
                Some(Pool2dGeom {
                    planes,
                    h_in,
                    w_in,
                    h_out,
                    w_out,
                    kh,
                    kw,
                    stride_h,
                    stride_w,
                    dil_h,
                    dil_w,
                    pad_top: pt,
                    pad_left: pl,
                })
            },
        )
}

fn naive_pool(kind: PoolKind, g: &Pool2dGeom, x: &[f32]) -> Vec<f32> {
    let mut out = Vec::new();
    for p in 0..g.planes {
        for oh in 0..g.h_out {
            for ow in 0..g.w_out {
                let mut vals = Vec::new();
                for ky in 0..g.kh {
                    for kx in 0..g.kw {
                        let ih = (oh * g.stride_h + ky * g.dil_h) as isize - g.pad_top as isize;
                        let iw = (ow * g.stride_w + kx * g.dil_w) as isize - g.pad_left as isize;
                        if ih >= 0 && iw >= 0 && (ih as usize) < g.h_in && (iw as usize) < g.w_in {
                            vals.push(x[(p * g.h_in + ih as usize) * g.w_in + iw as usize]);
                        }
                    }
                }
                out.push(match kind {
                    PoolKind::Max => {
                        if vals.iter().any(|v| v.is_nan()) {
                            f32::NAN
                        } else {
                            vals.iter().cloned().fold(f32::NEG_INFINITY, f32::max)
                        }
                    }
                    PoolKind::Avg { count_include_pad } => {
                        let mut s = 0.0f32;
                        for &v in &vals {
                            s += v;
                        }
                        let d = if count_include_pad {
                            g.kh * g.kw
                        } else {
                            vals.len()
                        };
                        if d == 0 {
                            0.0
                        } else {
                            s / d as f32
                        }
                    }
                });
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn pool2d_matches_naive(g in pool_geom(), kind in 0usize..3, seed in any::<u64>(), nan in any::<bool>()) {
        let kind = [PoolKind::Max, PoolKind::Avg { count_include_pad: false }, PoolKind::Avg { count_include_pad: true }][kind];
        let mut rng = Rng(seed | 1);
        let mut x = rng.vec(g.planes * g.h_in * g.w_in, -3.0, 3.0);
        if nan && !x.is_empty() {
            let i = rng.below(x.len());
            x[i] = f32::NAN;
        }
        let want = naive_pool(kind, &g, &x);
        let mut got = vec![-7.0f32; want.len()];
        pool2d_f32(kind, &g, &x, &mut got);
        assert_same(&got, &want);
    }
}

#[test]
fn pool_fixed() {
    // 2x2 window, stride 2, pad 1 on top/left, over a 3x3 plane of 1..9 -> 2x2 output.
    let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let g = Pool2dGeom {
        planes: 1,
        h_in: 3,
        w_in: 3,
        h_out: 2,
        w_out: 2,
        kh: 2,
        kw: 2,
        stride_h: 2,
        stride_w: 2,
        dil_h: 1,
        dil_w: 1,
        pad_top: 1,
        pad_left: 1,
    };
    let mut out = [0.0f32; 4];
    pool2d_f32(PoolKind::Max, &g, &x, &mut out);
    assert_eq!(out, [1.0, 3.0, 7.0, 9.0]);
    pool2d_f32(
        PoolKind::Avg {
            count_include_pad: false,
        },
        &g,
        &x,
        &mut out,
    );
    assert_eq!(out, [1.0, 2.5, 5.5, 7.0]);
    pool2d_f32(
        PoolKind::Avg {
            count_include_pad: true,
        },
        &g,
        &x,
        &mut out,
    );
    assert_eq!(out, [0.25, 1.25, 2.75, 7.0]);
    // All-negative values: max is never the padding's 0.
    let neg: Vec<f32> = x.iter().map(|v| -v).collect();
    pool2d_f32(PoolKind::Max, &g, &neg, &mut out);
    assert_eq!(out, [-1.0, -2.0, -4.0, -5.0]);
}
