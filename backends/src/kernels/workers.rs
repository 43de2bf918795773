//! A persistent set of kernel worker threads ([`Workers`]): created once with a kernel, parked
//! between calls, each call's parts handed to the same threads every time (their thread-local
//! scratch stays warm, and no thread is spawned per layer).
//!
//! # Why one small `unsafe`
//!
//! A conv's parts borrow the call's input, weights and output slices, which live only as long
//! as the call; long-lived threads cannot take such borrows through safe `std` APIs
//! (`std::thread::scope` ties the threads' lifetime to the borrow, which is exactly the
//! per-call spawn this module removes; channels need `'static` data). Copying the data into
//! owned buffers would cost more than the spawn. So [`Workers::run`] erases the lifetime of
//! one `&(dyn Fn(usize) + Sync)` and hands it to the workers, under this invariant:
//!
//! **`run` returns (or unwinds) only after every worker has finished its call of the job and
//! dropped its copy of the reference**: each worker reads the job under the state mutex,
//! calls it (a panic is caught), then, under the mutex again, clears nothing it still uses and
//! decrements `pending`; `run` waits until `pending` is 0 even when its own part panicked, and
//! clears the job before returning. A worker never reads the job outside the epoch it was
//! posted for. The tests below check that every part runs exactly once per call, that a
//! panicking part is reported to the caller after the others finished, and that dropping the
//! workers joins every thread.
//!
//! Calls from two threads at once, or from inside a job, do not wait for the workers: a call
//! that finds them busy runs its parts one after another on its own thread (same results:
//! every part computes the same values on any thread).
//!
//! # Stealing pieces
//!
//! [`Workers::steal`] is a [`run`](Workers::run) whose part `t` runs thread `t`'s list of
//! pieces front to back, then takes unstarted pieces from the back of the list with the most
//! left: a thread the OS deschedules (a KVM guest's vCPU, for 0.1–1 ms) holds up the call by
//! the piece it is in, not by its whole share. It adds no `unsafe`: it runs under `run`'s
//! invariant, a piece is claimed by one compare-exchange on its list's `front << 32 | end`
//! word (so the owner, from the front, and thieves, from the back, never claim one piece
//! twice), and the claimer moves it out of its own mutex slot. A piece computes the same
//! values on any thread, so the results do not depend on who ran what. The tests check that
//! claims from both ends hand out each piece once, and that every piece runs exactly once
//! when a thread blocks in its first piece until all the others, its own list's included,
//! are done (the call could not end without the others taking them).

extern crate alloc;
extern crate std;

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a worker (or a waiting caller) spins before it parks. The gap between two
/// dispatches of one frame is a few microseconds, but a worker starts spinning when its own
/// part ends, and parts of one call end up to ~150 µs apart (a core shared with interrupts or
/// other processes): a parked worker costs the next call 15–40 µs of wake-up on a KVM guest
/// (measured per part with a probe around `Team::map`, YOLOv2 layers 12–15).
const SPIN: Duration = Duration::from_micros(250);

/// The job of one call: part `t` of `parts` runs `f(t)`.
#[derive(Clone, Copy)]
struct Job {
    f: &'static (dyn Fn(usize) + Sync),
    parts: usize,
}

/// What the caller and the workers share under the mutex.
struct State {
    /// Calls posted so far: a worker runs the job once per epoch.
    epoch: u64,
    job: Option<Job>,
    /// Workers that have not finished this epoch's job.
    pending: usize,
    /// A worker's part panicked in this epoch.
    panicked: bool,
    shutdown: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Workers wait here for a new epoch or shutdown.
    wake: Condvar,
    /// The caller waits here for `pending == 0`.
    done: Condvar,
    /// Mirrors of `state.epoch` and `state.pending`, read while spinning (the decision is
    /// always taken again under the mutex).
    epoch: AtomicU64,
    pending: AtomicUsize,
    /// Held for the whole of a call: a second caller runs its parts itself.
    dispatch: Mutex<()>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A part's panic is caught before the mutex is taken again, so poisoning cannot
        // leave the state half-updated.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Spins until `ready()` or [`SPIN`] has passed; true if it became ready.
fn spin(ready: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    loop {
        for _ in 0..64 {
            if ready() {
                return true;
            }
            core::hint::spin_loop();
        }
        if start.elapsed() >= SPIN {
            return false;
        }
    }
}

/// `threads − 1` parked worker threads plus the calling thread (see the module docs).
pub struct Workers {
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
}

impl core::fmt::Debug for Workers {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Workers")
            .field("threads", &self.threads())
            .finish()
    }
}

