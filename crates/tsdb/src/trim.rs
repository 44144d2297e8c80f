//! Giving freed heap memory back to the operating system after a compaction.
//!
//! Head compaction and block compaction allocate tens of megabytes for a short time (series
//! lists, chunk copies, index buffers). glibc's malloc keeps freed memory in its arenas, one per
//! thread that allocated (up to 8 × cores), and returns it only from the top of each heap; what
//! a compaction freed in the middle stays resident. `malloc_trim(0)` releases every whole free
//! page of every arena (madvise), which is what Prometheus's Go runtime does on its own with
//! its scavenger. [`limit_malloc_arenas`] bounds how many arenas hold such memory. Other C
//! libraries: nothing to do.
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

/// Limits glibc's malloc to one arena per core (its default is eight per core), unless
/// `MALLOC_ARENA_MAX` is set. Each arena keeps its own freed memory, so with many threads
/// (HTTP handlers, compaction, WAL, remote write) more arenas mean more memory held but unused;
/// one per core still lets that many threads allocate without waiting for each other. For
/// programs that hold a database; call before starting threads.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
            return;
        }
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let arenas = libc::c_int::try_from(cores.max(2)).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only sets a glibc tunable; M_ARENA_MAX with a positive value is
        // valid at any time (it bounds arenas created from then on).
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}
