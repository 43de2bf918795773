//! What the node commands (`tessera gateway`, `tessera edge`) share: the heap settings,
//! signal handlers and cluster file they start with, and when their counters and refusal
//! lines print.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Error};

use tessera_backends::driver::NodeStats;
use tessera_backends::node::DropLog;

use crate::config::Cluster;
use crate::signals::Signals;

/// When a node command prints its counters line: every `--stats-every` seconds, on SIGUSR1.
struct StatsClock {
    every: Option<Duration>,
    last: Instant,
}

impl StatsClock {
    /// True when a line is due now (SIGUSR1 arrived, or the period passed).
    fn due(&mut self, signals: &Signals) -> bool {
        let asked = signals.take_report();
        let periodic = self.every.is_some_and(|e| self.last.elapsed() >= e);
        if asked || periodic {
            self.last = Instant::now();
        }
        asked || periodic
    }
}

/// A node process's signals and its stdout/stderr lines about the node.
pub(crate) struct NodeLog {
    /// SIGTERM/SIGINT/SIGUSR1.
    pub(crate) signals: Signals,
    stats: StatsClock,
    drops: DropLog,
}

impl NodeLog {
    /// Tunes the heap and installs the signal handlers (call first, before other threads);
    /// counters print every `stats_every` seconds, and on SIGUSR1.
    pub(crate) fn start(stats_every: Option<u64>) -> Result<NodeLog, Error> {
        tessera_backends::driver::heap::tune_heap();
        Ok(NodeLog {
            signals: Signals::install().context("installing signal handlers")?,
            stats: StatsClock {
                every: stats_every.map(Duration::from_secs),
                last: Instant::now(),
            },
            drops: DropLog::default(),
        })
    }

    /// [`NodeLog::start`], then the cluster file at `path` loaded, and the network input's
    /// width and height (frames are letterboxed to it; boxes are relative to it).
    pub(crate) fn start_node(
        path: &Path,
        stats_every: Option<u64>,
    ) -> Result<(NodeLog, Cluster, (usize, usize)), Error> {
        let log = NodeLog::start(stats_every)?;
        let cluster = crate::config::load(path)?;
        let input = cluster.deployment.model.network()?.input();
        Ok((log, cluster, (input.w as usize, input.h as usize)))
    }

    /// One turn of node `who`'s loop: the counters line (`line`) when due, a line per new
    /// refusal reason.
    pub(crate) fn turn(&mut self, who: &str, stats: &NodeStats, line: impl FnOnce() -> String) {
        if self.stats.due(&self.signals) {
            println!("{}", line());
        }
        for line in self.drops.report(who, &stats.link.dropped) {
            eprintln!("{line}");
        }
        if let Some(d) = &stats.datagrams {
            for line in self.drops.report_datagrams(who, d) {
                eprintln!("{line}");
            }
        }
    }
}
