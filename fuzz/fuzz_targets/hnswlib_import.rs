//! Arbitrary bytes as an hnswlib save_index file (dimension from the first
//! byte): the parser must return an error or arrays whose every link id is
//! in range.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swann::formats::hnswlib;

fuzz_target!(|data: &[u8]| {
    let Some((&d, rest)) = data.split_first() else {
        return;
    };
    let dim = usize::from(d % 32) + 1;
    let Ok(idx) = hnswlib::parse(rest, dim) else {
        return;
    };
    assert_eq!(idx.vectors.len(), idx.len() * dim);
    for id in 0..idx.len() {
        assert!(idx.links0(id).iter().all(|&t| (t as usize) < idx.len()));
        for l in 1..=usize::from(idx.levels[id]) {
            assert!(idx
                .upper_links(id, l)
                .iter()
                .all(|&t| (t as usize) < idx.len()));
        }
    }
});
