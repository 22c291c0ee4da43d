//! Two processes mapping the same index file share its pages: the second
//! open costs no private resident memory, and each process's proportional
//! share (Pss) of the mapping halves. Measured from `/proc/self/smaps` (the
//! mapping's own entry) and `/proc/self/smaps_rollup` (the whole process).
#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use swann::store::{ElemType, FileWriter, Header, IndexFile, IndexKind, OpenOptions};
use swann::Metric;

const CHILD_PATH: &str = "SWANN_TEST_SHARE_PATH";
const CHILD_POPULATE: &str = "SWANN_TEST_SHARE_POPULATE";
const FILE_MIB: usize = 48;

/// Memory figures of one mapping or one process, in KiB.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Mem {
    rss: u64,
    pss: u64,
    shared_clean: u64,
    private_clean: u64,
    private_dirty: u64,
}

impl Mem {
    fn private(&self) -> u64 {
        self.private_clean + self.private_dirty
    }

    fn add(&mut self, key: &str, kib: u64) {
        match key {
            "Rss" => self.rss += kib,
            "Pss" => self.pss += kib,
            "Shared_Clean" => self.shared_clean += kib,
            "Private_Clean" => self.private_clean += kib,
            "Private_Dirty" => self.private_dirty += kib,
            _ => {}
        }
    }

    fn encode(&self) -> String {
        format!(
            "{} {} {} {} {}",
            self.rss, self.pss, self.shared_clean, self.private_clean, self.private_dirty
        )
    }

    fn decode(s: &str) -> Mem {
        let v: Vec<u64> = s.split_whitespace().map(|x| x.parse().unwrap()).collect();
        Mem {
            rss: v[0],
            pss: v[1],
            shared_clean: v[2],
            private_clean: v[3],
            private_dirty: v[4],
        }
    }
}

fn field(line: &str) -> Option<(&str, u64)> {
    let (key, rest) = line.split_once(':')?;
    let kib = rest.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some((key, kib))
}

/// The figures of every mapping of `path` in this process.
fn mapping_mem(path: &Path) -> Mem {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let name = path.to_str().unwrap();
    let mut mem = Mem::default();
    let mut inside = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            inside = line.trim_end().ends_with(name);
            continue;
        }
        if inside {
            if let Some((k, v)) = field(line) {
                mem.add(k, v);
            }
        }
    }
    mem
}

fn rollup() -> Mem {
    let text = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap();
    let mut mem = Mem::default();
    for line in text.lines() {
        if let Some((k, v)) = field(line) {
            mem.add(k, v);
        }
    }
    mem
}

fn open_and_touch(path: &Path, populate: bool) -> IndexFile {
    let f = IndexFile::open_mmap(
        path,
        OpenOptions {
            populate,
            advise_random: false,
            verify: false,
        },
    )
    .unwrap();
    // Reads every page of every section (and the padding).
    f.verify().unwrap();
    f
}

/// Child side: open, touch, report, wait for the parent, report again.
#[test]
fn sharing_child() {
    let Ok(path) = std::env::var(CHILD_PATH) else {
        return;
    };
    let populate = std::env::var(CHILD_POPULATE).as_deref() == Ok("1");
    let path = Path::new(&path);
    let before = rollup();
    let f = open_and_touch(path, populate);
    let after = rollup();
    let mine = mapping_mem(path);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "\nCHILD {} | {} | {}",
        before.encode(),
        after.encode(),
        mine.encode()
    )
    .unwrap();
    out.flush().unwrap();
    drop(out);
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    let mine = mapping_mem(path);
    println!("\nAGAIN {}", mine.encode());
    drop(f);
}

fn make_file(path: &Path) {
    let mut words = vec![0u64; FILE_MIB << 17];
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for w in &mut words {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *w = x;
    }
    let mut h = Header::new(IndexKind::Flat, Metric::L2, ElemType::F32, 128);
    h.n_items = 1;
    h.capacity = 1;
    let mut w = FileWriter::new(h);
    w.add_pod_section(1, &words).unwrap();
    w.write_atomic(path).unwrap();
}

