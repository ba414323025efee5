//! Zero heap allocations per inference with a thread pool: the pool's workers allocate
//! nothing either. This binary holds one test, so a process-wide counter sees every thread
//! (the workers included) and nothing else.

use mote::{Model, OwnedSession};
use mote_tests::{convert_file, read_numbered, repo_root, shared_fixtures};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

struct Counting;
static WATCH: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls while watching.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if WATCH.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if WATCH.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made on any thread while `f` runs.
fn count<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let before = ALLOCS.load(Ordering::SeqCst);
    WATCH.store(true, Ordering::SeqCst);
    let r = f();
    WATCH.store(false, Ordering::SeqCst);
    (r, ALLOCS.load(Ordering::SeqCst) - before)
}

fn check(path: &std::path::Path, inputs: &[mote_tools::npy::Array], threads: usize) -> usize {
    let bytes = convert_file(path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
    let model = Model::from_bytes(bytes.as_slice()).unwrap();
    let pool = mote::ThreadPool::new(threads)
        .unwrap()
        .with_min_part_macs(1);
    let mut owned = OwnedSession::new(&model).unwrap();
    let mut s = owned.session().unwrap().with_pool(&pool);
    for (i, a) in inputs.iter().enumerate() {
        s.input_bytes_mut(i).unwrap().copy_from_slice(&a.data);
    }
    s.run().unwrap();
    for _ in 0..3 {
        let (r, n) = count(|| s.run());
        assert!(r.is_ok(), "{}: run failed: {r:?}", path.display());
        assert_eq!(n, 0, "{}: {n} allocations in one run", path.display());
    }
    pool.jobs()
}

#[test]
fn split_runs_allocate_nothing_on_any_thread() {
    // The counter sees allocations on other threads (guards against a broken counter).
    let (_, probe) = count(|| {
        std::thread::scope(|sc| {
            sc.spawn(|| std::hint::black_box(vec![1u8; 16]));
        })
    });
    assert!(probe >= 1, "the counting allocator does not count");

    let dir = repo_root().join("tests/fixtures/ops");
    let cases = std::fs::read_to_string(dir.join("cases.txt")).unwrap();
    let mut jobs = 0;
    for case in cases.lines().filter(|c| !c.trim().is_empty()) {
        let cdir = dir.join(case);
        let inputs = read_numbered(&cdir, "input").unwrap();
        jobs += check(&cdir.join("model.onnx"), &inputs, 3);
    }
    assert!(jobs > 50, "only {jobs} steps were split");
    if let Some(dir) = shared_fixtures() {
        for name in ["emov2_1m", "spartan_t", "ecoformer_pvtv2_b0"] {
            let input = mote_tools::npy::read(&dir.join(format!("{name}.input.npy"))).unwrap();
            let jobs = check(&dir.join(format!("{name}.onnx")), &[input], 2);
            assert!(jobs > 0, "{name}: no step was split");
        }
    }
}
