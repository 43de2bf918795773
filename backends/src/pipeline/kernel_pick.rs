//! The `--kernel` of a run on one machine (`tessera detect`): a node's kernel set or the
//! Winograd kernels ([`DetectKernel`]), a frame's boxes with it ([`detect_with`]), and how
//! reports name kernels.

extern crate alloc;

use alloc::format;
use alloc::string::String;

#[cfg(feature = "std")]
use super::{detect_frame, DetectError, DetectSetup, FrameDetections};
use super::{AnyKernel, KernelChoice};
#[cfg(feature = "std")]
use crate::kernels::Fma;
use crate::kernels::{Form, Winograd};
#[cfg(feature = "std")]
use tessera_core::model::{weights::Weights, Network};

/// A node's kernel set or the Winograd kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DetectKernel {
    /// `auto`, `portable` or `simd`.
    Node(KernelChoice),
    /// `winograd` (F4) or `winograd-f2`.
    Winograd(Form),
}

impl DetectKernel {
    /// Parses `winograd`, `winograd-f2` or a node kernel name.
    pub fn parse(s: &str) -> Result<DetectKernel, String> {
        match s {
            "winograd" => Ok(DetectKernel::Winograd(Form::F4)),
            "winograd-f2" => Ok(DetectKernel::Winograd(Form::F2)),
            _ => KernelChoice::parse(s)
                .map(DetectKernel::Node)
                .map_err(|e| format!("{e}, winograd or winograd-f2")),
        }
    }
}

/// How the Winograd kernels are named in reports.
pub fn winograd_name(k: &Winograd<'_>) -> String {
    format!(
        "winograd ({:?}, {:?}, {} threads)",
        k.form(),
        k.isa(),
        k.threads()
    )
}

/// How a kernel set is named in reports (`portable`, or `simd` with its instruction set and
/// threads).
pub fn kernel_name(k: &AnyKernel) -> String {
    match k {
        AnyKernel::Portable => "portable".into(),
        AnyKernel::Simd(f) => format!("simd ({:?}, {} threads)", f.isa(), f.threads()),
        AnyKernel::Winograd(w) => format!("{} planned", winograd_name(w)),
    }
}

/// [`detect_frame`] with `kernel` (SIMD and Winograd on `threads` threads per conv); returns
/// the boxes and the kernels' name for the report.
#[cfg(feature = "std")]
pub fn detect_with(
    kernel: DetectKernel,
    threads: usize,
    net: &Network,
    params: &[f32],
    input: &[f32],
    image: (usize, usize),
    setup: &DetectSetup,
) -> Result<(FrameDetections, String), DetectError> {
    // One frame on one machine has no cluster grid to plan for: a node's `winograd` runs F4.
    let kernel = match kernel {
        DetectKernel::Node(KernelChoice::Winograd) => DetectKernel::Winograd(Form::F4),
        k => k,
    };
    match kernel {
        DetectKernel::Winograd(form) => {
            let weights =
                Weights::new(net, net.layers().len(), params).map_err(DetectError::Weights)?;
            let wino = Winograd::new()
                .with_form(form)
                .with_threads(threads)
                .prepare(&weights);
            let frame = detect_frame(&wino, net, params, input, image, setup)?;
            Ok((frame, winograd_name(&wino)))
        }
        DetectKernel::Node(choice) => {
            let kernels = match choice {
                KernelChoice::Portable => AnyKernel::Portable,
                _ => AnyKernel::Simd(Fma::new().with_threads(threads)),
            };
            let frame = detect_frame(&kernels, net, params, input, image, setup)?;
            Ok((frame, kernel_name(&kernels)))
        }
    }
}
