//! A small thread pool for splitting one step's work (std only).
//!
//! [`ThreadPool::new`] starts its worker threads once; [`ThreadPool::run`] hands them a borrowed
//! job and returns when every part has finished, so nothing is spawned, boxed or allocated per
//! call. Between jobs a worker spins for a short while (steps of one inference follow each
//! other within microseconds) and then parks on a condition variable: an idle pool uses no CPU.
//!
//! This module holds the pool's one `unsafe` block: the job is borrowed for the duration of
//! `run`, and the workers see it as `'static`. `run` does not return — or unwind — before
//! every worker has left the job, which is what makes that sound (the same contract as
//! `std::thread::scope`, without spawning threads per call).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a worker (and the caller, waiting for the workers) spins before it parks.
const SPIN: Duration = Duration::from_micros(100);

/// Most threads a pool runs (the caller included).
pub const MAX_THREADS: usize = 64;

type JobFn = dyn Fn(usize) + Sync;

#[derive(Clone, Copy)]
struct Job {
    f: &'static JobFn,
    parts: usize,
}

struct State {
    epoch: usize,
    job: Option<Job>,
    shutdown: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Workers park here between jobs.
    work: Condvar,
    /// The caller parks here until the last worker leaves the job.
    done: Condvar,
    /// Mirror of `State::epoch` that workers spin on without taking the lock.
    epoch: AtomicUsize,
    /// Next part index to hand out.
    next: AtomicUsize,
    /// Workers that have not yet left the current job.
    active: AtomicUsize,
    /// A part panicked on a worker during the current job.
    panicked: AtomicBool,
    /// Jobs handed to the workers so far.
    jobs: AtomicUsize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means a thread panicked while holding it; the state stays
        // consistent (every update is a single assignment), so keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Worker threads that run the parts of a job together with the calling thread.
pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    min_part_macs: usize,
}

/// Default of [`ThreadPool::with_min_part_macs`]: about ten microseconds of one core's work,
/// roughly what handing a part to a spinning worker and waiting for it costs.
pub const DEFAULT_MIN_PART_MACS: usize = 1 << 16;

impl core::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ThreadPool")
            .field("threads", &self.threads())
            .finish()
    }
}

impl ThreadPool {
    /// A pool of `threads` threads in all: the caller of [`ThreadPool::run`] plus
    /// `threads - 1` workers started here (`threads` is clamped to `1..=`[`MAX_THREADS`]).
    /// Returns once every worker is running, so no start-up work overlaps a later job.
    /// Fails only if the OS refuses a thread.
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                epoch: 0,
                job: None,
                shutdown: false,
            }),
            work: Condvar::new(),
            done: Condvar::new(),
            epoch: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            jobs: AtomicUsize::new(0),
        });
        let mut pool = ThreadPool {
            shared,
            workers: Vec::new(),
            min_part_macs: DEFAULT_MIN_PART_MACS,
        };
        for i in 1..threads.clamp(1, MAX_THREADS) {
            let s = Arc::clone(&pool.shared);
            let h = std::thread::Builder::new()
                .name(format!("mote-worker-{i}"))
                .spawn(move || worker(&s))?;
            pool.workers.push(h);
        }
        // Wait until every worker has started and entered its loop: thread start-up allocates
        // (on the new thread), and that must not land in an inference that runs right away.
        pool.run(pool.threads(), &|_| {});
        pool.shared.jobs.store(0, Ordering::Relaxed);
        Ok(pool)
    }

    /// Sets the fewest multiply-adds a step needs per part before a session splits it
    /// (at least 1): lower splits smaller steps. Results do not depend on it.
    pub fn with_min_part_macs(mut self, macs: usize) -> Self {
        self.min_part_macs = macs.max(1);
        self
    }

    /// See [`ThreadPool::with_min_part_macs`].
    pub fn min_part_macs(&self) -> usize {
        self.min_part_macs
    }

    /// Jobs split over the workers so far (calls of [`ThreadPool::run`] that woke them).
    pub fn jobs(&self) -> usize {
        self.shared.jobs.load(Ordering::Relaxed)
    }

    /// Threads that run a job's parts, the caller included.
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Calls `f(i)` exactly once for every `i < parts`, on the workers and the calling
    /// thread, and returns when all calls have returned. A panic in a part is re-raised here
    /// after every thread has left the job.
    pub fn run<'f>(&self, parts: usize, f: &'f (dyn Fn(usize) + Sync + 'f)) {
        if self.workers.is_empty() || parts <= 1 {
            for i in 0..parts {
                f(i);
            }
            return;
        }
        let s = &*self.shared;
        // SAFETY: only the lifetime is extended. Workers call `f` only between taking this
        // job (after the epoch below changes) and decrementing `active`, and `Leave` (also on
        // unwinding) waits for `active` to reach zero before `run` returns, so no worker uses
        // `f` after the borrow ends. Jobs never overlap: `run` takes `&self` but a new job is
        // only published after the previous caller saw `active == 0`, under the state lock.
        let f: &'static JobFn =
            unsafe { core::mem::transmute::<&'f (dyn Fn(usize) + Sync + 'f), &'static JobFn>(f) };
        {
            let mut st = s.lock();
            // Another thread may be running a job on this pool: wait until it is done.
            while st.job.is_some() {
                st = s.done.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            s.next.store(0, Ordering::Relaxed);
            s.panicked.store(false, Ordering::Relaxed);
            s.active.store(self.workers.len(), Ordering::Relaxed);
            st.job = Some(Job { f, parts });
            st.epoch = st.epoch.wrapping_add(1);
            s.epoch.store(st.epoch, Ordering::Release);
        }
        s.jobs.fetch_add(1, Ordering::Relaxed);
        s.work.notify_all();
        let leave = Leave(s);
        take_parts(s, f, parts);
        drop(leave);
        if s.panicked.swap(false, Ordering::AcqRel) {
            panic!("a mote worker thread panicked while running a step");
        }
    }
}

