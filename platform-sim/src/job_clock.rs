//! A node's compute in virtual time: the state its executor shares with the world
//! ([`JobClock`]) and the result of the running job, held until the clock reaches its end
//! ([`PendingJob`]). Both executors (`compute::SimExecutor`, `coded_world::SimShards`) use
//! them; only how long a job takes and what it produces differ.

use std::cell::RefCell;

use tessera_core::time::{Duration, Instant};

/// State shared between a node's executor and the world, `R` being the executor's job record.
#[derive(Debug)]
pub struct JobClock<R> {
    /// The virtual clock (set by the world before each step).
    pub now: Instant,
    /// When the running job finishes (the world wakes the node then).
    pub busy_until: Option<Instant>,
    /// Multiplier of compute time (straggler: > 1; 0 counts as 1).
    pub slowdown: f64,
    /// Jobs started (finished or not).
    pub jobs: Vec<R>,
}

impl<R> Default for JobClock<R> {
    /// Time zero, idle, no slowdown, no jobs (written out: `R` need not be `Default`).
    fn default() -> Self {
        JobClock {
            now: Instant::ZERO,
            busy_until: None,
            slowdown: 1.0,
            jobs: Vec::new(),
        }
    }
}

impl<R> JobClock<R> {
    /// Starts a job of `us` µs (before the slowdown) now: marks the node busy until its end
    /// and returns `(start, end)`. A job lasts at least 1 µs.
    pub fn begin(&mut self, us: f64) -> (Instant, Instant) {
        let slow = if self.slowdown > 0.0 {
            self.slowdown
        } else {
            1.0
        };
        let us = (us * slow).ceil() as u64;
        let start = self.now;
        let end = start + Duration::from_micros(us.max(1));
        self.busy_until = Some(end);
        (start, end)
    }
}

/// The result of the running job and when it is due.
#[derive(Debug)]
pub struct PendingJob<D>(Option<(Instant, D)>);

impl<D> Default for PendingJob<D> {
    /// No job running.
    fn default() -> Self {
        PendingJob(None)
    }
}

impl<D> PendingJob<D> {
    /// Holds `done` until `end`.
    pub fn hold(&mut self, end: Instant, done: D) {
        self.0 = Some((end, done));
    }

    /// Drops the running job's result (the job was stopped): true when one was running; the
    /// node is idle again.
    pub fn cancel<R>(&mut self, clock: &RefCell<JobClock<R>>) -> bool {
        let running = self.0.take().is_some();
        if running {
            clock.borrow_mut().busy_until = None;
        }
        running
    }

    /// The result once `clock` has reached its end (the node is idle again), else `None`.
    pub fn take_due<R>(&mut self, clock: &RefCell<JobClock<R>>) -> Option<D> {
        let now = clock.borrow().now;
        match &self.0 {
            Some((end, _)) if *end <= now => {
                clock.borrow_mut().busy_until = None;
                self.0.take().map(|(_, d)| d)
            }
            _ => None,
        }
    }
}
