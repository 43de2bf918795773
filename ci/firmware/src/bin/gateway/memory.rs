//! The heap: the board's 16 MiB PSRAM (a `NOLOAD` section of `memory.x`), handed to a
//! linked-list allocator, with the peak of what was in use counted.
//!
//! The 4 MiB of SRAM keep the image's statics and the stack; every buffer the driver, link
//! and runtime allocate (frames, strips, results, socket buffers) lives here.

use core::alloc::{GlobalAlloc, Layout};
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicUsize, Ordering};

use embedded_alloc::LlffHeap;

/// Bytes of the heap: the whole PSRAM.
pub const HEAP_BYTES: usize = 16 << 20;

#[link_section = ".psram"]
static mut HEAP_MEMORY: [MaybeUninit<u8>; HEAP_BYTES] = [MaybeUninit::uninit(); HEAP_BYTES];

static HEAP: LlffHeap = LlffHeap::empty();
static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The allocator: [`HEAP`], counting bytes in use and their peak.
struct Counted;

// SAFETY: every call is forwarded to `HEAP`, a sound allocator; the counters only observe.
unsafe impl GlobalAlloc for Counted {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { HEAP.alloc(layout) };
        if !p.is_null() {
            let now = IN_USE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { HEAP.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counted = Counted;

/// Hands the PSRAM to the allocator; call once, first thing.
pub fn init_heap() {
    // SAFETY: called once at start-up, before any allocation; nothing else refers to
    // `HEAP_MEMORY`.
    unsafe { HEAP.init(core::ptr::addr_of_mut!(HEAP_MEMORY) as usize, HEAP_BYTES) }
}

/// Most heap bytes in use at once so far.
pub fn heap_peak() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// Heap bytes in use now.
pub fn heap_in_use() -> usize {
    IN_USE.load(Ordering::Relaxed)
}
