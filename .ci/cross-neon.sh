#!/usr/bin/env bash
# Builds the library's tests for aarch64 and runs them under QEMU user-mode
# emulation, which is how the NEON kernels are tested on x86-64 machines.
#
#     bash .ci/cross-neon.sh                      # cargo test -p swann for aarch64
#     bash .ci/cross-neon.sh --release -- --test-threads=2
#
# Arguments go on to `cargo test`. Installs what is missing: the rustup target
# aarch64-unknown-linux-gnu, and from Debian's packages the cross linker and
# sysroot (gcc-aarch64-linux-gnu, libc6-dev-arm64-cross) and qemu-user. The
# runner is `qemu-aarch64 -L /usr/aarch64-linux-gnu` (the cross sysroot's
# glibc); with a multiarch libc6:arm64 installed instead, plain
# `qemu-aarch64`, so that the loader and libc come from one glibc. QEMU's
# default CPU has NEON and dotprod; QEMU_CPU=cortex-a72 runs plain NEON.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ -d "$HOME/.cargo/bin" ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
TARGET=aarch64-unknown-linux-gnu

installed="$(rustup target list --installed)"
if ! grep -qx "$TARGET" <<<"$installed"; then
    if ! rustup target add "$TARGET"; then
        echo "cross-neon.sh: rustup cannot install the $TARGET standard library here" >&2
        exit 2
    fi
fi
missing=()
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || missing+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null 2>&1 || missing+=(qemu-user)
if ((${#missing[@]})); then
    echo "cross-neon.sh: installing ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [[ -e /lib/ld-linux-aarch64.so.1 ]]; then
    runner="qemu-aarch64"
else
    runner="qemu-aarch64 -L /usr/aarch64-linux-gnu"
fi
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="$runner"
# A host `-C target-cpu=native` would break the cross build.
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/cross-neon}"

echo "cross-neon.sh: cargo test -p swann --all-features --target $TARGET (runner: $runner)"
cargo test -p swann --all-features --target "$TARGET" "$@"
