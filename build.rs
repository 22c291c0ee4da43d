//! Compile-time probing only: which target features this compiler can build.
//!
//! Nothing here looks at the CPU that runs the build; the CPU that runs the
//! program is asked at run time (see `src/kernels/mod.rs`).

use std::env;
use std::process::Command;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(swann_avx512_intrinsics)");
    println!("cargo:rerun-if-changed=build.rs");

    // AVX-512 intrinsics and `#[target_feature(enable = "avx512f")]` are
    // stable since Rust 1.89. With an older compiler the AVX-512 module is
    // left out and dispatch never offers it.
    if rustc_minor().is_some_and(|minor| minor >= 89) {
        println!("cargo:rustc-cfg=swann_avx512_intrinsics");
    }
}

/// Minor version of the compiler cargo uses for this build (`1.MINOR.x`).
fn rustc_minor() -> Option<u32> {
    let rustc = env::var_os("RUSTC")?;
    let out = Command::new(rustc).arg("--version").output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let version = text.split_whitespace().nth(1)?;
    let mut parts = version.split('.');
    let major: u32 = parts.next()?.parse().ok()?;
    let minor: u32 = parts.next()?.parse().ok()?;
    (major == 1).then_some(minor)
}
