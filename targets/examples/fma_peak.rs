//! Measures one core's fp32 FMA peak, the ceiling the GEMM micro-kernels are judged against.
//!
//! Independent accumulator chains of `vfmadd` run in a tight loop, so that neither latency nor
//! loads limit them: the result is the FMA ports' throughput. A chain of dependent integer adds
//! (one cycle each) measures the clock the loop actually ran at, which turns GFLOP/s into
//! FLOP/cycle. Times are this thread's CPU time (Linux) and the best of many short runs, so
//! that other tenants of a shared machine disturb them less.
//!
//! Besides the peak, it times `avx512_gemm_f32_6x64`'s inner loop alone (a copy of it, operands
//! in cache), and prototypes of the GEMM driver's loop structure (B read in place as the driver
//! does, B packed, column blocks; 6x64 AVX-512 and 6x16 AVX2 tiles) next to mote's own
//! `gemm_f32`, to separate the micro-kernel's ceiling from the driver's memory traffic. Results
//! and conclusions: `targets/benches/README.md`.
//!
//! Run with `cargo run --release -p mote-targets --features std --example fma_peak` (without
//! `std`, `Isa` cannot see AVX-512 at run time and the comparison with mote is skipped).

#[cfg(target_arch = "x86_64")]
mod x86 {
    use core::arch::x86_64::*;
    use std::hint::black_box;

