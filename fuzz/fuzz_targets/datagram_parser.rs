//! Datagrams from an untrusted network: raw bytes straight into a reassembler (the header
//! parser, the length and fragment checks, the tag), and genuine datagrams of several senders
//! delivered in any order, duplicated, corrupted and late (reassembly, replay windows,
//! deadlines, slot exhaustion). Nothing may panic; every datagram is accepted or dropped with a
//! reason; a delivered message is exactly what its sender sent.
//!
//! Input: records `[op, len, bytes × len]`. op % 4: 0 raw datagram; 1 a new message (sender
//! `b[0] % 4`, length `b[1..3]`, lifetime `b[3]` ms) cut into the pool; 2 deliver pool
//! datagram `b[0..2]`, xor byte `b[2]` at `b[3]` when `b[2] != 0`; 3 advance time `b[0]` ms.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_core::time::{Duration, Instant};
use tessera_core::wire::datagram::{DatagramSender, Reassembler};
use tessera_core::wire::Key;

const KEY: Key = Key::new([0x5a; 32]);

fuzz_target!(|data: &[u8]| {
    let mut rx: Reassembler<Vec<u8>, 3, 3> =
        Reassembler::new(KEY, Duration::from_millis(50), core::array::from_fn(|_| vec![0; 4096]));
    let mut senders: Vec<DatagramSender> = (0..4u16)
        .map(|n| {
            // Sender 3 has another key: all its datagrams are forgeries.
            let key = if n == 3 { Key::new([1; 32]) } else { KEY };
            DatagramSender::new(n, key, 1 + u64::from(n) * 1_000_000, 64 + 100 * n as usize).unwrap()
        })
        .collect();
    let mut sent: Vec<(u16, u32, Vec<u8>)> = Vec::new();
    let mut pool: Vec<Vec<u8>> = Vec::new();
    let mut now = Instant::ZERO;
    let mut calls = 0u64;
    let mut rest = data;
    while let [op, len, tail @ ..] = rest {
        let n = (*len as usize).min(tail.len());
        let (b, next) = tail.split_at(n);
        rest = next;
        let byte = |i: usize| b.get(i).copied().unwrap_or(0);
        let check = |d: Option<tessera_core::wire::datagram::Delivered<'_>>,
                     sent: &[(u16, u32, Vec<u8>)]| {
            if let Some(d) = d {
                let orig = sent.iter().find(|(s, m, _)| *s == d.sender && *m == d.message);
                assert_eq!(orig.map(|o| &o.2[..]), Some(d.data), "delivered bytes differ");
            }
        };
        match op % 4 {
            0 => {
                let mut raw = b.to_vec();
                calls += 1;
                let r = rx.receive(now, &mut raw);
                check(r.ok().flatten(), &sent);
            }
            1 => {
                let s = byte(0) as usize % senders.len();
                let mlen = u16::from_le_bytes([byte(1), byte(2)]) as usize % 6000;
                let msg: Vec<u8> = (0..mlen).map(|i| (i as u8) ^ byte(4)).collect();
                let tx = &mut senders[s];
                let Ok(mut out) = tx.start(7, Duration::from_millis(u64::from(byte(3))), mlen) else {
                    continue;
                };
                sent.push((s as u16, out.message(), msg.clone()));
                let mut buf = vec![0u8; tx.max_datagram()];
                while let Ok(Some(k)) = tx.next_datagram(&mut out, &msg, &mut buf) {
                    if pool.len() < 4096 {
                        pool.push(buf[..k].to_vec());
                    }
                }
            }
            2 if !pool.is_empty() => {
                let i = u16::from_le_bytes([byte(0), byte(1)]) as usize % pool.len();
                let mut d = pool[i].clone();
                if byte(2) != 0 {
                    let at = byte(3) as usize % d.len();
                    d[at] ^= byte(2);
                }
                calls += 1;
                let r = rx.receive(now, &mut d);
                check(r.ok().flatten(), &sent);
            }
            3 => now = now + Duration::from_millis(u64::from(byte(0))),
            _ => {}
        }
    }
    let s = rx.stats();
    assert_eq!(s.accepted + s.dropped_total(), calls);
});
