//! Criterion benches of the dispatching kernels ([`mote_targets::kernels`]) at the shapes of the
//! conformance fixtures, on every kernel set this CPU runs, with tract-linalg's f32 matrix
//! multiply as the baseline for the GEMM shapes, and the int8 `qgemm` kernels next to the f32
//! GEMM at the pointwise convolutions' shapes (`-- qgemm`).
//!
//! Run: `cargo bench -p mote-targets --features std --bench kernels` (add a filter such as
//! `-- gemm/` to run a subset). Throughput is in GFLOP/s (a multiply-add counts 2). On Linux
//! the clock is the benchmark thread's CPU time, so that time spent descheduled on a shared
//! machine does not count; `MOTE_BENCH_WALL=1` switches to wall time. Shapes, results and the
//! FMA peak they are judged against are in `targets/benches/README.md`; `mote inspect -v` on a
//! converted fixture prints every step's geometry.

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, SamplingMode,
    Throughput,
};
use mote_targets::generic::gemm::MatRef;
use mote_targets::kernels::{self, ConvWeights};
use mote_targets::{Activation, Conv2dGeom, Isa, IsaKind};
use std::hint::black_box;
use std::time::{Duration, Instant};
use tract_data::internal::{DatumType, Tensor};
use tract_linalg::mmm::{AsInputValue, FusedSpec, MatMatMul};

/// Every kernel set this CPU supports, in [`IsaKind::ALL`] order (generic first).
fn isas() -> Vec<Isa> {
    IsaKind::ALL.into_iter().filter_map(Isa::new).collect()
}

/// Deterministic values in `[-1, 1)`.
fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}

/// A matrix multiply step: `batch` independent `m x k` by `k x n` products, A and B row-major
/// and contiguous, as the executor runs a MatMul step.
#[derive(Clone, Copy, Debug)]
struct GemmShape {
    /// Where it comes from.
    what: &'static str,
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    act: Activation,
}

impl GemmShape {
    fn id(&self) -> String {
        let b = if self.batch > 1 {
            format!("{}x", self.batch)
        } else {
            String::new()
        };
        format!("{}/{b}{}x{}x{}", self.what, self.m, self.n, self.k)
    }
    fn flops(&self) -> u64 {
        2 * (self.batch * self.m * self.n * self.k) as u64
    }
}

const fn mm(what: &'static str, batch: usize, m: usize, n: usize, k: usize) -> GemmShape {
    GemmShape {
        what,
        batch,
        m,
        n,
        k,
        act: Activation::None,
    }
}

/// MatMul steps (`m x n x k`): large squares, then the costliest of each fixture.
const GEMMS: &[GemmShape] = &[
    mm("square", 1, 256, 256, 256),
    mm("square", 1, 512, 512, 512),
    mm("square", 1, 1024, 1024, 1024),
    // emov2_1m attention: attn @ v (11.5% of the model's MACs) and q @ k^T (3.8%).
    mm("emov2_attn_v", 16, 49, 60, 49),
    mm("emov2_qk", 16, 49, 49, 20),
    // ecoformer_pvtv2_b0 linears: stage-1 MLP in and out (9.5% each), stage-3 MLP (7.4%).
    mm("ecoformer_mlp1_fc1", 1, 3136, 256, 32),
    mm("ecoformer_mlp1_fc2", 1, 3136, 32, 256),
    mm("ecoformer_mlp3_fc1", 1, 196, 640, 160),
    // lmuformer_seq_tdconv feed-forward (8.0%), with its fused ReLU.
    GemmShape {
        what: "lmuformer_ff",
        batch: 1,
        m: 128,
        n: 256,
        k: 512,
        act: Activation::Relu,
    },
];

/// A convolution step of a fixture.
#[derive(Clone, Copy, Debug)]
struct ConvShape {
    what: &'static str,
    g: Conv2dGeom,
}

