//! Arbitrary bytes as an index file: parse, typed section access, verify.
//!
//! The first input byte selects a mode. With its low bit set the header
//! checksum is recomputed before parsing, so the fuzzer gets past the
//! checksum and exercises the structural checks behind it (offsets,
//! lengths, overlaps, counts, codes), which random bytes almost never would.
#![no_main]

use libfuzzer_sys::fuzz_target;
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
    let h = file.header();
    assert!(h.n_items <= h.capacity && h.dim >= 1);
    for s in file.sections() {
        let bytes = file
            .section_bytes(s.id)
            .expect("a listed section is readable");
        assert_eq!(bytes.len() as u64, s.len);
        assert_eq!(bytes.as_ptr() as usize % 64, 0);
        assert!(s.offset + s.len <= file.file_len());
        let _ = file.section::<u32>(s.id);
        let _ = file.section::<u64>(s.id);
        let _ = file.section::<f32>(s.id);
        let _ = file.section_exact::<u32>(s.id, h.n_items);
    }
    let _ = file.section::<u8>(u32::MAX);
    let _ = file.verify();
});
