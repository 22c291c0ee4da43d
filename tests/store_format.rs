//! The shared index-file container: round trips, corruption, truncation,
//! failure injection and crash safety of the atomic writer.

use proptest::prelude::*;
use swann::store::format::{self, HEADER_LEN, MAX_SECTIONS, SECTION_ENTRY_LEN};
use swann::store::{
    ChecksumTarget, ElemType, FileWriter, FormatError, Header, IndexFile, IndexKind, OpenOptions,
};
use swann::{Error, Metric};

fn header() -> Header {
    let mut h = Header::new(IndexKind::Hnsw, Metric::Cosine, ElemType::F32, 16);
    h.n_items = 10;
    h.capacity = 32;
    h.m = 16;
    h.ef_construction = 200;
    h.seed = 0xdead_beef_cafe_f00d;
    h.params = [1, 2, 3, 4, 5, 6, 7, u64::MAX];
    h
}

struct Data {
    vectors: Vec<f32>,
    links: Vec<u32>,
    labels: Vec<u64>,
    odd: Vec<u8>,
}

fn data(seed: u32) -> Data {
    Data {
        vectors: (0..160).map(|i| (i as f32 + seed as f32) * 0.5).collect(),
        links: (0..77).map(|i| i * 3 + seed).collect(),
        labels: (0..10).map(|i| i as u64 * 1000 + seed as u64).collect(),
        odd: (0..13).map(|i| i as u8 ^ seed as u8).collect(),
    }
}

/// A file with several sections: f32, u32 in two parts, u64, an empty one,
/// and one of odd length (so padding follows it).
fn writer(d: &Data) -> FileWriter<'_> {
    let mut w = FileWriter::new(header());
    w.add_pod_section(1, &d.vectors).unwrap();
    let links = bytemuck::cast_slice::<u32, u8>(&d.links);
    w.add_section_parts(2, [&links[..100], &links[100..]])
        .unwrap();
    w.add_pod_section(3, &d.labels).unwrap();
    w.add_section(4, &[]).unwrap();
    w.add_section(5, &d.odd).unwrap();
    w
}

fn good_bytes() -> Vec<u8> {
    let d = data(0);
    writer(&d).to_bytes()
}

fn check_content(f: &IndexFile, d: &Data) {
    assert_eq!(f.header(), &header());
    assert_eq!(f.section::<f32>(1).unwrap(), &d.vectors[..]);
    assert_eq!(f.section::<u32>(2).unwrap(), &d.links[..]);
    assert_eq!(f.section::<u64>(3).unwrap(), &d.labels[..]);
    assert_eq!(f.section::<u8>(4).unwrap(), &[] as &[u8]);
    assert_eq!(f.section::<u8>(5).unwrap(), &d.odd[..]);
    for s in f.sections() {
        assert_eq!(s.offset % 64, 0, "section {} offset {}", s.id, s.offset);
        let p = f.section_bytes(s.id).unwrap().as_ptr() as usize;
        assert_eq!(
            p % 64,
            0,
            "section {} is not 64-byte aligned in memory",
            s.id
        );
    }
    f.verify().unwrap();
}

#[test]
fn round_trip_owned_mapped_and_in_memory() {
    let d = data(0);
    let w = writer(&d);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.swann");
    w.write_atomic(&path).unwrap();
    let on_disk = std::fs::read(&path).unwrap();
    assert_eq!(on_disk, w.to_bytes());
    assert_eq!(on_disk.len() % 64, 0);
    assert_eq!(&on_disk[..8], b"SWANNIDX");

    let loaded = IndexFile::load(&path).unwrap();
    assert!(!loaded.is_mapped());
    check_content(&loaded, &d);
    for populate in [false, true] {
        for advise_random in [false, true] {
            let opts = OpenOptions {
                populate,
                advise_random,
                verify: false,
            };
            let mapped = IndexFile::open_mmap(&path, opts).unwrap();
            assert!(mapped.is_mapped());
            check_content(&mapped, &d);
        }
    }
    check_content(&IndexFile::from_bytes(&on_disk).unwrap(), &d);

    // Saving again over the file replaces it.
    let d2 = data(7);
    writer(&d2).write_atomic(&path).unwrap();
    check_content(&IndexFile::load(&path).unwrap(), &d2);
}

