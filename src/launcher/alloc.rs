//! A global allocator that wipes every block it frees, switched on by the launcher
//! (DESIGN §6 "Memory hygiene": freed heap memory that held secrets is wiped).
//!
//! Zeroizing containers wipe what they own, but values also pass through buffers the launcher
//! does not own: the HTTP stack's read buffers, `serde_json`'s scratch space, the strings
//! `std::process::Command` builds for the child's environment, a `Vec` that grew and left its
//! old block behind. Wiping on free covers all of them. It costs a pass over each freed block,
//! so it is off until [`enable`] is called: `latch serve` and the management commands do not
//! pay for it.
//!
//! Underneath is mimalloc rather than the C library's allocator: the platform allocates and
//! frees many small blocks per request from several threads, where glibc's arenas spent a
//! fifth of the CPU of `benches/resolve.rs` (BENCHMARKS.md).
//!
//! The binary installs it with `#[global_allocator]`, and so do the benchmarks, so they measure
//! what ships; the library's unit tests run on the system allocator.

use std::alloc::{GlobalAlloc, Layout};

use mimalloc::MiMalloc as Base;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::core::value::wipe_raw;

static WIPE: AtomicBool = AtomicBool::new(false);

/// Wipe every block freed from now on.
pub fn enable() {
    WIPE.store(true, Ordering::SeqCst);
}

/// Whether freed blocks are wiped.
#[must_use]
pub fn enabled() -> bool {
    WIPE.load(Ordering::Relaxed)
}

/// mimalloc, with blocks wiped before they are freed once [`enable`]d.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wiping;

// SAFETY: every method forwards to `Base` with the same layout; wiping only writes inside
// the block being freed, before it is freed.
unsafe impl GlobalAlloc for Wiping {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        unsafe { Base.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        unsafe { Base.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if enabled() {
            // SAFETY: `ptr` is a live block of `layout.size()` bytes until freed below.
            unsafe { wipe_raw(ptr, layout.size()) };
        }
        // SAFETY: forwarded as is.
        unsafe { Base.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !enabled() {
            // SAFETY: forwarded as is.
            return unsafe { Base.realloc(ptr, layout, new_size) };
        }
        // An in-place `realloc` may move the block and free the old one unwiped: allocate,
        // copy, wipe and free instead.
        // SAFETY: the caller guarantees `new_size` with `layout.align()` is a valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: `new_layout` has a non-zero size (GlobalAlloc's contract for realloc).
        let new = unsafe { Base.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are live and do not overlap; the copy stays within both.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                wipe_raw(ptr, layout.size());
                Base.dealloc(ptr, layout);
            }
        }
        new
    }
}
