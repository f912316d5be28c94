//! Memory a training step gets back from the previous step instead of fresh pages from the
//! kernel: glibc keeps freed memory below 32 MiB in its heap, and [`StepAllocator`] keeps the
//! blocks above that (which glibc always maps and unmaps) for the next request of their size.
//!
//! A step allocates the same tensors every time; fresh pages cost a page fault and a cleared
//! page each 4 KiB, which measured about 20% of a batch-norm CNN's training time.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;

/// Blocks of at least this many bytes are kept by [`StepAllocator`]; smaller ones stay in
/// glibc's heap once [`keep_freed_memory`] has run (its largest mmap threshold).
pub const LARGE_BLOCK: usize = 32 << 20;
/// At most this many freed large blocks are kept; the oldest goes back to the system first.
const SLOTS: usize = 32;
/// And at most this many bytes of them.
const MAX_KEPT_BYTES: usize = 4 << 30;

/// Tells glibc to keep memory it has been given back (no trimming of the heap) and to serve
/// every request below [`LARGE_BLOCK`] from its heap instead of fresh mappings. Call first
/// thing in `main`; elsewhere than glibc it does nothing.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; both values are within glibc's limits.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, LARGE_BLOCK as libc::c_int);
        libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX);
    }
}

#[derive(Clone, Copy)]
struct Kept {
    ptr: *mut u8,
    size: usize,
    align: usize,
    /// When it was freed (a counter), so that the oldest is given back first.
    age: u64,
}

/// Freed large blocks by exact size and alignment, bounded by [`SLOTS`] and [`MAX_KEPT_BYTES`].
pub struct BlockCache {
    slots: [Option<Kept>; SLOTS],
    bytes: usize,
    clock: u64,
}

// SAFETY: the cache owns the blocks it holds; nothing else points into them.
unsafe impl Send for BlockCache {}

impl BlockCache {
    pub const fn new() -> Self {
        BlockCache {
            slots: [None; SLOTS],
            bytes: 0,
            clock: 0,
        }
    }

    /// A kept block for `layout`, if one of its exact size and alignment is here.
    pub fn take(&mut self, layout: Layout) -> Option<*mut u8> {
        let slot = self
            .slots
            .iter_mut()
            .find(|s| s.is_some_and(|k| k.size == layout.size() && k.align == layout.align()))?;
        let kept = slot.take()?;
        self.bytes -= kept.size;
        Some(kept.ptr)
    }

