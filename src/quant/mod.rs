//! Quantizers: compact codes of `f32` vectors and the distance estimates
//! that quantized search runs on, between the store and the indexes.
//!
//! - [`Sq8`]: scalar 8-bit codes, one byte per component on a per-dimension
//!   grid trained on a sample (optionally clipped at quantiles, so a few
//!   outliers do not stretch the grid for everyone). Distances are estimated
//!   from one exact integer dot product per row
//!   ([`KernelTable::dot_u8i8`](crate::kernels::KernelTable::dot_u8i8), with
//!   VNNI, AVX-VNNI or dotprod where the CPU has them) plus per-row terms,
//!   and the best candidates are reranked exactly by the caller.

mod sq8;

pub use sq8::{Sq8, Sq8Options, Sq8Query};