impl Workers {
    /// Starts `threads − 1` workers (none for one thread).
    ///
    /// # Panics
    ///
    /// If the OS refuses to start a thread.
    pub fn new(threads: usize) -> Workers {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                epoch: 0,
                job: None,
                pending: 0,
                panicked: false,
                shutdown: false,
            }),
            wake: Condvar::new(),
            done: Condvar::new(),
            epoch: AtomicU64::new(0),
            pending: AtomicUsize::new(0),
            dispatch: Mutex::new(()),
        });
        let handles = (0..threads.max(1) - 1)
            .map(|index| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(alloc::format!("tessera-kern{index}"))
                    .spawn(move || work(&shared, index))
                    .expect("starting a kernel worker thread")
            })
            .collect();
        Workers { shared, handles }
    }

    /// Threads a call runs on: the workers and the caller.
    pub fn threads(&self) -> usize {
        self.handles.len() + 1
    }

    /// Runs `f(t)` for every part `t` in `0..parts` (at most [`threads`](Self::threads)),
    /// part `t < parts − 1` on worker `t` and the last on the calling thread, and returns when
    /// all have returned. A part's panic is re-raised here after every part finished.
    pub fn run(&self, parts: usize, f: &(dyn Fn(usize) + Sync)) {
        let parts = parts.min(self.threads());
        if parts <= 1 {
            return (0..parts).for_each(f);
        }
        let _call = match self.shared.dispatch.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            // Busy (another caller, or a call from inside a job): run the parts here.
            Err(TryLockError::WouldBlock) => return (0..parts).for_each(f),
        };
        // SAFETY: the reference is used only until every worker has decremented `pending`
        // for this epoch, and this function does not return (or unwind) before `pending` is
        // 0 and the job is cleared (see the module docs), so it never outlives `f`.
        let erased = unsafe {
            core::mem::transmute::<&(dyn Fn(usize) + Sync), &'static (dyn Fn(usize) + Sync)>(f)
        };
        let workers = self.handles.len();
        {
            let mut st = self.shared.lock();
            st.job = Some(Job { f: erased, parts });
            st.epoch += 1;
            st.pending = workers;
            st.panicked = false;
            self.shared.pending.store(workers, Ordering::Release);
            self.shared.epoch.store(st.epoch, Ordering::Release);
        }
        self.shared.wake.notify_all();
        let mine = catch_unwind(AssertUnwindSafe(|| f(parts - 1)));
        spin(|| self.shared.pending.load(Ordering::Acquire) == 0);
        let mut st = self.shared.lock();
        while st.pending > 0 {
            st = self
                .shared
                .done
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        }
        st.job = None;
        let panicked = core::mem::take(&mut st.panicked);
        drop(st);
        if let Err(payload) = mine {
            resume_unwind(payload);
        }
        if panicked {
            panic!("a kernel worker's part panicked");
        }
    }

    /// Runs `f` on each of `parts` (at most [`threads`](Self::threads)), part `t` on thread
    /// `t` as in [`run`](Self::run), and returns the results in order.
    pub fn map<P: Send, R: Send>(&self, parts: Vec<P>, f: impl Fn(P) -> R + Sync) -> Vec<R> {
        assert!(parts.len() <= self.threads(), "more parts than threads");
        let n = parts.len();
        // One uncontended lock per part: each slot is taken by exactly one thread.
        let slots: Vec<Mutex<(Option<P>, Option<R>)>> = parts
            .into_iter()
            .map(|p| Mutex::new((Some(p), None)))
            .collect();
        let slot = |t: usize| slots[t].lock().unwrap_or_else(PoisonError::into_inner);
        self.run(n, &|t| {
            let part = slot(t).0.take().expect("each part runs once");
            let r = f(part);
            slot(t).1 = Some(r);
        });
        slots
            .into_iter()
            .map(|s| {
                let (_, r) = s.into_inner().unwrap_or_else(PoisonError::into_inner);
                r.expect("every part ran")
            })
            .collect()
    }
}

