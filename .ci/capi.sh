#!/usr/bin/env bash
# CI for the C ABI (capi/): checks that the committed header matches what
# cbindgen generates from the sources, builds the crate in release, runs the
# C test suite against the static and the shared library, the C example,
# the crate's Rust tests, and a smoke run of the C-vs-Rust benchmark.
#
#   bash .ci/capi.sh                    # everything
#   CAPI_SKIP_BENCH=1 bash .ci/capi.sh  # without the benchmark smoke run
#
# Installs cbindgen and a C compiler with apt-get when they are missing
# (through sudo when not root). Exits non-zero on any failure.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [[ -d "$HOME/.cargo/bin" ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() {
    printf '\n== capi: %s\n' "$*"
}

apt_install() {
    local sudo=()
    if [[ "$(id -u)" -ne 0 ]]; then
        sudo=(sudo)
    fi
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "$@"
}

step "tools"
if ! command -v cbindgen >/dev/null 2>&1; then
    apt_install cbindgen || cargo install cbindgen --locked
fi
if ! command -v cc >/dev/null 2>&1; then
    apt_install gcc libc6-dev
fi
cbindgen --version
cc --version | head -n 1

step "header is current (capi/include/swann.h)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd capi && cbindgen --quiet --config cbindgen.toml --output "$tmp/swann.h")
if ! diff -u capi/include/swann.h "$tmp/swann.h"; then
    echo "capi/include/swann.h is stale; regenerate it with:" >&2
    echo "  (cd capi && cbindgen --config cbindgen.toml --output include/swann.h)" >&2
    exit 1
fi

step "cargo build --release -p swann-capi"
cargo build --release -p swann-capi
lib_dir="${CARGO_TARGET_DIR:-$root/target}/release"
ls -l "$lib_dir/libswann_capi.a" "$lib_dir/libswann_capi.so"

cflags=(-std=c11 -O2 -g -Wall -Wextra -Werror -pthread -I capi/include)
static_libs=(-lm -ldl -lpthread)

step "C tests, static library"
cc "${cflags[@]}" capi/tests/c/test_capi.c "$lib_dir/libswann_capi.a" "${static_libs[@]}" \
    -o "$tmp/test_capi_static"
# The panic-hook checks make the library panic on purpose; a backtrace for
# each would only bury the results.
RUST_BACKTRACE=0 "$tmp/test_capi_static"

step "C tests, shared library"
cc "${cflags[@]}" capi/tests/c/test_capi.c "$lib_dir/libswann_capi.so" -lm \
    -Wl,-rpath,"$lib_dir" -o "$tmp/test_capi_shared"
# The listing is read whole before it is searched: `grep -q` quits at its
# first match, and under pipefail the writer's SIGPIPE would fail the check.
needed="$(readelf -d "$tmp/test_capi_shared")"
if ! grep -q 'NEEDED.*libswann_capi\.so' <<<"$needed"; then
    echo "test_capi_shared is not linked against libswann_capi.so" >&2
    exit 1
fi
RUST_BACKTRACE=0 "$tmp/test_capi_shared"

step "C example"
cc "${cflags[@]}" capi/examples/example.c "$lib_dir/libswann_capi.a" "${static_libs[@]}" \
    -o "$tmp/example"
(cd "$tmp" && ./example)

step "Rust tests (cargo test -p swann-capi)"
cargo test --release -p swann-capi

if [[ "${CAPI_SKIP_BENCH:-0}" != "1" ]]; then
    step "benchmark smoke run (capi/bench/run.sh --smoke)"
    bash capi/bench/run.sh --smoke
fi

step "ok"