#[test]
fn file_without_sections_round_trips() {
    let mut h = Header::new(IndexKind::Flat, Metric::Hamming, ElemType::U64Bits, 256);
    h.capacity = 5;
    let bytes = FileWriter::new(h.clone()).to_bytes();
    assert_eq!(bytes.len(), HEADER_LEN);
    let f = IndexFile::from_bytes(&bytes).unwrap();
    assert_eq!(f.header(), &h);
    assert!(f.sections().is_empty());
    f.verify().unwrap();
}

#[test]
fn every_kind_metric_and_element_type_round_trips() {
    let kinds = [
        IndexKind::Flat,
        IndexKind::Hnsw,
        IndexKind::Forest,
        IndexKind::Lsh,
    ];
    let elems = [ElemType::F32, ElemType::U64Bits, ElemType::U8];
    for kind in kinds {
        for metric in Metric::ALL {
            for elem in elems {
                let h = Header::new(kind, metric, elem, 3);
                let f = IndexFile::from_bytes(&FileWriter::new(h.clone()).to_bytes()).unwrap();
                assert_eq!(f.header(), &h);
            }
        }
    }
}

/// The header checksum covers every byte of the header and the table, so no
/// single-byte change there goes unnoticed; the fields checked before the
/// checksum report themselves by name.
#[test]
fn every_header_and_table_byte_flip_is_an_error() {
    let good = good_bytes();
    let n = good_bytes_table_end();
    for i in 0..n {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut bad = good.clone();
            bad[i] ^= mask;
            let err = IndexFile::from_bytes(&bad)
                .expect_err(&format!("flip {mask:#x} at byte {i} accepted"));
            match i {
                0..=7 => assert!(matches!(err, FormatError::BadMagic { .. }), "{i}: {err}"),
                8..=11 => assert!(
                    matches!(err, FormatError::UnsupportedVersion { supported: 1, .. }),
                    "{i}: {err}"
                ),
                12..=15 => assert!(
                    matches!(err, FormatError::BadEndianMarker { .. }),
                    "{i}: {err}"
                ),
                // The section count: too many, a table past the file, or a checksum over a
                // different table.
                28..=31 => assert!(
                    matches!(
                        err,
                        FormatError::TooManySections { .. }
                            | FormatError::Truncated { .. }
                            | FormatError::ChecksumMismatch {
                                target: ChecksumTarget::Header,
                                ..
                            }
                    ),
                    "{i}: {err}"
                ),
                _ => assert!(
                    matches!(
                        err,
                        FormatError::ChecksumMismatch {
                            target: ChecksumTarget::Header,
                            ..
                        }
                    ),
                    "{i}: {err}"
                ),
            }
        }
    }
}

fn good_bytes_table_end() -> usize {
    HEADER_LEN + 5 * SECTION_ENTRY_LEN
}

/// A byte flipped in a section or in padding passes the O(1) open and is
/// caught by `verify` and `load`.
#[test]
fn every_section_and_padding_byte_flip_is_caught_by_verify() {
    let good = good_bytes();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.swann");
    let f = IndexFile::from_bytes(&good).unwrap();
    let sections = f.sections().to_vec();
    for i in good_bytes_table_end()..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x5a;
        let f = IndexFile::from_bytes(&bad).expect("open does not hash sections");
        let err = f.verify().expect_err(&format!("flip at byte {i} accepted"));
        let inside = sections
            .iter()
            .find(|s| (s.offset as usize..(s.offset + s.len) as usize).contains(&i));
        match inside {
            Some(s) => assert!(
                matches!(
                    err,
                    FormatError::ChecksumMismatch {
                        target: ChecksumTarget::Section(id),
                        stored,
                        ..
                    } if id == s.id && stored == s.checksum
                ),
                "byte {i}: {err}"
            ),
            None => assert_eq!(
                err,
                FormatError::NonZeroPadding {
                    offset: i as u64,
                    value: 0x5a
                }
            ),
        }
        if i % 97 == 0 {
            std::fs::write(&path, &bad).unwrap();
            assert!(matches!(
                IndexFile::load(&path),
                Err(Error::Format(
                    FormatError::ChecksumMismatch { .. } | FormatError::NonZeroPadding { .. }
                ))
            ));
            IndexFile::open_mmap(&path, OpenOptions::default())
                .unwrap()
                .verify()
                .unwrap_err();
        }
    }
}

