//! The allocator locksmith's programs install.
//!
//! scrypt needs one block of 128·r·N bytes (32 MiB for restic's usual keys) per thread
//! running its lanes. glibc maps each such block afresh, and faulting its pages in cost a
//! fifth of the key derivation. mimalloc reuses a freed block and backs it with
//! huge pages, but spends far more memory than glibc on many small blocks (70 MiB against
//! 26 MiB for 10,000 locks). So blocks of 16 MiB or more (`LARGE`: only scrypt's lanes) go to
//! mimalloc and the rest to the system allocator. The size in the layout decides, and Rust passes the same layout
//! to `dealloc` as to `alloc`, so every block returns to the allocator it came from.

use std::alloc::{GlobalAlloc, Layout, System};

use mimalloc::MiMalloc;

/// Blocks at least this large are mimalloc's.
const LARGE: usize = 16 << 20;

pub struct Allocator;

/// Returns the freed large blocks to the system now rather than after mimalloc's delay:
/// once the key is derived, the lanes' memory would otherwise stay resident while the
/// locks are decoded and the report is built, adding their 32 MiB blocks to the peak.
/// At most two glibc arenas. Lock bodies are read on the blocking pool's threads and freed
/// on the runtime's, and with an arena per thread the freed 64 KiB bodies of junk entries
/// stayed resident in each (100,000 of them peaked at 141 MiB; with two arenas, 117).
/// Called once, first thing, by the programs; musl has no arenas.
pub fn limit_malloc_arenas() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets a tunable; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

///
/// mimalloc keeps freed segments per thread: the lanes were freed on rayon's threads, so
/// each of them collects its own. With `wait` (no other derivation under way) this returns
/// once they all have, so a derivation that follows (`serve` opening the next repository)
/// starts from an empty cache instead of adding its lanes to the old ones; without it,
/// each thread collects once it has finished what it runs.
pub fn release_large_blocks(wait: bool) {
    // SAFETY: takes no pointers; safe to call from any thread at any time.
    let collect = || unsafe { libmimalloc_sys::mi_collect(true) };
    collect();
    if wait && rayon::current_thread_index().is_none() {
        rayon::broadcast(move |_| collect());
    } else {
        rayon::spawn_broadcast(move |_| collect());
    }
}

fn is_large(size: usize) -> bool {
    size >= LARGE
}

// SAFETY: each call forwards to one of two sound allocators, chosen by the block's size,
// which is the same at allocation and deallocation.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if is_large(layout.size()) {
                MiMalloc.alloc(layout)
            } else {
                System.alloc(layout)
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if is_large(layout.size()) {
                MiMalloc.alloc_zeroed(layout)
            } else {
                System.alloc_zeroed(layout)
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` with this layout, so from this allocator.
        unsafe {
            if is_large(layout.size()) {
                MiMalloc.dealloc(ptr, layout)
            } else {
                System.dealloc(ptr, layout)
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees; across the boundary the block
        // moves: a new one from the other allocator, the old one freed where it came from.
        unsafe {
            match (is_large(layout.size()), is_large(new_size)) {
                (false, false) => System.realloc(ptr, layout, new_size),
                (true, true) => MiMalloc.realloc(ptr, layout, new_size),
                _ => {
                    let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
                    let new = self.alloc(new_layout);
                    if !new.is_null() {
                        std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                    new
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_move_between_allocators_with_their_contents() {
        let a = Allocator;
        let small = Layout::from_size_align(1000, 8).unwrap();
        // SAFETY: layouts are non-zero; every pointer is freed once with its layout.
        unsafe {
            let p = a.alloc(small);
            for i in 0..1000 {
                *p.add(i) = i as u8;
            }
            // Past LARGE: the block moves from the system allocator to mimalloc…
            assert!(!is_large(1000) && is_large(20 << 20));
            let owned_by_mimalloc = |q: *mut u8| libmimalloc_sys::mi_is_in_heap_region(q.cast());
            assert!(!owned_by_mimalloc(p), "a small block is the system's");
            let big = a.realloc(p, small, 20 << 20);
            assert!(owned_by_mimalloc(big), "a large block is mimalloc's");
            assert!((0..1000).all(|i| *big.add(i) == i as u8));
            // …and back, contents kept both ways.
            let back = a.realloc(big, Layout::from_size_align(20 << 20, 8).unwrap(), 500);
            assert!(!owned_by_mimalloc(back), "and back to the system's");
            assert!((0..500).all(|i| *back.add(i) == i as u8));
            a.dealloc(back, Layout::from_size_align(500, 8).unwrap());
            let z = a.alloc_zeroed(Layout::from_size_align(LARGE, 64).unwrap());
            assert!((z as usize).is_multiple_of(64) && *z == 0 && *z.add(LARGE - 1) == 0);
            a.dealloc(z, Layout::from_size_align(LARGE, 64).unwrap());
        }
    }
}
