//! One node's process (`tessera gateway` or `tessera edge` in the node's namespace): started
//! and restarted, frozen and thawed, killed, and sampled from `/proc` while it runs (peak
//! resident memory, CPU time of the process and of its compute thread). Its output goes to
//! `node-ID.out` / `node-ID.err` in the run's directory, appended across restarts.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use tessera_core::wire::NodeId;

use crate::cmd::{run, CmdError};

/// The name the node gives its compute thread (`backends::driver::thread`).
pub const COMPUTE_THREAD: &str = "tessera-compute";

/// Starting a node failed.
#[derive(Debug, thiserror::Error)]
#[error("starting node {id} ({what}): {source}")]
pub struct SpawnError {
    /// Node.
    pub id: NodeId,
    /// What was being done.
    pub what: String,
    /// Why.
    pub source: std::io::Error,
}

/// What `/proc` said about a process, summed over its lives.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    /// Largest peak resident set (VmHWM) of any life, KiB.
    pub peak_rss_kib: u64,
    /// User + system time, clock ticks.
    pub cpu_ticks: u64,
    /// User + system time of the compute thread, clock ticks.
    pub compute_ticks: u64,
}

/// A node's process and what is known of it.
pub struct NodeProc {
    /// Node id.
    pub id: NodeId,
    ns: String,
    program: PathBuf,
    args: Vec<String>,
    out: PathBuf,
    child: Option<Child>,
    /// The compute thread of the current life, once found.
    pub compute_tid: Option<u32>,
    /// Lives started.
    pub starts: u32,
    /// Usage of lives that ended.
    done: Usage,
    /// Usage of the current life (last sample).
    live: Usage,
    /// How the last life ended (`exit 0`, `killed`...).
    pub exit: Option<String>,
    /// Whether the process is stopped (SIGSTOP).
    pub frozen: bool,
}

fn append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// `kill -SIG pid`.
fn signal(sig: &str, pid: u32) -> Result<(), CmdError> {
    run("kill", &[sig, &pid.to_string()]).map(drop)
}

/// User + system ticks from a `/proc/.../stat` line (fields 14 and 15, counted after the
/// command name's closing parenthesis, which may itself hold spaces).
pub fn stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, stime 15.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// VmHWM (KiB) from `/proc/PID/status`.
pub fn status_hwm_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

impl NodeProc {
    /// A node that will run `program args` in namespace `ns`, its output under `dir`.
    pub fn new(id: NodeId, ns: String, program: &Path, args: Vec<String>, dir: &Path) -> Self {
        NodeProc {
            id,
            ns,
            program: program.to_path_buf(),
            args,
            out: dir.join(format!("node-{id}")),
            child: None,
            compute_tid: None,
            starts: 0,
            done: Usage::default(),
            live: Usage::default(),
            exit: None,
            frozen: false,
        }
    }

    /// Where its standard output goes.
    pub fn stdout_path(&self) -> PathBuf {
        self.out.with_extension("out")
    }

    /// Starts a life (`ip netns exec` replaces itself with the node: the PID is the node's).
    pub fn start(&mut self) -> Result<(), SpawnError> {
        let err = |what: &str, source| SpawnError {
            id: self.id,
            what: what.to_string(),
            source,
        };
        let stdout = append(&self.stdout_path()).map_err(|e| err("log", e))?;
        let stderr = append(&self.out.with_extension("err")).map_err(|e| err("log", e))?;
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .arg(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|e| err("spawn", e))?;
        self.child = Some(child);
        self.compute_tid = None;
        self.live = Usage::default();
        self.exit = None;
        self.frozen = false;
        self.starts += 1;
        Ok(())
    }

    /// The running life's PID.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// True while a life runs (reaps one that ended).
    pub fn running(&mut self) -> bool {
        let Some(c) = self.child.as_mut() else {
            return false;
        };
        match c.try_wait() {
            Ok(None) => true,
            Ok(Some(status)) => {
                self.end(format!("{status}"));
                false
            }
            Err(e) => {
                self.end(format!("wait failed: {e}"));
                false
            }
        }
    }

    fn end(&mut self, how: String) {
        self.child = None;
        self.exit = Some(how);
        self.done.peak_rss_kib = self.done.peak_rss_kib.max(self.live.peak_rss_kib);
        self.done.cpu_ticks += self.live.cpu_ticks;
        self.done.compute_ticks += self.live.compute_ticks;
        self.live = Usage::default();
        self.frozen = false;
    }

    /// Reads `/proc` for the running life; finds its compute thread (returned the first time
    /// it is seen).
    pub fn sample(&mut self) -> Option<u32> {
        let pid = self.pid()?;
        let proc = PathBuf::from(format!("/proc/{pid}"));
        if let Some(kib) = std::fs::read_to_string(proc.join("status"))
            .ok()
            .as_deref()
            .and_then(status_hwm_kib)
        {
            self.live.peak_rss_kib = self.live.peak_rss_kib.max(kib);
        }
        if let Some(t) = std::fs::read_to_string(proc.join("stat"))
            .ok()
            .as_deref()
            .and_then(stat_ticks)
        {
            self.live.cpu_ticks = self.live.cpu_ticks.max(t);
        }
        let mut found = None;
        if self.compute_tid.is_none() {
            if let Ok(rd) = std::fs::read_dir(proc.join("task")) {
                for e in rd.flatten() {
                    let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
                    if comm.trim() == COMPUTE_THREAD {
                        found = e.file_name().to_str().and_then(|s| s.parse().ok());
                        self.compute_tid = found;
                        break;
                    }
                }
            }
        }
        if let Some(tid) = self.compute_tid {
            let p = proc.join(format!("task/{tid}/stat"));
            if let Some(t) = std::fs::read_to_string(p)
                .ok()
                .as_deref()
                .and_then(stat_ticks)
            {
                self.live.compute_ticks = self.live.compute_ticks.max(t);
            }
        }
        found
    }

    /// Usage over every life so far.
    pub fn usage(&self) -> Usage {
        Usage {
            peak_rss_kib: self.done.peak_rss_kib.max(self.live.peak_rss_kib),
            cpu_ticks: self.done.cpu_ticks + self.live.cpu_ticks,
            compute_ticks: self.done.compute_ticks + self.live.compute_ticks,
        }
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        self.sample();
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
            self.end("killed (SIGKILL)".into());
        }
    }

    /// SIGSTOP (`true`) or SIGCONT.
    pub fn freeze(&mut self, stop: bool) -> Result<(), CmdError> {
        let Some(pid) = self.pid() else { return Ok(()) };
        signal(if stop { "-STOP" } else { "-CONT" }, pid)?;
        self.frozen = stop;
        Ok(())
    }

    /// SIGTERM (thawed first), then waits up to `grace`; SIGKILL after it.
    pub fn stop(&mut self, grace: std::time::Duration) {
        let Some(pid) = self.pid() else { return };
        self.sample();
        if self.frozen {
            let _ = signal("-CONT", pid);
        }
        let _ = signal("-TERM", pid);
        let t0 = std::time::Instant::now();
        while t0.elapsed() < grace {
            if !self.running() {
                return;
            }
            self.sample();
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        self.kill();
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_fields_parse() {
        let stat = "1234 (tessera compute) S 1 2 3 4 5 6 7 8 9 10 250 31 0 0 20 0 3 0";
        assert_eq!(stat_ticks(stat), Some(281));
        assert_eq!(stat_ticks("garbage"), None);
        assert_eq!(
            status_hwm_kib("Name:\ttessera\nVmHWM:\t  51234 kB\nVmRSS:\t 100 kB\n"),
            Some(51234)
        );
    }
}
