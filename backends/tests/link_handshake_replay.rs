//! The handshake fuzz target without cargo-fuzz: its seed corpus, chosen cases and random
//! inputs played through `replay_first_bytes` (a real link over an in-memory stack, whose
//! checks panic when a promise breaks: at most one Hello buffered before authentication, every
//! unauthenticated connection closed by the deadline and counted once).
#![cfg(feature = "alloc")]

use proptest::prelude::*;
use tessera_backends::link::replay::replay_first_bytes;
use tessera_backends::link::{RefusalReason, PRE_AUTH_FRAME};

fn header(kind: u8, flags: u8, sender: u16, seq: u64, payload: u32) -> Vec<u8> {
    let mut h = b"TSRW".to_vec();
    h.extend_from_slice(&[1, kind, flags, 0]);
    h.extend_from_slice(&sender.to_le_bytes());
    h.extend_from_slice(&[0; 10]);
    h.extend_from_slice(&seq.to_le_bytes());
    h.extend_from_slice(&payload.to_le_bytes());
    h
}

#[test]
fn the_seed_corpus_replays() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/link_handshake");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let r = replay_first_bytes(&data);
        // Only seeds asking for the valid Hello (mode bit 2) may authenticate.
        assert_eq!(r.up, data[0] & 4 != 0, "{}: {r:?}", path.display());
        n += 1;
    }
    assert!(n >= 10, "{n} seeds in {dir}");
}

#[test]
fn a_valid_hello_authenticates_after_exactly_one_hello_of_bytes() {
    for mode in [4u8, 5, 6, 7] {
        let r = replay_first_bytes(&[mode, 0]);
        assert!(r.up, "mode {mode}: {r:?}");
        assert_eq!(r.read_before_up, PRE_AUTH_FRAME);
        assert_eq!(r.stats.frames_received, 1);
    }
    // Then a frame too large for the receiver's limits: dropped, counted.
    let mut data = vec![4u8, 63];
    data.extend(header(10, 1, 1, 2, 1 << 20));
    let r = replay_first_bytes(&data);
    assert!(r.up && r.closed);
    assert_eq!(r.stats.dropped.oversize, 1);
}

#[test]
fn a_64_mib_header_is_refused_after_its_32_bytes() {
    let mut data = vec![0u8, 63];
    data.extend(header(7, 1, 1, 1, 64 << 20));
    data.extend([0u8; 100]);
    let r = replay_first_bytes(&data);
    assert!(!r.up && r.closed);
    assert_eq!(r.read_before_up, 32);
    assert_eq!(r.stats.dropped.oversize, 1);
    assert_eq!(r.stats.dropped.total(), 1);
    // The refusal tells the dialler why: clear Reject, code Protocol.
    assert_eq!(r.output.len(), 34);
    assert_eq!(&r.output[..4], b"TSRW");
    assert_eq!(r.output[5], 19);
    assert_eq!(
        u16::from_le_bytes([r.output[32], r.output[33]]),
        RefusalReason::Protocol.code()
    );
}

#[test]
fn a_dialler_counts_a_refusal_and_a_silent_listener() {
    let mut data = vec![1u8, 63];
    data.extend(header(19, 0, 0, 0, 2));
    data.extend(RefusalReason::Auth.code().to_le_bytes());
    let r = replay_first_bytes(&data);
    assert!(!r.up);
    assert_eq!(r.stats.dropped.refused_by_peer, 1);
    // One refusal is a hint, not yet a reason to give up.
    assert_eq!(r.stats.gave_up, None);
    let r = replay_first_bytes(&[1u8, 0]);
    assert_eq!(r.stats.dropped.handshake_timeout, 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_first_bytes_keep_the_promises(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = replay_first_bytes(&data);
    }

    #[test]
    fn random_bytes_behind_a_plausible_header_keep_the_promises(
        mode in 0u8..8,
        chunk in any::<u8>(),
        kind in 0u8..24,
        flags in 0u8..2,
        len in prop_oneof![0u32..64, any::<u32>()],
        tail in proptest::collection::vec(any::<u8>(), 0..80),
    ) {
        let mut data = vec![mode, chunk];
        data.extend(header(kind, flags, if mode & 1 == 0 { 1 } else { 0 }, 2, len));
        data.extend(tail);
        let _ = replay_first_bytes(&data);
    }
}
