//! Setting a node up on a thread of its own ([`set_up`]), so the set-up's stack is handed back.
//!
//! Loading the model and building the runtime machines go through stack frames of a few
//! hundred KiB (`start_node` about 132 KiB, `CodedPart::new` 128 KiB on x86_64; a frame's
//! stack probes touch every page of it, whichever branch runs). On the main thread those pages
//! stay resident for the life of the process; on a thread that has ended, glibc hands its
//! stack's pages back to the kernel. Measured on YOLOv2-608 edges: the main thread's `[stack]`
//! held 200 KiB resident (396 KiB on a coded worker) when it did the set-up itself.

extern crate std;

use std::thread;

use super::SetupError;

/// Runs `f` (a node's set-up: loading, starting) on a thread that ends when `f` returns, and
/// returns what `f` returned. A panic in `f` continues on the calling thread.
pub(super) fn set_up<T: Send, E: Send + From<SetupError>>(
    f: impl FnOnce() -> Result<T, E> + Send,
) -> Result<T, E> {
    thread::scope(|s| {
        let handle = thread::Builder::new()
            .name("tessera-set-up".into())
            .spawn_scoped(s, f)
            .map_err(|e| E::from(SetupError::SetUpThread(e)))?;
        handle
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_result_comes_back_from_the_thread() {
        let caller = thread::current().id();
        let r: Result<_, SetupError> = set_up(|| Ok(thread::current().id()));
        assert_ne!(r.unwrap(), caller, "ran on a thread of its own");
        let e: Result<(), SetupError> =
            set_up(|| Err(SetupError::SetUpThread(std::io::ErrorKind::Other.into())));
        assert!(matches!(e, Err(SetupError::SetUpThread(_))));
    }
}
