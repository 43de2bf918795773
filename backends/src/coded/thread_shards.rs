//! A shard executor on its own thread ([`ThreadShards`]), with an optional slowdown.

extern crate std;

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use tessera_core::kernel::Kernels;

use super::{CodedModel, ShardDone, ShardExecutor, ShardJob};
use crate::driver::readiness::Wake;

/// Computes shards on a dedicated thread (so the node keeps serving its link while a shard
/// of a large layer computes); an optional slowdown models a straggler (the thread sleeps
/// `(factor − 1) ×` the compute time after each shard). Dropping it (a killed device) drops
/// the queued shards and ends the thread after the shard in progress.
pub struct ThreadShards {
    jobs: Option<Sender<(Arc<CodedModel>, ShardJob)>>,
    done: Receiver<ShardDone>,
    cancel: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ThreadShards {
    /// A compute thread with `kernels`, waking `wake` (the node loop's poll set) after each
    /// shard; refused when the thread cannot be spawned.
    pub fn new<K: Kernels + Send + 'static>(
        kernels: K,
        slowdown: f64,
        wake: Option<Wake>,
    ) -> io::Result<ThreadShards> {
        let (jobs, rx) = mpsc::channel::<(Arc<CodedModel>, ShardJob)>();
        let (tx, done) = mpsc::channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let stop = cancel.clone();
        let thread = std::thread::Builder::new()
            .name("tessera-coded-compute".into())
            .spawn(move || {
                for (model, job) in rx {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let t0 = StdInstant::now();
                    let output = model.compute_shard_with(&kernels, job.work, job.cols, &job.input);
                    if slowdown > 1.0 {
                        let until = t0 + t0.elapsed().mul_f64(slowdown);
                        while StdInstant::now() < until && !stop.load(Ordering::Relaxed) {
                            std::thread::sleep(StdDuration::from_millis(2));
                        }
                    }
                    if tx
                        .send(ShardDone {
                            work: job.work,
                            output,
                        })
                        .is_err()
                    {
                        break;
                    }
                    if let Some(w) = &wake {
                        w.wake();
                    }
                }
            })?;
        Ok(ThreadShards {
            jobs: Some(jobs),
            done,
            cancel,
            thread: Some(thread),
        })
    }
}

impl ShardExecutor for ThreadShards {
    fn start(&mut self, model: &Arc<CodedModel>, job: ShardJob) {
        if let Some(tx) = &self.jobs {
            let _ = tx.send((model.clone(), job));
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
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
