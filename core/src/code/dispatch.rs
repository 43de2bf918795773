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

use super::{replicate, Code, CodeError, MAX_SHARDS};
use crate::time::{Duration, Instant};

/// What the driver must do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerAction {
    /// Send shard `shard`'s task (its weights are on the worker, the input is broadcast). For a
    /// replicated layer, shard `i` of `2k` computes data shard `i mod k`.
    Send {
        /// The shard.
        shard: usize,
    },
    /// Enough results are in (any `k`; one copy of every data shard when replicated): decode
    /// from the shards in `present` (bit `i` = shard `i`).
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
    /// 2MR: `2k` shards, shard `i` a copy of data shard `i mod k`, no parity.
    replicated: bool,
    deadline: Instant,
    budgets: [Duration; MAX_SHARDS],
    shards: [Shard; MAX_SHARDS],
    redispatched: u32,
    /// Shards already sent a second time: each is re-sent at most once, so a worker that keeps
    /// failing (or a driver that cannot reach it) cannot make the layer re-send forever.
    resent: u32,
    /// How long to wait for pending data shards once parity could decode (float exactness).
    grace: Duration,
    /// When the results first determined the output while a data shard was still pending.
    decodable_at: Option<Instant>,
    finished: bool,
    decoded: bool,
    emitted_end: bool,
}

impl CodedLayer {
    /// A layer starting at `now` that must finish by `deadline`; `budgets[i]` is shard `i`'s
    /// timeout (`budgets.len() == n`).
    pub fn new(code: Code, deadline: Instant, budgets: &[Duration]) -> Result<Self, CodeError> {
        Self::with_scheme(code, false, deadline, budgets)
    }

    /// A replicated (2MR) layer of `code`'s data shards: `budgets.len() == 2k` (the code's
    /// parity count is ignored), `2k ≤ MAX_SHARDS`.
    pub fn replicated(
        code: Code,
        deadline: Instant,
        budgets: &[Duration],
    ) -> Result<Self, CodeError> {
        Self::with_scheme(code, true, deadline, budgets)
    }

    fn with_scheme(
        code: Code,
        replicated: bool,
        deadline: Instant,
        budgets: &[Duration],
    ) -> Result<Self, CodeError> {
        let count = if replicated {
            replicate::devices(code.k())
        } else {
            code.n()
        };
        if count > MAX_SHARDS {
            return Err(CodeError::Shape {
                rows: code.rows(),
                k: code.k(),
                r: code.r(),
            });
        }
        if budgets.len() != count {
            return Err(CodeError::Length {
                buffer: super::Buffer::Result,
                need: count,
                have: budgets.len(),
            });
        }
        let mut b = [Duration::from_micros(0); MAX_SHARDS];
        b[..budgets.len()].copy_from_slice(budgets);
        Ok(CodedLayer {
            code,
            replicated,
            deadline,
            budgets: b,
            shards: [Shard::Queued; MAX_SHARDS],
            redispatched: 0,
            resent: 0,
            grace: Duration::from_micros(0),
            decodable_at: None,
            finished: false,
            decoded: false,
            emitted_end: false,
        })
    }

    /// Shard `shard`'s timeout (zero for an index out of range).
    pub fn budget(&self, shard: usize) -> Duration {
        self.budgets
            .get(shard)
            .copied()
            .unwrap_or(Duration::from_micros(0))
    }

    /// Once enough results could decode, wait up to `grace` more for data shards still
    /// pending (never past a shard's timeout or the deadline): with every data shard in, the
    /// output is the data shards' own rows, bit-identical to a centralised run, where a float
    /// decode from parity is only within its bound. Zero (the default) decodes at once.
    pub fn set_data_grace(&mut self, grace: Duration) {
        self.grace = grace;
    }

    /// Shards dispatched for this layer: `n`, or `2k` when replicated.
    pub fn shards(&self) -> usize {
        if self.replicated {
            replicate::devices(self.code.k())
        } else {
            self.code.n()
        }
    }

