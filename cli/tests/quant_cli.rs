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
