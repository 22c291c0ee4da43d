#!/usr/bin/env bash
# Measures what the C ABI costs on HNSW search: single-threaded k=10
# searches of the same queries on the same index file, once through
# libswann_capi (bench_capi.c) and once calling the library from Rust
# (bench_rust.rs), and prints both rates and their ratio.
#
#   capi/bench/run.sh --base BASE.{fvecs,bvecs} --queries Q.{fvecs,bvecs} [--ef 64] [--k 10] [--passes 3] [--rounds 3]
#   capi/bench/run.sh --index FILE --queries Q ...   # an index already built
#   capi/bench/run.sh --smoke                        # small generated data (CI)
#
# The index is built from BASE with the swann CLI (`swann build hnsw`).
# Each round runs the C program, then the Rust one (each timing PASSES
# passes over the queries); the best rate of each over all rounds is
# compared, so that load from other processes, which comes and goes, is
# less likely to favour either side. Work files go to a temporary
# directory, removed on exit.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

base="" queries="" index="" ef=64 k=10 passes=3 rounds=3 smoke=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --base) base="$2"; shift 2 ;;
        --queries) queries="$2"; shift 2 ;;
        --index) index="$2"; shift 2 ;;
        --ef) ef="$2"; shift 2 ;;
        --k) k="$2"; shift 2 ;;
        --passes) passes="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        --smoke) smoke=1; shift ;;
        *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
target="${CARGO_TARGET_DIR:-$root/target}/release"

echo "== building (release): swann-capi, bench_rust, swann-cli"
cargo build --release -q -p swann-capi --lib --example bench_rust
cargo build --release -q -p swann-cli
cc -std=c11 -O2 -I capi/include capi/bench/bench_capi.c "$target/libswann_capi.a" \
    -lm -ldl -lpthread -o "$tmp/bench_capi"

if [[ "$smoke" == 1 ]]; then
    base="$tmp/base.fvecs"
    queries="$tmp/queries.fvecs"
    "$target/examples/bench_rust" gen "$base" 2000 32 1
    "$target/examples/bench_rust" gen "$queries" 200 32 2
    passes=1
    rounds=1
fi
if [[ -z "$index" ]]; then
    [[ -n "$base" ]] || { echo "run.sh: give --base, --index or --smoke" >&2; exit 2; }
    index="$tmp/index.swann"
    echo "== swann build hnsw --data $base"
    "$target/swann" build hnsw --data "$base" --out "$index"
fi
[[ -n "$queries" ]] || { echo "run.sh: give --queries" >&2; exit 2; }

echo "== searching: k=$k ef=$ef, $rounds rounds of $passes passes each, one thread"
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }
best_c=0 best_r=0 cpu_c=0 cpu_r=0
max() { awk -v a="$1" -v b="$2" 'BEGIN { print (b > a ? b : a) }'; }
for ((round = 1; round <= rounds; round++)); do
    c_line="$("$tmp/bench_capi" "$index" "$queries" "$k" "$ef" "$passes")"
    r_line="$("$target/examples/bench_rust" search "$index" "$queries" "$k" "$ef" "$passes")"
    echo "round $round: $c_line"
    echo "round $round: $r_line"
    if [[ "$(field checksum "$c_line")" != "$(field checksum "$r_line")" ]]; then
        echo "run.sh: the C and Rust runs returned different labels" >&2
        exit 1
    fi
    best_c="$(max "$best_c" "$(field qps "$c_line")")"
    best_r="$(max "$best_r" "$(field qps "$r_line")")"
    cpu_c="$(max "$cpu_c" "$(field cpu_qps "$c_line")")"
    cpu_r="$(max "$cpu_r" "$(field cpu_qps "$r_line")")"
done
awk -v c="$best_c" -v r="$best_r" \
    'BEGIN { printf "C ABI / Rust qps ratio, wall clock: %.3f (best C %.0f qps, best Rust %.0f qps)\n", c / r, c, r }'
awk -v c="$cpu_c" -v r="$cpu_r" \
    'BEGIN { printf "C ABI / Rust qps ratio, CPU clock:  %.3f (best C %.0f qps, best Rust %.0f qps)\n", c / r, c, r }'
