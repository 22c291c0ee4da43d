//! The 4-bit FastScan kernel: every variant of every ISA this CPU runs
//! returns the scalar reference's sums, bit for bit, for every number of
//! sub-spaces (odd ones, and past the 16-bit flush), every block count and
//! the extreme tables; packing round-trips, pads with code 0 and refuses
//! what it cannot pack; bad lengths are refused. The product quantizer's
//! table and encoder kernels give the definition's bits on every variant.

mod common;

use common::{all_kernel_variants as all_variants, XorShift as Rng};
use swann::kernels::fastscan::{self, PackError, BLOCK, FLUSH};
use swann::kernels::{pq4_encode_layout, PQ4_ENCODE_LANES};

/// The definition, from unpacked rows: `sum over j of lut[j * 16 + code_j]`.
fn exact(lut: &[u8], rows: &[u8], m: usize) -> Vec<u32> {
    rows.chunks_exact(m)
        .map(|row| {
            row.iter()
                .enumerate()
                .map(|(j, &c)| u32::from(lut[j * 16 + usize::from(c)]))
                .sum()
        })
        .collect()
}

/// Packs `n` rows, runs every variant over the blocks and compares each
/// vector's sum (padding vectors included) with the definition.
fn check(lut: &[u8], rows: &[u8], m: usize, what: &str) {
    let n = rows.len() / m;
    let mut blocks = Vec::new();
    fastscan::pack_blocks(rows, m, &mut blocks).unwrap();
    let nblocks = n.div_ceil(BLOCK);
    assert_eq!(blocks.len(), nblocks * m * 16);
    let mut padded = rows.to_vec();
    padded.resize(nblocks * BLOCK * m, 0);
    let want = exact(lut, &padded, m);
    for t in all_variants() {
        let mut out = vec![u32::MAX; nblocks * BLOCK];
        t.fastscan_u4(lut, &blocks, m, &mut out);
        assert_eq!(out, want, "{} {what}, m {m}, {n} vectors", t.variant());
    }
}

#[test]
fn every_variant_matches_the_definition_for_every_m() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for m in (1..=70).chain([127, 128, 129, 255, 256, 257, 300, 511, 513, 600]) {
        let lut = rng.bytes(m * 16);
        for n in [1usize, 31, 32, 33, 64, 100, 256] {
            if m > 130 && n > 64 {
                continue;
            }
            let rows = rng.codes(n * m);
            check(&lut, &rows, m, "random");
        }
    }
}

#[test]
fn all_255_tables_do_not_overflow_past_the_flush() {
    // Every lookup 255: the largest sum per sub-space, at m around and far
    // past the 16-bit flush, with all-0 and all-15 codes and random ones.
    let mut rng = Rng(3);
    for m in [
        FLUSH - 1,
        FLUSH,
        FLUSH + 1,
        2 * FLUSH,
        2 * FLUSH + 3,
        1000,
        4099,
    ] {
        let lut = vec![255u8; m * 16];
        for rows in [vec![0u8; 40 * m], vec![15u8; 40 * m], rng.codes(40 * m)] {
            check(&lut, &rows, m, "all-255");
        }
        // The sum itself, not only agreement with the definition.
        let mut blocks = Vec::new();
        fastscan::pack_blocks(&vec![15u8; 32 * m], m, &mut blocks).unwrap();
        for t in all_variants() {
            let mut out = vec![0u32; 32];
            t.fastscan_u4(&lut, &blocks, m, &mut out);
            assert!(out.iter().all(|&s| s == 255 * m as u32), "{}", t.variant());
        }
    }
}

#[test]
fn each_nibble_reaches_its_own_vector() {
    // One vector at a time holds code 15 in one sub-space, all others 0;
    // the table gives code 15 a value naming the sub-space.
    for m in [1usize, 2, 3, 4, 5, 8, 9] {
        let lut: Vec<u8> = (0..m * 16)
            .map(|e| if e % 16 == 15 { 1 + (e / 16) as u8 } else { 0 })
            .collect();
        for v in 0..BLOCK {
            for j in 0..m {
                let mut rows = vec![0u8; BLOCK * m];
                rows[v * m + j] = 15;
                let mut blocks = Vec::new();
                fastscan::pack_blocks(&rows, m, &mut blocks).unwrap();
                for t in all_variants() {
                    let mut out = vec![0u32; BLOCK];
                    t.fastscan_u4(&lut, &blocks, m, &mut out);
                    for (i, &s) in out.iter().enumerate() {
                        let want = if i == v { 1 + j as u32 } else { 0 };
                        assert_eq!(s, want, "{} m {m} v {v} j {j} i {i}", t.variant());
                    }
                }
            }
        }
    }
}

