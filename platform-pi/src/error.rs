//! The command's error type: a typed source plus what the command was doing.

use std::fmt;

use tessera_backends::cluster::StartError;
use tessera_backends::coded::tail::{CheckError, CodedTailError, SchemeError};
use tessera_backends::fault_spec::FaultError;
use tessera_backends::local::{FusedModelError, LocalError};
use tessera_backends::model_files::ModelFileError;
use tessera_backends::node_memory::MeasureError;
use tessera_backends::pipeline::{DecodeError, DetectError, FrameError, TailError};
use tessera_backends::policy_bench::BenchError;

/// An error with the context it happened in ("reading weights file x.weights: ...").
#[derive(Debug)]
pub struct Error {
    /// `None` for library errors whose message says what was being done.
    context: Option<String>,
    source: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.context {
            Some(context) => write!(f, "{context}: {}", self.source),
            None => write!(f, "{}", self.source),
        }
    }
}

/// `?` on the pipeline's errors, whose messages name the operation ("running the tail: ...").
macro_rules! from_pipeline {
    ($($e:ty),*) => {$(
        impl From<$e> for Error {
            fn from(e: $e) -> Self {
                Error {
                    context: None,
                    source: Box::new(e),
                }
            }
        }
    )*};
}

from_pipeline!(
    FrameError,
    TailError,
    DecodeError,
    CodedTailError,
    SchemeError,
    StartError,
    LocalError,
    FusedModelError,
    CheckError,
    FaultError,
    DetectError,
    BenchError,
    MeasureError,
    ModelFileError
);

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// A plain message used as an error source.
#[derive(Debug)]
pub struct Message(pub String);

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Message {}

/// Attaches context to any error.
pub trait Context<T> {
    /// Wraps the error with `what` (evaluated only on error).
    fn context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T, Error>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> Context<T> for Result<T, E> {
    fn context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T, Error> {
        self.map_err(|e| Error {
            context: Some(what().into()),
            source: Box::new(e),
        })
    }
}

/// An error from a message alone.
pub fn error(context: impl Into<String>, message: impl Into<String>) -> Error {
    Error {
        context: Some(context.into()),
        source: Box::new(Message(message.into())),
    }
}
