//! Arbitrary bytes as a saved HNSW index: open it as a view (O(1) checks
//! only, like `open_mmap`) and search it. A corrupt graph may give any
//! answer but must never panic or touch memory out of bounds; `verify`
//! must then return normally (Ok or Err).
//!
//! The first byte selects a mode: with its low bit set the header checksum
//! is repaired first, so the HNSW-level checks behind it are reached.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use swann::index::hnsw::Hnsw;
use swann::store::{format, IndexFile};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut buf = rest.to_vec();
    if mode & 1 == 1 {
        format::fix_header_checksum(&mut buf);
    }
    let Ok(file) = IndexFile::from_bytes(&buf) else {
        return;
    };
    let Ok(index) = Hnsw::from_index_file(Arc::new(file), swann::kernels::active()) else {
        return;
    };
    let q: Vec<f32> = (0..index.dim())
        .map(|i| (i % 7) as f32 * 0.25 - 0.5)
        .collect();
    let _ = index.search(&q, 5, 16);
    let _ = index.labels();
    let _ = index.verify();
});
