//! An idle cluster costs (almost) no CPU: real `tessera gateway` and `tessera edge`
//! processes from one cluster file on 127.0.0.x, no frames; each process's CPU time
//! (utime + stime from `/proc/PID/stat`) over 10 s must stay under 1 % of a core. The node
//! loop sleeps until `poll_at`, socket readiness or a wake; the 300 µs polling loop it
//! replaced used about 5 % per process here.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use tessera_testkit::free_port;

use tessera_pi::files::DEFAULT_CFG;

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("tessera-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `tessera` process, killed (by its PID) and reaped on drop.
struct Proc {
    child: Child,
    name: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Starts `tessera ARGS`; `up` receives the name once it printed its "up" line.
    fn start(name: &str, args: &[&str], up: &mpsc::Sender<String>) -> Proc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("runs tessera");
        let out = child.stdout.take().unwrap();
        let (tx, n) = (up.clone(), name.to_string());
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if line.contains(" up") {
                    let _ = tx.send(n.clone());
                }
            }
        });
        Proc {
            child,
            name: name.to_string(),
        }
    }

    /// CPU time used so far, in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        // Fields after the command name (which may hold spaces): state is field 3, utime 14,
        // stime 15.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split(' ').collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    }
}

fn clock_ticks_per_second() -> u64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// A cluster file for nodes at 127.0.0.`hosts[i]` (node 1 the source) running a 160 × 160
/// YOLOv2 in `dir`; returns its path.
fn cluster_file(dir: &TempDir, hosts: &[u8]) -> String {
    let cfg = dir.0.join("yolo160.cfg");
    std::fs::write(
        &cfg,
        DEFAULT_CFG
            .replace("width=608", "width=160")
            .replace("height=608", "height=160"),
    )
    .unwrap();
    let addrs: Vec<SocketAddr> = hosts
        .iter()
        .map(|&x| {
            let ip = IpAddr::from([127, 0, 0, x]);
            SocketAddr::new(ip, free_port(ip))
        })
        .collect();
    // Timeouts as in cluster.example.toml but `steal_backoff_ms`: an idle thief asks the
    // gateway for work every `steal_backoff` (a runtime policy, not the loop), which at 20 ms
    // is ~50 request/reply pairs a second per edge and alone costs 0.5-0.8 % of a core here;
    // at 200 ms the test measures the loop with margin under a loaded CI.
    let mut text = format!(
        "policy = \"wst-s\"\ngrid = \"3x3\"\nlayers = 16\nkernel = \"auto\"\n\
         key = \"{}\"\ncfg = \"{}\"\nseed = 1\n\n[timeouts]\ntile_ms = 10000\n\
         frame_ms = 60000\nsteal_backoff_ms = 200\npeer_dead_ms = 5000\nconnect_ms = 2000\n",
        "5a".repeat(32),
        cfg.display()
    );
    for (id, a) in addrs.iter().enumerate() {
        text += &format!(
            "\n[[nodes]]\nid = {id}\naddr = \"{a}\"\nsource = {}\n",
            id == 1
        );
    }
    let file = dir.0.join("cluster.toml");
    std::fs::write(&file, text).unwrap();
    file.to_string_lossy().into_owned()
}

/// Waits for every process's up line, lets start-up settle, then asserts each uses under 1 %
/// of a core over 10 s and is still running.
fn assert_idle(procs: &mut [Proc], up: &mpsc::Receiver<String>) {
    for _ in 0..procs.len() {
        up.recv_timeout(Duration::from_secs(120))
            .expect("every node prints its up line");
    }
    // Start-up (weights, first connections, a source's first frames) is over; what follows is
    // the idle cost.
    std::thread::sleep(Duration::from_secs(2));
    let before: Vec<u64> = procs.iter().map(Proc::cpu_ticks).collect();
    std::thread::sleep(Duration::from_secs(10));
    let after: Vec<u64> = procs.iter().map(Proc::cpu_ticks).collect();
    let hz = clock_ticks_per_second();
    let mut report = Vec::new();
    for ((p, b), a) in procs.iter().zip(&before).zip(&after) {
        // Percent of one core over the 10 s window.
        let pct = (a - b) as f64 / hz as f64 / 10.0 * 100.0;
        report.push(format!(
            "{}: {pct:.2} % ({} ticks at {hz} Hz)",
            p.name,
            a - b
        ));
    }
    eprintln!("idle CPU over 10 s: {}", report.join(", "));
    for ((p, b), a) in procs.iter().zip(&before).zip(&after) {
        // Under 1 % of a core: fewer than hz / 10 ticks in 10 s.
        assert!((a - b) * 10 < hz, "{}: {report:?}", p.name);
    }
    // Every node is still running (an exited process would use no CPU at all).
    for p in procs {
        assert!(p.child.try_wait().unwrap().is_none(), "{} exited", p.name);
    }
}

#[test]
fn an_idle_gateway_and_idle_edges_use_under_one_percent_of_a_core() {
    let dir = TempDir::new("idle-cpu");
    let file = cluster_file(&dir, &[41, 42, 43]);
    let (tx, up) = mpsc::channel();
    let mut procs = [
        Proc::start("gateway", &["gateway", "--cluster", &file], &tx),
        Proc::start(
            "source edge 1",
            &["edge", "--cluster", &file, "--id", "1"],
            &tx,
        ),
        Proc::start("edge 2", &["edge", "--cluster", &file, "--id", "2"], &tx),
    ];
    assert_idle(&mut procs, &up);
}

/// A source with frames to feed and an edge whose gateway is not (yet) there wait for it
/// without spinning: re-dials back off, the source holds its bounded queue.
#[test]
fn a_source_and_an_edge_without_their_gateway_use_under_one_percent_of_a_core() {
    let dir = TempDir::new("idle-cpu-no-gateway");
    let file = cluster_file(&dir, &[44, 45, 46]);
    let jpg = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/images/0.jpg");
    let (tx, up) = mpsc::channel();
    let mut procs = [
        Proc::start(
            "source edge 1",
            &[
                "edge",
                "--cluster",
                &file,
                "--id",
                "1",
                "--input",
                jpg,
                "--repeat",
                "20",
            ],
            &tx,
        ),
        Proc::start("edge 2", &["edge", "--cluster", &file, "--id", "2"], &tx),
    ];
    assert_idle(&mut procs, &up);
}
