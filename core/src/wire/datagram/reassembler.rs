//! The receiving side: datagrams in, whole messages out ([`Reassembler`]), with a fixed
//! number of reassembly slots over caller-provided buffers, a replay window per sender, and a
//! deadline per message.

use crate::time::{Duration, Instant};
use crate::wire::auth::{open_with_nonce, Key, ReplayWindow};
use crate::wire::frame::TAG_LEN;
use crate::wire::NodeId;

use super::header::{Datagram, DatagramRepr};
use super::{nonce, DatagramStats, DropReason, DGRAM_HEADER_LEN, MAX_FRAGMENTS};

/// A message delivered whole by [`Reassembler::receive`]. Its bytes borrow the datagram (a
/// single-fragment message, decrypted in place) or a reassembly slot (free again: the next
/// `receive` may overwrite it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivered<'x> {
    /// The sender.
    pub sender: NodeId,
    /// The message kind the sender gave.
    pub kind: u8,
    /// The sender's message number.
    pub message: u32,
    /// The message.
    pub data: &'x [u8],
}

/// A message being reassembled.
#[derive(Clone, Debug)]
struct Assembly {
    sender: NodeId,
    message: u32,
    kind: u8,
    len: u32,
    count: u16,
    lifetime_us: u32,
    got: u16,
    /// Bit `i`: fragment `i` stored.
    have: [u64; MAX_FRAGMENTS / 64],
    deadline: Instant,
    /// When its latest fragment arrived.
    last: Instant,
}

impl Assembly {
    fn matches(&self, r: &DatagramRepr) -> bool {
        (self.kind, self.len, self.count, self.lifetime_us)
            == (r.kind, r.len, r.count, r.lifetime_us)
    }
}

#[derive(Clone, Debug)]
struct Slot<B> {
    buf: B,
    busy: Option<Assembly>,
}

/// What the receiver knows of one sender.
#[derive(Clone, Copy, Debug)]
struct Peer {
    node: NodeId,
    /// Datagram counters accepted.
    counters: ReplayWindow,
    /// Message numbers finished (delivered or expired): their late fragments are dropped.
    done: ReplayWindow,
}

/// What a datagram led to, before the borrow of the delivered bytes is taken.
enum Step {
    Stored,
    /// A single-fragment message, decrypted in place.
    Inline(DatagramRepr),
    /// Slot `i` holds a whole message.
    Slot(usize),
}

/// Datagrams in, whole messages out: `SLOTS` reassembly slots over buffers `B` (the largest
/// message a slot takes is its buffer's length), per-sender replay windows for up to `PEERS`
/// senders, and a deadline per message. Nothing allocates; every drop is a [`DropReason`],
/// counted in [`DatagramStats`].
///
/// Drive it with the receive time: [`Reassembler::receive`] for each datagram,
/// [`Reassembler::expire`] (or another `receive`) at [`Reassembler::poll_at`] to give up on
/// messages past their deadline.
#[derive(Clone, Debug)]
pub struct Reassembler<B, const SLOTS: usize, const PEERS: usize> {
    key: Key,
    max_lifetime: Duration,
    slots: [Slot<B>; SLOTS],
    peers: heapless::Vec<Peer, PEERS>,
    stats: DatagramStats,
}

