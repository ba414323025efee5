//! Zero heap allocations per inference: a counting global allocator watches `Session::run`
//! over many runs of every op fixture and every conformance fixture.

use mote::{Model, OwnedSession};
use mote_tests::{convert_file, read_numbered, repo_root, shared_fixtures};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;
thread_local! {
    static WATCH: Cell<bool> = const { Cell::new(false) };
    // Per thread, like WATCH: tests run in parallel, and another thread's counted allocations
    // must not land in this thread's window.
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator unchanged; only counts calls made while the current
// thread is being watched.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if WATCH.with(|w| w.get()) {
            ALLOCS.with(|a| a.set(a.get() + 1));
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if WATCH.with(|w| w.get()) {
            ALLOCS.with(|a| a.set(a.get() + 1));
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by the current thread while `f` runs.
fn count<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let before = ALLOCS.with(|a| a.get());
    WATCH.with(|w| w.set(true));
    let r = f();
    WATCH.with(|w| w.set(false));
    (r, ALLOCS.with(|a| a.get()) - before)
}

fn check(path: &std::path::Path, inputs: Option<Vec<mote_tools::npy::Array>>, runs: usize) {
    let bytes = convert_file(path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
    let model = Model::from_bytes(bytes.as_slice()).unwrap();
    let mut owned = OwnedSession::new(&model).unwrap();
    let mut s = owned.session().unwrap();
    if let Some(ins) = inputs {
        for (i, a) in ins.iter().enumerate() {
            s.input_bytes_mut(i).unwrap().copy_from_slice(&a.data);
        }
    }
    // The counter must see allocations when they happen (guards against a broken counter).
    let (_, probe) = count(|| std::hint::black_box(vec![1u8; 16]));
    assert!(probe >= 1, "the counting allocator does not count");
    for _ in 0..runs {
        let (r, n) = count(|| s.run());
        // A run that stopped early would prove nothing about allocation.
        assert!(r.is_ok(), "{}: run failed: {r:?}", path.display());
        assert_eq!(n, 0, "{}: {n} allocations in one run", path.display());
    }
}

#[test]
fn op_fixtures_run_without_allocating() {
    let dir = repo_root().join("tests/fixtures/ops");
    let cases = std::fs::read_to_string(dir.join("cases.txt")).unwrap();
    let mut n = 0;
    for case in cases.lines().filter(|c| !c.trim().is_empty()) {
        let cdir = dir.join(case);
        check(
            &cdir.join("model.onnx"),
            Some(read_numbered(&cdir, "input").unwrap()),
            20,
        );
        n += 1;
    }
    assert!(n > 100);
}

#[test]
fn conformance_fixtures_run_without_allocating() {
    let Some(dir) = shared_fixtures() else {
        println!("../shared/fixtures is not present: skipped");
        return;
    };
    for (name, runs) in [
        ("emov2_1m", 3),
        ("spartan_t", 2),
        ("ecoformer_pvtv2_b0", 3),
        ("lmuformer_seq_tdconv", 5),
        ("lmuformer_step", 50),
        ("lmuformer_spiking_step", 50),
    ] {
        check(&dir.join(format!("{name}.onnx")), None, runs);
    }
}
