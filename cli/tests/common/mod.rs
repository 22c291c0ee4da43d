//! What the command-line tests share.

/// `n * dim` values in `[0, 1)` from SplitMix64 seeded with `seed`: the
/// same data on every platform.
pub fn data(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n * dim)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}

/// Runs the `swann` binary in `dir` with `args`.
// Not every test file runs the binary this way.
#[allow(dead_code)]
pub fn swann(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_swann"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

/// The standard output of a run that must have succeeded (both streams in
/// the panic message otherwise).
#[allow(dead_code)]
pub fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
