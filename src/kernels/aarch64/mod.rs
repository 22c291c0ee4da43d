//! AArch64 kernels: NEON (Advanced SIMD).
//!
//! NEON is part of the AArch64 baseline, but it is still detected at run time
//! (`is_aarch64_feature_detected!`, cached by std and again here) so the rule
//! "a table exists only for an ISA the CPU reported" holds on every target.

use std::sync::OnceLock;

use super::KernelTable;

mod neon;

/// The NEON table when the CPU has Advanced SIMD.
pub(super) fn neon_table() -> Option<&'static KernelTable> {
    static TABLE: OnceLock<Option<&'static KernelTable>> = OnceLock::new();
    *TABLE.get_or_init(|| std::arch::is_aarch64_feature_detected!("neon").then_some(&neon::TABLE))
}
