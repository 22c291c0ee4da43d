//! The 8-bit integer kernels: every variant of every ISA this CPU runs
//! (VNNI, AVX-VNNI and dotprod ones included, and the base tables those
//! would replace) returns the exact integer, bit for bit, for every length,
//! offset and extreme value; batch and gather forms agree with the single
//! kernel.

mod common;

use common::{all_kernel_variants as all_variants, XorShift as Rng};
use swann::kernels::int8::MAX_INT_DIM;
use swann::kernels::{Isa, KernelTable};

fn dot_exact(q: &[i8], c: &[u8]) -> i32 {
    let s: i64 = q
        .iter()
        .zip(c)
        .map(|(&a, &b)| i64::from(a) * i64::from(b))
        .sum();
    i32::try_from(s).expect("fits i32")
}

fn l2_exact(a: &[u8], b: &[u8]) -> u32 {
    let s: u64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = u64::from(x.abs_diff(y));
            d * d
        })
        .sum();
    u32::try_from(s).expect("fits u32")
}

#[test]
fn every_variant_is_exact_at_every_length_and_offset() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let buf_a = rng.bytes(1200);
    let buf_b = rng.bytes(1200);
    for t in all_variants() {
        for n in (0..=260).chain([383, 384, 385, 511, 512, 513, 768, 1000]) {
            for off in [0usize, 1, 3, 17] {
                let a = &buf_a[off..off + n];
                let b = &buf_b[off..off + n];
                let q: Vec<i8> = b.iter().map(|&x| x as i8).collect();
                assert_eq!(
                    t.dot_u8i8(&q, a),
                    dot_exact(&q, a),
                    "{} dot_u8i8, n {n}, offset {off}",
                    t.variant()
                );
                assert_eq!(
                    t.l2sq_u8(a, b),
                    l2_exact(a, b),
                    "{} l2sq_u8, n {n}, offset {off}",
                    t.variant()
                );
            }
        }
    }
}

#[test]
fn extremes_at_the_largest_dimension_are_exact() {
    // The largest sums the kernels promise: every product 255 * -128 (and
    // 255 * 127), every difference 255, at MAX_INT_DIM components.
    let n = MAX_INT_DIM;
    let ones = vec![255u8; n];
    let zeros = vec![0u8; n];
    let low = vec![-128i8; n];
    let high = vec![127i8; n];
    for t in all_variants() {
        assert_eq!(
            t.dot_u8i8(&low, &ones),
            -255 * 128 * n as i32,
            "{}",
            t.variant()
        );
        assert_eq!(
            t.dot_u8i8(&high, &ones),
            255 * 127 * n as i32,
            "{}",
            t.variant()
        );
        assert_eq!(
            t.l2sq_u8(&ones, &zeros),
            255 * 255 * n as u32,
            "{}",
            t.variant()
        );
        assert_eq!(
            t.l2sq_u8(&zeros, &ones),
            255 * 255 * n as u32,
            "{}",
            t.variant()
        );
    }
}

#[test]
fn batch_and_gather_match_the_single_kernel() {
    let mut rng = Rng(7);
    for t in all_variants() {
        for dim in [1usize, 15, 16, 31, 64, 100, 128, 384] {
            let stride = dim + 5;
            let rows = 37;
            let base = rng.bytes(rows * stride);
            let qu = rng.bytes(dim);
            let qi: Vec<i8> = rng.bytes(dim).into_iter().map(|x| x as i8).collect();
            let row = |r: usize| &base[r * stride..r * stride + dim];

            let mut dots = vec![0i32; rows];
            t.dot_u8i8_batch(&qi, &base, stride, &mut dots);
            let mut l2s = vec![0u32; rows];
            t.l2sq_u8_batch(&qu, &base, stride, &mut l2s);
            for r in 0..rows {
                assert_eq!(dots[r], dot_exact(&qi, row(r)), "{} batch dot", t.variant());
                assert_eq!(l2s[r], l2_exact(&qu, row(r)), "{} batch l2", t.variant());
            }

            let ids: Vec<u32> = (0..50).map(|_| (rng.next() % rows as u64) as u32).collect();
            let mut gd = vec![0i32; ids.len()];
            t.dot_u8i8_gather(&qi, &base, stride, &ids, &mut gd);
            let mut gl = vec![0u32; ids.len()];
            t.l2sq_u8_gather(&qu, &base, stride, &ids, &mut gl);
            for (i, &id) in ids.iter().enumerate() {
                assert_eq!(gd[i], dots[id as usize], "{} gather dot", t.variant());
                assert_eq!(gl[i], l2s[id as usize], "{} gather l2", t.variant());
            }
        }
    }
}

#[test]
fn every_compiled_variant_is_listed_and_named() {
    let scalar = KernelTable::variants(Isa::Scalar);
    assert_eq!(scalar.len(), 1);
    assert_eq!(scalar[0].variant(), "scalar");
    for &isa in Isa::available() {
        let v = KernelTable::variants(isa);
        assert!(!v.is_empty());
        // The first is the one dispatch picks; every name starts with the ISA.
        assert!(std::ptr::eq(v[0], KernelTable::for_isa(isa).unwrap()));
        for t in v {
            assert_eq!(t.isa(), isa);
            assert!(t.variant().starts_with(isa.name()), "{}", t.variant());
        }
    }
    #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
    if std::arch::is_x86_feature_detected!("avx512vnni")
        && KernelTable::for_isa(Isa::Avx512).is_some()
    {
        assert!(KernelTable::for_isa(Isa::Avx512)
            .unwrap()
            .variant()
            .contains("vnni"));
    }
    #[cfg(all(target_arch = "x86_64", feature = "avx2"))]
    if std::arch::is_x86_feature_detected!("avxvnni") && KernelTable::for_isa(Isa::Avx2).is_some() {
        assert_eq!(
            KernelTable::for_isa(Isa::Avx2).unwrap().variant(),
            "avx2+avxvnni"
        );
    }
}

#[test]
#[should_panic(expected = "at most")]
fn more_than_the_largest_dimension_is_refused() {
    let n = MAX_INT_DIM + 1;
    swann::kernels::active().l2sq_u8(&vec![0; n], &vec![0; n]);
}

#[test]
#[should_panic(expected = "differ")]
fn mismatched_lengths_are_refused() {
    swann::kernels::active().dot_u8i8(&[1, 2], &[1, 2, 3]);
}

#[test]
#[should_panic(expected = "past the")]
fn a_gathered_row_past_the_codes_is_refused() {
    let mut out = [0u32; 1];
    swann::kernels::active().l2sq_u8_gather(&[0; 4], &[0; 12], 4, &[3], &mut out);
}
