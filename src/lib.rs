//! swann: approximate nearest-neighbour search on hand-vectorized distance
//! kernels chosen at run time for the CPU it runs on.
//!
//! - [`kernels`]: dot, squared L2, cosine, Manhattan, Hamming, normalization,
//!   one implementation per ISA (scalar, AVX2+FMA, AVX-512, NEON) behind a
//!   cached dispatch table.
//! - [`index`]: the indexes built on them (HNSW, exact flat scan).
//! - [`store`]: aligned storage for vectors and graph records.
//! - [`formats`]: other libraries' index files (hnswlib's, Annoy's).
//! - [`quant`]: quantizers (8-bit scalar codes, 4-bit product codes for the
//!   FastScan kernel, RaBitQ's 1-bit codes) and their distance estimates.
//! - [`io`]: readers for the standard vector files (`.fvecs`, `.bvecs`, `.ivecs`, `.npy`).
//! - [`metric`] and [`error`]: the base layer every other module uses.
//! - [`prelude`]: the common names, and [`index::api::AnnIndex`], the one
//!   trait every index implements.
//!
//! Layers point one way: `kernels` depends on nothing else in the crate;
//! `metric` and `error` on `kernels` at most; `store` on those; `index` on
//! all of them; `formats` (foreign files) on `store` and `index`. Nothing
//! below `index` imports from it.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![deny(clippy::missing_errors_doc)]
#![warn(missing_docs)]

pub mod error;
pub mod formats;
pub mod index;
pub mod io;
pub mod kernels;
pub mod metric;
pub mod prelude;
pub mod quant;
mod rng;
pub mod store;

pub use error::{Error, Result};
pub use metric::Metric;
