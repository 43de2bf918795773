//! `tessera keygen`, `tessera check` and the model fingerprint against real processes (127.0.98.x,
//! YOLOv2 at 160×160): a gateway whose weights differ (another seed) refuses an edge before the
//! first frame, the edge exits 1 naming the reason and the gateway logs it; `tessera check`
//! shows the different model, a wrong key and unreachable nodes in its table and exits 1; once
//! every node runs the same file it prints `all 3 nodes ok` and exits 0.

mod common;

use common::{cluster_file, keygen, write_small_cfg, Proc, Scratch, BIN};
use tessera_backends::cluster_file::ClusterFile;

/// Runs `tessera check args` to its end: (exit code, output).
fn check(args: &[&str]) -> (Option<i32>, String) {
    let mut all = vec!["check"];
    all.extend(args);
    let mut p = Proc::tessera(&all);
    let code = p.wait_exit();
    (code, p.output())
}

/// The table's line for node `id` (it starts with the id, then the address).
fn row(out: &str, id: u16) -> &str {
    out.lines()
        .find(|l| l.starts_with(&format!("{id} ")) && l.contains("127.0.98."))
        .unwrap_or_else(|| panic!("no row for node {id}:\n{out}"))
}

#[test]
fn check_names_a_different_model_a_wrong_key_and_dead_nodes_then_passes() {
    let dir = Scratch::new("check");
    let cfg = dir.join("yolo160.cfg");
    write_small_cfg(&cfg);
    let key = keygen();
    // --out writes a new file for its owner only, and never over an existing one.
    let out = dir.join("cluster.key");
    let out_s = out.display().to_string();
    let mut p = Proc::tessera(&["keygen", "--out", &out_s]);
    assert_eq!(p.wait_exit(), Some(0), "{}", p.output());
    let printed = p.output();
    assert_eq!(
        std::fs::read_to_string(&out).unwrap().trim(),
        printed.trim()
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(&out.metadata().unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let mut again = Proc::tessera(&["keygen", "--out", &out_s]);
    assert_eq!(again.wait_exit(), Some(1));
    assert!(again.output().contains("exists"));
    assert_eq!(
        std::fs::read_to_string(&out).unwrap().trim(),
        printed.trim()
    );
    let f = cluster_file([127, 0, 98], 2, &key, 3, &cfg);
    let a = f.to_toml().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let file_a = write("a.toml", &a);
    // Same addresses and key, other weights.
    let file_b = write("b.toml", &ClusterFile { seed: 4, ..f }.to_toml().unwrap());
    let file_c = write("c.toml", &a.replace(&key, &keygen()));

    // The gateway runs other weights: edge 1 is refused before any frame and says why. Its
    // link's log lines are on (RUST_LOG): each refusal also names the address and the reason.
    let args = ["gateway", "--cluster", &file_b, "--tail", "none"].map(String::from);
    let log = [("RUST_LOG", "tessera_backends::link=debug")];
    let mut gw = Proc::spawn(std::path::Path::new(BIN), &args, &log);
    let up = gw.wait_line("gateway up");
    let theirs = up.rsplit("model ").next().unwrap().trim().to_string();
    let mut edge = Proc::tessera(&["edge", "--cluster", &file_a, "--id", "1"]);
    assert_eq!(edge.wait_exit(), Some(1), "{}", edge.output());
    let said = edge.output();
    assert!(
        said.contains("node 0 refused our Hello: it runs another model"),
        "{said}"
    );
    gw.wait_line("a different model fingerprint");
    let logged = gw.wait_line("node 0: refused a connection from 127.0.98.2: node 1 runs model");
    assert!(logged.contains("WARN"), "{logged}");

    let (code, out) = check(&["--cluster", &file_a, "--id", "1"]);
    assert_eq!(code, Some(1), "{out}");
    let ours = out
        .lines()
        .find_map(|l| l.strip_prefix("model here: "))
        .unwrap_or_else(|| panic!("{out}"));
    assert_ne!(ours, theirs);
    let gw_row = row(&out, 0);
    assert!(
        gw_row.contains(&theirs)
            && gw_row.contains(&format!(
                "DIFFERENT MODEL: network or weights differ (ours {ours})"
            )),
        "{out}"
    );
    assert!(out.contains("this machine: node 1 at 127.0.98.2:"), "{out}");
    for id in [1, 2] {
        assert!(row(&out, id).contains("connection refused"), "{out}");
    }
    gw.wait_line("answered 1 probe(s)");
    gw.wait_line("node 0: answered a probe from 127.");

    // Another key: the gateway refuses the probe, the table says the key is wrong.
    let (code, out) = check(&["--cluster", &file_c]);
    assert_eq!(code, Some(1), "{out}");
    let gw_row = row(&out, 0);
    assert!(
        gw_row.contains("WRONG") && gw_row.contains("refused"),
        "{out}"
    );

    // A file with errors: every one, with its line, and no probing.
    let bad = write(
        "bad.toml",
        &a.replace("grid = \"3x3\"", "grid = \"9x9\"")
            .replace("policy = \"wst-s\"", "policy = \"fifo\""),
    );
    let (code, out) = check(&["--cluster", &bad]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("bad.toml:1: unknown policy"), "{out}");
    assert!(out.contains("bad.toml:2: grid 9x9"), "{out}");
    assert!(!out.contains("reachable"), "{out}");

    // Everyone on file A: all rows ok.
    gw.terminate();
    assert_eq!(gw.wait_exit(), Some(0), "{}", gw.output());
    let mut gw = Proc::tessera(&["gateway", "--cluster", &file_a, "--tail", "none"]);
    gw.wait_line("gateway up");
    let mut edges: Vec<Proc> = ["1", "2"]
        .iter()
        .map(|id| Proc::tessera(&["edge", "--cluster", &file_a, "--id", id]))
        .collect();
    for (e, id) in edges.iter_mut().zip(["1", "2"]) {
        e.wait_line(&format!("edge {id} up"));
    }
    let (code, out) = check(&["--cluster", &file_a, "--id", "2"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("all 3 nodes ok"), "{out}");
    assert!(out.contains("node 2 at 127.0.98.3:"), "{out}");
    assert!(out.contains("in use (the node is running?)"), "{out}");
    for id in 0..=2 {
        assert!(row(&out, id).ends_with(" ok"), "{out}");
    }
}
