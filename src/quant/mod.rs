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
//! - [`Pq4`]: 4-bit product codes, one of 16 k-means centroids per
//!   sub-space of a few components (half a byte per two components by
//!   default). A query's table of partial distances, quantized to bytes,
//!   is summed for 32 rows at once by the FastScan kernel
//!   ([`KernelTable::fastscan_u4`](crate::kernels::KernelTable::fastscan_u4));
//!   the estimates are coarser than [`Sq8`]'s and are meant to be reranked.
//! - [`RaBitQ`]: one bit per dimension, the signs of the vector's offset
//!   from a centroid after a random rotation, with two per-vector factors
//!   (RaBitQ, Gao and Long 2024). A query is rotated and quantized to 4
//!   bits, and each estimate takes four popcounts of code XOR query bit
//!   plane ([`KernelTable::hamming`](crate::kernels::KernelTable::hamming))
//!   and comes with an error bound, so the caller reranks only the rows
//!   that bound leaves in doubt. Squared L2 only.

mod pq4;
mod rabitq;
mod sq8;

pub use pq4::{Pq4, Pq4Lut, Pq4Options, Pq4Table};
pub use rabitq::{RaBitQ, RaBitQCodes, RaBitQEstimate, RaBitQFactors, RaBitQOptions, RaBitQQuery};
pub use sq8::{Sq8, Sq8Options, Sq8Query};
