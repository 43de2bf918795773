//! The datagram layer: the layout byte for byte, fragmentation and reassembly in any order,
//! and every drop reason (malformed, forged, replayed, out of window, oversized, late, full)
//! counted without a panic; property tests over loss, reordering and arbitrary bytes.

use proptest::prelude::*;
use tessera_core::rng::SplitMix64;
use tessera_core::time::{Duration, Instant};
use tessera_core::wire::datagram::{
    nonce, Datagram, DatagramRepr, DatagramSender, DropReason, Outgoing, Reassembler, SendError,
    DGRAM_HEADER_LEN, DGRAM_OVERHEAD, MAX_FRAGMENTS,
};
use tessera_core::wire::{auth, Key};

const KEY: Key = Key::new([0x42; 32]);
const T0: Instant = Instant::from_millis(5);

type Rx = Reassembler<Vec<u8>, 4, 4>;

fn rx(slot: usize) -> Rx {
    Reassembler::new(
        KEY,
        Duration::from_secs(1),
        core::array::from_fn(|_| vec![0; slot]),
    )
}

/// Every datagram of a `len`-byte message (bytes `i as u8`) from `node`, datagrams of `size`.
fn datagrams(tx: &mut DatagramSender, len: usize, lifetime: Duration) -> (Vec<u8>, Vec<Vec<u8>>) {
    let msg: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
    let mut out = tx.start(9, lifetime, len).unwrap();
    let mut v = Vec::new();
    let mut buf = vec![0u8; tx.max_datagram()];
    while let Some(n) = tx.next_datagram(&mut out, &msg, &mut buf).unwrap() {
        v.push(buf[..n].to_vec());
    }
    assert!(out.is_done());
    (msg, v)
}

fn feed(rx: &mut Rx, now: Instant, d: &[u8]) -> Result<Option<Vec<u8>>, DropReason> {
    let mut b = d.to_vec();
    rx.receive(now, &mut b).map(|o| o.map(|m| m.data.to_vec()))
}

#[test]
fn golden_layout() {
    let mut tx = DatagramSender::new(0x0102, KEY, 0x1122_3344_5566_7788, 64).unwrap();
    let (_, ds) = datagrams(&mut tx, 20, Duration::from_micros(0x0a0b_0c0d));
    assert_eq!(ds.len(), 2, "16 payload bytes a datagram: 20 bytes in two");
    let d = &ds[1];
    #[rustfmt::skip]
    let want: [u8; DGRAM_HEADER_LEN] = [
        b'T', b'S', b'D', b'G', 1, 9, 0x02, 0x01,
        0x89, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, // counter + 1 (second datagram)
        0, 0, 0, 0, 20, 0, 0, 0,                        // message 0, 20 bytes
        1, 0, 2, 0, 0x0d, 0x0c, 0x0b, 0x0a,             // fragment 1 of 2, lifetime
    ];
    assert_eq!(d[..DGRAM_HEADER_LEN], want);
    assert_eq!(
        d.len(),
        DGRAM_OVERHEAD + 10,
        "fragment 1 of 2 holds bytes 10..20"
    );
    let r = DatagramRepr::parse(&Datagram::new_checked(&d[..]).unwrap()).unwrap();
    assert_eq!(
        (r.sender, r.counter, r.index, r.count, r.fragment()),
        (0x0102, 0x1122_3344_5566_7789, 1, 2, 10..20)
    );
    // The nonce domain: byte 3 set, where a frame's nonce (u32 sender) always has zero.
    assert_eq!(nonce(0x0102, 5)[..4], [0x02, 0x01, 0, 0x80]);
    assert_eq!(auth::nonce(0x0102, 5)[3], 0);
}

#[test]
fn reassembles_in_any_order_and_single_fragments_in_place() {
    let mut tx = DatagramSender::new(3, KEY, 100, 200).unwrap();
    let mut r = rx(4096);
    let (msg, mut ds) = datagrams(&mut tx, 1000, Duration::from_millis(10));
    assert_eq!(ds.len(), 1000usize.div_ceil(200 - DGRAM_OVERHEAD));
    ds.reverse();
    let last = ds.pop().unwrap();
    for d in &ds {
        assert_eq!(feed(&mut r, T0, d), Ok(None));
    }
    assert_eq!(r.in_progress(), 1);
    assert_eq!(feed(&mut r, T0, &last), Ok(Some(msg)));
    assert_eq!(r.in_progress(), 0);
    let (small, ds) = datagrams(&mut tx, 5, Duration::ZERO);
    assert_eq!(feed(&mut r, T0, &ds[0]), Ok(Some(small)));
    let (empty, ds) = datagrams(&mut tx, 0, Duration::ZERO);
    assert_eq!(feed(&mut r, T0, &ds[0]), Ok(Some(empty)));
    let s = r.stats();
    let fragments = 1000usize.div_ceil(200 - DGRAM_OVERHEAD) as u64;
    assert_eq!(
        (s.accepted, s.delivered, s.dropped_total()),
        (fragments + 2, 3, 0)
    );
}