/// Claims on the pieces of a [`Workers::steal`] call: per list, the next piece from the front
/// (its owner's) and the end (a thief's, from the back), in one atomic word, so a piece is
/// claimed by exactly one thread whichever end reaches it.
struct Claims {
    /// Per list: `front << 32 | end`, pieces `front..end` not yet claimed.
    bounds: Vec<AtomicU64>,
}

impl Claims {
    fn new(lens: impl Iterator<Item = usize>) -> Claims {
        Claims {
            bounds: lens
                .map(|n| AtomicU64::new(u64::try_from(n).expect("pieces fit 32 bits")))
                .collect(),
        }
    }

    /// Claims piece `front` (its owner) or `end − 1` (a thief) of list `l`, if any is left.
    fn claim(&self, l: usize, back: bool) -> Option<usize> {
        let b = &self.bounds[l];
        let mut cur = b.load(Ordering::Acquire);
        loop {
            let (front, end) = (cur >> 32, cur & 0xffff_ffff);
            if front >= end {
                return None;
            }
            let (next, piece) = if back {
                (cur - 1, end - 1)
            } else {
                (cur + (1 << 32), front)
            };
            match b.compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Some(piece as usize),
                Err(now) => cur = now,
            }
        }
    }

    /// The list with the most unclaimed pieces, if any is left.
    fn victim(&self) -> Option<usize> {
        let left = |l: usize| {
            let b = self.bounds[l].load(Ordering::Acquire);
            (b & 0xffff_ffff).saturating_sub(b >> 32)
        };
        (0..self.bounds.len())
            .map(|l| (left(l), l))
            .max()
            .filter(|&(n, _)| n > 0)
            .map(|(_, l)| l)
    }
}

impl Workers {
    /// Runs `f` on every piece of `lists` (one list per thread, at most
    /// [`threads`](Self::threads) are served by their own thread): thread `t` runs list `t`
    /// front to back, then takes pieces from the back of the list with the most left, so a
    /// thread the OS deschedules delays the call by at most the piece it is running. Each
    /// piece runs exactly once, on whichever thread claims it.
    pub fn steal<P: Send>(&self, lists: Vec<Vec<P>>, f: impl Fn(P) + Sync) {
        let claims = Claims::new(lists.iter().map(Vec::len));
        let starts: Vec<usize> = lists
            .iter()
            .scan(0, |at, l| {
                let s = *at;
                *at += l.len();
                Some(s)
            })
            .collect();
        // One uncontended lock per piece: the claim makes each slot one thread's.
        let slots: Vec<Mutex<Option<P>>> = lists
            .into_iter()
            .flatten()
            .map(|p| Mutex::new(Some(p)))
            .collect();
        let run = |l: usize, i: usize| {
            let piece = slots[starts[l] + i]
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
                .expect("each piece is claimed once");
            f(piece);
        };
        self.run(starts.len(), &|t| {
            while let Some(i) = claims.claim(t, false) {
                run(t, i);
            }
            while let Some(l) = claims.victim() {
                if let Some(i) = claims.claim(l, true) {
                    run(l, i);
                }
            }
        });
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.wake.notify_all();
        for h in self.handles.drain(..) {
            // A worker catches its parts' panics, so it only ends by returning.
            let _ = h.join();
        }
    }
}

