//! Software prefetch, the one memory hint the indexes use.

/// Asks the CPU to bring the cache line holding `p` into all cache levels.
/// A hint only: it never faults, whatever `p` is, and is a no-op on
/// architectures without one here.
#[inline(always)]
pub fn prefetch_read(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: PREFETCHT0 is part of SSE, which every x86-64 CPU has; a
        // prefetch never faults or reads memory architecturally, so any
        // address is allowed.
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
        };
    }
    #[cfg(target_arch = "aarch64")]
    {
        // SAFETY: PRFM is a hint in the base AArch64 ISA; it never faults and
        // has no architectural effect, so any address is allowed.
        unsafe {
            core::arch::asm!("prfm pldl1keep, [{p}]", p = in(reg) p, options(nostack, readonly, preserves_flags));
        }
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = p;
    }
}