    /// `iters` rounds of `N` independent 16-lane FMA chains; returns a value that depends on
    /// all of them.
    ///
    /// # Safety
    /// The CPU supports AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn fma512<const N: usize>(iters: u64) -> f32 {
        let mut acc = [_mm512_set1_ps(1.0); N];
        for (i, a) in acc.iter_mut().enumerate() {
            *a = _mm512_set1_ps(i as f32);
        }
        // Multiplier 1 and a tiny addend keep the values finite and normal.
        let x = _mm512_set1_ps(black_box(1.0));
        let y = _mm512_set1_ps(black_box(1e-7));
        for _ in 0..iters {
            for a in acc.iter_mut() {
                *a = _mm512_fmadd_ps(*a, x, y);
            }
        }
        let mut s = _mm512_setzero_ps();
        for a in acc {
            s = _mm512_add_ps(s, a);
        }
        _mm512_reduce_add_ps(s)
    }

    /// `iters` rounds of `N` independent `vpdpbusd` chains (16 lanes × 4 u8·s8 products each).
    ///
    /// # Safety
    /// The CPU supports AVX-512F and AVX-512 VNNI.
    #[target_feature(enable = "avx512f,avx512vnni")]
    pub unsafe fn dpbusd512<const N: usize>(iters: u64) -> f32 {
        let mut acc = [_mm512_setzero_si512(); N];
        for (i, a) in acc.iter_mut().enumerate() {
            *a = _mm512_set1_epi32(i as i32);
        }
        let x = _mm512_set1_epi32(black_box(0x0101_0101));
        let y = _mm512_set1_epi32(black_box(0x0102_0304));
        for _ in 0..iters {
            for a in acc.iter_mut() {
                *a = _mm512_dpbusd_epi32(*a, x, y);
            }
        }
        let mut s = _mm512_setzero_si512();
        for a in acc {
            s = _mm512_add_epi32(s, a);
        }
        _mm512_reduce_add_epi32(s) as f32
    }

    /// As [`fma512`] with 8-lane AVX2 vectors.
    ///
    /// # Safety
    /// The CPU supports AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn fma256<const N: usize>(iters: u64) -> f32 {
        let mut acc = [_mm256_set1_ps(1.0); N];
        for (i, a) in acc.iter_mut().enumerate() {
            *a = _mm256_set1_ps(i as f32);
        }
        let x = _mm256_set1_ps(black_box(1.0));
        let y = _mm256_set1_ps(black_box(1e-7));
        for _ in 0..iters {
            for a in acc.iter_mut() {
                *a = _mm256_fmadd_ps(*a, x, y);
            }
        }
        let mut s = _mm256_setzero_ps();
        for a in acc {
            s = _mm256_add_ps(s, a);
        }
        let mut out = [0f32; 8];
        // SAFETY: `out` holds 8 floats.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), s) };
        out.iter().sum()
    }

    /// Cycles per second: a chain of dependent one-cycle adds takes one cycle per add. Best of
    /// many short runs, so that a run the scheduler interrupted does not count.
    pub fn clock_hz() -> f64 {
        let n: u64 = 2_000_000;
        let mut best = f64::MAX;
        for _ in 0..300 {
            let t = now_s();
            let mut x: u64 = 0;
            // SAFETY: register-only arithmetic.
            unsafe {
                core::arch::asm!(
                    "2:",
                    "add {x}, 1",
                    "add {x}, 1",
                    "add {x}, 1",
                    "add {x}, 1",
                    "sub {n}, 4",
                    "jnz 2b",
                    x = inout(reg) x,
                    n = inout(reg) n => _,
                    options(nomem, nostack),
                );
            }
            black_box(x);
            best = best.min(now_s() - t);
        }
        n as f64 / best
    }

    /// Seconds of CPU time this thread has used (Linux), else of wall time since the first
    /// call: time spent descheduled on a shared machine does not count.
    pub fn now_s() -> f64 {
        #[cfg(target_os = "linux")]
        {
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: `ts` is a valid, writable timespec.
            let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
            assert_eq!(rc, 0);
            ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
        }
        #[cfg(not(target_os = "linux"))]
        {
            static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
            ORIGIN
                .get_or_init(std::time::Instant::now)
                .elapsed()
                .as_secs_f64()
        }
    }

    /// GFLOP/s of `f(iters)`, which does `flops_per_iter` per iteration: the fastest of `runs`
    /// runs (short runs, so that some run is neither preempted nor has its caches flushed).
    pub fn gflops(
        flops_per_iter: f64,
        iters: u64,
        runs: usize,
        mut f: impl FnMut(u64) -> f32,
    ) -> f64 {
        let mut best = f64::MAX;
        for _ in 0..runs {
            let t = now_s();
            black_box(f(black_box(iters)));
            best = best.min(now_s() - t);
        }
        flops_per_iter * iters as f64 / best / 1e9
    }

    /// The inner loop of `avx512_gemm_f32_6x64` (targets/src/x86_64/gemm.rs) without the
    /// epilogue: `kc` steps of 6 broadcasts x 4 vectors of B. A and B stay in L1 across calls.
    ///
    /// # Safety
    /// AVX-512F; `a` holds `kc * 6`, `b` holds `kc * 64` values.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn tile6x64(kc: usize, a: *const f32, b: *const f32, ldb: usize, c: *mut f32) {
        let mut acc = [[_mm512_setzero_ps(); 4]; 6];
        // SAFETY: the caller's contract.
        unsafe {
            for p in 0..kc {
                let bp = b.add(p * ldb);
                let bv = [
                    _mm512_loadu_ps(bp),
                    _mm512_loadu_ps(bp.add(16)),
                    _mm512_loadu_ps(bp.add(32)),
                    _mm512_loadu_ps(bp.add(48)),
                ];
                let ap = a.add(p * 6);
                for i in 0..6 {
                    let ai = _mm512_set1_ps(*ap.add(i));
                    for v in 0..4 {
                        acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
                    }
                }
            }
            for i in 0..6 {
                for v in 0..4 {
                    _mm512_storeu_ps(c.add(i * 64 + v * 16), acc[i][v]);
                }
            }
        }
    }

    /// A square `n x n x n` GEMM shaped like the mote driver's strided-A path (A packed per
    /// 6-row panel and chunk of 256 steps into a 6 KiB buffer, then 6x64 tiles), with two
    /// changes to try:
    /// - `nc`: columns per block. The driver has no such block (`nc == n`): every A panel
    ///   sweeps the whole `256 x n` chunk of B, 1 MiB at n = 1024, which no longer stays in L2.
    ///   With `nc < n`, the `256 x nc` block of B is reused by every A panel while in L2.
    /// - `pack_b`: read B from a copy packed once per block into 64-column panels (each tile
    ///   reads 64 consecutive floats per step) instead of in place (64 floats `4 n` bytes apart,
    ///   every row of a tile on its own 4 KiB page at n = 1024, which defeats the prefetchers).
    ///
    /// # Safety
    /// AVX-512F; `n` is a multiple of `nc`, `nc` of 64 and `n` of 256 (KC); `bpack` holds
    /// `256 * nc` values.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn gemm_proto(
        n: usize,
        nc: usize,
        pack_b: bool,
        a: &[f32],
        b: &[f32],
        c: &mut [f32],
        apack: &mut [f32],
        bpack: &mut [f32],
    ) {
        const KC: usize = 256;
        let m = n;
        let k = n;
        c.fill(0.0);
        for jc in (0..n).step_by(nc) {
            for pc in (0..k).step_by(KC) {
                if pack_b {
                    for j0 in (0..nc).step_by(64) {
                        for p in 0..KC {
                            let src = &b[(pc + p) * n + jc + j0..][..64];
                            bpack[j0 * KC + p * 64..][..64].copy_from_slice(src);
                        }
                    }
                }
                for t in 0..m.div_ceil(6) {
                    for p in 0..KC {
                        for i in 0..6 {
                            let r = t * 6 + i;
                            apack[p * 6 + i] = if r < m { a[r * k + pc + p] } else { 0.0 };
                        }
                    }
                    let mr = 6.min(m - t * 6);
                    for j0 in (0..nc).step_by(64) {
                        let (bp, ldb) = if pack_b {
                            (bpack[j0 * KC..].as_ptr(), 64)
                        } else {
                            (b[pc * n + jc + j0..].as_ptr(), n)
                        };
                        let ct = &mut c[t * 6 * n + jc + j0..];
                        // SAFETY: `bp` covers KC rows of 64 at stride `ldb`; `apack` holds
                        // KC * 6; tile rows `< mr` lie in `c`.
                        unsafe { tile6x64_acc(KC, apack.as_ptr(), bp, ldb, ct, n, mr) };
                    }
                }
            }
        }
    }

    /// The AVX2 counterpart of [`gemm_proto`] without column blocks: 6x16 tiles (the inner
    /// loop of `avx2_gemm_f32_6x16`), B in place or packed once per chunk into 16-column panels.
    ///
    /// # Safety
    /// AVX2 and FMA; `n` is a multiple of 256; `bpack` holds `256 * n` values.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn gemm_proto_avx2(
        n: usize,
        pack_b: bool,
        a: &[f32],
        b: &[f32],
        c: &mut [f32],
        apack: &mut [f32],
        bpack: &mut [f32],
    ) {
        const KC: usize = 256;
        let (m, k) = (n, n);
        c.fill(0.0);
        for pc in (0..k).step_by(KC) {
            if pack_b {
                for j0 in (0..n).step_by(16) {
                    for p in 0..KC {
                        let src = &b[(pc + p) * n + j0..][..16];
                        bpack[j0 * KC + p * 16..][..16].copy_from_slice(src);
                    }
                }
            }
            for t in 0..m.div_ceil(6) {
                for p in 0..KC {
                    for i in 0..6 {
                        let r = t * 6 + i;
                        apack[p * 6 + i] = if r < m { a[r * k + pc + p] } else { 0.0 };
                    }
                }
                let mr = 6.min(m - t * 6);
                for j0 in (0..n).step_by(16) {
                    let (bp, ldb) = if pack_b {
                        (bpack[j0 * KC..].as_ptr(), 16)
                    } else {
                        (b[pc * n + j0..].as_ptr(), n)
                    };
                    let ct = &mut c[t * 6 * n + j0..];
                    let mut acc = [[_mm256_setzero_ps(); 2]; 6];
                    // SAFETY: `bp` covers KC rows of 16 at stride `ldb`; `apack` holds KC * 6;
                    // tile rows `< mr` lie in `ct`.
                    unsafe {
                        for i in 0..mr {
                            acc[i][0] = _mm256_loadu_ps(ct[i * n..].as_ptr());
                            acc[i][1] = _mm256_loadu_ps(ct[i * n + 8..].as_ptr());
                        }
                        for p in 0..KC {
                            let b0 = _mm256_loadu_ps(bp.add(p * ldb));
                            let b1 = _mm256_loadu_ps(bp.add(p * ldb + 8));
                            for i in 0..6 {
                                let ai = _mm256_broadcast_ss(&*apack.as_ptr().add(p * 6 + i));
                                acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
                                acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
                            }
                        }
                        for i in 0..mr {
                            _mm256_storeu_ps(ct[i * n..].as_mut_ptr(), acc[i][0]);
                            _mm256_storeu_ps(ct[i * n + 8..].as_mut_ptr(), acc[i][1]);
                        }
                    }
                }
            }
        }
    }

    /// [`tile6x64`] accumulating into `mr` rows of `c` at stride `ldc`.
    ///
    /// # Safety
    /// As [`tile6x64`]; rows `i < mr` of `c` hold 64 values at `i * ldc`.
    #[target_feature(enable = "avx512f")]
    unsafe fn tile6x64_acc(
        kc: usize,
        a: *const f32,
        b: *const f32,
        ldb: usize,
        c: &mut [f32],
        ldc: usize,
        mr: usize,
    ) {
        let mut acc = [[_mm512_setzero_ps(); 4]; 6];
        // SAFETY: the caller's contract.
        unsafe {
            for i in 0..mr {
                for v in 0..4 {
                    acc[i][v] = _mm512_loadu_ps(c[i * ldc + v * 16..].as_ptr());
                }
            }
            for p in 0..kc {
                let bp = b.add(p * ldb);
                let bv = [
                    _mm512_loadu_ps(bp),
                    _mm512_loadu_ps(bp.add(16)),
                    _mm512_loadu_ps(bp.add(32)),
                    _mm512_loadu_ps(bp.add(48)),
                ];
                let ap = a.add(p * 6);
                for i in 0..6 {
                    let ai = _mm512_set1_ps(*ap.add(i));
                    for v in 0..4 {
                        acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
                    }
                }
            }
            for i in 0..mr {
                for v in 0..4 {
                    _mm512_storeu_ps(c[i * ldc + v * 16..].as_mut_ptr(), acc[i][v]);
                }
            }
        }
    }
}

