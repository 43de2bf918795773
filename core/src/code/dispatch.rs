//! The gateway side of one coded layer, sans-IO: dispatch `n` shards once, accept the first
//! `k` results in time, ignore stragglers, recover erasures by decoding instead of re-sending,
//! re-dispatch only when parity can no longer cover the losses and the frame deadline still
//! allows it, and otherwise finish at the deadline with a quantified partial output.
//!
//! The state machine never touches tensors: the driver keeps the results, calls
//! [`Decoder`](super::Decoder) on [`LayerAction::Decode`], and zero-fills the rows named
//! missing by [`LayerAction::Expired`]. Per-shard timeouts come from a budget allocator
//! ([`crate::deadline`]): shard `i` is late after `start + budgets[i]` (capped at the frame
//! deadline).

use super::{Code, CodeError, MAX_SHARDS};
use crate::time::{Duration, Instant};

/// What the driver must do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerAction {
    /// Send shard `shard`'s task (its weights are on the worker, the input is broadcast).
    Send {
        /// The shard.
        shard: usize,
    },
    /// `k` results are in: decode from the shards in `present` (bit `i` = shard `i`).
    Decode {
        /// Results to decode from.
        present: u32,
    },
    /// The layer ends undecodable: use the data shards in `present`, zero the rest. The
    /// frame's quality is `rows` of the layer's [`Code::rows`] delivered (all of them when
    /// only empty data shards — `k ∤ m` padding — are missing).
    Expired {
        /// Results that arrived in time.
        present: u32,
        /// Output rows available.
        rows: usize,
    },
}

/// What to do with an arriving result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResultVerdict {
    /// Keep it: it counts toward the decode.
    Accept,
    /// Its shard was already declared an erasure (timeout, lost worker) and not sent again,
    /// or the layer expired: drop it.
    Late,
    /// Already have this shard's result.
    Duplicate,
    /// `k` results were already in and decoded: a straggler, drop it.
    Unneeded,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shard {
    Queued,
    Sent { until: Instant },
    Arrived,
    Erased,
}

/// One coded layer in flight.
#[derive(Clone, Debug)]
pub struct CodedLayer {
    code: Code,
    deadline: Instant,
    budgets: [Duration; MAX_SHARDS],
    shards: [Shard; MAX_SHARDS],
    redispatched: u32,
    finished: bool,
    decoded: bool,
    emitted_end: bool,
}

impl CodedLayer {
    /// A layer starting at `now` that must finish by `deadline`; `budgets[i]` is shard `i`'s
    /// timeout (`budgets.len() == n`).
    pub fn new(code: Code, deadline: Instant, budgets: &[Duration]) -> Result<Self, CodeError> {
        if budgets.len() != code.n() {
            return Err(CodeError::Length {
                buffer: super::Buffer::Result,
                need: code.n(),
                have: budgets.len(),
            });
        }
        let mut b = [Duration::from_micros(0); MAX_SHARDS];
        b[..budgets.len()].copy_from_slice(budgets);
        Ok(CodedLayer {
            code,
            deadline,
            budgets: b,
            shards: [Shard::Queued; MAX_SHARDS],
            redispatched: 0,
            finished: false,
            decoded: false,
            emitted_end: false,
        })
    }

    fn mask(&self, state: fn(&Shard) -> bool) -> u32 {
        (0..self.code.n())
            .filter(|&i| state(&self.shards[i]))
            .fold(0, |m, i| m | 1 << i)
    }

    /// Results accepted so far (bit `i` = shard `i`).
    pub fn present(&self) -> u32 {
        self.mask(|s| *s == Shard::Arrived)
    }

    /// Shards sent again after an erasure.
    pub fn redispatched(&self) -> u32 {
        self.redispatched
    }

    /// Whether the layer has decoded or expired.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// A result for `shard` arrived at `now`.
    pub fn on_result(&mut self, now: Instant, shard: usize) -> Result<ResultVerdict, CodeError> {
        let n = self.code.n();
        let s = self
            .shards
            .get_mut(shard)
            .filter(|_| shard < n)
            .ok_or(CodeError::Index {
                index: shard,
                count: n,
            })?;
        // A re-sent shard accepts the first answer of any attempt: same input, same weights.
        Ok(match *s {
            Shard::Arrived => ResultVerdict::Duplicate,
            Shard::Erased | Shard::Queued => ResultVerdict::Late,
            Shard::Sent { .. } if self.finished && self.decoded => ResultVerdict::Unneeded,
            Shard::Sent { until } if !self.finished && now <= until => {
                *s = Shard::Arrived;
                ResultVerdict::Accept
            }
            Shard::Sent { .. } => ResultVerdict::Late,
        })
    }

    /// The worker computing `shard` is gone: an erasure now rather than at its timeout.
    pub fn on_worker_lost(&mut self, shard: usize) {
        if let Some(s @ Shard::Sent { .. }) = self.shards.get_mut(shard) {
            *s = Shard::Erased;
        }
    }

    /// Next action at `now`, or `None` (then sleep until [`poll_at`](Self::poll_at)).
    pub fn poll(&mut self, now: Instant) -> Option<LayerAction> {
        if self.emitted_end {
            return None;
        }
        let n = self.code.n();
        let cap = |b: Duration| {
            let t = now + b;
            if t < self.deadline {
                t
            } else {
                self.deadline
            }
        };
        // Dispatch everything once.
        if let Some(i) = (0..n).find(|&i| self.shards[i] == Shard::Queued) {
            self.shards[i] = Shard::Sent {
                until: cap(self.budgets[i]),
            };
            return Some(LayerAction::Send { shard: i });
        }
        // Timeouts become erasures.
        for s in self.shards[..n].iter_mut() {
            if let Shard::Sent { until } = *s {
                if now > until || now >= self.deadline {
                    *s = Shard::Erased;
                }
            }
        }
        let present = self.present();
        let k = self.code.k();
        if present.count_ones() as usize >= k {
            self.finished = true;
            self.decoded = true;
            self.emitted_end = true;
            return Some(LayerAction::Decode { present });
        }
        let pending = self.mask(|s| matches!(s, Shard::Sent { .. }));
        if ((present | pending).count_ones() as usize) < k {
            // Parity can no longer cover the losses: re-send an erased shard (data first) if
            // its budget still fits before the frame deadline.
            let erased = (0..n).find(|&i| {
                self.shards[i] == Shard::Erased && now + self.budgets[i] <= self.deadline
            });
            if let Some(i) = erased {
                self.shards[i] = Shard::Sent {
                    until: cap(self.budgets[i]),
                };
                self.redispatched += 1;
                return Some(LayerAction::Send { shard: i });
            }
            if pending == 0 || now >= self.deadline {
                self.finished = true;
                self.emitted_end = true;
                let rows: usize = (0..k)
                    .filter(|&d| present >> d & 1 == 1)
                    .filter_map(|d| self.code.data_rows(d).ok().map(|r| r.len()))
                    .sum();
                return Some(LayerAction::Expired { present, rows });
            }
        }
        None
    }

    /// When to call [`poll`](Self::poll) next if nothing arrives: the earliest shard timeout.
    pub fn poll_at(&self) -> Option<Instant> {
        if self.emitted_end {
            return None;
        }
        self.shards[..self.code.n()]
            .iter()
            .filter_map(|s| match *s {
                Shard::Sent { until } => Some(until + Duration::from_micros(1)),
                Shard::Queued => Some(Instant::ZERO),
                _ => None,
            })
            .min()
    }
}
