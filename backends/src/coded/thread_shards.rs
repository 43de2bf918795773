//! A shard executor on a compute thread ([`ThreadShards`]), with an optional slowdown.

extern crate std;

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;

use tessera_core::kernel::Kernels;

use super::{CodedModel, ShardDone, ShardExecutor, ShardJob};
use crate::driver::readiness::Wake;
use crate::driver::thread::{Joiner, Task};

/// Computes shards on a compute thread (so the node keeps serving its link while a shard of a
/// large layer computes): a thread of its own ([`ThreadShards::new`]), or the one that
/// computes the node's fused tiles ([`ThreadExecutor::with_shards`]). An optional slowdown
/// models a straggler (the thread sleeps `(factor − 1) ×` the compute time after each shard).
/// Dropping it (a killed device) drops the queued shards and lets the thread end after the
/// job in progress.
///
/// [`ThreadExecutor::with_shards`]: crate::driver::thread::ThreadExecutor::with_shards
pub struct ThreadShards {
    jobs: Option<Sender<Task>>,
    done: Receiver<ShardDone>,
    cancel: Arc<AtomicBool>,
    /// Declared after `jobs`: the last handle of the thread joins it once its sender is gone.
    _thread: Arc<Joiner>,
}

impl ThreadShards {
    /// A compute thread of its own with `kernels`, waking `wake` (the node loop's poll set)
    /// after each shard; refused when the thread cannot be spawned.
    pub fn new<K: Kernels + Send + 'static>(
        kernels: K,
        slowdown: f64,
        wake: Option<Wake>,
    ) -> io::Result<ThreadShards> {
        crate::driver::thread::spawn_shards(kernels, slowdown, wake)
    }

    /// The shard side of a compute thread: jobs go to `jobs`, results come from `done`;
    /// `cancel` makes the thread skip queued shards.
    pub(crate) fn on_thread(
        jobs: Sender<Task>,
        done: Receiver<ShardDone>,
        cancel: Arc<AtomicBool>,
        thread: Arc<Joiner>,
    ) -> ThreadShards {
        ThreadShards {
            jobs: Some(jobs),
            done,
            cancel,
            _thread: thread,
        }
    }
}

impl ShardExecutor for ThreadShards {
    fn start(&mut self, model: &Arc<CodedModel>, job: ShardJob) {
        if let Some(tx) = &self.jobs {
            let _ = tx.send(Task::Shard(model.clone(), job));
        }
    }

    fn poll(&mut self) -> Option<ShardDone> {
        self.done.try_recv().ok()
    }
}

impl Drop for ThreadShards {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
        self.jobs.take();
    }
}
