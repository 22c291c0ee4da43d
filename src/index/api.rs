//! One API across the indexes: [`AnnIndex`], implemented by HNSW
//! ([`HnswIndex`](super::hnsw::HnswIndex)), the exact
//! [`FlatIndex`](super::flat::FlatIndex) and, with the `forest` feature, the
#![cfg_attr(
    feature = "forest",
    doc = "random-projection [`Forest`](super::forest::Forest)."
)]
#![cfg_attr(not(feature = "forest"), doc = "random-projection `Forest`.")]
//!
//! Code that is generic over the index (a benchmark harness, a service that
//! lets its users pick the method) writes against the trait; each index's own
//! methods stay for what only it has (HNSW's filters and removal, the
//! forest's tree count and `search_k`, ...).
//!
//! ```
//! use swann::prelude::*;
//!
//! fn fill_and_query<I: AnnIndex<Elem = f32>>(index: &mut I) -> swann::Result<Vec<Neighbor>> {
//!     for i in 0..100u64 {
//!         let x = i as f32;
//!         index.add(i, &[x.sin(), x.cos(), x * 0.01])?;
//!     }
//!     index.search(&[0.0, 1.0, 0.0], 3, Effort::Default)
//! }
//!
//! let mut exact = FlatIndex::new(3, Metric::L2)?;
//! let mut graph = Hnsw::builder(3, Metric::L2).build()?;
//! let a = fill_and_query(&mut exact)?;
//! let b = fill_and_query(&mut graph)?;
//! assert_eq!(a[0].label, 0);
//! assert_eq!(a[0], b[0]);
//! # Ok::<(), swann::Error>(())
//! ```

use std::path::Path;

use super::Neighbor;
use crate::{Metric, Result};

/// How much work a search may do, in the index's own knob.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Effort {
    /// The index's default: HNSW explores `max(k, 64)` candidates (`ef`),
    /// the forest looks at `k * n_trees` items (Annoy's `search_k`
    /// default); the flat index is always exact.
    #[default]
    Default,
    /// HNSW's `ef` (raised to `k`), the forest's `search_k`; exact indexes
    /// ignore it.
    Candidates(usize),
}

/// An approximate (or exact) nearest-neighbour index over labelled vectors.
pub trait AnnIndex {
    /// The element type of a vector: `f32`, or `u64` words of packed bits
    /// for binary HNSW.
    type Elem;

    /// Components per vector (bits for binary indexes).
    fn dim(&self) -> usize;

    /// The distance the index orders results by (smaller is closer).
    fn metric(&self) -> Metric;

    /// Vectors in the index (deleted ones not counted; for the forest, ids
    /// that hold an item, where Annoy's `n_items` is the largest id plus one).
    fn len(&self) -> usize;

    /// Whether the index holds no vectors.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds `v` under `label`.
    ///
    /// # Errors
    /// The index's own insert errors: a vector of the wrong length or with
    /// non-finite components, a full index that cannot grow, a label the
    /// index cannot hold (the forest's ids are `u32`), or an index that no
    /// longer takes vectors (a built forest).
    fn add(&mut self, label: u64, v: &[Self::Elem]) -> Result<()>;

    /// The `k` nearest labels to `query`, nearest first, with their
    /// distances under [`AnnIndex::metric`].
    ///
    /// # Errors
    /// [`Error::ZeroK`](crate::Error::ZeroK) for `k == 0` (on every index);
    /// a query of the wrong length or with non-finite components, or an
    /// index that cannot search yet (a forest whose trees are not built).
    fn search(&self, query: &[Self::Elem], k: usize, effort: Effort) -> Result<Vec<Neighbor>>;

    /// Writes the index to `path` atomically (the old file, if any, stays
    /// whole until the new one is complete).
    ///
    /// # Errors
    /// I/O errors, and indexes that cannot be saved in their state (an
    /// unbuilt forest).
    fn save(&self, path: &Path) -> Result<()>;
}

/// HNSW's `ef` for [`Effort::Default`].
const HNSW_DEFAULT_EF: usize = 64;

impl<S: super::hnsw::StoredSpace> AnnIndex for super::hnsw::HnswIndex<S> {
    type Elem = S::Elem;

    fn dim(&self) -> usize {
        super::hnsw::HnswIndex::dim(self)
    }
    fn metric(&self) -> Metric {
        super::hnsw::HnswIndex::metric(self)
    }
    fn len(&self) -> usize {
        super::hnsw::HnswIndex::len(self)
    }
    fn add(&mut self, label: u64, v: &[S::Elem]) -> Result<()> {
        self.insert(label, v)
    }
    fn search(&self, query: &[S::Elem], k: usize, effort: Effort) -> Result<Vec<Neighbor>> {
        let ef = match effort {
            Effort::Default => HNSW_DEFAULT_EF,
            Effort::Candidates(ef) => ef,
        };
        super::hnsw::HnswIndex::search(self, query, k, ef.max(k))
    }
    fn save(&self, path: &Path) -> Result<()> {
        super::hnsw::HnswIndex::save(self, path)
    }
}

impl AnnIndex for super::flat::FlatIndex {
    type Elem = f32;

    fn dim(&self) -> usize {
        super::flat::FlatIndex::dim(self)
    }
    fn metric(&self) -> Metric {
        super::flat::FlatIndex::metric(self)
    }
    fn len(&self) -> usize {
        super::flat::FlatIndex::len(self)
    }
    fn add(&mut self, label: u64, v: &[f32]) -> Result<()> {
        super::flat::FlatIndex::add(self, label, v)
    }
    fn search(&self, query: &[f32], k: usize, _effort: Effort) -> Result<Vec<Neighbor>> {
        super::flat::FlatIndex::search(self, query, k)
    }
    fn save(&self, path: &Path) -> Result<()> {
        super::flat::FlatIndex::save(self, path)
    }
}

#[cfg(feature = "forest")]
impl AnnIndex for super::forest::Forest {
    type Elem = f32;

    fn dim(&self) -> usize {
        super::forest::Forest::dim(self)
    }
    fn metric(&self) -> Metric {
        super::forest::Forest::metric(self)
    }
    fn len(&self) -> usize {
        self.n_present()
    }
    fn add(&mut self, label: u64, v: &[f32]) -> Result<()> {
        let id = u32::try_from(label).map_err(|_| {
            crate::Error::InvalidParameter(format!(
                "label {label}: the forest's ids are u32 (at most {})",
                u32::MAX
            ))
        })?;
        self.add_item(id, v)
    }
    fn search(&self, query: &[f32], k: usize, effort: Effort) -> Result<Vec<Neighbor>> {
        let search_k = match effort {
            Effort::Default => None,
            Effort::Candidates(n) => Some(n),
        };
        Ok(self
            .nns_by_vector(query, k, search_k)?
            .into_iter()
            .map(|h| Neighbor {
                label: u64::from(h.id),
                distance: h.distance,
            })
            .collect())
    }
    fn save(&self, path: &Path) -> Result<()> {
        super::forest::Forest::save(self, path)
    }
}