/// `c = a b` for row-major `n x n` matrices through mote's dispatching GEMM.
#[cfg(target_arch = "x86_64")]
fn mote_gemm(isa: mote_targets::Isa, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    use mote_targets::generic::gemm::MatRef;
    let a = MatRef {
        data: a,
        offset: 0,
        rs: n,
        cs: 1,
    };
    let b = MatRef {
        data: b,
        offset: 0,
        rs: n,
        cs: 1,
    };
    let act = mote_targets::Activation::None;
    mote_targets::kernels::gemm_f32(isa, n, n, n, 1.0, a, b, None, act, c, 0, n);
}

#[cfg(target_arch = "x86_64")]
fn main() {
    use std::hint::black_box;
    use x86::*;

    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    println!("cpu: {model}");
    let hz = clock_hz();
    println!("clock (dependent adds): {:.2} GHz", hz / 1e9);
    let report = |name: &str, g: f64| {
        println!(
            "{name:<52} {g:6.1} GFLOP/s  {:5.1} FLOP/cycle",
            g * 1e9 / hz
        );
    };
    // ~1-2 ms per run.
    let iters = 200_000u64;
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // 16 ymm registers without AVX-512VL: 12 chains and the two operands fit.
        // SAFETY: AVX2 and FMA detected.
        let g = gflops(12.0 * 16.0, iters, 300, |n| unsafe { fma256::<12>(n) });
        report("avx2 vfmadd ymm, 12 chains", g);
        // SAFETY: as above.
        let g = gflops(8.0 * 16.0, iters, 300, |n| unsafe { fma256::<8>(n) });
        report("avx2 vfmadd ymm, 8 chains", g);
    }
    if std::is_x86_feature_detected!("avx512f") {
        type Chains = unsafe fn(u64) -> f32;
        let chains: [(usize, Chains); 4] = [
            (8, fma512::<8>),
            (12, fma512::<12>),
            (16, fma512::<16>),
            (24, fma512::<24>),
        ];
        for (n_chains, f) in chains {
            // SAFETY: AVX-512F detected.
            let g = gflops(n_chains as f64 * 32.0, iters, 300, |n| unsafe { f(n) });
            report(&format!("avx512 vfmadd zmm, {n_chains} chains"), g);
        }

        if std::is_x86_feature_detected!("avx512vnni") {
            // int8 peak: one vpdpbusd zmm is 64 multiply-adds (128 ops).
            for (n_chains, f) in [(12, dpbusd512::<12> as Chains), (24, dpbusd512::<24>)] {
                // SAFETY: AVX-512F and VNNI detected.
                let g = gflops(n_chains as f64 * 128.0, iters, 300, |n| unsafe { f(n) });
                println!(
                    "{:<52} {g:6.1} GOP/s    {:5.1} OP/cycle",
                    format!("avx512 vpdpbusd zmm, {n_chains} chains"),
                    g * 1e9 / hz
                );
            }
        }

        // The micro-kernel's own ceiling: A (6 x 256) and B (256 x 64, 64 KiB) stay in
        // L1/L2 across calls.
        let kc = 256;
        let a = vec![0.5f32; kc * 6];
        let b = vec![0.25f32; kc * 64];
        let mut c = vec![0f32; 6 * 64];
        let g = gflops((2 * 6 * 64 * kc) as f64, 2_000, 300, |n| {
            for _ in 0..n {
                // SAFETY: AVX-512F detected; sizes as documented.
                unsafe {
                    tile6x64(
                        kc,
                        black_box(a.as_ptr()),
                        black_box(b.as_ptr()),
                        64,
                        c.as_mut_ptr(),
                    )
                };
            }
            c[0]
        });
        report("6x64 inner loop, kc=256, B 64 KiB", g);
        let kc = 64;
        let g = gflops((2 * 6 * 64 * kc) as f64, 8_000, 300, |n| {
            for _ in 0..n {
                // SAFETY: as above, kc = 64 <= 256.
                unsafe {
                    tile6x64(
                        kc,
                        black_box(a.as_ptr()),
                        black_box(b.as_ptr()),
                        64,
                        c.as_mut_ptr(),
                    )
                };
            }
            c[0]
        });
        report("6x64 inner loop, kc=64, B 16 KiB", g);

        for n in [512usize, 1024] {
            let a: Vec<f32> = (0..n * n).map(|i| (i % 7) as f32 * 0.1).collect();
            let b: Vec<f32> = (0..n * n).map(|i| (i % 5) as f32 * 0.1).collect();
            let mut apack = vec![0f32; 256 * 6];
            let mut bpack = vec![0f32; 256 * n];
            let runs = if n == 512 { 40 } else { 10 };
            let flops = 2.0 * (n * n * n) as f64;
            let mut want: Option<Vec<f32>> = None;
            for (nc, pack_b) in [(n, false), (n, true), (256, false), (256, true)] {
                let mut c = vec![0f32; n * n];
                let g = gflops(flops, 1, runs, |r| {
                    for _ in 0..r {
                        // SAFETY: AVX-512F detected; n is a multiple of 256 and nc; bpack
                        // holds 256 * n >= 256 * nc.
                        unsafe {
                            gemm_proto(n, nc, pack_b, &a, &b, &mut c, &mut apack, &mut bpack)
                        };
                    }
                    c[0]
                });
                match &want {
                    Some(w) => assert!(*w == c, "prototype variants disagree"),
                    None => want = Some(c),
                }
                let b_how = if pack_b { "B packed" } else { "B in place" };
                let blk = if nc == n {
                    "no column block".to_string()
                } else {
                    format!("{nc}-column blocks")
                };
                report(&format!("{n}^3 prototype, {blk}, {b_how}"), g);
            }
            // `Isa` sees AVX-512 only with `std` (`--features std`).
            let Some(isa) = mote_targets::Isa::new(mote_targets::IsaKind::Avx512) else {
                continue;
            };
            let mut c3 = vec![0f32; n * n];
            let g_mote = gflops(flops, 1, runs, |r| {
                for _ in 0..r {
                    mote_gemm(isa, n, &a, &b, &mut c3);
                }
                c3[0]
            });
            report(&format!("{n}^3 mote gemm_f32 avx512"), g_mote);

            // AVX2: the same two B layouts with 6x16 tiles, and mote's AVX2 path.
            let mut want: Option<Vec<f32>> = None;
            for pack_b in [false, true] {
                let mut c = vec![0f32; n * n];
                let g = gflops(flops, 1, runs, |r| {
                    for _ in 0..r {
                        // SAFETY: AVX-512F implies AVX2 and FMA here (checked by `Isa::new`
                        // above); n is a multiple of 256; bpack holds 256 * n.
                        unsafe {
                            gemm_proto_avx2(n, pack_b, &a, &b, &mut c, &mut apack, &mut bpack)
                        };
                    }
                    c[0]
                });
                match &want {
                    Some(w) => assert!(*w == c, "AVX2 prototype variants disagree"),
                    None => want = Some(c),
                }
                let b_how = if pack_b { "B packed" } else { "B in place" };
                report(&format!("{n}^3 AVX2 prototype 6x16, {b_how}"), g);
            }
            let isa2 = mote_targets::Isa::new(mote_targets::IsaKind::Avx2).expect("implied");
            let g_mote2 = gflops(flops, 1, runs, |r| {
                for _ in 0..r {
                    mote_gemm(isa2, n, &a, &b, &mut c3);
                }
                c3[0]
            });
            report(&format!("{n}^3 mote gemm_f32 avx2"), g_mote2);
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    println!("fma_peak measures x86-64 AVX2/AVX-512 only");
}
