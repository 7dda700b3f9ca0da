//! The process allocator: the system allocator, except that very large requests are served
//! by `mmap(MAP_NORESERVE)`.
//!
//! Why: the Kafka message decoder reserves `Vec::with_capacity(count)` with `count` taken from
//! the wire before it reads a single element, so a 20-byte request claiming 2^31 array
//! elements asks for hundreds of GiB. The system allocator refuses and Rust aborts the whole
//! process. A `MAP_NORESERVE` mapping only reserves address space: the reservation succeeds,
//! nothing is touched, the decoder then runs out of input and returns an error, and the
//! mapping is released. Legitimate allocations this large do not happen in Stratalog (requests
//! are capped at `max_request_bytes`), so this path is only ever taken by such lies.
use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations from this size up bypass the system allocator.
const HUGE: usize = 1 << 30;

pub struct Allocator;

// SAFETY: small layouts are delegated to `System` unchanged. Huge ones are page-aligned
// anonymous mappings (alignment up to the page size is honoured; larger alignments go to
// `System`), released with `munmap` of the same length, and never handed to `System`.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() < HUGE || layout.align() > 4096 {
            return unsafe { System.alloc(layout) };
        }
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                layout.size(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            std::ptr::null_mut()
        } else {
            ptr.cast()
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() < HUGE || layout.align() > 4096 {
            return unsafe { System.alloc_zeroed(layout) };
        }
        // Fresh anonymous mappings are zero already; writing zeros would touch every page.
        unsafe { self.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() < HUGE || layout.align() > 4096 {
            unsafe { System.dealloc(ptr, layout) };
        } else {
            unsafe { libc::munmap(ptr.cast(), layout.size()) };
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let huge = |size: usize| size >= HUGE && layout.align() <= 4096;
        if !huge(layout.size()) && !huge(new_size) {
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // Crossing into or out of the mapped range: move the bytes by hand.
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return std::ptr::null_mut();
        };
        let new_ptr = unsafe { self.alloc(new_layout) };
        if !new_ptr.is_null() {
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new_ptr, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new_ptr
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_lying_reservation_does_not_abort() {
        // 64 GiB of capacity, never touched: must succeed and be released.
        let v: Vec<u64> = Vec::with_capacity(8 << 30);
        assert!(v.capacity() >= 8 << 30);
        let zeroed = vec![0u8; 3 << 30];
        assert_eq!(zeroed[zeroed.len() - 1], 0);
        let mut small = vec![1u8; 16];
        small.resize(32, 2);
        assert_eq!(small.len(), 32);
    }
}