#[test]
fn truncation_at_every_offset_is_an_error() {
    let good = good_bytes();
    for len in 0..good.len() {
        let err = IndexFile::from_bytes(&good[..len])
            .expect_err(&format!("truncated to {len} bytes accepted"));
        assert!(
            matches!(err, FormatError::Truncated { .. }),
            "truncated to {len}: {err}"
        );
    }
    let mut longer = good.clone();
    longer.push(0);
    assert_eq!(
        IndexFile::from_bytes(&longer).unwrap_err(),
        FormatError::TrailingBytes {
            expected: good.len() as u64,
            actual: good.len() as u64 + 1
        }
    );

    // The same through the file-opening paths.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.swann");
    for len in [0, 1, 8, 100, HEADER_LEN, HEADER_LEN + 40, good.len() - 1] {
        std::fs::write(&path, &good[..len]).unwrap();
        for r in [
            IndexFile::open_mmap(&path, OpenOptions::default()),
            IndexFile::load(&path),
        ] {
            assert!(
                matches!(r, Err(Error::Format(FormatError::Truncated { .. }))),
                "{len}: {r:?}"
            );
        }
    }
}

/// Sets a little-endian u32 / u64 and fixes the header checksum, so that a
/// structural check (not the checksum) has to catch the change.
fn patch_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    format::fix_header_checksum(b);
}

fn patch_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    format::fix_header_checksum(b);
}

fn entry_at(i: usize) -> usize {
    HEADER_LEN + i * SECTION_ENTRY_LEN
}

#[test]
fn wrong_version_kind_dimension_metric_are_named() {
    let good = good_bytes();
    let mut b = good.clone();
    patch_u32(&mut b, 8, 2);
    assert_eq!(
        IndexFile::from_bytes(&b).unwrap_err(),
        FormatError::UnsupportedVersion {
            found: 2,
            supported: 1
        }
    );

    let f = IndexFile::from_bytes(&good).unwrap();
    assert_eq!(
        f.expect_kind(IndexKind::Flat).unwrap_err(),
        FormatError::WrongKind {
            expected: IndexKind::Flat,
            found: IndexKind::Hnsw
        }
    );
    f.expect_kind(IndexKind::Hnsw).unwrap();
    assert_eq!(
        f.expect_dim(128).unwrap_err(),
        FormatError::WrongDimension {
            expected: 128,
            found: 16
        }
    );
    f.expect_dim(16).unwrap();
    assert_eq!(
        f.expect_metric(Metric::L2).unwrap_err(),
        FormatError::WrongMetric {
            expected: Metric::L2,
            found: Metric::Cosine
        }
    );
    let msg = Error::from(f.expect_kind(IndexKind::Forest).unwrap_err()).to_string();
    assert!(msg.contains("hnsw") && msg.contains("forest"), "{msg}");
}

