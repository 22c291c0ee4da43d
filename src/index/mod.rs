//! Indexes built on the kernels.

pub mod flat;
pub mod forest;
pub mod hnsw;
pub mod lsh;
pub mod metric;

/// One search result: the external label and its distance to the query.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Neighbor {
    /// The label given at insert.
    pub label: u64,
    /// Distance to the query under the index's metric (smaller is closer).
    pub distance: f32,
}
