//! `mote bench`: latency statistics, load time, allocations per run and a per-op profile.

use anyhow::{anyhow, Result};
use mote::ops::Op;
use mote::{DType, MappedModel, OwnedSession};
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// The system allocator, counting the allocations made on any thread (the session's pool
/// workers included) while a benchmark watches.
pub struct CountingAlloc;

static WATCH: AtomicBool = AtomicBool::new(false);
static COUNT: AtomicU64 = AtomicU64::new(0);

fn note_alloc() {
    if WATCH.load(Ordering::Relaxed) {
        COUNT.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; the bookkeeping touches
// only two atomics, which never allocate.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note_alloc();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        note_alloc();
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        note_alloc();
        // SAFETY: same contract as ours.
        unsafe { System.realloc(p, l, n) }
    }
}

/// Options of `mote bench`.
pub struct BenchOpts {
    /// Timed runs.
    pub iters: usize,
    /// Untimed runs first.
    pub warmup: usize,
    /// Threads per session.
    pub threads: usize,
    /// JSON output.
    pub json: bool,
    /// Per-op time table.
    pub profile: bool,
}

/// A short label grouping steps whose kernels behave alike.
fn label(op: &Op) -> String {
    match op {
        Op::Conv2d { g, .. } => {
            let kind = if g.groups == g.c_in && g.groups == g.c_out && g.groups > 1 {
                "dw"
            } else if g.groups > 1 {
                "grouped"
            } else {
                "dense"
            };
            format!("Conv2d {kind} {}x{} s{}", g.kh, g.kw, g.stride_h)
        }
        Op::MatMul(g) => format!(
            "MatMul{}",
            if g.batch_rank > 0 && g.batch[..g.batch_rank].iter().product::<usize>() > 1 {
                " batched"
            } else {
                ""
            }
        ),
        Op::Unary { op } => format!("Unary {op:?}")
            .split([' ', '{'])
            .take(2)
            .collect::<Vec<_>>()
            .join(" "),
        Op::Binary { op, .. } => format!("Binary {op:?}"),
        other => other.name().to_string(),
    }
}

fn fill_inputs(s: &mut mote::Session<'_, '_>, model: &mote::Model<'_>) -> Result<()> {
    // Deterministic pseudo-random values in [-1, 1) for float inputs, zeros otherwise.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..model.input_count() {
        let info = model.input(i)?;
        let bytes = s.input_bytes_mut(i)?;
        if info.dtype == DType::F32 {
            for c in bytes.chunks_exact_mut(4) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let v = (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0;
                c.copy_from_slice(&v.to_le_bytes());
            }
        } else {
            bytes.fill(0);
        }
    }
    Ok(())
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// Runs the benchmark and prints its report.
pub fn bench(path: &Path, inputs: &[(usize, Vec<u8>)], o: &BenchOpts) -> Result<()> {
    let t0 = Instant::now();
    let mapped = MappedModel::open(path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let model = mapped
        .model()
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let mut owned = OwnedSession::with_threads(&model, o.threads.max(1))?;
    let mut s = owned.session()?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    fill_inputs(&mut s, &model)?;
    for (i, data) in inputs {
        let dst = s.input_bytes_mut(*i)?;
        if dst.len() != data.len() {
            anyhow::bail!(
                "input {i}: {} bytes given, {} expected",
                data.len(),
                dst.len()
            );
        }
        dst.copy_from_slice(data);
    }
    let first = Instant::now();
    s.run()?;
    let first_ms = first.elapsed().as_secs_f64() * 1e3;
    for _ in 0..o.warmup {
        s.run()?;
    }
    let mut times = Vec::with_capacity(o.iters);
    COUNT.store(0, Ordering::SeqCst);
    WATCH.store(true, Ordering::SeqCst);
    for _ in 0..o.iters {
        let t = Instant::now();
        s.run()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    WATCH.store(false, Ordering::SeqCst);
    let allocs = COUNT.load(Ordering::SeqCst);
    let per_run = if o.iters > 0 {
        allocs as f64 / o.iters as f64
    } else {
        0.0
    };
    if times.is_empty() {
        times.push(first_ms);
    }
    times.sort_by(f64::total_cmp);
    let (min, med, p90) = (times[0], pct(&times, 0.5), pct(&times, 0.9));
    let mut profile: Vec<(String, f64, usize)> = vec![];
    // The slowest single steps: (ms, index, label, output name and shape).
    let mut slowest: Vec<(f64, usize, String, String)> = vec![];
    if o.profile {
        let n = model.step_count();
        let mut per_step = vec![0f64; n];
        let labels: Vec<String> = (0..n)
            .map(|i| model.step(i).map(|st| label(&st.op)))
            .collect::<mote::Result<_>>()?;
        let runs = o.iters.clamp(1, 20);
        for _ in 0..runs {
            let mut last = Instant::now();
            s.run_observed(|i, _| {
                let now = Instant::now();
                per_step[i] += (now - last).as_secs_f64() * 1e3;
                last = now;
            })?;
        }
        let mut by: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
        for (i, l) in labels.iter().enumerate() {
            let e = by.entry(l).or_default();
            e.0 += per_step[i] / runs as f64;
            e.1 += 1;
        }
        for (i, &ms) in per_step.iter().enumerate() {
            let st = model.step(i)?;
            let out = model.tensor(st.output)?;
            let what = format!("{} {:?}", out.name, out.shape());
            slowest.push((ms / runs as f64, i, labels[i].clone(), what));
        }
        slowest.sort_by(|a, b| b.0.total_cmp(&a.0));
        slowest.truncate(SLOWEST_SHOWN);
        profile = by
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.0, v.1))
            .collect();
        profile.sort_by(|a, b| b.1.total_cmp(&a.1));
    }
    if o.json {
        let pj = profile
            .iter()
            .map(|(k, ms, n)| format!("{{\"op\":\"{k}\",\"ms\":{ms:.4},\"steps\":{n}}}"))
            .collect::<Vec<_>>()
            .join(",");
        println!(
            "{{\"model\":{:?},\"isa\":\"{}\",\"layout\":{},\"threads\":{},\"iters\":{},\"warmup\":{},\"load_ms\":{load_ms:.4},\"first_run_ms\":{first_ms:.4},\"min_ms\":{min:.4},\"median_ms\":{med:.4},\"p90_ms\":{p90:.4},\"allocations_per_run\":{per_run},\"profile\":[{pj}]}}",
            path.display().to_string(),
            s.isa().name(),
            model.layout(),
            o.threads,
            o.iters,
            o.warmup
        );
    } else {
        println!(
            "{} ({} kernels, layout {}): load {load_ms:.2} ms, first run {first_ms:.2} ms; {} runs: min {min:.3} ms, median {med:.3} ms, p90 {p90:.3} ms; {per_run} allocations per run",
            path.display(),
            s.isa().name(),
            model.layout(),
            o.iters
        );
        let total: f64 = profile.iter().map(|p| p.1).sum();
        for (k, ms, n) in &profile {
            println!(
                "  {ms:9.3} ms {:5.1}%  {n:4} steps  {k}",
                100.0 * ms / total.max(1e-12)
            );
        }
        if !slowest.is_empty() {
            println!("  slowest steps:");
        }
        for (ms, i, k, what) in &slowest {
            println!(
                "  {ms:9.3} ms {:5.1}%  step {i:4}  {k} -> {what}",
                100.0 * ms / total.max(1e-12)
            );
        }
    }
    Ok(())
}

/// Steps listed one by one under `--profile`.
const SLOWEST_SHOWN: usize = 12;