#[test]
fn structurally_bad_headers_with_valid_checksums_are_refused() {
    let good = good_bytes();
    let case = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.clone();
        f(&mut b);
        IndexFile::from_bytes(&b).unwrap_err()
    };
    assert_eq!(
        case(&|b| patch_u32(b, 12, 0x0403_0201)),
        FormatError::WrongEndian
    );
    assert_eq!(case(&|b| patch_u32(b, 16, 9)), FormatError::UnknownKind(9));
    assert_eq!(
        case(&|b| patch_u32(b, 20, 0)),
        FormatError::UnknownMetric(0)
    );
    assert_eq!(
        case(&|b| patch_u32(b, 24, 77)),
        FormatError::UnknownElemType(77)
    );
    assert!(matches!(
        case(&|b| patch_u32(b, 28, MAX_SECTIONS as u32 + 1)),
        FormatError::TooManySections { found: 65, .. }
    ));
    assert!(matches!(
        case(&|b| patch_u64(b, 32, 0)),
        FormatError::BadCounts(_)
    ));
    assert!(matches!(
        case(&|b| patch_u64(b, 40, 33)),
        FormatError::BadCounts(_)
    ));
    assert_eq!(
        case(&|b| {
            b[170] = 1;
            format::fix_header_checksum(b)
        }),
        FormatError::NonZeroReserved {
            offset: 170,
            value: 1
        }
    );
    assert_eq!(
        case(&|b| {
            b[entry_at(2) + 5] = 9;
            format::fix_header_checksum(b)
        }),
        FormatError::NonZeroReserved {
            offset: (entry_at(2) + 5) as u64,
            value: 9
        }
    );
    // Section 1 renamed to 2: duplicate id.
    assert_eq!(
        case(&|b| patch_u32(b, entry_at(0), 2)),
        FormatError::DuplicateSection(2)
    );
    let bad_offset = |b: &mut Vec<u8>, i: usize, off: Option<u64>, len: Option<u64>| {
        if let Some(o) = off {
            patch_u64(b, entry_at(i) + 8, o);
        }
        if let Some(l) = len {
            patch_u64(b, entry_at(i) + 16, l);
        }
    };
    let reason = |e: FormatError| match e {
        FormatError::BadOffset { reason, .. } => reason,
        other => panic!("expected BadOffset, got {other}"),
    };
    let f = IndexFile::from_bytes(&good).unwrap();
    let s = f.sections().to_vec();
    assert!(reason(case(&|b| bad_offset(b, 1, Some(s[1].offset + 4), None))).contains("64"));
    assert!(reason(case(&|b| bad_offset(b, 0, Some(0), None))).contains("header"));
    assert!(reason(case(&|b| bad_offset(b, 1, Some(s[0].offset), None))).contains("overlap"));
    assert!(reason(case(&|b| bad_offset(b, 0, None, Some(s[0].len + 64)))).contains("overlap"));
    assert!(reason(case(&|b| bad_offset(b, 4, None, Some(10_000)))).contains("end of the file"));
    assert!(
        reason(case(&|b| bad_offset(b, 4, Some(u64::MAX - 63), Some(100)))).contains("overflow")
    );
    assert!(reason(case(&|b| bad_offset(b, 4, None, Some(u64::MAX)))).contains("overflow"));
    // A file length in the header that is not the real one.
    assert!(matches!(
        case(&|b| patch_u64(b, 144, good.len() as u64 + 64)),
        FormatError::Truncated { what: "file", .. }
    ));
    assert!(matches!(
        case(&|b| patch_u64(b, 144, good.len() as u64 - 64)),
        FormatError::TrailingBytes { .. }
    ));
}

#[test]
fn typed_section_access_checks_size_alignment_and_presence() {
    let good = good_bytes();
    let f = IndexFile::from_bytes(&good).unwrap();
    assert_eq!(
        f.section::<u8>(99).unwrap_err(),
        FormatError::MissingSection(99)
    );
    // 13 bytes are not a whole number of u32s.
    assert!(matches!(
        f.section::<u32>(5).unwrap_err(),
        FormatError::SectionType {
            section: 5,
            len: 13,
            size: 4,
            ..
        }
    ));
    // 77 u32s are not a whole number of u64s.
    assert!(matches!(
        f.section::<u64>(2).unwrap_err(),
        FormatError::SectionType { section: 2, .. }
    ));
    assert_eq!(f.section_exact::<u64>(3, 10).unwrap().len(), 10);
    assert_eq!(
        f.section_exact::<u64>(3, 11).unwrap_err(),
        FormatError::SectionLength {
            section: 3,
            expected: 88,
            found: 80
        }
    );
    // A 64-byte-aligned record type.
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C, align(64))]
    struct Record([u32; 16]);
    let recs = vec![Record([7; 16]); 3];
    let mut w = FileWriter::new(header());
    w.add_pod_section(1, &recs).unwrap();
    let f = IndexFile::from_bytes(&w.to_bytes()).unwrap();
    assert_eq!(f.section::<Record>(1).unwrap()[2].0, [7; 16]);
}

