//! `swann lsh experiment` end to end on a small generated file.
// Runs the built binary, which an aarch64 build under qemu-user cannot exec.
#![cfg(not(target_arch = "aarch64"))]

mod common;

use std::process::Command;

use common::data;
use swann::io::{write_fvecs, Matrix};

#[test]
fn experiment_writes_table_csv_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.fvecs");
    write_fvecs(
        &base,
        &Matrix {
            dim: 8,
            data: data(600, 8, 1),
        },
    )
    .unwrap();
    let (csv, json) = (dir.path().join("r.csv"), dir.path().join("r.json"));
    let configs = [
        "rbp:bits=4,hashes=2,seed=3",
        "rdp:projections=2,bin_width=0.5",
        "tree:bits=6,min=20",
        "pcab:bits=3,train=300",
        "pcad:projections=2,bin_width=0.5,train=300",
    ];
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_swann"));
    cmd.args(["lsh", "experiment", "--base"])
        .arg(&base)
        .args([
            "--limit",
            "500",
            "--query-count",
            "25",
            "--k",
            "5",
            "--reps",
            "1",
        ])
        .arg("--csv")
        .arg(&csv)
        .arg("--json")
        .arg(&json);
    for c in configs {
        cmd.args(["--config", c]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    assert_eq!(table.lines().count(), 1 + configs.len(), "{table}");
    for c in configs {
        assert!(table.contains(c), "{table}");
    }
    let csv = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(csv.lines().count(), 1 + configs.len());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(json["index"], "lsh");
    assert_eq!(json["dataset"]["n_base"], 500);
    let results = json["results"].as_array().unwrap();
    assert_eq!(results.len(), configs.len());
    for r in results {
        let recall = r["recall"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&recall), "{r}");
        assert_eq!(r["n_queries"], 25);
        assert!(r["queries_per_second"].as_f64().unwrap() > 0.0);
    }
}

#[test]
fn bad_configuration_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.fvecs");
    write_fvecs(
        &base,
        &Matrix {
            dim: 4,
            data: data(50, 4, 2),
        },
    )
    .unwrap();
    for (config, expect) in [
        ("lsh:bits=4", "unknown hash kind"),
        ("rbp:bitz=4", "unknown key"),
        ("rbp:bits=x", "bad value"),
        ("rdp:bin_width=0", "bin width"),
        ("rbp:rng=python", "rng must be swann or numpy"),
        ("tree:rng=numpy,seed=4294967295,hashes=2", "below 2^32"),
        ("pcab:rng=numpy", "unknown key"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_swann"))
            .args(["lsh", "experiment", "--base"])
            .arg(&base)
            .args(["--query-count", "5", "--config", config])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{config} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{config}: {err}");
    }
}
