//! Software prefetch, the memory hints the indexes use.
//!
//! Two levels. [`prefetch_read`] brings a line into the first-level cache;
//! each one in flight holds one of the core's few L1 miss buffers (24 on
//! Zen 4), so requesting a whole scattered row per candidate fills them and
//! the next prefetch stalls. [`prefetch_read_l2`] stops at the second level,
//! whose miss queue is several times deeper: the indexes request the rows of
//! many upcoming candidates that way, and the distance kernel's loads then
//! hit L2, a dozen cycles away instead of a DRAM round trip.

/// Asks the CPU to bring the cache line holding `p` into all cache levels.
/// A hint only: it never faults, whatever `p` is, and is a no-op on
/// architectures without one here.
#[inline(always)]
pub fn prefetch_read(p: *const u8) {
    prefetch::<false>(p);
}

/// Asks the CPU to bring the cache line holding `p` into the second-level
/// cache (and the levels below it), not into L1. A hint only, like
/// [`prefetch_read`]: it never faults, whatever `p` is.
#[inline(always)]
pub fn prefetch_read_l2(p: *const u8) {
    prefetch::<true>(p);
}

/// One read prefetch of the line holding `p`, into L2 and below when `L2`,
/// into every level otherwise.
#[inline(always)]
fn prefetch<const L2: bool>(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0, _MM_HINT_T1};
        // SAFETY: PREFETCHT0/T1 are part of SSE, which every x86-64 CPU has;
        // a prefetch never faults or reads memory architecturally, so any
        // address is allowed.
        unsafe {
            if L2 {
                _mm_prefetch::<_MM_HINT_T1>(p as *const i8)
            } else {
                _mm_prefetch::<_MM_HINT_T0>(p as *const i8)
            }
        };
    }
    #[cfg(target_arch = "aarch64")]
    {
        // SAFETY: PRFM is a hint in the base AArch64 ISA; it never faults and
        // has no architectural effect, so any address is allowed.
        unsafe {
            if L2 {
                core::arch::asm!("prfm pldl2keep, [{p}]", p = in(reg) p, options(nostack, readonly, preserves_flags));
            } else {
                core::arch::asm!("prfm pldl1keep, [{p}]", p = in(reg) p, options(nostack, readonly, preserves_flags));
            }
        }
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = p;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hints take any address: valid, unaligned, null, the very last byte.
    #[test]
    fn any_address_is_accepted() {
        let row = [0u8; 200];
        for p in [
            row.as_ptr(),
            row[3..].as_ptr(),
            std::ptr::null(),
            usize::MAX as *const u8,
        ] {
            prefetch_read(p);
            prefetch_read_l2(p);
        }
    }
}
