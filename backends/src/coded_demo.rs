//! `tessera coded` as a library ([`CodedDemo::run`]): the coded stage alone on loopback
//! (`coded::loopback`) over a chain of generated fully connected layers, its arguments
//! checked with the messages the command prints, and the report of the run.

extern crate alloc;
extern crate std;

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use tessera_core::rng::SplitMix64;
use tessera_core::runtime::coded::{Allocator, CodedConfig};
use tessera_core::time::Duration;
use tessera_core::wire::NodeId;

use crate::coded::loopback::{run_loopback, LoopbackError, LoopbackSpec, Transport};
use crate::coded::loopback_report::{dgram_line, report};
use crate::coded::tail::TailScheme;
use crate::coded::{generated_chain, CodedModel, CodedModelError};

/// A run of the coded stage on loopback.
#[derive(Clone, Debug)]
pub struct CodedDemo {
    /// Workers (node ids `1..=workers`).
    pub workers: u16,
    /// Protection of every layer.
    pub scheme: TailScheme,
    /// Layer widths, input first (`[1024, 1024, 1000]`: two layers).
    pub dims: Vec<usize>,
    /// Float arithmetic instead of exact int8.
    pub float: bool,
    /// Frames to run.
    pub frames: usize,
    /// Frame deadline.
    pub deadline: Duration,
    /// Timeout allocator.
    pub allocator: Allocator,
    /// Workers never started.
    pub absent: Vec<NodeId>,
    /// Workers that stop answering after the first frame.
    pub stall: Vec<NodeId>,
    /// Seed of the weights, the inputs, the key and the datagram loss.
    pub seed: u64,
    /// What carries shards and results.
    pub transport: Transport,
}

/// Why a coded run was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodedDemoError {
    /// Fewer than two widths, or a zero width.
    #[error("reading --dims: need at least two positive widths (input, then each layer's output)")]
    Dims,
    /// The scheme does not fit the workers.
    #[error(
        "reading --scheme: '{scheme}' with {workers} workers: use cdc (r < W), 2mr or uncoded"
    )]
    Scheme {
        /// The scheme asked for.
        scheme: TailScheme,
        /// Workers.
        workers: u16,
    },
    /// An absent or stalled id that is no worker.
    #[error("reading worker ids: '{id}' is not a worker id 1..={workers}")]
    NotAWorker {
        /// The id given.
        id: NodeId,
        /// Workers.
        workers: u16,
    },
    /// A loss that is no fraction.
    #[error("reading --loss: '{0}' is not a fraction 0..1")]
    Loss(f64),
    /// Loss asked for on TCP.
    #[error(
        "reading --loss: loss is injected on the datagram transport only (--transport datagram)"
    )]
    LossOnTcp,
    /// The model could not be built.
    #[error("building the coded model: {0}")]
    Model(CodedModelError),
    /// No free port.
    #[error("finding a free port: {0}")]
    Port(std::io::Error),
    /// The run failed.
    #[error("running the coded cluster: {0}")]
    Run(#[from] LoopbackError),
    /// The centralised reference could not be computed.
    #[error("computing the reference: {0}")]
    Reference(CodedModelError),
}

impl CodedDemo {
    /// The model: layers with generated weights, split as asked over the workers.
    pub fn model(&self) -> Result<CodedModel, CodedDemoError> {
        if self.dims.len() < 2 || self.dims.contains(&0) {
            return Err(CodedDemoError::Dims);
        }
        let split = self
            .scheme
            .layer_scheme(self.workers as usize)
            .map_err(|_| CodedDemoError::Scheme {
                scheme: self.scheme,
                workers: self.workers,
            })?;
        let workers: Vec<NodeId> = (1..=self.workers).collect();
        generated_chain(&self.dims, split, &workers, self.float, self.seed)
            .map_err(CodedDemoError::Model)
    }

    /// The transport asked for: datagrams dropping `loss` of them, or TCP (no loss).
    pub fn transport(datagram: bool, loss: f64) -> Result<Transport, CodedDemoError> {
        match datagram {
            _ if !(0.0..=1.0).contains(&loss) => Err(CodedDemoError::Loss(loss)),
            false if loss > 0.0 => Err(CodedDemoError::LossOnTcp),
            false => Ok(Transport::Tcp),
            true => Ok(Transport::Datagram { loss }),
        }
    }

    /// Checks `list` against the workers `1..=workers`.
    fn ids(&self, list: &[NodeId]) -> Result<Vec<NodeId>, CodedDemoError> {
        match list.iter().find(|id| !(1..=self.workers).contains(id)) {
            Some(&id) => Err(CodedDemoError::NotAWorker {
                id,
                workers: self.workers,
            }),
            None => Ok(list.to_vec()),
        }
    }

    /// Runs the stage and returns its report: a line per frame, then the summary (and the
    /// gateway's datagram counters on datagrams).
    pub fn run(&self) -> Result<String, CodedDemoError> {
        let model = Arc::new(self.model()?);
        let absent = self.ids(&self.absent)?;
        let stall = self.ids(&self.stall)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(CodedDemoError::Port)?
            .port();
        let mut key = [0u8; 32];
        let mut rng = SplitMix64::new(self.seed ^ 0x006b_6579);
        key.iter_mut().for_each(|b| *b = rng.next_u64() as u8);
        let spec = LoopbackSpec {
            workers: self.workers,
            absent,
            stall,
            frames: self.frames,
            config: CodedConfig {
                allocator: self.allocator,
                ..CodedConfig::new(self.deadline)
            },
            seed: self.seed,
            key,
            port,
            transport: self.transport,
        };
        let run = run_loopback(model.clone(), &spec)?;
        let mut out = report(&model, self.float, self.workers, &run.gateway, &run.frames)
            .map_err(CodedDemoError::Reference)?;
        if let Some(d) = run.dgram {
            out += &dgram_line(&d);
            out.push('\n');
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn demo() -> CodedDemo {
        CodedDemo {
            workers: 4,
            scheme: TailScheme::Cdc(1),
            dims: vec![8, 6],
            float: false,
            frames: 1,
            deadline: Duration::from_millis(100),
            allocator: Allocator::Uniform,
            absent: Vec::new(),
            stall: Vec::new(),
            seed: 1,
            transport: Transport::Tcp,
        }
    }

    #[test]
    fn arguments_are_checked_with_the_flag_they_came_from() {
        assert!(demo().model().is_ok());
        let dims = CodedDemo {
            dims: vec![8],
            ..demo()
        };
        assert!(matches!(dims.model(), Err(CodedDemoError::Dims)));
        let wide = CodedDemo {
            scheme: TailScheme::Cdc(4),
            ..demo()
        };
        assert!(matches!(wide.model(), Err(CodedDemoError::Scheme { .. })));
        assert!(matches!(
            demo().ids(&[5]),
            Err(CodedDemoError::NotAWorker { id: 5, workers: 4 })
        ));
        assert_eq!(demo().ids(&[1, 4]).unwrap(), vec![1, 4]);
        assert!(matches!(
            CodedDemo::transport(false, 0.1),
            Err(CodedDemoError::LossOnTcp)
        ));
        assert!(matches!(
            CodedDemo::transport(true, 1.5),
            Err(CodedDemoError::Loss(_))
        ));
        assert_eq!(
            CodedDemo::transport(true, 0.25).unwrap(),
            Transport::Datagram { loss: 0.25 }
        );
    }
}
