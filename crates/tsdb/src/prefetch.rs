//! Software prefetch. Ingestion touches every series once per scrape, 100k series are far more
//! than the caches hold, and the refs of one scrape come in a predictable order: asking for
//! the next series' memory while the current one is processed hides most of the misses.

#![allow(unsafe_code)]

/// Asks the CPU to bring the cache line holding `p` into all cache levels. A hint only: the
/// address need not be valid.
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 never faults and changes no memory or register state, whatever the
    // address, and SSE is part of the x86_64 baseline.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Prefetches every cache line of the `len` bytes at `p`.
#[inline(always)]
pub(crate) fn prefetch_range(p: *const u8, len: usize) {
    let mut off = 0;
    while off < len {
        prefetch(p.wrapping_add(off));
        off += 64;
    }
    prefetch(p.wrapping_add(len.saturating_sub(1)));
}
