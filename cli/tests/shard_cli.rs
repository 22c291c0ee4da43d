//! `swann build hnsw --shard I/N`, `swann manifest`, and `swann query` /
//! `info` / `bench index` on a manifest, end to end on a small generated file.
// Runs the built binary, which an aarch64 build under qemu-user cannot exec.
#![cfg(not(target_arch = "aarch64"))]

mod common;

use std::process::Command;

use common::{data, ok, swann};
use swann::index::flat::FlatIndex;
use swann::index::sharded::{Manifest, ShardedIndex};
use swann::io::{write_fvecs, write_ivecs, Matrix};
use swann::prelude::*;
use swann::store::OpenOptions;

#[test]
fn shard_build_manifest_query() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (n, dim, nq) = (1_000usize, 8usize, 20usize);
    let base = data(n, dim, 1);
    write_fvecs(
        d.join("base.fvecs"),
        &Matrix {
            dim,
            data: base.clone(),
        },
    )
    .unwrap();
    let queries = data(nq, dim, 2);
    write_fvecs(
        d.join("q.fvecs"),
        &Matrix {
            dim,
            data: queries.clone(),
        },
    )
    .unwrap();
    let mut exact = FlatIndex::new(dim, Metric::L2).unwrap();
    exact.add_rows(0, &base).unwrap();
    let truth = exact.search_batch(&queries, 10).unwrap();
    let gt: Vec<i32> = truth.iter().flatten().map(|h| h.label as i32).collect();
    write_ivecs(d.join("gt.ivecs"), &Matrix { dim: 10, data: gt }).unwrap();

    for i in 0..3 {
        let spec = format!("{i}/3");
        let out = format!("s{i}.swann");
        let stdout = ok(swann(
            d,
            &[
                "build",
                "hnsw",
                "--data",
                "base.fvecs",
                "--shard",
                &spec,
                "--out",
                &out,
            ],
        ));
        assert!(stdout.contains(&format!("shard {i} of 3")), "{stdout}");
    }
    let stdout = ok(swann(
        d,
        &[
            "manifest", "--out", "m.json", "s0.swann", "s1.swann", "s2.swann",
        ],
    ));
    assert!(stdout.contains("3 hnsw shards, 1000 rows"), "{stdout}");

    let m = Manifest::read(d.join("m.json")).unwrap();
    let ranges: Vec<(u64, u64, u64)> = m
        .shards
        .iter()
        .map(|s| (s.rows, s.label_min, s.label_max))
        .collect();
    assert_eq!(ranges, [(333, 0, 332), (333, 333, 665), (334, 666, 999)]);

    // The same searches through the library and through `swann query`.
    let index = ShardedIndex::open(d.join("m.json"), OpenOptions::default()).unwrap();
    let hits = index
        .search_batch(&queries, 10, Effort::Candidates(200))
        .unwrap();
    let stdout = ok(swann(
        d,
        &[
            "query",
            "m.json",
            "--queries",
            "q.fvecs",
            "--ef",
            "200",
            "--k",
            "10",
        ],
    ));
    let first: Vec<String> = hits[0].iter().map(|h| h.label.to_string()).collect();
    assert!(stdout.contains(&first.join(" ")), "{stdout}");
    assert!(stdout.contains("3 hnsw shards"), "{stdout}");
    let stdout = ok(swann(
        d,
        &[
            "query",
            "m.json",
            "--queries",
            "q.fvecs",
            "--ef",
            "200",
            "--groundtruth",
            "gt.ivecs",
        ],
    ));
    assert!(stdout.contains("recall@10 = "), "{stdout}");

    let stdout = ok(swann(d, &["info", "m.json", "--check"]));
    assert!(stdout.contains("checksums   ok"), "{stdout}");
    assert!(stdout.contains("graphs      ok"), "{stdout}");

    let stdout = ok(swann(
        d,
        &[
            "bench",
            "index",
            "m.json",
            "--queries",
            "q.fvecs",
            "--groundtruth",
            "gt.ivecs",
            "--ef",
            "20,400",
            "--reps",
            "1",
        ],
    ));
    let last = stdout.lines().last().unwrap();
    let fields: Vec<&str> = last.split_whitespace().collect();
    assert_eq!(fields[0], "400", "{stdout}");
    let recall: f64 = fields[1].parse().unwrap();
    assert!(recall >= 0.99, "{stdout}");

    // A shard changed after the manifest was written is refused by name.
    ok(swann(
        d,
        &[
            "build",
            "hnsw",
            "--data",
            "base.fvecs",
            "--shard",
            "0/2",
            "--out",
            "s1.swann",
        ],
    ));
    let out = swann(d, &["query", "m.json", "--queries", "q.fvecs"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("s1.swann"), "{err}");
}