/// Waits (on drop, so also while unwinding) until every worker has left the current job,
/// then retires the job.
struct Leave<'a>(&'a Shared);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        let s = self.0;
        let busy = || s.active.load(Ordering::Acquire) != 0;
        if !spin_while(busy) {
            let mut st = s.lock();
            while busy() {
                st = s.done.wait(st).unwrap_or_else(|e| e.into_inner());
            }
        }
        s.lock().job = None;
        // Wake a caller on another thread waiting to publish its job.
        s.done.notify_all();
    }
}

/// Spins while `busy()` holds, for at most [`SPIN`]; whether it stopped holding.
fn spin_while(busy: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    let mut spins = 0u32;
    while busy() {
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(64) && start.elapsed() > SPIN {
            return false;
        }
        core::hint::spin_loop();
    }
    true
}

fn take_parts(s: &Shared, f: &JobFn, parts: usize) {
    loop {
        let i = s.next.fetch_add(1, Ordering::Relaxed);
        if i >= parts {
            break;
        }
        f(i);
    }
}

fn worker(s: &Shared) {
    let mut seen = 0usize;
    loop {
        // Spin briefly for the next job, then park.
        spin_while(|| s.epoch.load(Ordering::Acquire) == seen);
        let job = {
            let mut st = s.lock();
            while st.epoch == seen && !st.shutdown {
                st = s.work.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            if st.shutdown {
                return;
            }
            seen = st.epoch;
            st.job
        };
        if let Some(job) = job {
            if catch_unwind(AssertUnwindSafe(|| take_parts(s, job.f, job.parts))).is_err() {
                s.panicked.store(true, Ordering::Release);
                // Let the remaining parts be skipped rather than run after a failure.
                s.next.store(usize::MAX / 2, Ordering::Relaxed);
            }
        }
        if s.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            let _st = s.lock();
            s.done.notify_all();
        }
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.work.notify_all();
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn every_part_runs_exactly_once() {
        for threads in [1, 2, 3, 5] {
            let pool = ThreadPool::new(threads).unwrap();
            assert_eq!(pool.threads(), threads);
            for parts in [0, 1, 2, 7, 64, 1000] {
                let hits: Vec<AtomicU64> = (0..parts).map(|_| AtomicU64::new(0)).collect();
                pool.run(parts, &|i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
            }
        }
    }

    #[test]
    fn many_jobs_in_a_row_and_after_parking() {
        let pool = ThreadPool::new(3).unwrap();
        let sum = AtomicU64::new(0);
        for round in 0..2000u64 {
            pool.run(4, &|i| {
                sum.fetch_add(round * 4 + i as u64, Ordering::Relaxed);
            });
            if round == 1000 {
                // Long enough for every worker to park.
                std::thread::sleep(SPIN * 20);
            }
        }
        let n = 2000 * 4u64;
        assert_eq!(sum.load(Ordering::Relaxed), n * (n - 1) / 2);
    }

    #[test]
    fn a_panicking_part_is_reported_and_the_pool_survives() {
        let pool = ThreadPool::new(2).unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.run(8, &|i| {
                if i == 5 {
                    panic!("part 5");
                }
            })
        }));
        assert!(r.is_err());
        let count = AtomicU64::new(0);
        pool.run(8, &|_| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 8);
    }

    #[test]
    fn two_callers_share_one_pool() {
        let pool = ThreadPool::new(2).unwrap();
        let count = AtomicU64::new(0);
        std::thread::scope(|sc| {
            for _ in 0..2 {
                sc.spawn(|| {
                    for _ in 0..500 {
                        pool.run(3, &|_| {
                            count.fetch_add(1, Ordering::Relaxed);
                        });
                    }
                });
            }
        });
        assert_eq!(count.load(Ordering::Relaxed), 2 * 500 * 3);
    }
}