#[test]
fn writer_refuses_duplicate_ids_and_too_many_sections() {
    let mut w = FileWriter::new(header());
    w.add_section(1, b"a").unwrap();
    assert_eq!(
        w.add_section(1, b"b").err().unwrap(),
        FormatError::DuplicateSection(1)
    );
    for id in 2..=MAX_SECTIONS as u32 {
        w.add_section(id, b"x").unwrap();
    }
    assert!(matches!(
        w.add_section(1000, b"y").err().unwrap(),
        FormatError::TooManySections { .. }
    ));
    let f = IndexFile::from_bytes(&w.to_bytes()).unwrap();
    assert_eq!(f.sections().len(), MAX_SECTIONS);
    f.verify().unwrap();
}

#[test]
fn not_a_swann_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x");
    std::fs::write(&path, vec![b'x'; 1000]).unwrap();
    assert!(matches!(
        IndexFile::open_mmap(&path, OpenOptions::default()),
        Err(Error::Format(FormatError::BadMagic { .. }))
    ));
    assert!(matches!(
        IndexFile::open_mmap(dir.path().join("missing"), OpenOptions::default()),
        Err(Error::Io(_))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary bytes, and arbitrary edits of a good file (with the header
    /// checksum repaired half the time so the structural checks are reached),
    /// never panic, and every accessor on an accepted file stays in bounds.
    #[test]
    fn arbitrary_bytes_never_panic(
        raw in proptest::collection::vec(any::<u8>(), 0..600),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        fix in any::<bool>(),
        cut in any::<prop::sample::Index>(),
    ) {
        exercise(&raw);
        let mut b = good_bytes();
        for (at, v) in &edits {
            let i = at.index(b.len());
            b[i] = *v;
        }
        if fix {
            format::fix_header_checksum(&mut b);
        }
        exercise(&b);
        let n = cut.index(b.len());
        exercise(&b[..n]);
    }
}

fn exercise(bytes: &[u8]) {
    if let Ok(f) = IndexFile::from_bytes(bytes) {
        let _ = f.verify();
        for s in f.sections() {
            let b = f.section_bytes(s.id).unwrap();
            assert_eq!(b.len() as u64, s.len);
            let _ = f.section::<u32>(s.id);
            let _ = f.section::<u64>(s.id);
            let _ = f.section::<f32>(s.id);
        }
    }
}
#[test]
fn write_atomic_reports_bad_paths() {
    let d = data(0);
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        writer(&d).write_atomic(dir.path().join("no/such/dir/x.swann")),
        Err(Error::Io(_))
    ));
    assert!(writer(&d).write_atomic("/").is_err());
    // A relative path writes in the current directory's terms.
    let f = dir.path().join("rel.swann");
    writer(&d).write_atomic(&f).unwrap();
    assert!(f.exists());
}

// ---------------------------------------------------------------------------
// Atomic writes: injected failures and crashes at every step.

#[cfg(feature = "fault-injection")]
mod faults {
    use std::io::{BufRead, BufReader, Write};
    use std::path::Path;
    use std::process::{Command, Stdio};

    use swann::store::fault::{self, FaultAction, FaultPoint};

    use super::*;

    fn temp_files(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect()
    }

    #[test]
    fn injected_failure_at_each_step_keeps_the_old_file() {
        let old = data(1);
        let new = data(2);
        for point in FaultPoint::ALL {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("idx.swann");
            writer(&old).write_atomic(&path).unwrap();
            let before = std::fs::read(&path).unwrap();

            fault::arm(point, FaultAction::Fail);
            let r = writer(&new).write_atomic(&path);
            fault::disarm();
            let err = r.expect_err(point.name());
            assert!(err.to_string().contains(point.name()), "{err}");
            assert!(
                temp_files(dir.path()).is_empty(),
                "{}: left {:?}",
                point.name(),
                temp_files(dir.path())
            );
            let f = IndexFile::load(&path).unwrap();
            if point == FaultPoint::SyncDir {
                // The rename happened; only its durability is in doubt.
                check_content(&f, &new);
            } else {
                assert_eq!(std::fs::read(&path).unwrap(), before, "{}", point.name());
                check_content(&f, &old);
            }

            // With no previous file, a failure before the rename leaves none.
            let fresh = dir.path().join("fresh.swann");
            fault::arm(point, FaultAction::Fail);
            let r = writer(&new).write_atomic(&fresh);
            fault::disarm();
            assert!(r.is_err());
            assert_eq!(
                fresh.exists(),
                point == FaultPoint::SyncDir,
                "{}",
                point.name()
            );
            assert!(temp_files(dir.path()).is_empty());
        }
    }