fn run(populate: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.swann");
    make_file(&path);
    let file_kib = (FILE_MIB * 1024) as u64;
    let pct = |x: u64| x * 100 / file_kib;

    let f = open_and_touch(&path, populate);
    let alone = mapping_mem(&path);
    assert!(
        alone.rss >= file_kib * 95 / 100,
        "one mapper: resident {alone:?}"
    );
    assert!(alone.pss >= file_kib * 95 / 100, "one mapper: {alone:?}");
    assert!(alone.private_dirty < 64, "mapping was written: {alone:?}");

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "sharing_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_PATH, &path)
        .env(CHILD_POPULATE, if populate { "1" } else { "0" })
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let child_line = lines
        .by_ref()
        .map(|l| l.unwrap())
        .find(|l| l.starts_with("CHILD "))
        .expect("child report");
    let parts: Vec<Mem> = child_line["CHILD ".len()..]
        .split('|')
        .map(Mem::decode)
        .collect();
    let (c_before, c_after, c_map) = (parts[0], parts[1], parts[2]);

    let both = mapping_mem(&path);
    writeln!(child.stdin.as_mut().unwrap(), "go").unwrap();
    // Read to the end, so the child never writes into a closed pipe.
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let again = rest
        .iter()
        .find(|l| l.starts_with("AGAIN "))
        .expect("child second report");
    let c_again = Mem::decode(&again["AGAIN ".len()..]);
    assert!(child.wait().unwrap().success());
    drop(f);

    eprintln!(
        "populate={populate} file={file_kib} KiB\n parent alone {alone:?}\n parent shared {both:?}\n \
         child mapping {c_map:?} / later {c_again:?}\n child rollup growth: rss {} pss {} private {}",
        c_after.rss as i64 - c_before.rss as i64,
        c_after.pss as i64 - c_before.pss as i64,
        c_after.private() as i64 - c_before.private() as i64,
    );

    // The second process maps every page, none of it privately.
    assert!(c_map.rss >= file_kib * 95 / 100, "child resident {c_map:?}");
    assert!(
        c_map.private() <= file_kib / 50,
        "child holds {}% of the file privately: {c_map:?}",
        pct(c_map.private())
    );
    assert!(c_map.shared_clean >= file_kib * 95 / 100, "{c_map:?}");
    // Its whole process grew by about half the file in Pss and by almost
    // nothing in private memory.
    let grew_private = c_after.private().saturating_sub(c_before.private());
    assert!(
        grew_private <= file_kib / 20,
        "child's private memory grew by {grew_private} KiB ({}% of the file)",
        pct(grew_private)
    );
    let grew_pss = c_after.pss.saturating_sub(c_before.pss);
    assert!(
        (file_kib * 40 / 100..=file_kib * 60 / 100).contains(&grew_pss),
        "child's Pss grew by {grew_pss} KiB, expected about half of {file_kib}"
    );
    // The parent's share halved and none of its pages is private now.
    for m in [both, c_again] {
        assert!(
            (alone.pss * 45 / 100..=alone.pss * 55 / 100).contains(&m.pss),
            "Pss with two mappers {m:?}, alone {alone:?}"
        );
        assert!(m.private() <= file_kib / 50, "{m:?}");
        assert!(m.private_dirty < 64, "{m:?}");
    }
}

#[test]
#[cfg_attr(
    target_arch = "aarch64",
    ignore = "re-executes the test binary, which the aarch64 emulation used for the NEON tests cannot do"
)]
fn second_process_shares_the_mapped_pages() {
    run(false);
}

#[test]
#[cfg_attr(
    target_arch = "aarch64",
    ignore = "re-executes the test binary, which the aarch64 emulation used for the NEON tests cannot do"
)]
fn second_process_shares_populated_pages() {
    run(true);
}
