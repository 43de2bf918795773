//! A node on its own threads (std): the network loop that polls a [`Node`] until stopped,
//! sleeping between polls until the node's `poll_at`, a socket's readiness, or a wake (a
//! finished job, a submitted frame, a stop), so an idle node costs no CPU.
//!
//! Frames enter through a bounded queue ([`FRAME_QUEUE`]): [`NodeThread::submit`] blocks
//! while it is full (back-pressure on the camera or decoder feeding it), and
//! [`NodeThread::try_submit`] hands the frame back instead.

extern crate alloc;
extern crate std;

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration as StdDuration;

use tessera_core::wire::{FrameKey, NodeId};

use super::readiness::{Readiness, Wake};
use super::{Clock, Executor, Finished, Node, NodeStats, SourceFrame};
use crate::coded::CodedFinished;
use crate::nal_std::StdStack;

/// Frames a source queues ahead of its node, beyond the runtime's own frames in flight
/// (`MAX_FRAMES_PER_SOURCE`) and the one frame the loop holds while the node refuses it.
pub const FRAME_QUEUE: usize = 2;

/// Why a frame was not queued.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// [`FRAME_QUEUE`] frames are waiting already (only from [`NodeThread::try_submit`]);
    /// the frame is handed back.
    #[error("frame queue full ({} frames waiting)", FRAME_QUEUE)]
    Full(SourceFrame),
    /// The node has stopped.
    #[error("the node has stopped")]
    Stopped,
}

/// A node running on its own thread (plus its executor's): stopping or dropping it joins the
/// thread and closes every socket.
pub struct NodeThread {
    id: NodeId,
    stop: Arc<AtomicBool>,
    wake: Wake,
    frames: SyncSender<SourceFrame>,
    finished: Receiver<Finished>,
    tails: Receiver<CodedFinished>,
    done: mpsc::Sender<(FrameKey, bool)>,
    stats: Arc<Mutex<NodeStats>>,
    thread: Option<JoinHandle<NodeStats>>,
}

impl NodeThread {
    /// Runs `node` on a new thread named `name`. `ready` must be the poll set `node`'s stack
    /// registers its sockets with (see [`Readiness::stack`]), and its executor should wake it
    /// when a job is done (see [`Readiness::waker`]).
    pub fn spawn<X, C>(
        node: Node<StdStack, X>,
        ready: Readiness,
        clock: C,
        name: String,
    ) -> io::Result<NodeThread>
    where
        X: Executor + Send + 'static,
        C: Clock + Send + 'static,
    {
        let id = node.id();
        let wake = ready.waker();
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Mutex::new(NodeStats::default()));
        let (frames, frame_rx) = mpsc::sync_channel::<SourceFrame>(FRAME_QUEUE);
        let (fin_tx, finished) = mpsc::channel();
        let (tail_tx, tails) = mpsc::channel();
        let (done, done_rx) = mpsc::channel();
        let (flag, shared) = (stop.clone(), stats.clone());
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            let mut l = Loop {
                node,
                ready,
                clock,
                frames: frame_rx,
                finished: fin_tx,
                tails: tail_tx,
                done: done_rx,
                stats: shared,
            };
            l.run(&flag)
        })?;
        Ok(NodeThread {
            id,
            stop,
            wake,
            frames,
            finished,
            tails,
            done,
            stats,
            thread: Some(thread),
        })
    }

    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Queues a frame (CHW network input) at this node, a data source. Back-pressure: blocks
    /// while [`FRAME_QUEUE`] frames are waiting.
    pub fn submit(&self, image: impl Into<SourceFrame>) -> Result<(), SubmitError> {
        self.frames
            .send(image.into())
            .map_err(|_| SubmitError::Stopped)?;
        self.wake.wake();
        Ok(())
    }

    /// Queues a frame without waiting: [`SubmitError::Full`] hands it back when the queue is
    /// full.
    pub fn try_submit(&self, image: impl Into<SourceFrame>) -> Result<(), SubmitError> {
        self.frames.try_send(image.into()).map_err(|e| match e {
            TrySendError::Full(img) => SubmitError::Full(img),
            TrySendError::Disconnected(_) => SubmitError::Stopped,
        })?;
        self.wake.wake();
        Ok(())
    }

    /// A finished frame, waiting at most `timeout`.
    pub fn next_finished(&self, timeout: StdDuration) -> Option<Finished> {
        self.finished.recv_timeout(timeout).ok()
    }

    /// Finished frames available now.
    pub fn try_finished(&self) -> Vec<Finished> {
        self.finished.try_iter().collect()
    }

    /// Frames that left the node's coded stage (a gateway with a coded part, see
    /// [`Node::attach_coded`]) available now.
    pub fn try_tails(&self) -> Vec<CodedFinished> {
        self.tails.try_iter().collect()
    }

    /// Gateway with `Config::confirm_done`: `frame`'s final result is made (`complete`) or
    /// given up (see [`Node::frame_done`]); handed to the node thread.
    pub fn frame_done(&self, frame: FrameKey, complete: bool) {
        if self.done.send((frame, complete)).is_ok() {
            self.wake.wake();
        }
    }

    /// The node's counters as of its last poll.
    pub fn stats(&self) -> NodeStats {
        self.stats.lock().map(|s| *s).unwrap_or_default()
    }

    /// Stops the node, joins its threads and closes its sockets; returns its counters.
    pub fn stop(mut self) -> NodeStats {
        self.halt().unwrap_or_default()
    }

    fn halt(&mut self) -> Option<NodeStats> {
        self.stop.store(true, Ordering::Relaxed);
        self.wake.wake();
        self.thread.take().and_then(|t| t.join().ok())
    }
}

