//! `tessera bench transport` from the command line: a table row per transport, size and loss
//! (virtual time, so the figures are the same on any machine), and clear argument errors.

mod common;

use common::run_tessera as tessera;

#[test]
fn prints_a_row_per_transport_size_and_loss() {
    let args = [
        "bench",
        "transport",
        "--sizes",
        "64,2000",
        "--loss",
        "0,0.2",
    ];
    let (ok, out) = tessera(&[&args[..], &["--messages", "20"]].concat());
    assert!(ok, "{out}");
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| l.trim_start().starts_with("tcp") || l.trim_start().starts_with("datagram"))
        .collect();
    assert_eq!(rows.len(), 2 * 2 * 2, "{out}");
    // Without loss both deliver every message in time.
    for r in rows
        .iter()
        .filter(|r| r.split_whitespace().nth(2) == Some("0.00"))
    {
        assert!(r.contains("100.0%    100.0%"), "{r}");
    }
    let (ok, again) = tessera(&[&args[..], &["--messages", "20"]].concat());
    assert!(ok && again == out, "virtual time: the same table twice");
}

#[test]
fn bad_arguments_are_clear_errors() {
    for (args, says) in [
        (&["bench", "transport", "--loss", "1.5"][..], "--loss"),
        (&["bench", "transport", "--messages", "0"][..], "--messages"),
    ] {
        let (ok, out) = tessera(args);
        assert!(!ok, "{args:?} succeeded: {out}");
        assert!(out.contains(says), "{args:?}: {out}");
    }
}
