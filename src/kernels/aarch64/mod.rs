//! AArch64 kernels: NEON.

use super::KernelTable;

/// The NEON table when the CPU has Advanced SIMD.
pub(super) fn neon_table() -> Option<&'static KernelTable> {
    None
}