    /// Keeps the freed block `ptr` of `layout`; returns the blocks that must go back to the
    /// system instead (the oldest ones when the cache is full, or `ptr` itself when it alone is
    /// larger than the whole cache).
    pub fn put(&mut self, ptr: *mut u8, layout: Layout) -> GiveBack {
        let mut give_back = GiveBack::default();
        if layout.size() > MAX_KEPT_BYTES {
            give_back.push((ptr, layout));
            return give_back;
        }
        while self.bytes + layout.size() > MAX_KEPT_BYTES || self.slots.iter().all(Option::is_some)
        {
            let oldest = self
                .slots
                .iter_mut()
                .filter(|s| s.is_some())
                .min_by_key(|s| s.map_or(u64::MAX, |k| k.age))
                .and_then(Option::take);
            let Some(k) = oldest else { break };
            self.bytes -= k.size;
            // SAFETY: the layout is the one the block was allocated with.
            give_back.push((k.ptr, unsafe {
                Layout::from_size_align_unchecked(k.size, k.align)
            }));
        }
        self.clock += 1;
        let free = self.slots.iter_mut().find(|s| s.is_none());
        if let Some(free) = free {
            *free = Some(Kept {
                ptr,
                size: layout.size(),
                align: layout.align(),
                age: self.clock,
            });
            self.bytes += layout.size();
        } else {
            give_back.push((ptr, layout));
        }
        give_back
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// Blocks for the system to free, at most one more than the cache holds (no allocation: it is
/// made while freeing).
pub struct GiveBack {
    blocks: [Option<(*mut u8, Layout)>; SLOTS + 1],
    len: usize,
}

impl Default for GiveBack {
    fn default() -> Self {
        GiveBack {
            blocks: [None; SLOTS + 1],
            len: 0,
        }
    }
}

impl GiveBack {
    fn push(&mut self, block: (*mut u8, Layout)) {
        self.blocks[self.len] = Some(block);
        self.len += 1;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn blocks(&self) -> impl Iterator<Item = (*mut u8, Layout)> + '_ {
        self.blocks.iter().flatten().copied()
    }
}

impl Default for BlockCache {
    fn default() -> Self {
        Self::new()
    }
}

/// The process's allocator: the system's, except that freed blocks of [`LARGE_BLOCK`] bytes or
/// more are kept (see [`BlockCache`]) and handed out again for the next request of their size.
pub struct StepAllocator;

static CACHE: Mutex<BlockCache> = Mutex::new(BlockCache::new());

fn cache() -> std::sync::MutexGuard<'static, BlockCache> {
    CACHE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

// SAFETY: every block handed out is either fresh from `System` for this layout or a kept block
// that `System` allocated for exactly this size and alignment and that nobody else holds.
unsafe impl GlobalAlloc for StepAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= LARGE_BLOCK {
            if let Some(ptr) = cache().take(layout) {
                return ptr;
            }
        }
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= LARGE_BLOCK {
            if let Some(ptr) = cache().take(layout) {
                ptr.write_bytes(0, layout.size());
                return ptr;
            }
        }
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() < LARGE_BLOCK {
            return System.dealloc(ptr, layout);
        }
        let give_back = cache().put(ptr, layout);
        for (ptr, layout) in give_back.blocks() {
            System.dealloc(ptr, layout);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // A growing vector's old blocks would only fill the cache: let the system move it.
        System.realloc(ptr, layout, new_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn a_freed_block_is_handed_out_again_for_its_size_and_alignment_only() {
        let mut cache = BlockCache::new();
        let block = 0x1000 as *mut u8;
        assert!(cache.put(block, layout(LARGE_BLOCK, 64)).is_empty());
        assert_eq!(cache.take(layout(LARGE_BLOCK + 4, 64)), None);
        assert_eq!(cache.take(layout(LARGE_BLOCK, 128)), None);
        assert_eq!(cache.take(layout(LARGE_BLOCK, 64)), Some(block));
        assert_eq!(cache.take(layout(LARGE_BLOCK, 64)), None);
        assert_eq!(cache.bytes(), 0);
    }

    #[test]
    fn a_full_cache_gives_back_its_oldest_blocks() {
        let mut cache = BlockCache::new();
        for i in 0..SLOTS {
            assert!(cache
                .put((0x1000 * (i + 1)) as *mut u8, layout(LARGE_BLOCK, 8))
                .is_empty());
        }
        let back = cache.put(0x999000 as *mut u8, layout(LARGE_BLOCK, 8));
        assert_eq!(back.len(), 1);
        let first = back.blocks().next().unwrap().0;
        assert_eq!(first, 0x1000 as *mut u8, "the first one kept goes first");
        assert_eq!(cache.bytes(), SLOTS * LARGE_BLOCK);
        // Bytes bound it too: one block of the whole budget pushes out all the others.
        let back = cache.put(0x5000_0000 as *mut u8, layout(MAX_KEPT_BYTES, 8));
        assert_eq!(back.len(), SLOTS);
        assert_eq!(cache.bytes(), MAX_KEPT_BYTES);
        let back = cache.put(0x6000_0000 as *mut u8, layout(MAX_KEPT_BYTES + 1, 8));
        let back: Vec<_> = back.blocks().collect();
        assert_eq!(
            back,
            vec![(0x6000_0000 as *mut u8, layout(MAX_KEPT_BYTES + 1, 8))]
        );
    }

    #[test]
    fn the_allocator_reuses_large_blocks_and_zeroes_them_when_asked() {
        let a = StepAllocator;
        let l = layout(LARGE_BLOCK + 4096, 64);
        unsafe {
            let p = a.alloc(l);
            assert!(!p.is_null());
            p.write_bytes(7, l.size());
            a.dealloc(p, l);
            let q = a.alloc_zeroed(l);
            // Other tests of this process may race for the block; when it is ours, it is zeroed.
            assert!(std::slice::from_raw_parts(q, l.size())
                .iter()
                .all(|&b| b == 0));
            a.dealloc(q, l);
            let small = layout(100, 8);
            let s = a.alloc(small);
            assert!(!s.is_null());
            a.dealloc(s, small);
        }
    }
}
