//! The gateway's two streams of a frame with a coded tail ([`TailJoin`]): the fused stack's
//! `Finished` and, for a complete frame, the coded stage's `CodedFinished`, paired by key.
//!
//! The node hands every complete frame's fused output to its coded part as it finishes, so
//! each complete frame leaves the coded stage exactly once (decoded, or lost at its deadline);
//! an incomplete frame never enters it. Which report a process reads first depends on
//! scheduling, so either may come first; the join holds at most one of the two per frame.

extern crate alloc;

use alloc::collections::BTreeMap;

use tessera_core::wire::FrameKey;

use crate::coded::CodedFinished;
use crate::driver::Finished;

/// A frame with everything the gateway learns of it.
#[derive(Debug)]
pub struct Joined {
    /// The fused stack's report (`complete == false`: abandoned, no tail).
    pub frame: Finished,
    /// The coded stage's report (`None` exactly when the frame is incomplete).
    pub tail: Option<CodedFinished>,
}

/// Pairs fused reports with coded tails by frame key.
#[derive(Debug, Default)]
pub struct TailJoin {
    fused: BTreeMap<FrameKey, Finished>,
    tails: BTreeMap<FrameKey, CodedFinished>,
}

impl TailJoin {
    /// An empty join.
    pub fn new() -> Self {
        Self::default()
    }

    /// A fused report: joined at once when it is incomplete or its tail is in.
    pub fn frame(&mut self, f: Finished) -> Option<Joined> {
        if !f.complete {
            // An abandoned frame never entered the coded stage; a tail under its key would
            // be a previous frame's (keys are unique per source start), so none is taken.
            return Some(Joined {
                frame: f,
                tail: None,
            });
        }
        match self.tails.remove(&f.frame) {
            Some(t) => Some(Joined {
                frame: f,
                tail: Some(t),
            }),
            None => {
                self.fused.insert(f.frame, f);
                None
            }
        }
    }

    /// A coded tail: joined when its fused report is in.
    pub fn tail(&mut self, t: CodedFinished) -> Option<Joined> {
        match self.fused.remove(&t.frame) {
            Some(f) => Some(Joined {
                frame: f,
                tail: Some(t),
            }),
            None => {
                self.tails.insert(t.frame, t);
                None
            }
        }
    }

    /// Frames with one of their two reports in.
    pub fn waiting(&self) -> usize {
        self.fused.len() + self.tails.len()
    }
}

#[cfg(test)]
mod tests {
    extern crate alloc;
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;
    use tessera_core::runtime::coded::Quality;
    use tessera_core::time::Duration;

    fn fused(n: u32, complete: bool) -> Finished {
        Finished {
            frame: FrameKey::new(1, n),
            complete,
            latency: Duration::from_micros(1),
            output: complete.then(|| vec![1.0]),
            tiles_by: Vec::new(),
        }
    }

    fn tail(n: u32) -> CodedFinished {
        CodedFinished {
            frame: FrameKey::new(1, n),
            output: vec![2.0],
            quality: Quality {
                decoded: 1,
                expired: 0,
                fraction: 1.0,
            },
            latency: Duration::from_micros(2),
            layers: Vec::new(),
        }
    }

    #[test]
    fn pairs_in_either_order_and_passes_failed_frames() {
        let mut j = TailJoin::new();
        assert!(j.frame(fused(0, true)).is_none());
        assert!(j.tail(tail(1)).is_none());
        assert_eq!(j.waiting(), 2);
        let a = j.tail(tail(0)).unwrap();
        assert_eq!(
            (a.frame.frame.number, a.tail.unwrap().output),
            (0, vec![2.0])
        );
        let b = j.frame(fused(1, true)).unwrap();
        assert_eq!(b.tail.unwrap().frame, FrameKey::new(1, 1));
        let c = j.frame(fused(2, false)).unwrap();
        assert!(!c.frame.complete && c.tail.is_none());
        assert_eq!(j.waiting(), 0);
    }
}
