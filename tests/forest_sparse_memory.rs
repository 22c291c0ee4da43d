//! A forest over a huge, sparse id range (Annoy's `test_very_large_index`:
//! a few items with ids near 2^31 / 24) must not make the rows of the ids
//! never added resident: building and saving should cost memory for the
//! items, not for the file, whose vectors and norms are nearly all zeros.
//!
//! The peak resident set (`VmHWM`) is the process's, so this file holds
//! one test and nothing else runs in its process. Linux only (it reads
//! `/proc/self/status`).
#![cfg(all(feature = "forest", target_os = "linux"))]

use swann::index::forest::Forest;
use swann::store::OpenOptions;
use swann::Metric;

/// A field of `/proc/self/status`, in bytes.
fn status_bytes(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("procfs");
    let kib: u64 = s
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    kib << 10
}

#[test]
fn sparse_id_range_costs_memory_for_its_items_not_its_rows() {
    const MIB: u64 = 1 << 20;
    // 50 million ids: 800 MB of 16-byte rows and 200 MB of norms in the file.
    let first: u32 = 50_000_000;
    let mut f = Forest::new(3, Metric::Angular).unwrap();
    f.set_seed(5);
    let before = status_bytes("VmHWM:");
    for i in 0..100u32 {
        let x = i as f32;
        f.add_item(first + i, &[x.sin(), x.cos(), 1.0 + x / 100.0])
            .unwrap();
    }
    f.build(10, Some(2)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sparse.swf");
    f.save(&path).unwrap();
    let file_len = std::fs::metadata(&path).unwrap().len();
    let growth = status_bytes("VmHWM:").saturating_sub(before);
    // The index works and the file is as large as the id range makes it.
    assert_eq!(f.n_items(), first as usize + 100);
    assert_eq!(f.n_present(), 100);
    assert!(file_len > 900 * MIB, "file of {file_len} bytes");
    let hits = f.nns_by_item(first + 7, 3, None).unwrap();
    assert_eq!(hits[0].id, first + 7);
    drop(f);
    let g = Forest::open_mmap(&path, OpenOptions::default()).unwrap();
    assert_eq!(g.n_present(), 100);
    let x = 3.0f32;
    assert_eq!(
        g.item_vector(first + 3).unwrap(),
        [x.sin(), x.cos(), 1.0 + x / 100.0]
    );
    drop(g);
    // Growing the rows by copying made them all resident (800 MB and
    // more), and a vector of every row's norm another 200 MB; what is
    // left is the present-bit set (6 MB, held twice while building) and
    // the pages the items and trees touch.
    assert!(
        growth < 150 * MIB,
        "building and saving a forest of 100 items over {} ids raised the peak resident set by {} MiB (file: {} MiB)",
        first + 100,
        growth / MIB,
        file_len / MIB
    );
}