impl<B: AsRef<[u8]> + AsMut<[u8]>, const SLOTS: usize, const PEERS: usize>
    Reassembler<B, SLOTS, PEERS>
{
    /// A receiver opening datagrams with `key`, reassembling into `buffers`, waiting at most
    /// `max_lifetime` for a message whatever its sender asks.
    pub fn new(key: Key, max_lifetime: Duration, buffers: [B; SLOTS]) -> Self {
        Reassembler {
            key,
            max_lifetime,
            slots: buffers.map(|buf| Slot { buf, busy: None }),
            peers: heapless::Vec::new(),
            stats: DatagramStats::default(),
        }
    }

    /// Counters so far.
    pub const fn stats(&self) -> &DatagramStats {
        &self.stats
    }

    /// Messages being reassembled.
    pub fn in_progress(&self) -> usize {
        self.slots.iter().filter(|s| s.busy.is_some()).count()
    }

    /// The largest message a slot takes, bytes.
    pub fn max_message(&self) -> usize {
        self.slots
            .iter()
            .map(|s| s.buf.as_ref().len())
            .max()
            .unwrap_or(0)
    }

    /// When the next message in progress reaches its deadline, if any.
    pub fn poll_at(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter_map(|s| s.busy.as_ref().map(|a| a.deadline))
            .min()
    }

    /// Gives up on every message past its deadline at `now` (counted as expired; their late
    /// fragments will be dropped).
    pub fn expire(&mut self, now: Instant) {
        for i in 0..SLOTS {
            if self.slots[i]
                .busy
                .as_ref()
                .is_some_and(|a| now > a.deadline)
            {
                self.give_up(i);
            }
        }
    }

    /// Takes one received datagram at `now`: `Ok(Some)` when it completes a message, `Ok(None)`
    /// when it was stored, `Err` when it was dropped (and counted). The datagram is decrypted
    /// in place.
    pub fn receive<'x>(
        &'x mut self,
        now: Instant,
        datagram: &'x mut [u8],
    ) -> Result<Option<Delivered<'x>>, DropReason> {
        self.expire(now);
        let step = match self.step(now, datagram) {
            Ok(s) => s,
            Err(r) => {
                self.stats.count(r);
                return Err(r);
            }
        };
        self.stats.accepted += 1;
        match step {
            Step::Stored => Ok(None),
            Step::Inline(r) => {
                self.stats.delivered += 1;
                let end = datagram.len() - TAG_LEN;
                Ok(Some(Delivered {
                    sender: r.sender,
                    kind: r.kind,
                    message: r.message,
                    data: &datagram[DGRAM_HEADER_LEN..end],
                }))
            }
            Step::Slot(i) => {
                self.stats.delivered += 1;
                let slot = &mut self.slots[i];
                let Some(a) = slot.busy.take() else {
                    return Ok(None);
                };
                Ok(Some(Delivered {
                    sender: a.sender,
                    kind: a.kind,
                    message: a.message,
                    data: &slot.buf.as_ref()[..a.len as usize],
                }))
            }
        }
    }

    fn peer(&self, node: NodeId) -> Option<usize> {
        self.peers.iter().position(|p| p.node == node)
    }

    /// Frees slot `i` with its message unfinished.
    fn give_up(&mut self, i: usize) {
        if let Some(a) = self.slots[i].busy.take() {
            self.stats.expired += 1;
            if let Some(p) = self.peer(a.sender) {
                // A number already out of the window is refused anyway.
                let _ = self.peers[p].done.accept(u64::from(a.message));
            }
        }
    }

    fn step(&mut self, now: Instant, datagram: &mut [u8]) -> Result<Step, DropReason> {
        let mut d = Datagram::new_checked(datagram)?;
        let r = DatagramRepr::parse(&d)?;
        if r.count > 1 && r.len as usize > self.max_message() {
            return Err(DropReason::Oversized);
        }
        // Cheap checks first: a replay costs no decryption.
        let known = self.peer(r.sender);
        if let Some(p) = known {
            let w = &self.peers[p].counters;
            if w.highest()
                .is_some_and(|top| r.counter.saturating_add(ReplayWindow::SIZE) <= top)
            {
                return Err(DropReason::OutOfWindow);
            }
            w.check(r.counter).map_err(|_| DropReason::Replayed)?;
        }
        let tag = d.tag();
        let (header, payload) = d.header_and_payload_mut().ok_or(DropReason::Malformed)?;
        open_with_nonce(&self.key, nonce(r.sender, r.counter), header, payload, &tag)
            .map_err(|_| DropReason::Forged)?;
        // Authentic: only now may the sender take a place in the table.
        let p = match known {
            Some(p) => p,
            None => {
                let fresh = Peer {
                    node: r.sender,
                    counters: ReplayWindow::new(),
                    done: ReplayWindow::new(),
                };
                self.peers.push(fresh).map_err(|_| DropReason::Full)?;
                self.peers.len() - 1
            }
        };
        self.peers[p]
            .counters
            .accept(r.counter)
            .map_err(|_| DropReason::Replayed)?;
        let found = self.slots.iter().position(|s| {
            s.busy
                .as_ref()
                .is_some_and(|a| a.sender == r.sender && a.message == r.message)
        });
        let Some(i) = found else {
            return self.first_fragment(now, p, &r, payload);
        };
        let Some(a) = self.slots[i].busy.as_mut() else {
            return Err(DropReason::Late);
        };
        if !a.matches(&r) {
            return Err(DropReason::Malformed);
        }
        let (word, bit) = (r.index as usize / 64, 1u64 << (r.index % 64));
        if a.have[word] & bit != 0 {
            return Err(DropReason::Replayed);
        }
        a.have[word] |= bit;
        a.got += 1;
        a.last = now;
        let whole = a.got == a.count;
        self.slots[i].buf.as_mut()[r.fragment()].copy_from_slice(payload);
        if !whole {
            return Ok(Step::Stored);
        }
        let _ = self.peers[p].done.accept(u64::from(r.message));
        Ok(Step::Slot(i))
    }

    /// The first fragment of a message to arrive (`payload` decrypted).
    fn first_fragment(
        &mut self,
        now: Instant,
        p: usize,
        r: &DatagramRepr,
        payload: &[u8],
    ) -> Result<Step, DropReason> {
        let done = &mut self.peers[p].done;
        done.check(u64::from(r.message))
            .map_err(|_| DropReason::Late)?;
        if r.count == 1 {
            let _ = done.accept(u64::from(r.message));
            return Ok(Step::Inline(*r));
        }
        // The smallest free slot the message fits in; with none free, the slot that fits and
        // has waited longest for a fragment, given up (counted expired): a message that has
        // gone quiet has most likely lost a fragment, and the newer one still has its time.
        // A slot that took a fragment at this same instant is never taken.
        let len = r.len as usize;
        let fits = |s: &Slot<B>| s.buf.as_ref().len() >= len;
        let free = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.busy.is_none() && fits(s))
            .min_by_key(|(_, s)| s.buf.as_ref().len())
            .map(|(i, _)| i);
        let i = match free {
            Some(i) => i,
            None => {
                let quiet = self
                    .slots
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| fits(s))
                    .filter_map(|(i, s)| Some((s.busy.as_ref()?.last, i)))
                    .filter(|&(last, _)| last < now)
                    .min()
                    .map(|(_, i)| i)
                    .ok_or(DropReason::Full)?;
                self.give_up(quiet);
                quiet
            }
        };
        let lifetime = r.lifetime().min(self.max_lifetime);
        let mut a = Assembly {
            sender: r.sender,
            message: r.message,
            kind: r.kind,
            len: r.len,
            count: r.count,
            lifetime_us: r.lifetime_us,
            got: 1,
            have: [0; MAX_FRAGMENTS / 64],
            deadline: now.saturating_add(lifetime),
            last: now,
        };
        a.have[r.index as usize / 64] |= 1 << (r.index % 64);
        self.slots[i].buf.as_mut()[r.fragment()].copy_from_slice(payload);
        self.slots[i].busy = Some(a);
        Ok(Step::Stored)
    }
}
