//! The worker side of the coded stage: a bounded FIFO of shard tasks with budgets.

use heapless::Deque;

use crate::runtime::Verdict;
use crate::time::{Duration, Instant};
use crate::wire::FrameKey;

use super::{CodedError, MAX_WORKER_TASKS};

/// A shard to compute (worker side).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardWork {
    /// The frame.
    pub frame: FrameKey,
    /// Coded layer index.
    pub layer: u8,
    /// Shard index.
    pub shard: u8,
}

/// What the driver must do next (worker side).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerAction {
    /// Compute `work` on the task's input with this worker's weights of the shard; report
    /// with [`CodedWorker::on_computed`].
    Compute(ShardWork),
    /// Send the computed result of `work` to the gateway as `CodedResult`.
    SendResult(ShardWork),
    /// Drop the task's input (and result, if any): it is past its budget.
    Drop(ShardWork),
}

#[derive(Clone, Copy, Debug)]
struct Task {
    work: ShardWork,
    expires: Instant,
}

/// Counters of a worker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Tasks received.
    pub received: u32,
    /// Results sent.
    pub sent: u32,
    /// Tasks or results dropped past their budget.
    pub late: u32,
    /// Computations abandoned at their budget (also counted in `late`).
    pub abandoned: u32,
}

/// The worker side: a bounded FIFO of shard tasks with budgets, one computing at a time.
#[derive(Clone, Debug, Default)]
pub struct CodedWorker {
    queue: Deque<Task, MAX_WORKER_TASKS>,
    computing: Option<Task>,
    actions: Deque<WorkerAction, { 2 * MAX_WORKER_TASKS + 2 }>,
    stats: WorkerStats,
}

impl CodedWorker {
    /// An idle worker.
    pub fn new() -> CodedWorker {
        CodedWorker::default()
    }

    /// Counters so far.
    pub fn stats(&self) -> WorkerStats {
        self.stats
    }

    /// A `CodedTask` arrived at `now` with `budget`. Accept: keep its input until `Compute`
    /// or `Drop` names it. Discard: the queue is full (the gateway's timeout covers it), or
    /// the task is here already. A gateway sends a shard again when its budget ran out and
    /// parity cannot cover: the copy in hand (computing, or queued) then counts until the
    /// later of its budget and the new one, so a slow computation's result is still sent.
    pub fn on_task(&mut self, now: Instant, work: ShardWork, budget: Duration) -> Verdict {
        let here = self
            .computing
            .iter_mut()
            .chain(self.queue.iter_mut())
            .find(|t| t.work == work);
        if let Some(t) = here {
            t.expires = t.expires.max(now.saturating_add(budget));
            return Verdict::Discard;
        }
        self.stats.received += 1;
        let task = Task {
            work,
            expires: now.saturating_add(budget),
        };
        match self.queue.push_back(task) {
            Ok(()) => Verdict::Accept,
            Err(_) => {
                self.stats.late += 1;
                Verdict::Discard
            }
        }
    }

    /// The computation of the running task finished at `now`.
    pub fn on_computed(&mut self, now: Instant) -> Result<(), CodedError> {
        let t = self.computing.take().ok_or(CodedError::NotComputing)?;
        let a = if now <= t.expires {
            self.stats.sent += 1;
            WorkerAction::SendResult(t.work)
        } else {
            self.stats.late += 1;
            WorkerAction::Drop(t.work)
        };
        let _ = self.actions.push_back(a);
        Ok(())
    }

    /// True while a task computes.
    pub fn is_computing(&self) -> bool {
        self.computing.is_some()
    }

    /// The task computing, if any.
    pub fn computing(&self) -> Option<ShardWork> {
        self.computing.map(|t| t.work)
    }

    /// The running computation once `now` is past its budget: its result would be dropped,
    /// so a driver whose executor can stop it calls [`abandon`](Self::abandon) and the worker
    /// moves on. Otherwise one straggling shard holds every task queued behind it (the next
    /// layer of the same frame, later frames) until it ends.
    pub fn overdue(&self, now: Instant) -> Option<ShardWork> {
        self.computing.filter(|t| now > t.expires).map(|t| t.work)
    }

    /// A task of `work`'s frame at `work`'s layer arrived at `now`: a gateway sends a frame's
    /// next layer only once the layer before has ended, so the frame's earlier-layer tasks
    /// still here (stragglers past a decode) are of no use. Their budgets end now: queued ones
    /// are dropped, a running one is [`overdue`](Self::overdue) from the next instant.
    pub fn supersede(&mut self, now: Instant, work: ShardWork) {
        for t in self.computing.iter_mut().chain(self.queue.iter_mut()) {
            if t.work.frame == work.frame && t.work.layer < work.layer && t.expires > now {
                t.expires = now;
            }
        }
    }

    /// When the running computation passes its budget (see [`overdue`](Self::overdue)).
    pub fn overdue_at(&self) -> Option<Instant> {
        self.computing
            .map(|t| t.expires.saturating_add(Duration::from_micros(1)))
    }

    /// The running computation was stopped at `now`, past its budget: its task is dropped
    /// (a `Drop` action) and the next one may start.
    pub fn abandon(&mut self, now: Instant) -> Result<(), CodedError> {
        let t = self.computing.ok_or(CodedError::NotComputing)?;
        if now <= t.expires {
            return Err(CodedError::NotOverdue);
        }
        self.computing = None;
        self.stats.late += 1;
        self.stats.abandoned += 1;
        let _ = self.actions.push_back(WorkerAction::Drop(t.work));
        Ok(())
    }

    /// Next action at `now`.
    pub fn poll(&mut self, now: Instant) -> Option<WorkerAction> {
        if let Some(a) = self.actions.pop_front() {
            return Some(a);
        }
        if self.computing.is_some() {
            return None;
        }
        let t = self.queue.pop_front()?;
        if now > t.expires {
            self.stats.late += 1;
            return Some(WorkerAction::Drop(t.work));
        }
        self.computing = Some(t);
        Some(WorkerAction::Compute(t.work))
    }

    /// When a queued task expires (the next `Drop`), if nothing else happens first.
    pub fn poll_at(&self) -> Option<Instant> {
        if !self.actions.is_empty() {
            return Some(Instant::ZERO);
        }
        if self.computing.is_some() {
            return None;
        }
        self.queue.front().map(|_| Instant::ZERO)
    }
}