impl ConvShape {
    fn id(&self) -> String {
        let g = &self.g;
        let kind = if !kernels::conv_uses_panels(g) {
            "dw"
        } else if g.groups > 1 {
            "grouped"
        } else {
            "conv"
        };
        format!(
            "{}/{kind}{}x{}_{}to{}_{}x{}_s{}d{}",
            self.what, g.kh, g.kw, g.c_in, g.c_out, g.h_out, g.w_out, g.stride_h, g.dil_h
        )
    }
    fn flops(&self) -> u64 {
        let g = &self.g;
        2 * (g.n * g.c_out * g.h_out * g.w_out * (g.c_in / g.groups) * g.kh * g.kw) as u64
    }
    /// The plain GEMM a 1x1, stride-1, unpadded convolution is: `c_out x hw x c_in`.
    fn as_gemm(&self) -> Option<(usize, usize, usize)> {
        let g = &self.g;
        (g.kh == 1 && g.kw == 1 && g.stride_h == 1 && g.stride_w == 1 && g.groups == 1).then_some((
            g.c_out,
            g.h_out * g.w_out,
            g.c_in,
        ))
    }
}

/// A square-kernel, equal-stride, equal-dilation convolution with ONNX output sizes.
#[allow(clippy::too_many_arguments)]
const fn conv(
    what: &'static str,
    c_in: usize,
    c_out: usize,
    (h_in, w_in): (usize, usize),
    (kh, kw): (usize, usize),
    stride: usize,
    dil: usize,
    (pad_top, pad_left): (usize, usize),
    groups: usize,
) -> ConvShape {
    // Symmetric padding, as in every fixture.
    let h_out = (h_in + 2 * pad_top - dil * (kh - 1) - 1) / stride + 1;
    let w_out = (w_in + 2 * pad_left - dil * (kw - 1) - 1) / stride + 1;
    ConvShape {
        what,
        g: Conv2dGeom {
            n: 1,
            c_in,
            h_in,
            w_in,
            c_out,
            h_out,
            w_out,
            kh,
            kw,
            stride_h: stride,
            stride_w: stride,
            dil_h: dil,
            dil_w: dil,
            pad_top,
            pad_left,
            groups,
        },
    }
}

/// Convolution steps, the costliest of each fixture (share of the model's MACs, occurrences).
const CONVS: &[ConvShape] = &[
    // emov2_1m: 1x1 expand/project at 14x14 (9.4% each, x7), the 112x112 1x1 (4.6%),
    // depthwise 5x5 (2.9%, x7) and the stride-2 one at 112x112.
    conv("emov2", 80, 240, (14, 14), (1, 1), 1, 1, (0, 0), 1),
    conv("emov2", 240, 80, (14, 14), (1, 1), 1, 1, (0, 0), 1),
    conv("emov2", 16, 64, (112, 112), (1, 1), 1, 1, (0, 0), 1),
    conv("emov2", 240, 240, (14, 14), (5, 5), 1, 1, (2, 2), 240),
    conv("emov2", 64, 64, (112, 112), (5, 5), 2, 1, (2, 2), 64),
    // spartan_t: 1x1 at 14x14 (19.3%, x24) and 56x56 (9.6%), dilated dense 3x3 (5.4%),
    // depthwise 3x3 at 56x56.
    conv("spartan", 128, 256, (14, 14), (1, 1), 1, 1, (0, 0), 1),
    conv("spartan", 32, 128, (56, 56), (1, 1), 1, 1, (0, 0), 1),
    conv("spartan", 16, 16, (56, 56), (3, 3), 1, 2, (2, 2), 1),
    conv("spartan", 128, 128, (56, 56), (3, 3), 1, 1, (1, 1), 128),
    // ecoformer_pvtv2_b0: the stride-2 patch-embedding 3x3s (3.3% each), depthwise 3x3 at 56x56.
    conv("ecoformer", 64, 160, (28, 28), (3, 3), 2, 1, (1, 1), 1),
    conv("ecoformer", 32, 64, (56, 56), (3, 3), 2, 1, (1, 1), 1),
    conv("ecoformer", 256, 256, (56, 56), (3, 3), 1, 1, (1, 1), 256),
    // lmuformer_seq_tdconv: the 1x3 temporal conv (47.7%, x4) and the 1x1 pair (15.9% each).
    ConvShape {
        what: "lmuformer",
        g: Conv2dGeom {
            n: 1,
            c_in: 256,
            h_in: 1,
            w_in: 128,
            c_out: 256,
            h_out: 1,
            w_out: 128,
            kh: 1,
            kw: 3,
            stride_h: 1,
            stride_w: 1,
            dil_h: 1,
            dil_w: 1,
            pad_top: 0,
            pad_left: 1,
            groups: 1,
        },
    },
    conv("lmuformer", 256, 1024, (1, 128), (1, 1), 1, 1, (0, 0), 1),
    conv("lmuformer", 1024, 256, (1, 128), (1, 1), 1, 1, (0, 0), 1),
];

