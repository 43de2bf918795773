//! Running the system tools the testbed drives (`ip`, `tc`, `nft`, `ethtool`, `sysctl`,
//! `kill`, `ss`): a command that fails is a typed error naming it and what it printed.

use std::process::{Command, Output, Stdio};

/// A system command failed.
#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    /// The program could not be started (not installed?).
    #[error("running `{cmd}`: {source}")]
    Spawn {
        /// The command line.
        cmd: String,
        /// Why.
        source: std::io::Error,
    },
    /// It ran and exited non-zero.
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        cmd: String,
        /// Exit status.
        status: std::process::ExitStatus,
        /// What it said on stderr (trimmed).
        stderr: String,
    },
}

fn line(program: &str, args: &[&str]) -> String {
    std::iter::once(program)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ")
}

fn output(program: &str, args: &[&str]) -> Result<Output, CmdError> {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| CmdError::Spawn {
            cmd: line(program, args),
            source,
        })
}

/// Runs `program args`; its stdout on success.
pub fn run(program: &str, args: &[&str]) -> Result<String, CmdError> {
    let out = output(program, args)?;
    if !out.status.success() {
        return Err(CmdError::Failed {
            cmd: line(program, args),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `program args` inside network namespace `ns` (`ip netns exec`).
pub fn run_in(ns: &str, program: &str, args: &[&str]) -> Result<String, CmdError> {
    let mut all = vec!["netns", "exec", ns, program];
    all.extend_from_slice(args);
    run("ip", &all)
}

/// Runs a command whose failure only matters as a warning (teardown): says it on stderr.
pub fn best_effort(program: &str, args: &[&str]) {
    if let Err(e) = run(program, args) {
        eprintln!("testbed: cleanup: {e}");
    }
}

/// True when `program` can be started (`program --version` or `-V` exits at all).
pub fn available(program: &str) -> bool {
    Command::new(program)
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}
