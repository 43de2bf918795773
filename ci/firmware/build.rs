//! Puts memory.x on the linker search path for cortex-m-rt's link.x, and passes the gateway
//! image's settings from the build's environment (each with a default for a local try):
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `TESSERA_GW_KEY` | the cluster key, 64 hex digits (the cluster file's `key`) | a test key |
//! | `TESSERA_GW_FINGERPRINT` | the model fingerprint the edges' `Hello` carries, 16 hex digits (`tessera check` prints it) | 0 |
//! | `TESSERA_GW_PORT` | the port the gateway listens on | 7000 |
//! | `TESSERA_GW_EDGES` | edges, ids 1..=N | 2 |
//! | `TESSERA_GW_GRID` | FTP grid | 3x3 |
//! | `TESSERA_GW_POLICY` | scheduling policy | wst-s |
//! | `TESSERA_GW_FRAMES` | frames to collect before exiting | 1 |
//! | `TESSERA_GW_REUSE` | the cluster file's `reuse`: `local` (WST-S strips stay on the edges) or `gateway` (through this gateway's strip cache) | local |
//! | `TESSERA_GW_TAIL` | `none` (stop at the fused output) or the cluster file's coded `tail` (`cdc:R`, `2mr`, `uncoded`) | none |
//! | `TESSERA_GW_TAIL_DEADLINE_MS` / `_GRACE_MS` | the file's `tail_deadline_ms` / `tail_grace_ms` | 120000 / 250 |
//! | `TESSERA_GW_SEED` | the cluster file's `seed` (the gateway generates the parameters of the tail convolutions it runs itself) | 1 |
use std::{env, fs, path::PathBuf};

const SETTINGS: [(&str, &str); 12] = [
    (
        "TESSERA_GW_KEY",
        "0707070707070707070707070707070707070707070707070707070707070707",
    ),
    ("TESSERA_GW_FINGERPRINT", "0000000000000000"),
    ("TESSERA_GW_PORT", "7000"),
    ("TESSERA_GW_EDGES", "2"),
    ("TESSERA_GW_GRID", "3x3"),
    ("TESSERA_GW_POLICY", "wst-s"),
    ("TESSERA_GW_FRAMES", "1"),
    ("TESSERA_GW_REUSE", "local"),
    ("TESSERA_GW_TAIL", "none"),
    ("TESSERA_GW_TAIL_DEADLINE_MS", "120000"),
    ("TESSERA_GW_TAIL_GRACE_MS", "250"),
    ("TESSERA_GW_SEED", "1"),
];

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    fs::write(out.join("memory.x"), include_bytes!("memory.x")).expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    // defmt's interned strings (both images link the defmt logger of src/defmt_uart.rs).
    println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");
    for (name, default) in SETTINGS {
        println!("cargo:rerun-if-env-changed={name}");
        let value = env::var(name).unwrap_or_else(|_| default.to_string());
        println!("cargo:rustc-env={name}={value}");
    }
    // The cluster's size sizes the gateway's static memory (its sockets), so it is a constant.
    let edges = env::var("TESSERA_GW_EDGES").unwrap_or_else(|_| "2".to_string());
    let edges: usize = match edges.parse() {
        Ok(n) if (1..=16).contains(&n) => n,
        _ => panic!("TESSERA_GW_EDGES = {edges:?}: expected 1..=16 edges"),
    };
    fs::write(
        out.join("limits.rs"),
        format!("/// Edges of the cluster (ids 1..=EDGES), from `TESSERA_GW_EDGES`.\npub const EDGES: usize = {edges};\n"),
    )
    .expect("write limits.rs");
}
