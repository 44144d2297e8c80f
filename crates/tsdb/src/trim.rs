//! Giving freed heap memory back to the operating system after a compaction.
//!
//! Head compaction and block compaction allocate tens of megabytes for a short time (series
//! lists, chunk copies, index buffers). glibc's malloc keeps freed memory in its arenas, one per
//! thread that allocated (up to 8 × cores), and returns it only from the top of each heap; what
//! a compaction freed in the middle stays resident. `malloc_trim(0)` releases every whole free
//! page of every arena (madvise), which is what Prometheus's Go runtime does on its own with
//! its scavenger. Other C libraries: nothing to do.
#![allow(unsafe_code)]

/// Returns whole free pages held by the allocator to the operating system.
pub(crate) fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks and madvises glibc's own free lists under its arena
        // locks; it takes no pointers from us and is safe to call from any thread at any time.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}