#[test]
fn packing_round_trips_and_pads_with_zero_codes() {
    let mut rng = Rng(11);
    for m in [1usize, 2, 7, 16, 33] {
        for n in [0usize, 1, 15, 16, 17, 31, 32, 33, 70] {
            let rows = rng.codes(n * m);
            // Appends after what `out` already holds.
            let mut blocks = vec![0xaa; 5];
            fastscan::pack_blocks(&rows, m, &mut blocks).unwrap();
            assert_eq!(&blocks[..5], &[0xaa; 5]);
            let blocks = &blocks[5..];
            let nblocks = n.div_ceil(BLOCK);
            assert_eq!(blocks.len(), nblocks * fastscan::block_bytes(m));
            assert_eq!(fastscan::unpack_blocks(blocks, m, n), rows);
            // One vector at a time, in any order, into zeroed blocks: the
            // same bytes; and each read back whole.
            let mut filled = vec![0u8; blocks.len()];
            for v in (0..n).rev() {
                fastscan::put_codes(&mut filled, m, v, &rows[v * m..][..m]);
            }
            assert_eq!(filled, blocks, "m {m} n {n}");
            let mut back = vec![0xffu8; m];
            for v in 0..n {
                fastscan::get_codes(blocks, m, v, &mut back);
                assert_eq!(back, &rows[v * m..][..m]);
            }
            for v in n..nblocks * BLOCK {
                for j in 0..m {
                    assert_eq!(fastscan::code(blocks, m, v, j), 0, "padding {v}");
                }
            }
        }
    }
    // The documented byte order: byte i of sub-space j is
    // code_j(i) | code_j(i + 16) << 4.
    let m = 3;
    let rows: Vec<u8> = (0..BLOCK * m).map(|e| (e % 16) as u8).collect();
    let mut blocks = Vec::new();
    fastscan::pack_blocks(&rows, m, &mut blocks).unwrap();
    for j in 0..m {
        for i in 0..16 {
            let want = rows[i * m + j] | rows[(i + 16) * m + j] << 4;
            assert_eq!(blocks[j * 16 + i], want);
        }
    }
}

#[test]
fn packing_refuses_what_it_cannot_pack() {
    let mut out = vec![1u8, 2];
    assert_eq!(
        fastscan::pack_blocks(&[0, 1, 2, 16, 4, 5], 3, &mut out),
        Err(PackError::CodeOutOfRange {
            row: 1,
            subspace: 0,
            code: 16
        })
    );
    assert_eq!(
        fastscan::pack_blocks(&[0, 1, 2, 3, 4], 3, &mut out),
        Err(PackError::Length { len: 5, m: 3 })
    );
    assert_eq!(
        fastscan::pack_blocks(&[0, 1], 0, &mut out),
        Err(PackError::SubspaceCount(0))
    );
    assert_eq!(out, [1, 2], "nothing appended on error");
}

#[test]
#[should_panic(expected = "lookup table length")]
fn a_short_table_is_refused() {
    let mut out = [0u32; 32];
    swann::kernels::active().fastscan_u4(&[0; 31], &[0; 32], 2, &mut out);
}

#[test]
#[should_panic(expected = "not a multiple")]
fn a_partial_block_is_refused() {
    let mut out = [0u32; 32];
    swann::kernels::active().fastscan_u4(&[0; 32], &[0; 40], 2, &mut out);
}

#[test]
#[should_panic(expected = "output length")]
fn a_short_output_is_refused() {
    let mut out = [0u32; 63];
    swann::kernels::active().fastscan_u4(&[0; 32], &[0; 64], 2, &mut out);
}

#[test]
#[should_panic(expected = "sub-spaces")]
fn zero_subspaces_are_refused() {
    swann::kernels::active().fastscan_u4(&[], &[], 0, &mut []);
}

#[test]
fn no_blocks_is_no_work() {
    for t in all_variants() {
        t.fastscan_u4(&[7; 48], &[], 3, &mut []);
    }
}

