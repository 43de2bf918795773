//! Wire authentication: RFC 8439 conformance, forged/replayed/wrong-key frames rejected and
//! counted, insecure mode only when configured.

use chacha20poly1305::{AeadInOut, ChaCha20Poly1305, KeyInit};
use tessera_core::wire::{
    self, auth::nonce, open, seal, AuthStats, FrameKey, HeaderRepr, Key, Kind, Limits, Message,
    ReplayWindow, Sealer, Tensor, WireError, HEADER_LEN, TAG_LEN,
};
use tessera_core::{Region, Span};

const KEY: Key = Key::new([0x11; 32]);

fn header(sender: u16, seq: u64, len: u32) -> [u8; HEADER_LEN] {
    HeaderRepr {
        kind: Kind::Result,
        authenticated: true,
        sender,
        frame: FrameKey::new(1, 2),
        task: 3,
        seq,
        payload_len: len,
    }
    .to_bytes()
}

#[test]
fn seal_matches_rfc8439_reference_and_opens() {
    let aead = ChaCha20Poly1305::new(&(*KEY.as_bytes()).into());
    for len in [0usize, 1, 15, 16, 17, 63, 64, 65, 1000] {
        let plain: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        let h = header(5, 1 << 40 | len as u64, len as u32);
        let mut ours = plain.clone();
        let tag = seal(&KEY, &h, &mut ours);
        let mut theirs = plain.clone();
        let n = nonce(5, 1 << 40 | len as u64);
        let ref_tag = aead
            .encrypt_inout_detached(&n.into(), &h, theirs.as_mut_slice().into())
            .unwrap();
        assert_eq!(ours, theirs, "ciphertext, len {len}");
        assert_eq!(&tag[..], &ref_tag[..], "tag, len {len}");
        // Incremental sealing in odd chunks gives the same.
        let mut inc = plain.clone();
        let mut s = Sealer::new(&KEY, &h);
        for c in inc.chunks_mut(13) {
            s.seal_chunk(c);
        }
        assert_eq!(s.sealed_len(), len as u64);
        assert_eq!(s.finish(), tag);
        assert_eq!(inc, ours);
        open(&KEY, &h, &mut ours, &tag).unwrap();
        assert_eq!(ours, plain);
    }
}

#[test]
fn tampering_and_wrong_key_are_forged() {
    let plain = [9u8; 40];
    let h = header(2, 7, 40);
    let mut ct = plain;
    let tag = seal(&KEY, &h, &mut ct);
    // Flip one bit of tag, header, payload in turn.
    for i in 0..TAG_LEN {
        let mut t = tag;
        t[i] ^= 1;
        let mut c = ct;
        assert_eq!(open(&KEY, &h, &mut c, &t), Err(WireError::Forged));
        assert_eq!(c, ct, "payload untouched on failure");
    }
    for i in 0..HEADER_LEN {
        let mut hh = h;
        hh[i] ^= 0x80;
        let mut c = ct;
        assert_eq!(open(&KEY, &hh, &mut c, &tag), Err(WireError::Forged));
    }
    for i in 0..ct.len() {
        let mut c = ct;
        c[i] ^= 4;
        assert_eq!(open(&KEY, &h, &mut c, &tag), Err(WireError::Forged));
    }
    let mut c = ct;
    assert_eq!(
        open(&Key::new([0x12; 32]), &h, &mut c, &tag),
        Err(WireError::Forged)
    );
}

