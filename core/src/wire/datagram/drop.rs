//! Why a received datagram was dropped ([`DropReason`]), and the receiver's counters
//! ([`DatagramStats`]): one counter per reason, so every drop is visible.

use core::fmt;

/// Why a received datagram was dropped. Each is counted in [`DatagramStats`]; none is a
/// panic, none allocates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Too short, bad magic or version, or fragment fields that do not add up (index past
    /// count, a payload that is not the fragment's share, a fragment disagreeing with the
    /// rest of its message).
    Malformed,
    /// The tag does not match: wrong key, forged or corrupted.
    Forged,
    /// The counter (or the fragment) was already accepted from that sender.
    Replayed,
    /// The message is larger than any reassembly slot, or the datagram larger than the
    /// receiver takes.
    Oversized,
    /// The counter is older than the sender's replay window (reordered too far, or a replay
    /// of old traffic).
    OutOfWindow,
    /// The fragment's message is past its deadline, or already delivered or expired.
    Late,
    /// Every reassembly slot that fits is busy with a message that took a fragment at this
    /// same instant (or the table of senders is full); a quieter one is given up instead.
    Full,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [DropReason; 7] = [
        DropReason::Malformed,
        DropReason::Forged,
        DropReason::Replayed,
        DropReason::Oversized,
        DropReason::OutOfWindow,
        DropReason::Late,
        DropReason::Full,
    ];

    /// A short name (for counters in reports and logs).
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::Forged => "forged",
            DropReason::Replayed => "replayed",
            DropReason::Oversized => "oversized",
            DropReason::OutOfWindow => "out_of_window",
            DropReason::Late => "late",
            DropReason::Full => "full",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DropReason::Malformed => "malformed datagram",
            DropReason::Forged => "datagram tag mismatch (forged, corrupted or wrong key)",
            DropReason::Replayed => "replayed datagram",
            DropReason::Oversized => "message larger than the receiver takes",
            DropReason::OutOfWindow => "datagram counter older than the replay window",
            DropReason::Late => "fragment of a message past its deadline or already done",
            DropReason::Full => "no free reassembly slot",
        })
    }
}

impl core::error::Error for DropReason {}

/// Counters of a datagram receiver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DatagramStats {
    /// Datagrams accepted (authentic, fresh, stored or delivered).
    pub accepted: u64,
    /// Messages delivered whole.
    pub delivered: u64,
    /// Messages given up at their deadline with fragments missing.
    pub expired: u64,
    /// Dropped datagrams, indexed like [`DropReason::ALL`] (see [`DatagramStats::dropped`]).
    pub drops: [u64; DropReason::ALL.len()],
}

impl DatagramStats {
    /// Datagrams dropped for `reason`.
    pub const fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }

    /// Datagrams dropped for any reason.
    pub fn dropped_total(&self) -> u64 {
        self.drops.iter().sum()
    }

    pub(crate) fn count(&mut self, reason: DropReason) {
        self.drops[reason as usize] += 1;
    }
}