#[test]
fn bad_shard_specs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_fvecs(
        d.join("base.fvecs"),
        &Matrix {
            dim: 4,
            data: data(10, 4, 3),
        },
    )
    .unwrap();
    for spec in ["3/3", "1", "a/2", "0/0", "-1/2"] {
        let out = swann(
            d,
            &[
                "build",
                "hnsw",
                "--data",
                "base.fvecs",
                "--shard",
                spec,
                "--out",
                "x.swann",
            ],
        );
        assert!(!out.status.success(), "{spec} accepted");
        assert!(!d.join("x.swann").exists());
    }
    let out = swann(d, &["manifest", "--out", "m.json", "missing.swann"]);
    assert!(!out.status.success());
    assert!(!d.join("m.json").exists());
}

#[test]
fn query_opens_forest_and_flat_files_and_writes_every_result() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (n, dim, nq) = (500usize, 6usize, 7usize);
    let base = data(n, dim, 5);
    write_fvecs(
        d.join("base.fvecs"),
        &Matrix {
            dim,
            data: base.clone(),
        },
    )
    .unwrap();
    let queries = data(nq, dim, 6);
    write_fvecs(
        d.join("q.fvecs"),
        &Matrix {
            dim,
            data: queries.clone(),
        },
    )
    .unwrap();
    ok(swann(
        d,
        &[
            "build",
            "forest",
            "--base",
            "base.fvecs",
            "--metric",
            "angular",
            "--trees",
            "8",
            "--out",
            "f.swann",
        ],
    ));
    let mut flat = FlatIndex::new(dim, Metric::L2).unwrap();
    flat.add_rows(0, &base).unwrap();
    flat.save(d.join("flat.swann")).unwrap();

    let forest = Forest::load(d.join("f.swann")).unwrap();
    for (file, search_k) in [("f.swann", 300usize), ("flat.swann", 0)] {
        let stdout = ok(swann(
            d,
            &[
                "query",
                file,
                "--queries",
                "q.fvecs",
                "--k",
                "4",
                "--ef",
                &search_k.to_string(),
                "--results",
                "r.txt",
            ],
        ));
        assert!(stdout.contains(if file == "f.swann" {
            "a forest of 8 trees"
        } else {
            "a flat index"
        }));
        let text = std::fs::read_to_string(d.join("r.txt")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), nq);
        for (q, line) in queries.chunks(dim).zip(&lines) {
            let want = if file == "f.swann" {
                forest.search(q, 4, Effort::Candidates(search_k)).unwrap()
            } else {
                flat.search(q, 4).unwrap()
            };
            let got: Vec<(u64, f32)> = line
                .split(' ')
                .map(|p| {
                    let (l, dist) = p.split_once(':').unwrap();
                    (l.parse().unwrap(), dist.parse().unwrap())
                })
                .collect();
            let want: Vec<(u64, f32)> = want.iter().map(|h| (h.label, h.distance)).collect();
            assert_eq!(got, want, "{file}");
        }
    }
}

/// `swann query ... | head -1`: the reader closes the pipe early and the
/// command ends as other Unix tools do, by SIGPIPE, without a panic or an
/// error message.
#[cfg(unix)]
#[test]
fn a_closed_pipe_ends_query_quietly() {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (n, dim, nq) = (200usize, 4usize, 20_000usize);
    let mut flat = FlatIndex::new(dim, Metric::L2).unwrap();
    flat.add_rows(0, &data(n, dim, 5)).unwrap();
    flat.save(d.join("flat.swann")).unwrap();
    write_fvecs(
        d.join("q.fvecs"),
        &Matrix {
            dim,
            data: data(nq, dim, 6),
        },
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_swann"))
        .current_dir(d)
        .args(["query", "flat.swann", "--queries", "q.fvecs", "--k", "10"])
        .args(["--results", "/dev/stdout"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // 20,000 result lines are far more than a pipe holds: the command is
    // still writing when the pipe closes.
    let mut first = [0u8; 64];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.is_empty(), "{err}");
    const SIGPIPE: i32 = 13;
    assert_eq!(out.status.signal(), Some(SIGPIPE), "{:?}", out.status);
}
