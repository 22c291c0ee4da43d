//! x86-64 kernels: AVX2+FMA and AVX-512.

use super::KernelTable;

/// The AVX2+FMA table when the CPU has both.
#[cfg(feature = "avx2")]
pub(super) fn avx2_table() -> Option<&'static KernelTable> {
    None
}

/// The AVX-512 table when the CPU has AVX-512F.
#[cfg(all(feature = "avx512", swann_avx512_intrinsics))]
pub(super) fn avx512_table() -> Option<&'static KernelTable> {
    None
}