#[test]
fn forged_replayed_and_stale_datagrams_are_dropped_and_counted() {
    let mut tx = DatagramSender::new(3, KEY, 1, 100).unwrap();
    let mut r = rx(8192);
    let (_, ds) = datagrams(&mut tx, 5000, Duration::from_secs(1));
    assert!(ds.len() > 5 + 64, "{} datagrams", ds.len());
    // A flipped bit in the payload, the tag, the counter or the lifetime: forged; in the
    // magic: malformed.
    for at in [DGRAM_HEADER_LEN, ds[0].len() - 1, 8, 30] {
        let mut bad = ds[0].clone();
        bad[at] ^= 4;
        assert_eq!(feed(&mut r, T0, &bad), Err(DropReason::Forged), "byte {at}");
    }
    let mut bad = ds[0].clone();
    bad[0] ^= 1;
    assert_eq!(feed(&mut r, T0, &bad), Err(DropReason::Malformed));
    // The wrong key.
    let mut other = DatagramSender::new(3, Key::new([1; 32]), 1, 100).unwrap();
    let (_, od) = datagrams(&mut other, 10, Duration::ZERO);
    assert_eq!(feed(&mut r, T0, &od[0]), Err(DropReason::Forged));
    assert_eq!(r.stats().dropped(DropReason::Forged), 5);
    // Replays: the same datagram twice.
    assert_eq!(feed(&mut r, T0, &ds[0]), Ok(None));
    assert_eq!(feed(&mut r, T0, &ds[0]), Err(DropReason::Replayed));
    // Jump ahead by more than the window: the early counters are now out of window.
    for (i, d) in ds.iter().enumerate().skip(1) {
        if i != 5 {
            assert_eq!(feed(&mut r, T0, d), Ok(None));
        }
    }
    assert!(matches!(
        feed(&mut r, T0, &ds[5]),
        Err(DropReason::OutOfWindow)
    ));
    // Garbage and truncations.
    assert_eq!(feed(&mut r, T0, b"TSDG"), Err(DropReason::Malformed));
    assert_eq!(
        feed(&mut r, T0, &ds[3][..ds[3].len() - 1]),
        Err(DropReason::Malformed)
    );
    let s = r.stats();
    assert_eq!(s.dropped(DropReason::Replayed), 1);
    assert_eq!(s.dropped(DropReason::OutOfWindow), 1);
    assert!(s.dropped(DropReason::Malformed) >= 2);
    assert_eq!(s.delivered, 0, "fragment 5 never arrived");
}

#[test]
fn deadlines_expire_messages_and_drop_their_stragglers() {
    let mut tx = DatagramSender::new(2, KEY, 1, 100).unwrap();
    let mut r = rx(4096);
    let (_, ds) = datagrams(&mut tx, 500, Duration::from_millis(20));
    assert_eq!(feed(&mut r, T0, &ds[0]), Ok(None));
    assert_eq!(r.poll_at(), Some(T0 + Duration::from_millis(20)));
    // At the deadline the fragment still counts; after it, the message is given up.
    assert_eq!(
        feed(&mut r, T0 + Duration::from_millis(20), &ds[1]),
        Ok(None)
    );
    let late = T0 + Duration::from_millis(21);
    assert_eq!(feed(&mut r, late, &ds[2]), Err(DropReason::Late));
    assert_eq!(r.in_progress(), 0);
    assert_eq!(r.poll_at(), None);
    // Stragglers of the expired message never reopen it.
    for d in &ds[3..] {
        assert_eq!(feed(&mut r, late, d), Err(DropReason::Late));
    }
    let s = r.stats();
    assert_eq!((s.expired, s.delivered), (1, 0));
    assert_eq!(s.dropped(DropReason::Late), ds.len() as u64 - 2);
    // The receiver's cap wins over a sender asking for an hour.
    let (_, ds) = datagrams(&mut tx, 500, Duration::from_secs(3600));
    assert_eq!(feed(&mut r, late, &ds[0]), Ok(None));
    assert_eq!(r.poll_at(), Some(late + Duration::from_secs(1)));
    r.expire(late + Duration::from_secs(2));
    assert_eq!(r.stats().expired, 2);
}