/// `KernelTable::pq4_table`'s definition, written out: per sub-space and
/// centroid the partial distance summed component by component, then each
/// sub-space shifted down by its minimum; the minima's sum returned.
fn pq4_table_reference(q: &[f32], cent_t: &[f32], width: usize, l2: bool) -> (Vec<f32>, f32) {
    let m = q.len().div_ceil(width);
    let mut out = vec![0.0f32; 16 * m];
    for (d, &x) in q.iter().enumerate() {
        for c in 0..16 {
            let v = cent_t[d * 16 + c];
            let acc = &mut out[(d / width) * 16 + c];
            if l2 {
                *acc += (x - v) * (x - v);
            } else {
                *acc -= x * v;
            }
        }
    }
    let mut bias = 0.0f32;
    for t in out.chunks_exact_mut(16) {
        let lo = t.iter().copied().fold(f32::INFINITY, f32::min);
        bias += lo;
        t.iter_mut().for_each(|x| *x -= lo);
    }
    (out, bias)
}

#[test]
fn pq4_table_is_the_definition_on_every_variant() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for dim in [1usize, 2, 3, 7, 16, 31, 128, 129, 384] {
        for width in [1usize, 2, 3, 4, 8] {
            let q: Vec<f32> = (0..dim).map(|_| rng.normal() * 10.0).collect();
            let cent_t: Vec<f32> = (0..16 * dim).map(|_| rng.normal() * 10.0).collect();
            for l2 in [true, false] {
                let (want, bias) = pq4_table_reference(&q, &cent_t, width, l2);
                assert!(want.iter().all(|&x| x >= 0.0));
                for t in all_variants() {
                    let mut out = vec![f32::NAN; want.len()];
                    let got = t.pq4_table(&q, &cent_t, width, l2, &mut out);
                    let what = format!("{} dim {dim} width {width} l2 {l2}", t.variant());
                    assert_eq!(got.to_bits(), bias.to_bits(), "{what}");
                    let (a, b): (Vec<u32>, Vec<u32>) = (
                        out.iter().map(|x| x.to_bits()).collect(),
                        want.iter().map(|x| x.to_bits()).collect(),
                    );
                    assert_eq!(a, b, "{what}");
                }
            }
        }
    }
}

#[test]
fn pq4_table_reports_overflow_and_refuses_bad_lengths() {
    for t in all_variants() {
        let q = [3.0e19f32, 0.0];
        let cent_t = vec![-3.0e19f32; 32];
        let mut out = vec![0.0f32; 32];
        assert!(
            t.pq4_table(&q, &cent_t, 1, true, &mut out).is_nan(),
            "{}",
            t.variant()
        );
        let r = std::panic::catch_unwind(|| {
            let mut out = vec![0.0f32; 16];
            t.pq4_table(&[1.0, 2.0], &[0.0; 32], 1, true, &mut out)
        });
        assert!(
            r.is_err(),
            "{}: a table too short for two sub-spaces",
            t.variant()
        );
        let r = std::panic::catch_unwind(|| {
            let mut out = vec![0.0f32; 16];
            t.pq4_table(&[1.0], &[0.0; 32], 1, true, &mut out)
        });
        assert!(r.is_err(), "{}: centroids of the wrong length", t.variant());
    }
}

/// `KernelTable::pq4_encode`'s definition, written out as a quantizer's
/// encoder loops: per sub-space, centroid after centroid, the squared
/// distance summed component by component; the first strictly smaller one
/// wins.
fn pq4_encode_reference(v: &[f32], cent_t: &[f32], width: usize) -> Vec<u8> {
    v.chunks(width)
        .enumerate()
        .map(|(j, vj)| {
            let mut best = (0u8, f32::INFINITY);
            for c in 0..16 {
                let d: f32 = vj
                    .iter()
                    .enumerate()
                    .map(|(i, &x)| {
                        let t = x - cent_t[(j * width + i) * 16 + c];
                        t * t
                    })
                    .sum();
                if d < best.1 {
                    best = (c as u8, d);
                }
            }
            best.0
        })
        .collect()
}

