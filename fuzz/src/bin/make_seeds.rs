//! Writes seed inputs for the fuzz targets into `fuzz/seeds/<target>/`:
//! valid files of a few shapes, each with the mode byte the target expects.

use std::fs;
use std::path::Path;

use swann::index::hnsw::Hnsw;
use swann::store::{ElemType, FileWriter, Header, IndexKind};
use swann::Metric;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/index_file");
    fs::create_dir_all(&dir).unwrap();
    let vectors: Vec<f32> = (0..48).map(|i| i as f32).collect();
    let links: Vec<u32> = (0..20).collect();
    let odd = [1u8, 2, 3, 4, 5];

    let mut h = Header::new(IndexKind::Hnsw, Metric::L2, ElemType::F32, 4);
    h.n_items = 12;
    h.capacity = 16;
    h.m = 4;
    let mut w = FileWriter::new(h.clone());
    w.add_pod_section(1, &vectors).unwrap();
    w.add_pod_section(2, &links).unwrap();
    w.add_section(3, &odd).unwrap();
    w.add_section(4, &[]).unwrap();
    let full = w.to_bytes();

    let empty = FileWriter::new(Header::new(
        IndexKind::Flat,
        Metric::Hamming,
        ElemType::U64Bits,
        64,
    ))
    .to_bytes();

    for (name, bytes) in [("hnsw_like", &full), ("no_sections", &empty)] {
        for mode in [0u8, 1] {
            let mut input = vec![mode];
            input.extend_from_slice(bytes);
            fs::write(dir.join(format!("{name}_{mode}")), input).unwrap();
        }
    }

    // hnswlib_import: a hand-made 3-element, 2-dimensional index (M = 2),
    // and the ip fixture; the first byte is the dimension minus one.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/hnswlib_import");
    fs::create_dir_all(&dir).unwrap();
    let mut f = vec![1u8];
    for v in [0u64, 3, 3, 36, 28, 20] {
        f.extend_from_slice(&v.to_le_bytes());
    }
    f.extend_from_slice(&0i32.to_le_bytes()); // maxlevel
    f.extend_from_slice(&0u32.to_le_bytes()); // entry point
    for v in [2u64, 4, 2] {
        f.extend_from_slice(&v.to_le_bytes());
    }
    f.extend_from_slice(&(1.0f64 / 2f64.ln()).to_le_bytes());
    f.extend_from_slice(&10u64.to_le_bytes());
    for id in 0u32..3 {
        f.extend_from_slice(&2u32.to_le_bytes());
        for other in (0u32..3).filter(|&o| o != id) {
            f.extend_from_slice(&other.to_le_bytes());
        }
        f.extend_from_slice(&[0u8; 8]); // unused link slots
        f.extend_from_slice(&(id as f32).to_le_bytes());
        f.extend_from_slice(&1.5f32.to_le_bytes());
        f.extend_from_slice(&(u64::from(id) + 100).to_le_bytes());
    }
    for _ in 0..3 {
        f.extend_from_slice(&0u32.to_le_bytes());
    }
    fs::write(dir.join("tiny"), &f).unwrap();
    let ip = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/hnswlib/ip.hnsw");
    let mut input = vec![15u8];
    input.extend_from_slice(&fs::read(ip).unwrap());
    fs::write(dir.join("ip_fixture"), input).unwrap();

    // hnsw_file: small saved indexes (the mode byte repairs nothing).
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/hnsw_file");
    fs::create_dir_all(&dir).unwrap();
    for (name, n, metric) in [
        ("l2_40", 40u64, swann::Metric::L2),
        ("cos_12", 12, swann::Metric::Cosine),
    ] {
        let mut index = Hnsw::builder(3, metric)
            .m(2)
            .ef_construction(8)
            .build()
            .unwrap();
        for i in 0..n {
            let x = i as f32;
            index.insert(i, &[x.sin(), x.cos(), x * 0.1 + 0.5]).unwrap();
        }
        index.mark_deleted(1).unwrap();
        let path = dir.join(format!("{name}.tmp"));
        index.save(&path).unwrap();
        let mut input = vec![0u8];
        input.extend_from_slice(&fs::read(&path).unwrap());
        fs::remove_file(&path).unwrap();
        fs::write(dir.join(name), input).unwrap();
    }
}