/// The benchmark clock: this thread's CPU time (Linux), else wall time. Values are nanoseconds.
struct Clock {
    /// Read CLOCK_THREAD_CPUTIME_ID rather than the wall clock.
    thread: bool,
    origin: Instant,
}

impl Clock {
    fn new() -> Clock {
        Clock {
            thread: cfg!(target_os = "linux") && std::env::var_os("MOTE_BENCH_WALL").is_none(),
            origin: Instant::now(),
        }
    }

    fn now_ns(&self) -> u64 {
        #[cfg(target_os = "linux")]
        if self.thread {
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant Linux
            // supports.
            let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
            assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
            return ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
        }
        self.origin.elapsed().as_nanos() as u64
    }
}

impl Measurement for Clock {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        self.now_ns()
    }
    fn end(&self, start: u64) -> u64 {
        self.now_ns() - start
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &Gflops
    }
}

/// Times in ns/µs/ms/s; element throughputs as GFLOP/s (the benches count FLOPs as elements).
struct Gflops;

impl ValueFormatter for Gflops {
    fn scale_values(&self, typical_ns: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = match typical_ns {
            t if t < 1e3 => (1.0, "ns"),
            t if t < 1e6 => (1e-3, "µs"),
            t if t < 1e9 => (1e-6, "ms"),
            _ => (1e-9, "s"),
        };
        values.iter_mut().for_each(|v| *v *= factor);
        unit
    }
    fn scale_throughputs(&self, _typical: f64, t: &Throughput, values: &mut [f64]) -> &'static str {
        let (count, unit) = match *t {
            Throughput::Elements(e) | Throughput::ElementsAndBytes { elements: e, .. } => {
                (e, "GFLOP/s")
            }
            Throughput::Bytes(b) | Throughput::BytesDecimal(b) => (b, "GB/s"),
            Throughput::Bits(b) => (b, "Gbit/s"),
        };
        // count per ns is giga-count per second.
        values.iter_mut().for_each(|v| *v = count as f64 / *v);
        unit
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

/// Short, flat samples: the generic kernels at 1024^3 take ~0.5 s an iteration, there are
/// ~100 benchmarks, and on a shared machine short samples are less often disturbed.
/// Criterion's `--warm-up-time`/`--measurement-time`/`--sample-size` override these.
fn configure(g: &mut BenchmarkGroup<'_, Clock>) {
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
}

/// tract-linalg's preferred f32 kernel for `m x n x k`.
fn tract_mmm(m: usize, n: usize, k: usize) -> Box<dyn MatMatMul> {
    tract_linalg::MmmDispatch::native()
        .preferred_kernel(DatumType::F32, Some(m), Some(k), Some(n))
        .expect("tract-linalg has an f32 kernel")
}

/// `c = a b` with tract-linalg: `a` is `m x k`, `b` is `k x n`, both row-major; `c` is `m x n`.
/// Packs both operands (as mote's `gemm_f32` reads raw strided operands), unless `pa` brings A
/// already packed (constant weights, as tract packs them at load).
fn tract_run(
    mmm: &dyn MatMatMul,
    (m, n): (usize, usize),
    a: &Tensor,
    pa: Option<&dyn tract_linalg::mmm::MMMInputValue>,
    b: &Tensor,
    c: &mut Tensor,
) {
    let packing = &mmm.packings()[0];
    let owned_a;
    let pa = match pa {
        Some(p) => p,
        None => {
            owned_a = packing.0.prepare_one(a, 1, 0).expect("pack A");
            &*owned_a
        }
    };
    let pb = packing.1.prepare_one(b, 0, 1).expect("pack B");
    // SAFETY: `c` is an `m x n` f32 tensor matching the view's axes; the packed operands come
    // from this kernel's own packing 0 for `m x k` and `k x n`.
    unsafe {
        mmm.run(
            m,
            n,
            &[
                FusedSpec::AddMatMul {
                    a: AsInputValue::Borrowed(pa),
                    b: AsInputValue::Borrowed(&*pb),
                    packing: 0,
                },
                FusedSpec::Store(mmm.c_view(Some(0), Some(1)).wrap(&c.view_mut())),
            ],
        )
        .expect("tract mmm run")
    };
}

/// Largest `|x - y| / (1 + |y|)` over two equal-length slices.
fn max_rel_diff(x: &[f32], y: &[f32]) -> f32 {
    x.iter()
        .zip(y)
        .map(|(a, b)| (a - b).abs() / (1.0 + b.abs()))
        .fold(0.0, f32::max)
}

fn bench_gemm(c: &mut Criterion<Clock>) {
    let mut group = c.benchmark_group("gemm");
    configure(&mut group);
    for s in GEMMS {
        let (m, n, k) = (s.m, s.n, s.k);
        let a = values(s.batch * m * k, 1);
        let b = values(s.batch * k * n, 2);
        let mut out = vec![0f32; s.batch * m * n];
        group.throughput(Throughput::Elements(s.flops()));
        let run = |isa: Isa, out: &mut [f32]| {
            for bi in 0..s.batch {
                kernels::gemm_f32(
                    isa,
                    m,
                    n,
                    k,
                    1.0,
                    MatRef {
                        data: &a,
                        offset: bi * m * k,
                        rs: k,
                        cs: 1,
                    },
                    MatRef {
                        data: &b,
                        offset: bi * k * n,
                        rs: n,
                        cs: 1,
                    },
                    None,
                    s.act,
                    out,
                    bi * m * n,
                    n,
                );
            }
        };
        for isa in isas() {
            group.bench_function(BenchmarkId::new(s.id(), isa.name()), |bch| {
                bch.iter(|| run(isa, black_box(&mut out)))
            });
        }

        // Baseline. tract fuses no activation here: a ReLU over the output costs ~1% of
        // these products, so it is left out rather than emulated.
        let mmm = tract_mmm(m, n, k);
        let ta: Vec<Tensor> = (0..s.batch)
            .map(|bi| Tensor::from_shape(&[m, k], &a[bi * m * k..][..m * k]).unwrap())
            .collect();
        let tb: Vec<Tensor> = (0..s.batch)
            .map(|bi| Tensor::from_shape(&[k, n], &b[bi * k * n..][..k * n]).unwrap())
            .collect();
        let mut tc = Tensor::zero::<f32>(&[m, n]).unwrap();
        // The baseline computes the same product as mote (first batch item, no activation).
        {
            let mut want = vec![0f32; m * n];
            kernels::gemm_f32(
                Isa::best(),
                m,
                n,
                k,
                1.0,
                MatRef {
                    data: &a,
                    offset: 0,
                    rs: k,
                    cs: 1,
                },
                MatRef {
                    data: &b,
                    offset: 0,
                    rs: n,
                    cs: 1,
                },
                None,
                Activation::None,
                &mut want,
                0,
                n,
            );
            tract_run(&*mmm, (m, n), &ta[0], None, &tb[0], &mut tc);
            let view = tc.try_as_plain_ram().unwrap();
            let d = max_rel_diff(view.as_slice::<f32>().unwrap(), &want);
            assert!(d < 1e-4, "{}: tract and mote differ by {d}", s.id());
        }
        // Stable ids across runs; the kernel tract picked goes to stderr.
        eprintln!("{}: tract-linalg picks {}", s.id(), mmm.name());
        group.bench_function(BenchmarkId::new(s.id(), "tract-linalg"), |bch| {
            bch.iter(|| {
                for bi in 0..s.batch {
                    tract_run(&*mmm, (m, n), &ta[bi], None, &tb[bi], black_box(&mut tc));
                }
            })
        });
        let packing = &mmm.packings()[0];
        let pa: Vec<_> = ta
            .iter()
            .map(|t| packing.0.prepare_one(t, 1, 0).unwrap())
            .collect();
        group.bench_function(BenchmarkId::new(s.id(), "tract-linalg+packed_a"), |bch| {
            bch.iter(|| {
                for bi in 0..s.batch {
                    tract_run(
                        &*mmm,
                        (m, n),
                        &ta[bi],
                        Some(&*pa[bi]),
                        &tb[bi],
                        black_box(&mut tc),
                    );
                }
            })
        });
    }
    group.finish();
}

fn bench_conv(c: &mut Criterion<Clock>) {
    let mut group = c.benchmark_group("conv");
    configure(&mut group);
    for s in CONVS {
        let g = &s.g;
        let w_len = g.c_out * (g.c_in / g.groups) * g.kh * g.kw;
        let input = values(g.n * g.c_in * g.h_in * g.w_in, 3);
        let plain = values(w_len, 4);
        let bias = values(g.c_out, 5);
        let mut out = vec![0f32; g.n * g.c_out * g.h_out * g.w_out];
        // What a converted file holds and the engine passes: panels for GEMM convolutions.
        let panels = if kernels::conv_uses_panels(g) {
            let mut p = vec![0f32; kernels::conv_panels_len(g)];
            kernels::pack_conv_weights(g, &plain, &mut p);
            Some(p)
        } else {
            None
        };
        let weights = match &panels {
            Some(p) => ConvWeights::Panels(p),
            None => ConvWeights::Plain(&plain),
        };
        group.throughput(Throughput::Elements(s.flops()));
        for isa in isas() {
            group.bench_function(BenchmarkId::new(s.id(), isa.name()), |bch| {
                bch.iter(|| {
                    kernels::conv2d_f32(
                        isa,
                        g,
                        black_box(&input),
                        weights,
                        Some(&bias),
                        Activation::None,
                        black_box(&mut out),
                    )
                })
            });
        }
        // A 1x1 convolution is `weights (c_out x c_in) . input (c_in x hw)`: the baseline is
        // tract's matmul with the weights packed ahead, as tract does at load.
        if let Some((m, n, k)) = s.as_gemm() {
            let mmm = tract_mmm(m, n, k);
            let ta = Tensor::from_shape(&[m, k], &plain).unwrap();
            let tb = Tensor::from_shape(&[k, n], &input).unwrap();
            let mut tc = Tensor::zero::<f32>(&[m, n]).unwrap();
            let pa = mmm.packings()[0].0.prepare_one(&ta, 1, 0).unwrap();
            eprintln!("{}: tract-linalg picks {}", s.id(), mmm.name());
            group.bench_function(BenchmarkId::new(s.id(), "tract-linalg+packed_a"), |bch| {
                bch.iter(|| tract_run(&*mmm, (m, n), &ta, Some(&*pa), &tb, black_box(&mut tc)))
            });
        }
    }
    group.finish();
}

/// int8 matrix products (`kernels::qgemm`, requantized u8 output) next to `gemm_f32` on the
/// same `m × n × k` (the fixtures' pointwise convolutions: `m = c_out`, `n = h × w`,
/// `k = c_in`), plus large squares for the fraction of the VNNI peak. Throughput counts a
/// multiply-add as 2 operations for both.
const QGEMMS: &[(&str, usize, usize, usize)] = &[
    ("emov2", 240, 196, 80),
    ("emov2", 80, 196, 240),
    ("emov2", 64, 12544, 16),
    ("emov2", 32, 784, 128),
    ("emov2", 256, 49, 128),
    ("spartan", 256, 196, 128),
    ("spartan", 128, 3136, 32),
    ("lmuformer", 1024, 128, 256),
    ("lmuformer", 256, 128, 1024),
    ("square", 512, 512, 512),
    ("square", 1024, 1024, 1024),
];

fn bench_qgemm(c: &mut Criterion<Clock>) {
    use mote_targets::kernels::{QgemmKernel, QgemmKind};
    use mote_targets::q8;
    let mut group = c.benchmark_group("qgemm");
    configure(&mut group);
    for &(what, m, n, k) in QGEMMS {
        let id = format!("{what}_{m}x{n}x{k}");
        let w: Vec<i8> = values(m * k, 5).iter().map(|v| (v * 127.0) as i8).collect();
        let mut packed = vec![0i8; q8::qgemm_packed_len(m, k)];
        q8::pack_qgemm_weights(&w, m, k, &mut packed);
        let x: Vec<u8> = values(k * n, 6)
            .iter()
            .map(|v| ((v + 1.0) * 127.5) as u8)
            .collect();
        let bias = vec![1000i32; m];
        let (mult, shift) = q8::quantize_multiplier(1.0 / (k as f64 * 64.0)).unwrap();
        let (mult, shift) = (vec![mult; m], vec![shift; m]);
        let rq = q8::Requant {
            bias: &bias,
            multiplier: &mult,
            shift: &shift,
            out_zp: 128,
            lo: 0,
            hi: 255,
        };
        let mut out = vec![0u8; m * n];
        let mut scratch = vec![0u8; q8::qgemm_scratch_len(k, n)];
        group.throughput(Throughput::Elements(2 * (m * n * k) as u64));
        for isa in isas() {
            for kind in QgemmKind::ALL {
                let Some(kernel) = QgemmKernel::new(isa, kind) else {
                    continue;
                };
                // The reference once (generic), each SIMD kernel under its best set.
                if (kind == QgemmKind::Reference) != (isa.kind() == IsaKind::Generic)
                    || (kind != QgemmKind::Reference && QgemmKernel::best(isa) != kernel)
                {
                    continue;
                }
                if kind == QgemmKind::Reference && m * n * k > 1 << 25 {
                    continue;
                }
                let name = format!("{}-int8-{kind:?}", isa.name());
                group.bench_function(BenchmarkId::new(&id, name), |bch| {
                    bch.iter(|| {
                        kernels::qgemm_with(
                            kernel,
                            m,
                            n,
                            k,
                            &packed,
                            q8::QMat {
                                data: &x,
                                offset: 0,
                                rs: n,
                                cs: 1,
                            },
                            3,
                            &rq,
                            black_box(&mut out),
                            q8::QOut {
                                offset: 0,
                                rs: n,
                                cs: 1,
                            },
                            &mut scratch,
                        )
                    })
                });
            }
        }
        // The f32 product of the same shape on the best set (A row-major, as conv weights).
        let a = values(m * k, 1);
        let b = values(k * n, 2);
        let mut fout = vec![0f32; m * n];
        let isa = Isa::best();
        group.bench_function(
            BenchmarkId::new(&id, format!("{}-f32", isa.name())),
            |bch| {
                bch.iter(|| {
                    kernels::gemm_f32(
                        isa,
                        m,
                        n,
                        k,
                        1.0,
                        MatRef {
                            data: &a,
                            offset: 0,
                            rs: k,
                            cs: 1,
                        },
                        MatRef {
                            data: &b,
                            offset: 0,
                            rs: n,
                            cs: 1,
                        },
                        None,
                        Activation::None,
                        black_box(&mut fout),
                        0,
                        n,
                    )
                })
            },
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(Clock::new());
    targets = bench_gemm, bench_conv, bench_qgemm
}
criterion_main!(benches);
