//! Wire frames from an untrusted peer: whole-frame decode (clear and sealed), the stream
//! decoder under arbitrary chunking, and every payload parser. Nothing may panic; whatever
//! parses must re-emit to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_core::wire::{self, AuthStats, FrameDecoder, Key, Kind, Limits, Message, ReplayWindow};

const KEY: Key = Key::new([0x5a; 32]);
const LIMITS: Limits = Limits {
    max_payload: 1 << 16,
    max_channels: 64,
    max_side: 1024,
};

fuzz_target!(|data: &[u8]| {
    let mut stats = AuthStats::default();
    // One frame, insecure receiver (reaches the message parser) and secure receiver.
    for key in [None, Some(&KEY)] {
        let mut buf = data.to_vec();
        let mut window = ReplayWindow::new();
        if let Ok((h, m)) = wire::decode(&mut buf, key, &LIMITS, &mut window, &mut stats) {
            assert_eq!(h.kind, m.kind());
            assert_eq!(h.payload_len as usize, m.buffer_len());
        }
    }
    // A stream of frames through the decoder, chunk size from the first byte.
    let chunk = data.first().map_or(1, |&b| b as usize % 64 + 1);
    let mut dec = FrameDecoder::new(vec![0u8; 4096], LIMITS);
    let mut window = ReplayWindow::new();
    'stream: for piece in data.chunks(chunk) {
        let mut rest = piece;
        while !rest.is_empty() {
            let n = dec.feed(rest);
            rest = &rest[n..];
            loop {
                match dec.next_frame() {
                    Ok(Some(f)) => {
                        let _ = wire::decode(f, None, &LIMITS, &mut window, &mut stats);
                    }
                    Ok(None) => break,
                    Err(_) => break 'stream,
                }
            }
            if n == 0 {
                break 'stream;
            }
        }
    }
    // Payload parsers: first byte is the kind.
    if let Some((&k, payload)) = data.split_first() {
        if let Ok(kind) = Kind::from_u8(k) {
            if let Ok(m) = Message::parse(kind, payload, &LIMITS) {
                let mut out = vec![0u8; m.buffer_len()];
                assert_eq!(m.emit(&mut out), Ok(payload.len()));
                assert_eq!(out, payload);
                if let Message::Strips { strips, .. } = m {
                    assert_eq!(strips.iter().count(), strips.count() as usize);
                }
            }
        }
    }
});
