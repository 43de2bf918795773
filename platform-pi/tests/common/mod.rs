//! What the tests running `tessera` processes share: processes whose output lines are collected,
//! and cluster files for YOLOv2 at 160×160 (generated weights) in a scratch directory.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tessera_backends::builtin::DEFAULT_CFG;
use tessera_backends::cluster_file::{parse_key, written, ClusterFile, FileNode, FileTimeouts};
use tessera_core::wire::Policy;
use tessera_testkit::free_port;

/// The `tessera` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_tessera");
/// Runs `tessera args` to completion: whether it succeeded, and its stdout then stderr.
pub fn run_tessera(args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN).args(args).output().expect("run tessera");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// Longest wait for one expected event (a loaded CI machine is slow, not broken).
pub const WAIT: Duration = Duration::from_secs(120);

/// A process, killed by PID on drop; its output lines collected by threads as they come.
pub struct Proc {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
}

impl Proc {
    /// Starts `program args` with `env` added to the environment; stdout and stderr collected.
    pub fn spawn(program: &Path, args: &[String], env: &[(&str, &str)]) -> Proc {
        Proc::start(program, args, env, true)
    }

    /// `tessera args`, stdout and stderr collected.
    pub fn tessera(args: &[&str]) -> Proc {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        Proc::spawn(Path::new(BIN), &args, &[])
    }

    /// `tessera args`, stdout only (stderr discarded): for tests that parse the command's
    /// report lines (frames, counters) and read its last line.
    pub fn tessera_stdout(args: &[&str]) -> Proc {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        Proc::start(Path::new(BIN), &args, &[], false)
    }