#[test]
fn pq4_encode_is_the_definition_on_every_variant() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for dim in [1usize, 2, 3, 7, 16, 31, 128, 129, 384] {
        for width in [1usize, 2, 3, 4, 8] {
            // Plain centroids; centroids on a coarse grid (many equal
            // distances: ties go to the lowest index); and centroids that
            // repeat (exact ties).
            for kind in 0..3 {
                let cent_t: Vec<f32> = (0..16 * dim)
                    .map(|i| match kind {
                        0 => rng.normal() * 10.0,
                        1 => (rng.normal() * 2.0).round(),
                        _ => ((i % 16) / 4) as f32 + (i / 16) as f32,
                    })
                    .collect();
                for _ in 0..8 {
                    let v: Vec<f32> = (0..dim)
                        .map(|_| match kind {
                            0 => rng.normal() * 10.0,
                            _ => {
                                (rng.normal() * 2.0).round()
                                    + 0.5 * (rng.normal() > 0.0) as u8 as f32
                            }
                        })
                        .collect();
                    let want = pq4_encode_reference(&v, &cent_t, width);
                    let cent_e = pq4_encode_layout(&cent_t, width);
                    for t in all_variants() {
                        let mut got = vec![0xffu8; want.len()];
                        t.pq4_encode(&v, &cent_e, width, &mut got);
                        assert_eq!(
                            got,
                            want,
                            "{} dim {dim} width {width} kind {kind}",
                            t.variant()
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn pq4_encode_takes_the_first_of_infinite_distances_and_refuses_bad_lengths() {
    for t in all_variants() {
        // Every distance overflows to infinity: the first centroid, as the
        // encoder's loop (nothing strictly below infinity) gives.
        let v = [3.0e19f32, -3.0e19];
        let cent_t: Vec<f32> = (0..32)
            .map(|i| if i < 16 { -3.0e19 } else { 3.0e19 })
            .collect();
        let mut codes = [9u8; 2];
        t.pq4_encode(&v, &pq4_encode_layout(&cent_t, 1), 1, &mut codes);
        assert_eq!(codes, [0, 0], "{}", t.variant());
        // Some overflow, one does not: that one.
        let mut cent_t = cent_t;
        cent_t[5] = 3.0e19;
        t.pq4_encode(&v, &pq4_encode_layout(&cent_t, 1), 1, &mut codes);
        assert_eq!(codes, [5, 0], "{}", t.variant());
        // The same in whole lane groups (16 one-component sub-spaces):
        // every lane overflows but sub-space 3, whose centroid 7 is exact.
        let v: Vec<f32> = (0..16)
            .map(|d| if d % 2 == 0 { 3.0e19 } else { -3.0e19 })
            .collect();
        let mut cent_t: Vec<f32> = (0..16 * 16).map(|i| -v[i / 16]).collect();
        cent_t[3 * 16 + 7] = v[3];
        let mut codes = [9u8; 16];
        t.pq4_encode(&v, &pq4_encode_layout(&cent_t, 1), 1, &mut codes);
        let mut want = [0u8; 16];
        want[3] = 7;
        assert_eq!(codes, want, "{}", t.variant());
        let r = std::panic::catch_unwind(|| {
            let mut codes = [0u8; 1];
            t.pq4_encode(&[1.0, 2.0], &[0.0; 32], 1, &mut codes)
        });
        assert!(r.is_err(), "{}: one code for two sub-spaces", t.variant());
        let r = std::panic::catch_unwind(|| {
            let mut codes = [0u8; 1];
            t.pq4_encode(&[1.0], &[0.0; 32], 1, &mut codes)
        });
        assert!(r.is_err(), "{}: centroids of the wrong length", t.variant());
    }
}

#[test]
fn pq4_encode_layout_puts_each_value_where_its_documentation_says() {
    const L: usize = PQ4_ENCODE_LANES;
    for (dim, width) in [(7usize, 1usize), (16, 1), (35, 2), (100, 3), (384, 4)] {
        // Value `d * 16 + c` of `cent_t` is `d * 16 + c`: every value tells
        // where it came from.
        let cent_t: Vec<f32> = (0..16 * dim).map(|i| i as f32).collect();
        let e = pq4_encode_layout(&cent_t, width);
        assert_eq!(e.len(), cent_t.len());
        let groups = (dim / width) / L;
        for g in 0..groups {
            for c in 0..16 {
                for i in 0..width {
                    for l in 0..L {
                        let d = (g * L + l) * width + i;
                        assert_eq!(e[((g * 16 + c) * width + i) * L + l], (d * 16 + c) as f32);
                    }
                }
            }
        }
        let d0 = groups * L * width;
        assert_eq!(&e[16 * d0..], &cent_t[16 * d0..], "dim {dim} width {width}");
    }
}
