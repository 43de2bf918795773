//! Inputs too large or absurd are refused by the `tessera` command with a clear error and exit
//! status 1 — before anything large is allocated, a large file is read, or a socket opens —
//! rather than aborting (status 134) or running misconfigured.

use std::path::PathBuf;
use std::process::{Command, Output};

use tessera_backends::builtin::DEFAULT_CFG;

/// A temporary directory, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let p =
            std::env::temp_dir().join(format!("tessera-refusals-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }

    fn file(&self, name: &str, text: &str) -> String {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tessera(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("runs tessera")
}

/// Runs `args`, expects exit status 1 and every needle on stderr; returns stderr.
fn refused(args: &[&str], needles: &[&str]) -> String {
    let out = tessera(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "tessera {args:?}: {err}");
    for n in needles {
        assert!(err.contains(n), "tessera {args:?}: no {n:?} in {err}");
    }
    err
}

#[test]
fn networks_too_large_for_a_device_are_refused_before_allocating() {
    let dir = Dir::new("size");
    let huge = dir.file(
        "huge.cfg",
        &DEFAULT_CFG
            .replace("width=608", "width=16384")
            .replace("height=608", "height=16384"),
    );
    let limit = "more than the limit of 2048 MiB";
    refused(&["layers", "--cfg", &huge], &["huge.cfg", limit]);
    refused(&["detect", "--cfg", &huge], &["huge.cfg", limit]);
    let wide = dir.file(
        "wide.cfg",
        "[net]\nwidth=32\nheight=32\nchannels=3\n\n\
         [convolutional]\nfilters=65536\nsize=3\nstride=1\npad=1\nactivation=leaky\n\n\
         [convolutional]\nfilters=65536\nsize=3\nstride=1\npad=1\nactivation=leaky\n",
    );
    let out = dir.0.join("wide.weights");
    let out_s = out.display().to_string();
    refused(&["gen-weights", "--cfg", &wide, "--out", &out_s], &[limit]);
    assert!(!out.exists(), "nothing written");
    // The same for a cluster's nodes.
    let cluster = dir.file(
        "cluster.toml",
        &format!(
            "policy = \"wst-s\"\ngrid = \"2x2\"\ninsecure = true\ncfg = \"{huge}\"\n\
             [[nodes]]\nid = 0\naddr = \"127.0.94.1:1\"\n[[nodes]]\nid = 1\naddr = \"127.0.94.2:1\"\n"
        ),
    );
    refused(&["gateway", "--cluster", &cluster], &[limit]);
    refused(&["edge", "--cluster", &cluster, "--id", "1"], &[limit]);
}

#[test]
fn a_weights_file_of_the_wrong_size_is_refused_from_its_metadata() {
    let dir = Dir::new("weights");
    // 3 GB, sparse: reading it would take seconds and gigabytes; its size alone refuses it.
    let path = dir.0.join("big.weights");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(3_000_000_000).unwrap();
    drop(f);
    let w = path.display().to_string();
    let needle = "3000000000 bytes, the network needs";
    refused(&["layers", "--weights", &w], &["big.weights", needle]);
    refused(&["detect", "--weights", &w], &["big.weights", needle]);
    let cluster = dir.file(
        "cluster.toml",
        &format!(
            "policy = \"wst-s\"\ngrid = \"2x2\"\ninsecure = true\nweights = \"{w}\"\n\
             [[nodes]]\nid = 0\naddr = \"127.0.94.1:1\"\n[[nodes]]\nid = 1\naddr = \"127.0.94.2:1\"\n"
        ),
    );
    refused(&["gateway", "--cluster", &cluster], &[needle]);
    refused(&["edge", "--cluster", &cluster, "--id", "1"], &[needle]);
}

#[test]
fn a_misconfigured_cluster_is_refused_with_every_problem_and_its_line() {
    let dir = Dir::new("config");
    let text = "policy = \"wst-s\"\n\
                grid = \"2x2\"\n\
                insecure = true\n\
                [timeouts]\n\
                tile_ms = 0\n\
                frame_ms = 60000\n\
                steal_backoff_ms = 20\n\
                peer_dead_ms = 5000\n\
                connect_ms = 2000\n\
                [[nodes]]\n\
                id = 0\n\
                addr = \"127.0.94.1:0\"\n\
                source = true\n\
                [[nodes]]\n\
                id = 1\n\
                addr = \"127.0.94.2:7700\"\n\
                [[nodes]]\n\
                id = 1\n\
                addr = \"127.0.94.2:7700\"\n";
    let file = dir.file("bad.toml", text);
    let needles = [
        "line 5: timeouts.tile_ms",
        "line 12: address 127.0.94.1:0: port 0",
        "line 13: source = true on the gateway",
        "line 18: node id 1 listed twice",
        "line 19: address 127.0.94.2:7700 listed twice",
    ];
    refused(&["gateway", "--cluster", &file], &needles);
    refused(&["edge", "--cluster", &file, "--id", "1"], &needles);
    // Frames fed at an edge the cluster file does not call a source.
    let good = dir.file(
        "good.toml",
        "policy = \"wst-s\"\ngrid = \"2x2\"\ninsecure = true\n\
         [[nodes]]\nid = 0\naddr = \"127.0.94.1:7700\"\n\
         [[nodes]]\nid = 1\naddr = \"127.0.94.2:7700\"\n",
    );
    refused(
        &["edge", "--cluster", &good, "--id", "1", "--input", &good],
        &[
            "edge 1 is given --input frames but is no source",
            "source = true",
        ],
    );
    // A period of 0 s is no period.
    let out = tessera(&["gateway", "--cluster", &file, "--stats-every", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--stats-every"));
}