    /// The layer's code.
    pub fn code(&self) -> &Code {
        &self.code
    }

    /// Whether the layer is replicated (2MR) rather than coded.
    pub fn is_replicated(&self) -> bool {
        self.replicated
    }

    /// Whether the results in `mask` determine the whole output.
    pub fn decodable(&self, mask: u32) -> bool {
        if self.replicated {
            replicate::decodable(&self.code, u64::from(mask))
        } else {
            mask.count_ones() as usize >= self.code.k()
        }
    }

    /// Data shard `d` is available from the results in `mask` (directly or by a replica).
    fn data_present(&self, mask: u32, d: usize) -> bool {
        mask >> d & 1 == 1 || (self.replicated && mask >> (d + self.code.k()) & 1 == 1)
    }

    /// Output rows available without decoding from the results in `mask`.
    pub fn rows_present(&self, mask: u32) -> usize {
        (0..self.code.k())
            .filter(|&d| self.data_present(mask, d))
            .filter_map(|d| self.code.data_rows(d).ok().map(|r| r.len()))
            .sum()
    }

    fn mask(&self, state: fn(&Shard) -> bool) -> u32 {
        (0..self.shards())
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
        let n = self.shards();
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
        let n = self.shards();
        let deadline = self.deadline;
        let cap = move |b: Duration| {
            let t = now + b;
            if t < deadline {
                t
            } else {
                deadline
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
        if self.decodable(present) && !self.waiting_for_data(now, present) {
            self.finished = true;
            self.decoded = true;
            self.emitted_end = true;
            return Some(LayerAction::Decode { present });
        }
        let pending = self.mask(|s| matches!(s, Shard::Sent { .. }));
        if !self.decodable(present | pending) {
            // Parity can no longer cover the losses: re-send an erased shard (data first) if
            // its budget still fits before the frame deadline.
            // A zero budget (a layer starting at its deadline, or a zero frame deadline) is
            // excluded: its re-send times out in the same instant and was re-sent again, a
            // livelock of `Send`s without end (found by tests/coded_runtime.rs).
            let erased = (0..n).find(|&i| {
                self.shards[i] == Shard::Erased
                    && self.resent >> i & 1 == 0
                    && !self.budgets[i].is_zero()
                    && now + self.budgets[i] <= self.deadline
            });
            if let Some(i) = erased {
                self.shards[i] = Shard::Sent {
                    until: cap(self.budgets[i]),
                };
                self.redispatched += 1;
                self.resent |= 1 << i;
                return Some(LayerAction::Send { shard: i });
            }
            if pending == 0 || now >= self.deadline {
                self.finished = true;
                self.emitted_end = true;
                let rows = self.rows_present(present);
                return Some(LayerAction::Expired { present, rows });
            }
        }
        None
    }

    /// True while a decodable coded layer gives its pending data shards their grace.
    fn waiting_for_data(&mut self, now: Instant, present: u32) -> bool {
        let pending_data = (0..self.code.k())
            .any(|d| matches!(self.shards[d], Shard::Sent { .. }) && present >> d & 1 == 0);
        if self.replicated || self.grace.is_zero() || !pending_data {
            return false;
        }
        let since = *self.decodable_at.get_or_insert(now);
        now < since + self.grace && now < self.deadline
    }

    /// When to call [`poll`](Self::poll) next if nothing arrives: the earliest shard timeout
    /// (or the end of a data grace).
    pub fn poll_at(&self) -> Option<Instant> {
        if self.emitted_end {
            return None;
        }
        let grace = self.decodable_at.map(|t| t + self.grace);
        self.shards[..self.shards()]
            .iter()
            .filter_map(|s| match *s {
                Shard::Sent { until } => Some(until + Duration::from_micros(1)),
                Shard::Queued => Some(Instant::ZERO),
                _ => None,
            })
            .chain(grace)
            .min()
    }
}
