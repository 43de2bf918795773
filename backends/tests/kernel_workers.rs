//! Which kernels start worker threads and which share them: a node's tile kernels start
//! `threads − 1` workers, the direct kernels a coded worker runs its shards on share those,
//! and the last clone dropped ends them. (One test in its own binary: it counts the process's
//! threads, which other tests running beside it would change.)
#![cfg(all(feature = "simd", target_os = "linux"))]

use tessera_backends::kernels::Winograd;
use tessera_backends::pipeline::{AnyKernel, KernelChoice};

/// Threads of this process now.
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn direct_kernels_share_their_kernels_workers() {
    let n0 = threads();
    let simd = AnyKernel::of(KernelChoice::Simd).with_threads(3);
    assert_eq!(threads(), n0 + 2, "3 threads: the caller and 2 workers");
    let shards = simd.direct();
    assert!(matches!(&shards, AnyKernel::Simd(k) if k.threads() == 3));
    assert_eq!(threads(), n0 + 2, "the direct kernels share the workers");
    let wino = AnyKernel::Winograd(Winograd::new()).with_threads(3);
    assert_eq!(threads(), n0 + 4);
    let direct = wino.direct();
    assert!(matches!(&direct, AnyKernel::Simd(k) if k.threads() == 3));
    assert_eq!(
        threads(),
        n0 + 4,
        "a Winograd kernel's direct kernel shares its workers"
    );
    drop(simd);
    assert_eq!(threads(), n0 + 4, "a clone still holds them");
    drop((shards, wino, direct));
    // Dropping the last clone joins the workers; a joined thread can stay listed for a moment
    // while the kernel finishes its exit, so this waits (bounded) for the listing to catch up.
    let gone = (0..5000).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(1));
        threads() == n0
    });
    assert!(gone, "workers left: {} threads, {n0} before", threads());
}