#[test]
fn capacity_limits_are_typed_drops() {
    let mut tx = DatagramSender::new(2, KEY, 1, 100).unwrap();
    let mut r: Reassembler<Vec<u8>, 1, 1> =
        Reassembler::new(KEY, Duration::from_secs(1), [vec![0; 300]]);
    let (_, big) = datagrams(&mut tx, 301, Duration::from_secs(1));
    let mut b = big[0].clone();
    assert_eq!(r.receive(T0, &mut b).unwrap_err(), DropReason::Oversized);
    let (_, a) = datagrams(&mut tx, 300, Duration::from_secs(1));
    let (_, c) = datagrams(&mut tx, 200, Duration::from_secs(1));
    let mut b = a[0].clone();
    assert_eq!(r.receive(T0, &mut b), Ok(None));
    let mut b = c[0].clone();
    assert_eq!(r.receive(T0, &mut b).unwrap_err(), DropReason::Full);
    // A second sender does not fit a one-sender table.
    let mut tx2 = DatagramSender::new(5, KEY, 1, 100).unwrap();
    let (_, d) = datagrams(&mut tx2, 10, Duration::ZERO);
    let mut b = d[0].clone();
    assert_eq!(r.receive(T0, &mut b).unwrap_err(), DropReason::Full);
    assert_eq!(r.stats().dropped(DropReason::Full), 2);
    assert_eq!(r.stats().dropped(DropReason::Oversized), 1);
}

#[test]
fn a_new_message_takes_the_slot_of_the_one_that_went_quiet() {
    let mut tx = DatagramSender::new(2, KEY, 1, 100).unwrap();
    let mut r: Reassembler<Vec<u8>, 1, 1> =
        Reassembler::new(KEY, Duration::from_secs(1), [vec![0; 300]]);
    let (_, a) = datagrams(&mut tx, 300, Duration::from_secs(1));
    let (_, c) = datagrams(&mut tx, 200, Duration::from_secs(1));
    let mut b = a[0].clone();
    assert_eq!(r.receive(T0, &mut b), Ok(None));
    // Later, the first message still incomplete: the second one takes its slot.
    let t1 = T0 + Duration::from_millis(10);
    let mut b = c[0].clone();
    assert_eq!(r.receive(t1, &mut b), Ok(None));
    assert_eq!(r.stats().expired, 1);
    assert_eq!(r.stats().dropped(DropReason::Full), 0);
    // The given-up message's fragments are late now; the new one completes.
    let mut b = a[1].clone();
    assert!(r.receive(t1, &mut b).is_err());
    let (last, rest) = c[1..].split_last().unwrap();
    for d in rest {
        let mut b = d.clone();
        assert_eq!(r.receive(t1, &mut b), Ok(None));
    }
    let mut b = last.clone();
    assert!(matches!(r.receive(t1, &mut b), Ok(Some(_))));
}

#[test]
fn a_member_repeating_or_contradicting_a_fragment_is_refused() {
    // Two senders claiming node 2 (one key: membership, not identity) with distinct counters.
    let mut a = DatagramSender::new(2, KEY, 1, 100).unwrap();
    let mut b = DatagramSender::new(2, KEY, 1000, 100).unwrap();
    let mut r = rx(4096);
    let (_, da) = datagrams(&mut a, 300, Duration::from_secs(1));
    let (_, db) = datagrams(&mut b, 300, Duration::from_secs(1));
    let (_, dc) = datagrams(
        &mut DatagramSender::new(2, KEY, 5000, 100).unwrap(),
        250,
        Duration::from_secs(1),
    );
    assert_eq!(feed(&mut r, T0, &da[0]), Ok(None));
    // Same message number 0, same fragment, fresh counter: a repeated fragment.
    assert_eq!(feed(&mut r, T0, &db[0]), Err(DropReason::Replayed));
    // Same message number, another length: inconsistent.
    assert_eq!(feed(&mut r, T0, &dc[1]), Err(DropReason::Malformed));
}

