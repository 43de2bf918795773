//! A line for every connection a node's link refused or dropped for a reason an operator
//! should hear about (a wrong key, an id claimed from a second address, a flood): the counters
//! say how many, this says when.

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use tessera_core::wire::datagram::DropReason;

use crate::dgram::DgramStats;
use crate::link::Drops;

/// Remembers the counters it last reported, so each poll prints only what is new.
#[derive(Default)]
pub struct DropLog {
    seen: Drops,
    datagrams: DgramStats,
}

impl DropLog {
    /// One line per reason whose count grew since the last call (at most one line per reason
    /// per call, however many connections it covers), each naming node `who`.
    pub fn report(&mut self, who: &str, now: &Drops) -> Vec<String> {
        let mut lines = Vec::new();
        for (what, seen, now) in reasons(&self.seen, now) {
            if now > seen {
                lines.push(format!(
                    "{who}: refused {} connection(s): {what} ({now} so far)",
                    now - seen
                ));
            }
        }
        if now.probed > self.seen.probed {
            lines.push(format!(
                "{who}: answered {} probe(s) (tessera check) ({} so far)",
                now.probed - self.seen.probed,
                now.probed
            ));
        }
        self.seen = *now;
        lines
    }

    /// One line per reason a coded datagram was dropped for whose count grew since the last
    /// call (losses and late fragments are the network's and only counted).
    pub fn report_datagrams(&mut self, who: &str, now: &DgramStats) -> Vec<String> {
        let mut lines = Vec::new();
        let (a, b) = (&self.datagrams, now);
        let by_reason = [
            DropReason::Malformed,
            DropReason::Forged,
            DropReason::Replayed,
            DropReason::Oversized,
            DropReason::OutOfWindow,
        ]
        .map(|r| (r.name(), a.rx.dropped(r), b.rx.dropped(r)));
        let more = [
            ("wrong_source", a.wrong_source, b.wrong_source),
            ("bad_message", a.bad_message, b.bad_message),
        ];
        for (what, seen, now) in by_reason.into_iter().chain(more) {
            if now > seen {
                lines.push(format!(
                    "{who}: dropped {} datagram(s): {what} ({now} so far)",
                    now - seen
                ));
            }
        }
        self.datagrams = *now;
        lines
    }
}

/// The reasons worth a line, with the old and new counts (peers closing or going silent are
/// ordinary and only counted).
fn reasons(a: &Drops, b: &Drops) -> [(&'static str, u64, u64); 9] {
    [
        ("bad tag (wrong cluster key?)", a.forged, b.forged),
        (
            "a different model fingerprint (weights, cfg, layers, grid, kernel or policy; \
             run tessera check)",
            a.model_mismatch,
            b.model_mismatch,
        ),
        (
            "an id a live connection from another address holds",
            a.duplicate_id,
            b.duplicate_id,
        ),
        ("an id not in the cluster file", a.unknown_id, b.unknown_id),
        ("malformed first bytes", a.malformed, b.malformed),
        (
            "a header larger than a Hello before authenticating",
            a.oversize,
            b.oversize,
        ),
        (
            "no Hello within the handshake deadline",
            a.handshake_timeout,
            b.handshake_timeout,
        ),
        (
            "too many connections waiting to authenticate",
            a.cap_global,
            b.cap_global,
        ),
        (
            "too many waiting connections from one address",
            a.cap_per_addr,
            b.cap_per_addr,
        ),
    ]
}
