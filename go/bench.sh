#!/usr/bin/env bash
# Single-thread k=10 queries per second through the Go binding against the
# Rust call, on the same index file, machine and ef values.
#
#   go/bench.sh BASE QUERIES GROUNDTRUTH [EF_LIST] [WORKDIR]
#
# BASE and QUERIES are .bvecs or .fvecs files, GROUNDTRUTH an .ivecs file
# (L2). The index is built once with `swann build hnsw` into WORKDIR
# (default: a directory under ${TMPDIR:-/tmp}, kept for later runs) and
# searched by `swann bench index --threads 1` (Rust) and by
# go/cmd/swann-gobench (Go, package n2), both mapping the file and timing
# 50 warm-up queries then 3 passes of at least 100 ms (median), in ROUNDS
# (default 3) alternating rounds, the best of each side kept. Prints
# recall and QPS of each, and Go's QPS as a share of Rust's.
set -euo pipefail

if [[ $# -lt 3 ]]; then
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
base="$(realpath "$1")"
queries="$(realpath "$2")"
gt="$(realpath "$3")"
efs="${4:-40,80,120,200}"
work="${5:-${TMPDIR:-/tmp}/swann-go-bench}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [[ -d "$HOME/.cargo/bin" ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
mkdir -p "$work"
work="$(realpath "$work")"

cargo build --release -q -p swann-capi -p swann-cli
swann="$root/target/release/swann"
(cd go && go build -o "$work/swann-gobench" ./cmd/swann-gobench)

index="$work/$(basename "${base%.*}").swann"
if [[ ! -s "$index" || "$base" -nt "$index" ]]; then
    echo "building $index"
    "$swann" build hnsw --data "$base" --out "$index"
fi

grep -m1 'model name' /proc/cpuinfo || true
# Rounds alternate Rust and Go, and each side's best rate per ef is
# compared, so load from other processes, which comes and goes, is less
# likely to favour either side.
rounds="${ROUNDS:-3}"
rust_out=""
go_out=""
for ((r = 1; r <= rounds; r++)); do
    echo "== round $r: Rust (swann bench index --threads 1)"
    out="$("$swann" bench index "$index" --queries "$queries" --groundtruth "$gt" --k 10 --ef "$efs" --threads 1)"
    echo "$out"
    rust_out+="$out"$'\n'
    echo "== round $r: Go (swann-gobench, package n2)"
    out="$("$work/swann-gobench" -index "$index" -queries "$queries" -groundtruth "$gt" -k 10 -ef "$efs")"
    echo "$out"
    go_out+="$out"$'\n'
done

echo "== Go / Rust at the same ef (best of $rounds rounds each)"
printf '%6s %12s %12s %8s\n' ef rust_qps go_qps go/rust
IFS=',' read -r -a ef_values <<<"$efs"
for ef in "${ef_values[@]}"; do
    go_qps="$(sed -n "s/^ef=$ef .*qps=\([0-9.]*\).*/\1/p" <<<"$go_out" | sort -g | tail -n 1)"
    rust_qps="$(RUST_OUT="$rust_out" python3 - "$ef" <<'PY'
import os, re, sys
ef = sys.argv[1]
best = None
for line in os.environ["RUST_OUT"].splitlines():
    cells = line.split()
    if cells and cells[0] == ef:
        nums = [c for c in cells[1:] if re.fullmatch(r"[0-9.]+", c)]
        # the row: ef, recall, qps, ...
        if len(nums) > 1:
            best = max(best or 0.0, float(nums[1]))
print(f"{best:.0f}" if best is not None else "")
PY
)"
    if [[ -n "$go_qps" && -n "$rust_qps" ]]; then
        ratio="$(python3 -c "print(f'{$go_qps / $rust_qps:.3f}')")"
    else
        ratio="?"
    fi
    printf '%6s %12s %12s %8s\n' "$ef" "${rust_qps:-?}" "${go_qps:-?}" "$ratio"
done