fn result_frame(seq: u64, key: Option<&Key>, data: &[u8]) -> Vec<u8> {
    let m = Message::Result {
        frame: FrameKey::new(4, 9),
        tile: 2,
        output: Tensor::new(Region::new(Span::new(0, 2), Span::new(0, 2)), 1, data).unwrap(),
    };
    let mut buf = vec![0u8; 256];
    let n = wire::encode(&m, 4, seq, key, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn decode_counts_forged_replayed_and_accepted() {
    let data = [1u8; 16];
    let l = Limits::LARGE;
    let mut w = ReplayWindow::new();
    let mut st = AuthStats::default();
    let f10 = result_frame(10, Some(&KEY), &data);
    assert!(wire::decode(&mut f10.clone(), Some(&KEY), &l, &mut w, &mut st).is_ok());
    // The same frame again: replayed.
    assert_eq!(
        wire::decode(&mut f10.clone(), Some(&KEY), &l, &mut w, &mut st).map(|_| ()),
        Err(WireError::Replayed)
    );
    // Tampered payload byte, header byte (seq bumped to look fresh), tag byte: forged.
    for at in [HEADER_LEN + 3, 21, f10.len() - 1] {
        let mut f = f10.clone();
        f[at] ^= 1;
        assert_eq!(
            wire::decode(&mut f, Some(&KEY), &l, &mut w, &mut st).map(|_| ()),
            Err(WireError::Forged),
            "byte {at}"
        );
    }
    // Wrong key.
    let mut f = result_frame(11, Some(&Key::new([3; 32])), &data);
    assert_eq!(
        wire::decode(&mut f, Some(&KEY), &l, &mut w, &mut st).map(|_| ()),
        Err(WireError::Forged)
    );
    // Clear frame to a secure receiver: rejected, counted as forged.
    let mut f = result_frame(12, None, &data);
    assert_eq!(
        wire::decode(&mut f, Some(&KEY), &l, &mut w, &mut st).map(|_| ()),
        Err(WireError::AuthMode)
    );
    // Sealed frame to an insecure receiver: rejected (it cannot check it).
    let mut f = result_frame(13, Some(&KEY), &data);
    assert_eq!(
        wire::decode(&mut f, None, &l, &mut w, &mut st).map(|_| ()),
        Err(WireError::AuthMode)
    );
    // A fresh one still passes: forged frames did not advance the window.
    let mut f = result_frame(11, Some(&KEY), &data);
    assert!(wire::decode(&mut f, Some(&KEY), &l, &mut w, &mut st).is_ok());
    assert_eq!(
        st,
        AuthStats {
            accepted: 2,
            forged: 5,
            replayed: 1
        }
    );
    // Insecure receivers accept clear frames.
    let mut w2 = ReplayWindow::new();
    let mut f = result_frame(1, None, &data);
    assert!(wire::decode(&mut f, None, &l, &mut w2, &mut st).is_ok());
}

#[test]
fn replay_window_semantics() {
    let mut w = ReplayWindow::new();
    assert_eq!(w.highest(), None);
    w.accept(100).unwrap();
    assert_eq!(w.accept(100), Err(WireError::Replayed));
    w.accept(105).unwrap();
    // Out of order within the window: once.
    w.accept(101).unwrap();
    assert_eq!(w.accept(101), Err(WireError::Replayed));
    assert_eq!(w.check(100), Err(WireError::Replayed));
    w.accept(104).unwrap();
    // Too old.
    w.accept(105 + 64).unwrap();
    assert_eq!(w.accept(105), Err(WireError::Replayed));
    assert_eq!(w.accept(106), Ok(()));
    assert_eq!(w.highest(), Some(169));
    // A jump far ahead clears the window.
    w.accept(u64::MAX).unwrap();
    assert_eq!(w.accept(u64::MAX), Err(WireError::Replayed));
    assert_eq!(w.accept(u64::MAX - 1), Ok(()));
}

#[test]
fn key_from_hex_and_debug_redacted() {
    let k = Key::from_hex(&"0f".repeat(32)).unwrap();
    assert_eq!(k.as_bytes(), &[0x0f; 32]);
    assert_eq!(Key::from_hex("00"), Err(WireError::BadValue));
    assert_eq!(Key::from_hex(&"zz".repeat(32)), Err(WireError::BadValue));
    assert_eq!(format!("{k:?}"), "Key(<redacted>)");
}