    const CRASH_STEP: &str = "SWANN_TEST_CRASH_STEP";
    const CRASH_PATH: &str = "SWANN_TEST_CRASH_PATH";

    fn pause_here(point: FaultPoint) {
        let mut out = std::io::stdout().lock();
        writeln!(out, "PAUSED {}", point.name()).unwrap();
        out.flush().unwrap();
        drop(out);
        // The parent kills us now; exit on our own if it never does.
        std::thread::sleep(std::time::Duration::from_secs(60));
        std::process::exit(3);
    }

    /// Runs only as the crash test's child: writes a new file over the target and
    /// pauses at the named step until killed.
    #[test]
    fn crash_child() {
        let (Ok(step), Ok(path)) = (std::env::var(CRASH_STEP), std::env::var(CRASH_PATH)) else {
            return;
        };
        let point = FaultPoint::from_name(&step).expect("known step");
        // A large section so the midway point has a partial file on disk.
        let big: Vec<u8> = (0..4 << 20).map(|i: u32| (i % 251) as u8).collect();
        let new = data(2);
        let mut w = writer(&new);
        w.add_section(100, &big).unwrap();
        fault::arm(point, FaultAction::Call(pause_here));
        w.write_atomic(&path).unwrap();
        // Only reached if the step was never hit.
        println!("FINISHED");
    }

    /// A writer SIGKILLed at any step leaves the previous file intact and
    /// loadable (or, once renamed, the complete new one).
    #[test]
    #[cfg_attr(
        target_arch = "aarch64",
        ignore = "re-executes the test binary, which the aarch64 emulation used for the NEON tests cannot do"
    )]
    fn sigkill_at_each_step_leaves_a_loadable_file() {
        let old = data(1);
        let exe = std::env::current_exe().unwrap();
        for point in FaultPoint::ALL {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("idx.swann");
            writer(&old).write_atomic(&path).unwrap();
            let before = std::fs::read(&path).unwrap();

            let mut child = Command::new(&exe)
                .args([
                    "faults::crash_child",
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CRASH_STEP, point.name())
                .env(CRASH_PATH, &path)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let stdout = child.stdout.take().unwrap();
            let mut paused = false;
            for line in BufReader::new(stdout).lines() {
                let line = line.unwrap();
                // libtest may print "test crash_child ... " on the same line first.
                if line
                    .trim_end()
                    .ends_with(&format!("PAUSED {}", point.name()))
                {
                    paused = true;
                    break;
                }
            }
            assert!(paused, "child never reached {}", point.name());
            child.kill().unwrap(); // SIGKILL
            let status = child.wait().unwrap();
            assert!(!status.success());

            let f = IndexFile::load(&path).unwrap();
            if point == FaultPoint::SyncDir {
                let new = data(2);
                check_content(&f, &new);
                assert_eq!(f.section::<u8>(100).unwrap().len(), 4 << 20);
            } else {
                assert_eq!(std::fs::read(&path).unwrap(), before, "{}", point.name());
                check_content(&f, &old);
                IndexFile::open_mmap(&path, OpenOptions::default())
                    .unwrap()
                    .verify()
                    .unwrap();
            }
            // Only the steps between creating and renaming the temporary file
            // can leave one behind.
            let stray = temp_files(dir.path());
            match point {
                FaultPoint::CreateTemp | FaultPoint::SyncDir => {
                    assert!(stray.is_empty(), "{}: {stray:?}", point.name())
                }
                _ => assert_eq!(stray.len(), 1, "{}: {stray:?}", point.name()),
            }
        }
    }
}