#[test]
fn sender_errors_are_typed() {
    assert_eq!(
        DatagramSender::new(1, KEY, 0, DGRAM_OVERHEAD).unwrap_err(),
        SendError::DatagramTooSmall
    );
    let mut tx = DatagramSender::new(1, KEY, 0, DGRAM_OVERHEAD + 1).unwrap();
    assert_eq!(
        tx.start(0, Duration::ZERO, MAX_FRAGMENTS + 1).unwrap_err(),
        SendError::TooLarge
    );
    let mut out: Outgoing = tx.start(0, Duration::ZERO, MAX_FRAGMENTS).unwrap();
    assert_eq!(out.fragments() as usize, MAX_FRAGMENTS);
    let msg = vec![1u8; MAX_FRAGMENTS];
    let mut small = [0u8; DGRAM_OVERHEAD];
    assert_eq!(
        tx.next_datagram(&mut out, &msg, &mut small),
        Err(SendError::BufferTooSmall)
    );
    assert_eq!(
        tx.next_datagram(&mut out, &msg[1..], &mut small),
        Err(SendError::WrongLength)
    );
    assert_eq!(
        (out.emitted(), tx.next_counter()),
        (0, 0),
        "an error takes nothing"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Any loss, order and duplication: a message comes out whole and exact iff every one of
    /// its fragments arrived (as many slots as messages: one lost stays until its deadline); every datagram is either accepted or dropped with a reason.
    #[test]
    fn loss_reordering_and_duplication(
        lens in proptest::collection::vec(0usize..3000, 1..=4),
        size in (DGRAM_OVERHEAD + 1)..700usize,
        loss in 0.0f64..0.5,
        seed in any::<u64>(),
    ) {
        let mut tx = DatagramSender::new(7, KEY, seed >> 8, size).unwrap();
        let mut r = rx(3000);
        let mut rng = SplitMix64::new(seed);
        let mut wire = Vec::new();
        let mut msgs = Vec::new();
        for &len in &lens {
            let (m, ds) = datagrams(&mut tx, len, Duration::from_secs(1));
            let lost: Vec<bool> = ds.iter().map(|_| rng.bernoulli(loss)).collect();
            msgs.push((m, lost.iter().any(|&l| l)));
            for (d, l) in ds.into_iter().zip(lost) {
                if !l {
                    wire.push(d);
                }
            }
        }
        // Local reordering (each datagram moves less than 16 places; the window is 64
        // counters) and a few duplicates.
        let mut keyed: Vec<(usize, Vec<u8>)> =
            wire.into_iter().enumerate().map(|(i, d)| (i + rng.below(16), d)).collect();
        keyed.sort_by_key(|(k, _)| *k);
        let mut wire: Vec<Vec<u8>> = keyed.into_iter().map(|(_, d)| d).collect();
        let dups = if wire.is_empty() { 0 } else { rng.below(4) };
        for _ in 0..dups {
            let k = rng.below(wire.len());
            let d = wire[k].clone();
            wire.push(d);
        }
        let mut got = Vec::new();
        for d in &wire {
            if let Ok(Some(m)) = feed(&mut r, T0, d) {
                got.push(m);
            }
        }
        let mut want: Vec<Vec<u8>> = msgs.iter().filter(|(_, lost)| !lost).map(|(m, _)| m.clone()).collect();
        want.sort();
        got.sort();
        prop_assert_eq!(got, want);
        let s = r.stats();
        prop_assert_eq!(s.accepted + s.dropped_total(), wire.len() as u64);
        // A duplicate is a replay, or out of window once 64 newer counters came.
        prop_assert_eq!(
            s.dropped(DropReason::Replayed) + s.dropped(DropReason::OutOfWindow),
            dups as u64
        );
    }

    /// Arbitrary bytes, and real datagrams with arbitrary corruption: never a panic, never a
    /// delivery of altered bytes.
    #[test]
    fn arbitrary_bytes_are_dropped(
        junk in proptest::collection::vec(any::<u8>(), 0..200),
        flips in proptest::collection::vec((any::<usize>(), 1u8..=255), 1..4),
    ) {
        let mut r = rx(1000);
        let _ = feed(&mut r, T0, &junk);
        let mut tx = DatagramSender::new(1, KEY, 9, 120).unwrap();
        let (_, ds) = datagrams(&mut tx, 50, Duration::ZERO);
        let mut bad = ds[0].clone();
        for (at, x) in flips {
            let n = bad.len();
            bad[at % n] ^= x;
        }
        // Flips at one place may cancel out.
        prop_assume!(bad != ds[0]);
        prop_assert!(feed(&mut r, T0, &bad).is_err());
        prop_assert_eq!(r.stats().delivered, 0);
    }
}
