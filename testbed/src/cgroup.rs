//! A Pi 3's compute rate on this host: each node's compute thread (`tessera-compute`, the
//! only thread that runs kernels) goes into its own cgroup of the v1 `cpu` controller with a
//! CFS quota, the fraction of one host core that computes at the emulated device's rate.
//! Only that thread is limited: the node's network thread keeps answering at host speed, as
//! a Pi's other cores would. The v1 controller takes single threads (`tasks`); where it is
//! not mounted the testbed falls back to the edge's `--slowdown` (see `run`). The groups
//! weigh more than the host's other work (`cpu.shares`), so a loaded host does not hold the
//! emulated devices below their rate.

use std::path::{Path, PathBuf};

use tessera_core::wire::NodeId;

use crate::names::Names;

/// Where the v1 `cpu` controller is mounted on this kind of machine.
pub const CPU_V1: &str = "/sys/fs/cgroup/cpu";
/// The CFS period the quotas are a fraction of, µs.
const PERIOD_US: u64 = 100_000;
/// The kernel's smallest quota, µs.
const MIN_QUOTA_US: u64 = 1_000;
/// CPU weight of the run's base group: 16 times a lone task's (1024), so other work on a
/// loaded host does not hold the compute threads below their quota (the quota still caps
/// them).
const SHARES: u32 = 16_384;

/// A cgroup operation failed.
#[derive(Debug, thiserror::Error)]
#[error("cgroup {path}: {source}")]
pub struct CgroupError {
    /// The file or directory.
    pub path: PathBuf,
    /// Why.
    pub source: std::io::Error,
}

fn io<T>(path: &Path, r: std::io::Result<T>) -> Result<T, CgroupError> {
    r.map_err(|source| CgroupError {
        path: path.to_path_buf(),
        source,
    })
}

/// The period and quota (µs) that give `fraction` of one core.
pub fn period_and_quota(fraction: f64) -> (u64, u64) {
    let f = fraction.clamp(1e-4, 1.0);
    let period = if f * (PERIOD_US as f64) < MIN_QUOTA_US as f64 {
        ((MIN_QUOTA_US as f64 / f).round() as u64).min(1_000_000)
    } else {
        PERIOD_US
    };
    let quota = ((f * period as f64).round() as u64).max(MIN_QUOTA_US);
    (period, quota)
}

/// This run's cgroups (removed when dropped, once their threads are gone).
pub struct CpuGroups {
    base: PathBuf,
}

impl CpuGroups {
    /// True when the v1 `cpu` controller is there to use.
    pub fn available() -> bool {
        Path::new(CPU_V1).join("cpu.cfs_quota_us").exists()
    }

    /// The base cgroup of `names` (what an earlier run left is removed first).
    pub fn create(names: &Names) -> Result<CpuGroups, CgroupError> {
        let base = Path::new(CPU_V1).join(names.cgroup());
        remove(&base);
        io(&base, std::fs::create_dir(&base))?;
        let s = base.join("cpu.shares");
        io(&s, std::fs::write(&s, SHARES.to_string()))?;
        Ok(CpuGroups { base })
    }

    fn dir(&self, id: NodeId) -> PathBuf {
        self.base.join(format!("n{id}"))
    }

    /// Gives node `id`'s group `fraction` of a core (made on first use).
    pub fn limit(&self, id: NodeId, fraction: f64) -> Result<(), CgroupError> {
        let d = self.dir(id);
        if !d.exists() {
            io(&d, std::fs::create_dir(&d))?;
        }
        let (period, quota) = period_and_quota(fraction);
        // Period first: a quota is checked against the period in force.
        let p = d.join("cpu.cfs_period_us");
        io(&p, std::fs::write(&p, period.to_string()))?;
        let q = d.join("cpu.cfs_quota_us");
        io(&q, std::fs::write(&q, quota.to_string()))
    }

    /// Moves thread `tid` into node `id`'s group.
    pub fn add_thread(&self, id: NodeId, tid: u32) -> Result<(), CgroupError> {
        let t = self.dir(id).join("tasks");
        io(&t, std::fs::write(&t, tid.to_string()))
    }
}

/// Removes `base` and its child groups (best effort: a group with live threads stays).
fn remove(base: &Path) {
    if let Ok(rd) = std::fs::read_dir(base) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                let _ = std::fs::remove_dir(e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(base);
}

impl Drop for CpuGroups {
    fn drop(&mut self) {
        remove(&self.base);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_fractions_lengthen_the_period_instead_of_rounding_the_quota() {
        assert_eq!(period_and_quota(0.5), (100_000, 50_000));
        let (p, q) = period_and_quota(0.004);
        assert_eq!(q, 1_000);
        assert_eq!(p, 250_000);
        assert!((q as f64 / p as f64 - 0.004).abs() < 1e-6);
    }
}
