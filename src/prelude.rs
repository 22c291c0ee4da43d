//! The names most programs need, in one import: `use swann::prelude::*;`.

pub use crate::index::api::{AnnIndex, Effort};
pub use crate::index::flat::FlatIndex;
#[cfg(feature = "forest")]
pub use crate::index::forest::Forest;
pub use crate::index::hnsw::{BinaryHnsw, Hnsw, HnswIndex, Quantization};
pub use crate::index::Neighbor;
pub use crate::kernels::{self, Isa, KernelTable};
pub use crate::{Error, Metric, Result};
