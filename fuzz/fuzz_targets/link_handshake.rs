//! The first bytes of a connection, from an untrusted peer, through a real `Link` (accepting
//! or dialling) over an in-memory stack: nothing may panic, nothing beyond one `Hello` may be
//! buffered before the peer authenticates, and a connection that does not authenticate is
//! closed by the handshake deadline and counted once (checked by `replay_first_bytes`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_backends::link::replay::replay_first_bytes;

fuzz_target!(|data: &[u8]| {
    let _ = replay_first_bytes(data);
});