impl Drop for NodeThread {
    fn drop(&mut self) {
        self.halt();
    }
}

/// What the node thread owns.
struct Loop<X: Executor, C: Clock> {
    node: Node<StdStack, X>,
    ready: Readiness,
    clock: C,
    frames: Receiver<SourceFrame>,
    finished: mpsc::Sender<Finished>,
    tails: mpsc::Sender<CodedFinished>,
    done: Receiver<(FrameKey, bool)>,
    stats: Arc<Mutex<NodeStats>>,
}

impl<X: Executor, C: Clock> Loop<X, C> {
    /// Polls, hands frames to the node while it takes them, reports finished frames, sleeps
    /// until the next deadline, readiness or wake; until `stop`.
    fn run(&mut self, stop: &AtomicBool) -> NodeStats {
        // A frame taken off the queue that the node has not accepted yet (no gateway, or its
        // frames in flight at the limit): retried after the next event, never dropped.
        let mut held: Option<SourceFrame> = None;
        while !stop.load(Ordering::Relaxed) {
            self.node.poll(self.clock.now());
            while let Ok((frame, complete)) = self.done.try_recv() {
                self.node.frame_done(self.clock.now(), frame, complete);
            }
            loop {
                if held.is_none() {
                    held = self.frames.try_recv().ok();
                }
                let Some(img) = held.take() else { break };
                if let Err(refused) = self.node.submit(self.clock.now(), img) {
                    held = Some(refused.image);
                    break;
                }
            }
            for f in self.node.take_finished() {
                let _ = self.finished.send(f);
            }
            for t in self.node.take_tails() {
                let _ = self.tails.send(t);
            }
            if let Ok(mut s) = self.stats.lock() {
                *s = self.node.stats();
            }
            // Readiness is edge-triggered: work the link left behind is not reported again.
            let timeout = if self.node.more() {
                Some(StdDuration::ZERO)
            } else {
                self.node.poll_at().map(|at| {
                    let left = at.saturating_duration_since(self.clock.now());
                    StdDuration::from_micros(left.total_micros())
                })
            };
            if self.ready.wait(timeout).is_err() {
                // The poll itself failed (not a socket): nap briefly so the node keeps serving
                // its peers rather than spinning or stopping.
                std::thread::sleep(StdDuration::from_millis(10));
            }
        }
        // Results confirmed just before the stop: their sources still hear `FrameDone`.
        while let Ok((frame, complete)) = self.done.try_recv() {
            self.node.frame_done(self.clock.now(), frame, complete);
        }
        self.node.stats()
    }
}
