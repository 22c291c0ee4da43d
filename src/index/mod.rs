//! Indexes built on the kernels.

pub mod api;
pub mod flat;
#[cfg(feature = "forest")]
pub mod forest;
pub mod hnsw;
#[cfg(feature = "lsh")]
pub mod lsh;
#[cfg(feature = "sharded")]
pub mod sharded;
/// The metric type lives in the base layer ([`crate::metric`]); this path
/// stays for code that named it here.
pub use crate::metric;

/// One search result: the external label and its distance to the query.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Neighbor {
    /// The label given at insert.
    pub label: u64,
    /// Distance to the query under the index's metric (smaller is closer).
    pub distance: f32,
}