    fn start(program: &Path, args: &[String], env: &[(&str, &str)], stderr: bool) -> Proc {
        let mut child = Command::new(program)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(if stderr {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let mut streams: Vec<Box<dyn Read + Send>> = vec![Box::new(child.stdout.take().unwrap())];
        if let Some(err) = child.stderr.take() {
            streams.push(Box::new(err));
        }
        let readers = streams
            .into_iter()
            .map(|stream| {
                let sink = lines.clone();
                std::thread::spawn(move || {
                    for l in BufReader::new(stream).lines().map_while(Result::ok) {
                        sink.lock().unwrap().push(l);
                    }
                })
            })
            .collect();
        Proc {
            child,
            lines,
            readers,
        }
    }

    /// The output lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits (up to [`WAIT`]) for an output line containing `needle`.
    pub fn wait_line(&mut self, needle: &str) -> String {
        self.wait_for(needle, |l| l.contains(needle))
    }

    /// Waits (up to [`WAIT`]) for an output line `matches` accepts.
    pub fn wait_for(&mut self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + WAIT;
        while Instant::now() < end {
            if let Some(l) = self.lines().into_iter().find(|l| matches(l)) {
                return l;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no {what:?} in the output; saw {:?}", self.lines());
    }

    /// Waits (up to [`WAIT`]) for a line containing `needle` at index `from` or later;
    /// returns its index.
    pub fn wait_line_after(&self, from: usize, needle: &str) -> usize {
        let end = Instant::now() + WAIT;
        while Instant::now() < end {
            let lines = self.lines();
            if let Some(i) = lines.iter().skip(from).position(|l| l.contains(needle)) {
                return from + i;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no line with {needle:?}: {:?}", self.lines());
    }

    /// Output lines containing `needle` so far (waits briefly for lines in transit).
    pub fn matching(&mut self, needle: &str) -> Vec<String> {
        std::thread::sleep(Duration::from_millis(50));
        self.lines()
            .into_iter()
            .filter(|l| l.contains(needle))
            .collect()
    }

    /// Waits (up to [`WAIT`]) until `n` output lines contain `needle`; returns them.
    pub fn wait_count(&mut self, needle: &str, n: usize) -> Vec<String> {
        let end = Instant::now() + WAIT;
        while Instant::now() < end {
            let found = self.matching(needle);
            if found.len() >= n {
                return found;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "fewer than {n} lines with {needle:?}; saw {:?}",
            self.lines()
        );
    }

    /// Waits (up to [`WAIT`]) for the process to exit, then for its last output lines; its
    /// status code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let end = Instant::now() + WAIT;
        while Instant::now() < end {
            if let Some(s) = self.child.try_wait().unwrap() {
                self.join_readers();
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("still running after {WAIT:?}; saw {:?}", self.lines());
    }

    /// Everything it printed (all of it once it has exited; else waits briefly for the last
    /// lines).
    pub fn output(&mut self) -> String {
        if self.running() {
            std::thread::sleep(Duration::from_millis(500));
        } else {
            self.join_readers();
        }
        self.lines().join("\n")
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// True while it has not exited.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Sends `sig` (`-TERM`: what systemd's stop does, `-USR1`...) to this process by its PID.
    pub fn signal(&self, sig: &str) {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill").args([sig, &pid]).status();
        assert!(ok.is_ok_and(|s| s.success()), "kill {sig} {pid}");
    }

    /// Sends SIGTERM to this process by its PID.
    pub fn terminate(&self) {
        self.signal("-TERM");
    }

    /// SIGKILL (no chance to say goodbye), then reaps it and reads its last lines.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.join_readers();
    }

    /// Waits for the reader threads, which end when the process's pipes close (at most a few
    /// seconds: a child it started may still hold them).
    fn join_readers(&mut self) {
        let end = Instant::now() + Duration::from_secs(5);
        while self.readers.iter().any(|r| !r.is_finished()) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.readers.retain(|r| !r.is_finished());
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A scratch directory, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// `$TMPDIR/tessera-NAME-PID`, empty.
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("tessera-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// A path inside.
    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes YOLOv2 at 160×160 (fast enough for a loaded test machine) to `path`.
pub fn write_small_cfg(path: &Path) {
    let text = DEFAULT_CFG
        .replace("width=608", "width=160")
        .replace("height=608", "height=160");
    std::fs::write(path, text).unwrap();
}

/// Short timeouts: failures and restarts show within seconds.
pub fn short_timeouts() -> FileTimeouts {
    FileTimeouts {
        tile_ms: written(2000),
        frame_ms: written(30_000),
        steal_backoff_ms: written(20),
        peer_dead_ms: written(1000),
        connect_ms: written(500),
    }
}

/// A cluster file: WST-S on a 3x3 grid, portable kernels, the model of `cfg` with weights
/// from `seed`; gateway 0 and edges 1..=edges on `subnet`.(id+1), each on a port the OS found
/// free; edge 1 is a data source; [`short_timeouts`].
pub fn cluster_file(subnet: [u8; 3], edges: u16, key: &str, seed: u64, cfg: &Path) -> ClusterFile {
    let nodes = (0..=edges)
        .map(|id| {
            let ip = Ipv4Addr::new(subnet[0], subnet[1], subnet[2], id as u8 + 1);
            FileNode::new(id, format!("{ip}:{}", free_port(ip)), id == 1)
        })
        .collect();
    let mut f = ClusterFile::new(Policy::WstS, (3, 3), &parse_key(key).unwrap(), nodes);
    f.kernel = Some(written("portable".into()));
    f.cfg = Some(cfg.to_path_buf());
    f.seed = seed;
    f.timeouts = Some(short_timeouts());
    f
}

/// [`cluster_file`]'s text.
pub fn cluster_text(subnet: [u8; 3], edges: u16, key: &str, seed: u64, cfg: &Path) -> String {
    cluster_file(subnet, edges, key, seed, cfg)
        .to_toml()
        .unwrap()
}

/// A fresh key from `tessera keygen`.
pub fn keygen() -> String {
    let out = Command::new(BIN).arg("keygen").output().unwrap();
    assert!(out.status.success(), "tessera keygen failed");
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(key.len(), 64, "{key}");
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()), "{key}");
    key
}

/// The sample frame.
pub fn sample_image() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../data/images/1.jpg")
}
