//! `swann bench hnsw --quant` and `swann build hnsw --quant` for every
//! scheme, end to end on a small generated file: the scheme is recorded in
//! the result file and the index file, and recall holds.
// Runs the built binary, which an aarch64 build under qemu-user cannot exec.
#![cfg(not(target_arch = "aarch64"))]

mod common;

use common::{data, ok, swann};
use swann::index::hnsw::{Hnsw, Quantization};
use swann::io::{write_fvecs, Matrix};

#[test]
fn every_scheme_benches_builds_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (n, dim, nq) = (2_000usize, 16usize, 50usize);
    let base = data(n, dim, 1);
    write_fvecs(d.join("base.fvecs"), &Matrix { dim, data: base }).unwrap();
    let queries = data(nq, dim, 2);
    write_fvecs(d.join("q.fvecs"), &Matrix { dim, data: queries }).unwrap();
    for scheme in ["none", "sq8", "pq4"] {
        let json = format!("{scheme}.json");
        ok(swann(
            d,
            &[
                "bench",
                "hnsw",
                "--base",
                "base.fvecs",
                "--queries",
                "q.fvecs",
                "--quant",
                scheme,
                "--ef",
                "200",
                "--reps",
                "1",
                "--json",
                &json,
            ],
        ));
        let result: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join(&json)).unwrap()).unwrap();
        assert_eq!(result["params"]["quant"], scheme);
        let recall = result["runs"][0]["recall"].as_f64().unwrap();
        assert!(recall >= 0.95, "{scheme}: recall {recall} at ef 200");

        let file = format!("{scheme}.swann");
        ok(swann(
            d,
            &[
                "build",
                "hnsw",
                "--data",
                "base.fvecs",
                "--quant",
                scheme,
                "--out",
                &file,
            ],
        ));
        let index = Hnsw::load(d.join(&file)).unwrap();
        assert_eq!(
            index.quantization(),
            scheme.parse::<Quantization>().unwrap()
        );
        assert_eq!(index.is_quantized(), scheme != "none");
        let info = ok(swann(d, &["info", &file]));
        let line = info.lines().find(|l| l.starts_with("quantized")).unwrap();
        match scheme {
            "none" => assert!(line.ends_with("no"), "{line}"),
            s => assert!(line.contains(s), "{line}"),
        }
    }
    let out = swann(
        d,
        &[
            "bench",
            "hnsw",
            "--base",
            "base.fvecs",
            "--queries",
            "q.fvecs",
            "--quant",
            "pq",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("none") && err.contains("sq8") && err.contains("pq4"),
        "{err}"
    );
}

/// `swann build hnsw --quant pq4 --pq4-records` writes the packed records
/// into the file: it is larger than the plain file by at least a record per
/// row, maps with its records viewed from the file (the process allocates
/// none), loads and verifies; the flag without `--quant pq4` is refused.
#[test]
fn pq4_records_are_written_into_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (n, dim) = (1_500usize, 16usize);
    write_fvecs(
        d.join("base.fvecs"),
        &Matrix {
            dim,
            data: data(n, dim, 7),
        },
    )
    .unwrap();
    let build = |extra: &[&str], out: &str| {
        let mut args = vec!["build", "hnsw", "--data", "base.fvecs", "--out", out];
        args.extend_from_slice(extra);
        swann(d, &args)
    };
    ok(build(&["--quant", "pq4"], "plain.swann"));
    ok(build(&["--quant", "pq4", "--pq4-records"], "packed.swann"));
    let size = |f: &str| std::fs::metadata(d.join(f)).unwrap().len();
    // At M = 16, 16 sub-spaces: 128 bytes of ids and one 256-byte block.
    assert!(
        size("packed.swann") >= size("plain.swann") + (n * 384) as u64,
        "{} against {}",
        size("packed.swann"),
        size("plain.swann")
    );
    let mapped = Hnsw::open_mmap(d.join("packed.swann"), Default::default()).unwrap();
    mapped.verify().unwrap();
    let plain = Hnsw::open_mmap(d.join("plain.swann"), Default::default()).unwrap();
    // The records are most of what a plain mapped index allocates.
    assert!(
        4 * mapped.memory_bytes() < plain.memory_bytes(),
        "{} against {}",
        mapped.memory_bytes(),
        plain.memory_bytes()
    );
    Hnsw::load(d.join("packed.swann")).unwrap();
    for (file, says) in [
        ("plain.swann", "records packed when opened"),
        ("packed.swann", "packed records in the file"),
    ] {
        let info = ok(swann(d, &["info", "--check", file]));
        let line = info.lines().find(|l| l.starts_with("quantized")).unwrap();
        assert!(line.contains(says), "{line}");
        assert!(info.contains("structure   ok"), "{info}");
    }

    let out = build(&["--quant", "sq8", "--pq4-records"], "x.swann");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--pq4-records applies to --quant pq4"),
        "{err}"
    );
    assert!(!d.join("x.swann").exists());
}
