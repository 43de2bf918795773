//! The gateway's memory, all of it static: the board's 16 MiB PSRAM (a `NOLOAD` section of
//! `memory.x`, so the linker refuses an image that does not fit) holds the sockets' buffers,
//! sized from the cluster's edges, and a heap for the rest, handed to a linked-list allocator
//! with the peak of what was in use counted.
//!
//! The data SRAM (4 MiB) keeps the image's statics, the stack and a second heap of 3.5 MiB:
//! an allocation the PSRAM heap cannot place (full, or no free block large enough: the
//! coded tail's layers are megabytes each) is tried there. Every buffer the driver, link and
//! runtime allocate (frames, tile results, the coded tail's layers) lives in one of the two.

use core::alloc::{GlobalAlloc, Layout};
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use embedded_alloc::LlffHeap;

include!(concat!(env!("OUT_DIR"), "/limits.rs"));

/// The board's PSRAM.
pub const PSRAM_BYTES: usize = 16 << 20;
/// Sockets: one connection per edge plus listeners waiting for the next (`BACKLOG`).
pub const SOCKETS: usize = EDGES + BACKLOG;
/// Sockets kept listening for the next connection.
pub const BACKLOG: usize = 3;
/// Each socket's receive and send buffer (the TCP window).
pub const SOCKET_BUFFER: usize = 32 * 1024;
/// Bytes of every socket's buffers.
pub const SOCKET_BYTES: usize = SOCKETS * 2 * SOCKET_BUFFER;
/// Bytes of the heap: the rest of the PSRAM.
pub const HEAP_BYTES: usize = PSRAM_BYTES - SOCKET_BYTES;

#[link_section = ".psram"]
static mut HEAP_MEMORY: [MaybeUninit<u8>; HEAP_BYTES] = [MaybeUninit::uninit(); HEAP_BYTES];
/// Bytes of the second heap, in the data SRAM (the rest of it is the stack).
pub const SRAM_HEAP_BYTES: usize = 7 << 19;

#[link_section = ".uninit.sram_heap"]
static mut SRAM_HEAP_MEMORY: [MaybeUninit<u8>; SRAM_HEAP_BYTES] =
    [MaybeUninit::uninit(); SRAM_HEAP_BYTES];
static SRAM_HEAP: LlffHeap = LlffHeap::empty();

#[link_section = ".psram"]
static mut SOCKET_MEMORY: [u8; SOCKET_BYTES] = [0; SOCKET_BYTES];
static SOCKETS_TAKEN: AtomicBool = AtomicBool::new(false);

static HEAP: LlffHeap = LlffHeap::empty();
static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The allocator: [`HEAP`], counting bytes in use and their peak.
struct Counted;

// SAFETY: every call is forwarded to `HEAP`, a sound allocator; the counters only observe.
unsafe impl GlobalAlloc for Counted {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let mut p = unsafe { HEAP.alloc(layout) };
        if p.is_null() {
            // SAFETY: as above.
            p = unsafe { SRAM_HEAP.alloc(layout) };
        }
        if !p.is_null() {
            let now = IN_USE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
        let sram = core::ptr::addr_of!(SRAM_HEAP_MEMORY) as usize;
        let from_sram = (sram..sram + SRAM_HEAP_BYTES).contains(&(ptr as usize));
        // SAFETY: forwarded with the caller's guarantees, to the heap whose memory holds
        // `ptr` (the one that allocated it).
        unsafe {
            if from_sram {
                SRAM_HEAP.dealloc(ptr, layout)
            } else {
                HEAP.dealloc(ptr, layout)
            }
        }
    }
}

#[global_allocator]
static ALLOCATOR: Counted = Counted;

/// Hands the PSRAM to the allocator; call once, first thing.
pub fn init_heap() {
    // SAFETY: called once at start-up, before any allocation; nothing else refers to
    // `HEAP_MEMORY` or `SRAM_HEAP_MEMORY`.
    unsafe {
        HEAP.init(core::ptr::addr_of_mut!(HEAP_MEMORY) as usize, HEAP_BYTES);
        SRAM_HEAP.init(
            core::ptr::addr_of_mut!(SRAM_HEAP_MEMORY) as usize,
            SRAM_HEAP_BYTES,
        );
    }
}

/// Most heap bytes in use at once so far.
pub fn heap_peak() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// Heap bytes in use now.
pub fn heap_in_use() -> usize {
    IN_USE.load(Ordering::Relaxed)
}

/// The sockets' receive and send buffers, [`SOCKETS`] pairs; `None` after the first call.
pub fn socket_buffers() -> Option<impl Iterator<Item = (&'static mut [u8], &'static mut [u8])>> {
    if SOCKETS_TAKEN.swap(true, Ordering::Relaxed) {
        return None;
    }
    // SAFETY: the flag above hands the buffers out once, so this is the only reference to
    // `SOCKET_MEMORY` for the program's life. The PSRAM section is NOLOAD: the zero
    // initialiser is not applied, and a socket buffer's initial bytes do not matter.
    let all: &'static mut [u8; SOCKET_BYTES] =
        unsafe { &mut *core::ptr::addr_of_mut!(SOCKET_MEMORY) };
    Some(
        all.chunks_exact_mut(2 * SOCKET_BUFFER)
            .map(|pair| pair.split_at_mut(SOCKET_BUFFER)),
    )
}
