//! The `--kernel` of a run on one machine (`tessera detect`): a node's kernel set or the
//! Winograd kernels ([`DetectKernel`]), and how reports name kernels.

extern crate alloc;

use alloc::format;
use alloc::string::String;

use super::{AnyKernel, KernelChoice};
use crate::kernels::{Form, Winograd};

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
    }
}
