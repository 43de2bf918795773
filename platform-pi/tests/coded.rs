//! `tessera coded`: the coded stage over real loopback TCP or UDP datagrams, from the command
//! line.

mod common;

use common::run_tessera as tessera;

/// Runs 6 frames of an int8 CDC chain (r = 2) with worker 3 absent and worker 6 stalling on
/// `transport`; every frame must be bit-exact. Returns the output.
fn exact_despite_an_absent_and_a_stalling_worker(transport: &str) -> String {
    let (ok, out) = tessera(&[
        "coded",
        "--transport",
        transport,
        "--frames",
        "6",
        "--r",
        "2",
        "--absent",
        "3",
        "--stall",
        "6",
        "--dims",
        "256,256,100",
    ]);
    assert!(ok, "{out}");
    assert!(
        out.contains("6 frames:") && out.contains("6 bit-identical to the centralised run"),
        "{out}"
    );
    assert!(out.contains("0 expired"), "{out}");
    out
}

#[test]
fn int8_cdc_survives_an_absent_and_a_stalling_worker_bit_exactly() {
    exact_despite_an_absent_and_a_stalling_worker("tcp");
}

#[test]
fn on_datagrams_cdc_survives_an_absent_and_a_stalling_worker_bit_exactly() {
    let out = exact_despite_an_absent_and_a_stalling_worker("datagram");
    // Nothing was lost to the network (no --loss): no datagram dropped for any reason.
    assert!(out.contains("gateway datagrams:"), "{out}");
    assert!(out.contains("forged 0, replayed 0"), "{out}");
}

#[test]
fn uncoded_split_loses_rows_of_a_stalled_worker_at_the_deadline() {
    let (ok, out) = tessera(&[
        "coded",
        "--scheme",
        "uncoded",
        "--frames",
        "3",
        "--stall",
        "2",
        "--deadline-ms",
        "300",
        "--dims",
        "128,64,32",
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("(rows lost)"), "{out}");
    assert!(out.contains("expired"), "{out}");
}

#[test]
fn bad_arguments_are_clear_errors() {
    for (args, says) in [
        (&["coded", "--scheme", "raid"][..], "--scheme"),
        (&["coded", "--absent", "12"][..], "not a worker id"),
        (&["coded", "--dims", "64"][..], "--dims"),
        (&["coded", "--dims", "64,x"][..], "--dims"),
        (&["coded", "--r", "8"][..], "--scheme"),
        (&["coded", "--allocator", "greedy"][..], "--allocator"),
        (&["coded", "--loss", "0.1"][..], "--transport datagram"),
        (
            &["coded", "--transport", "datagram", "--loss", "2"][..],
            "--loss",
        ),
        (&["coded", "--transport", "pigeon"][..], "--transport"),
    ] {
        let (ok, out) = tessera(args);
        assert!(!ok, "{args:?} succeeded: {out}");
        assert!(out.contains(says), "{args:?}: {out}");
    }
}