/// Worker `index`'s loop: wait for an epoch, run part `index` of its job, report, repeat.
fn work(shared: &Shared, index: usize) {
    let mut seen = 0;
    loop {
        spin(|| shared.epoch.load(Ordering::Acquire) != seen);
        let mut st = shared.lock();
        while st.epoch == seen && !st.shutdown {
            st = shared.wake.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
        if st.shutdown {
            return;
        }
        seen = st.epoch;
        let job = st.job.expect("a posted epoch has a job");
        drop(st);
        let ok =
            index + 1 >= job.parts || catch_unwind(AssertUnwindSafe(|| (job.f)(index))).is_ok();
        let mut st = shared.lock();
        st.panicked |= !ok;
        st.pending -= 1;
        shared.pending.store(st.pending, Ordering::Release);
        if st.pending == 0 {
            shared.done.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::boxed::Box;
    use alloc::vec;
    use core::sync::atomic::AtomicUsize;

    /// Every part runs exactly once per call, on a distinct thread, and its result comes back
    /// in order, over many calls.
    #[test]
    fn each_part_runs_once_per_call() {
        // Miri (CI runs these tests under it) interprets slowly: fewer calls there.
        let calls = if cfg!(miri) { 8 } else { 300 };
        for threads in 1..=4 {
            let w = Workers::new(threads);
            assert_eq!(w.threads(), threads);
            for call in 0..calls {
                let parts: Vec<usize> = (0..threads).map(|t| t * 1000 + call).collect();
                let got = w.map(parts.clone(), |p| (p, std::thread::current().id()));
                assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), parts);
                let mut ids: Vec<_> = got.iter().map(|g| alloc::format!("{:?}", g.1)).collect();
                ids.sort();
                ids.dedup();
                assert_eq!(ids.len(), threads, "one thread per part");
            }
            let count = AtomicUsize::new(0);
            w.run(threads, &|_| {
                count.fetch_add(1, Ordering::Relaxed);
            });
            assert_eq!(count.load(Ordering::Relaxed), threads);
        }
    }

    /// Fewer parts than threads: only parts `0..parts` run.
    #[test]
    fn fewer_parts_than_threads() {
        let w = Workers::new(3);
        let hits: Vec<AtomicUsize> = (0..3).map(|_| AtomicUsize::new(0)).collect();
        for _ in 0..if cfg!(miri) { 5 } else { 50 } {
            w.run(2, &|t| {
                hits[t].fetch_add(1, Ordering::Relaxed);
            });
        }
        let hits: Vec<usize> = hits.iter().map(|h| h.load(Ordering::Relaxed)).collect();
        let n = if cfg!(miri) { 5 } else { 50 };
        assert_eq!(hits, vec![n, n, 0]);
    }

    /// A worker's panic reaches the caller once the other parts finished; the workers still
    /// serve later calls.
    #[test]
    fn a_part_panic_reaches_the_caller() {
        let w = Workers::new(2);
        let other = AtomicUsize::new(0);
        let r = catch_unwind(AssertUnwindSafe(|| {
            w.run(2, &|t| {
                if t == 0 {
                    panic!("part 0 fails");
                }
                other.fetch_add(1, Ordering::Relaxed);
            })
        }));
        assert!(r.is_err());
        assert_eq!(other.load(Ordering::Relaxed), 1);
        assert_eq!(w.map(vec![1, 2], |p| p * 2), [2, 4]);
    }

    /// A call from inside a job (the workers are busy) runs its parts on its own thread.
    #[test]
    fn nested_calls_run_inline() {
        let w = Workers::new(2);
        let got = w.map(vec![0, 1], |p| w.map(vec![p, p + 10], |q| q + 1));
        assert_eq!(got, [vec![1, 11], vec![2, 12]]);
    }

    /// Claims from both ends of a list meet without a gap or a double: interleaved front
    /// and back claims hand out every index once; the victim is the list with most left.
    #[test]
    fn claims_from_both_ends_take_each_piece_once() {
        for n in 0..12usize {
            for pattern in 0..16u32 {
                let c = Claims::new([n, 3].into_iter());
                let mut seen = vec![0; n];
                let mut step = 0;
                loop {
                    let back = pattern >> (step % 4) & 1 == 1;
                    step += 1;
                    match c.claim(0, back) {
                        Some(i) => seen[i] += 1,
                        None => break,
                    }
                }
                assert!(seen.iter().all(|&s| s == 1), "{n} {pattern}: {seen:?}");
                assert_eq!(c.claim(0, false), None);
                assert_eq!(c.claim(0, true), None);
                assert_eq!(c.victim(), Some(1));
                assert_eq!(c.claim(1, true), Some(2));
                assert_eq!(c.claim(1, false), Some(0));
                assert_eq!(c.claim(1, true), Some(1));
                assert_eq!(c.victim(), None);
            }
        }
    }

    /// Every piece runs exactly once whoever claims it, with any number of lists (more than
    /// threads, empty ones), and a thread blocked in its first piece has its other pieces
    /// taken by the others: the call below could not finish otherwise.
    #[test]
    fn steal_runs_each_piece_once() {
        let calls = if cfg!(miri) { 3 } else { 100 };
        for threads in 1..=3 {
            let w = Workers::new(threads);
            for call in 0..calls {
                let lens = [call % 5, 3, 0, 7][..threads.max(2) + call % 2].to_vec();
                let total: usize = lens.iter().sum();
                let hits: Vec<Vec<AtomicUsize>> = lens
                    .iter()
                    .map(|&n| (0..n).map(|_| AtomicUsize::new(0)).collect())
                    .collect();
                let done = AtomicUsize::new(0);
                let lists: Vec<Vec<(usize, usize)>> = lens
                    .iter()
                    .enumerate()
                    .map(|(l, &n)| (0..n).map(|i| (l, i)).collect())
                    .collect();
                w.steal(lists, |(l, i)| {
                    if threads > 1 && (l, i) == (0, 0) {
                        // Waits for every other piece, its list's included (one thread
                        // would wait for itself).
                        while done.load(Ordering::Acquire) + 1 < total {
                            std::thread::yield_now();
                        }
                    }
                    hits[l][i].fetch_add(1, Ordering::Relaxed);
                    done.fetch_add(1, Ordering::Release);
                });
                for (l, h) in hits.iter().enumerate() {
                    for (i, h) in h.iter().enumerate() {
                        assert_eq!(h.load(Ordering::Relaxed), 1, "piece {i} of list {l}");
                    }
                }
                assert_eq!(done.load(Ordering::Relaxed), total);
            }
        }
    }

    /// Dropping the workers ends and joins every thread: nothing holds the shared state after.
    #[test]
    fn drop_joins_every_worker() {
        let w = Workers::new(4);
        assert_eq!(w.map(vec![1, 2, 3, 4], |p| p + 1), [2, 3, 4, 5]);
        let shared = Arc::downgrade(&w.shared);
        assert_eq!(
            shared.strong_count(),
            4,
            "the caller's handle and three workers"
        );
        drop(w);
        assert_eq!(
            shared.strong_count(),
            0,
            "a worker thread outlived the drop"
        );
    }

    /// Boxed dyn jobs of differing lifetimes (the common case: a closure over a call's
    /// locals) are run and released each call.
    #[test]
    fn borrowed_data_per_call() {
        let w = Workers::new(2);
        for n in 0..if cfg!(miri) { 6 } else { 100usize } {
            let data: Box<[usize]> = (0..n + 2).collect();
            let sums = w.map(vec![0usize, 1], |t| {
                data.iter().skip(t).step_by(2).sum::<usize>()
            });
            assert_eq!(sums.iter().sum::<usize>(), data.iter().sum::<usize>());
        }
    }
}
