//! The compute thread (std): runs a node's jobs off its network loop, so a victim answers
//! steal requests while it computes, and wakes the loop when a job is done.

extern crate alloc;
extern crate std;

use alloc::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::Instant;

use tessera_core::kernel::Kernels;

use super::compute::{execute_in, Done, Executor, Job, Model, ModelError, Workspace};
use super::readiness::Wake;

/// Runs jobs on a dedicated thread; an optional slowdown models a straggler (each job takes
/// `slowdown` times as long: the thread sleeps `(slowdown − 1) ×` the compute time after it).
pub struct ThreadExecutor {
    jobs: Option<Sender<Job>>,
    done: Receiver<Result<Done, ModelError>>,
    thread: Option<JoinHandle<()>>,
}

impl ThreadExecutor {
    /// A compute thread for `model` with `kernels`; `wake` (if any) is woken after each job.
    pub fn new<K: Kernels + Send + 'static>(
        kernels: K,
        model: Arc<Model>,
        slowdown: f64,
        wake: Option<Wake>,
    ) -> std::io::Result<Self> {
        let (jobs, job_rx) = mpsc::channel::<Job>();
        let (done_tx, done) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("tessera-compute".into())
            .spawn(move || {
                let mut model = model;
                // Sized once for the worst tile, when the first job comes (a gateway may never
                // compute); a model the plan rejects fails each job instead.
                let mut ws: Option<Workspace> = None;
                for job in job_rx {
                    let t0 = Instant::now();
                    // A deferred model's parameters are loaded by the first job.
                    let r = model.loaded().and_then(|m| {
                        model = m;
                        let ws =
                            ws.get_or_insert_with(|| Workspace::new(&model).unwrap_or_default());
                        execute_in(&kernels, &model, job, ws)
                    });
                    if slowdown > 1.0 {
                        std::thread::sleep(t0.elapsed().mul_f64(slowdown - 1.0));
                    }
                    if done_tx.send(r).is_err() {
                        break;
                    }
                    if let Some(w) = &wake {
                        w.wake();
                    }
                }
            })?;
        Ok(ThreadExecutor {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
        })
    }
}

impl Executor for ThreadExecutor {
    fn start(&mut self, job: Job) {
        if let Some(tx) = &self.jobs {
            let _ = tx.send(job);
        }
    }

    fn poll(&mut self) -> Option<Result<Done, ModelError>> {
        self.done.try_recv().ok()
    }
}

impl Drop for ThreadExecutor {
    fn drop(&mut self) {
        // Closing the job channel ends the thread after its current job.
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
