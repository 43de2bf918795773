//! Darknet cfg text from an untrusted file: `model::cfg::parse` must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = core::str::from_utf8(data) {
        let _ = tessera_core::model::cfg::parse(text);
    }
});
