//! AArch64 kernels: NEON (Advanced SIMD).
//!
//! NEON is part of the AArch64 baseline, but it is still detected at run time
//! (`is_aarch64_feature_detected!`, cached by std and again here) so the rule
//! "a table exists only for an ISA the CPU reported" holds on every target.

use std::sync::OnceLock;

use super::KernelTable;

mod neon;

/// The NEON tables the CPU can run, best first: with the dot-product
/// instructions (`sdot`/`udot`, Armv8.2 dotprod: Cortex-A55/A75 and later,
/// Neoverse, Apple M1 and later) when it has them, then the base table.
pub(super) fn neon_variants() -> &'static [&'static KernelTable] {
    static VARIANTS: OnceLock<Vec<&'static KernelTable>> = OnceLock::new();
    VARIANTS.get_or_init(|| {
        let mut v = Vec::new();
        if std::arch::is_aarch64_feature_detected!("neon") {
            if std::arch::is_aarch64_feature_detected!("dotprod") {
                v.push(&neon::TABLE_DOTPROD);
            }
            v.push(&neon::TABLE);
        }
        v
    })
}
