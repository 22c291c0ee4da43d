#!/usr/bin/env bash
# CI for the Go module (go/): builds the C ABI's static library in release
# (the Go packages link target/release/libswann_capi.a), and the swann
# command, which a test compares results with; then checks gofmt, runs
# go vet and go test in go/, printing how many tests passed, failed and
# were skipped.
#
#   bash .ci/go.sh                  # everything
#   GO_SKIP_CLI=1 bash .ci/go.sh    # without building the swann command
#                                   # (its comparison test is skipped)
#
# Installs Go (Debian's golang-go, 1.19 or later) and a C compiler with
# apt-get when they are missing (through sudo when not root). Exits
# non-zero on any failure.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [[ -d "$HOME/.cargo/bin" ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() {
    printf '\n== go: %s\n' "$*"
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
if ! command -v go >/dev/null 2>&1; then
    apt_install golang-go
fi
if ! command -v cc >/dev/null 2>&1; then
    apt_install gcc libc6-dev
fi
go version
cc --version | head -n 1

# The cgo directives name target/release under the workspace root.
if [[ -n "${CARGO_TARGET_DIR:-}" && "$(realpath -m "$CARGO_TARGET_DIR")" != "$root/target" ]]; then
    echo "CARGO_TARGET_DIR=$CARGO_TARGET_DIR: the Go packages link $root/target/release/libswann_capi.a; unset it" >&2
    exit 1
fi

step "cargo build --release -p swann-capi"
cargo build --release -p swann-capi
ls -l target/release/libswann_capi.a
if [[ -z "${GO_SKIP_CLI:-}" ]]; then
    step "cargo build --release -p swann-cli (for the Go-vs-Rust results test)"
    cargo build --release -p swann-cli
    export SWANN_CLI="$root/target/release/swann"
fi

cd go
export CGO_ENABLED=1

step "gofmt"
unformatted="$(gofmt -l .)"
if [[ -n "$unformatted" ]]; then
    echo "not gofmt-clean:" >&2
    echo "$unformatted" >&2
    exit 1
fi

step "go vet ./..."
go vet ./...

step "go build ./..."
go build ./...

step "go test ./..."
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
go test -count=1 -v ./... >"$log" 2>&1 || status=$?
grep -E '^(ok|FAIL|---|\?|panic)|^\s+--- (FAIL|SKIP)|^\s+\S+_test\.go:[0-9]+:' "$log" || true
passed="$(grep -cE '^\s*--- PASS' "$log" || true)"
failed="$(grep -cE '^\s*--- FAIL' "$log" || true)"
skipped="$(grep -cE '^\s*--- SKIP' "$log" || true)"
printf '\ngo test: %s passed, %s failed, %s skipped (tests and subtests)\n' "$passed" "$failed" "$skipped"
if [[ "$status" -ne 0 ]]; then
    echo "go test failed (exit $status); full log:" >&2
    cat "$log" >&2
    exit "$status"
fi
