//! Python bindings for swann (`swann._swann`): the native index classes,
//! with numpy arrays in and out and the GIL released while they work. The
//! pure-Python package `swann` re-exports them and adds drop-in modules for
//! hnswlib, Annoy and N2.
//!
//! There is no `unsafe` code here: numpy buffers are read through
//! `PyReadonlyArray` borrows and results are handed over as owned `Vec`s.
#![forbid(unsafe_code)]

mod common;
mod flat;
#[cfg(feature = "forest")]
mod forest;
mod hnsw;
mod lsh;
mod sharded;

use pyo3::prelude::*;

/// Native classes of swann: :class:`Hnsw`, :class:`Flat`, :class:`Lsh`,
/// (with the forest feature) :class:`Forest`, and :class:`ShardedIndex`
/// over shard files named by a manifest, with its helper functions.
#[pymodule]
fn _swann(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<hnsw::PyHnsw>()?;
    m.add_class::<flat::PyFlat>()?;
    m.add_class::<lsh::PyLsh>()?;
    #[cfg(feature = "forest")]
    m.add_class::<forest::PyForest>()?;
    m.add_class::<sharded::PyShardedIndex>()?;
    m.add_function(wrap_pyfunction!(sharded::write_manifest, m)?)?;
    m.add_function(wrap_pyfunction!(sharded::read_manifest, m)?)?;
    m.add_function(wrap_pyfunction!(sharded::shard_rows, m)?)?;
    m.add_function(wrap_pyfunction!(sharded::merge_top_k, m)?)?;
    m.add_function(wrap_pyfunction!(sharded::file_checksum, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("FULL_MESSAGE", hnsw::FULL)?;
    m.add("TOO_FEW_MESSAGE", common::TOO_FEW)?;
    Ok(())
}
