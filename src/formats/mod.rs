//! Other libraries' index files, read in one place.
//!
//! - [`hnswlib`]: the files hnswlib's `saveIndex` writes (0.7 and 0.8),
//!   parsed and checked field by field; [`Hnsw::import_hnswlib`] turns one
//!   into a swann HNSW index.
#![cfg_attr(
    feature = "forest",
    doc = "- [`annoy`] (feature `forest`): the files Annoy 1.17 writes, memory-mapped
  and searched as Annoy searches them ([`annoy::AnnoyIndex`])."
)]
#![cfg_attr(
    not(feature = "forest"),
    doc = "- `annoy` (feature `forest`): the files Annoy 1.17 writes, memory-mapped
  and searched as Annoy searches them."
)]
//!
//! A reader here takes bytes it did not write: every size, offset and link is
//! validated before use, so a truncated or corrupt file gives an error, not a
//! panic or a loop (the fuzz targets feed them arbitrary bytes). Files of
//! swann's own format are [`crate::store`]'s, which also maps every file.
//!
//! [`Hnsw::import_hnswlib`]: crate::index::hnsw::Hnsw::import_hnswlib

#[cfg(feature = "forest")]
pub mod annoy;
pub mod hnswlib;
