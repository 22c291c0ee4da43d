#!/usr/bin/env bash
# Runs `swann query` on a mapped index inside a memory cgroup capped at
# CAP_MIB, with the index file's pages out of the page cache first, and
# reports what the cgroup held at most. The cap counts the process's own
# memory and every page of the file it reads, so a run that finishes with
# its recall shows the search works with that much resident: with an
# 8-bit coded index (`--quant sq8`) the graph and the codes, while the f32
# rows stay in the file and are read back for the rerank.
#
# Needs root and a memory cgroup (v2 or v1) this user can create groups in.
#
#   scripts/capped_query.sh CAP_MIB INDEX QUERIES GROUNDTRUTH [swann query options...]
#
# e.g. (sift-real; hnswlib's peak there is about 152 MiB):
#   swann build hnsw --data base.bvecs --quant sq8 --out sift.swann
#   scripts/capped_query.sh 76 sift.swann query.bvecs gt.ivecs --ef 24 --passes 3
#
# The binary is `swann` on PATH, or $SWANN.
set -euo pipefail

if [ $# -lt 4 ]; then
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
cap_mib=$1 index=$2 queries=$3 groundtruth=$4
shift 4
swann=${SWANN:-swann}
command -v "$swann" >/dev/null || { echo "no swann binary ($swann); set SWANN" >&2; exit 1; }
[ -f "$index" ] || { echo "no index file $index" >&2; exit 1; }
case $cap_mib in
    '' | *[!0-9]*) echo "CAP_MIB must be a whole number of MiB, got '$cap_mib'" >&2; exit 2 ;;
esac
cap=$((cap_mib * 1024 * 1024))

# A fresh copy written with O_DIRECT has no pages in the cache, so every
# page the search reads is read (and charged) inside the cgroup.
work=$(mktemp -d "$(dirname "$index")/capped.XXXXXX")
group=""
cleanup() {
    rm -rf "$work"
    if [ -n "$group" ] && [ -d "$group" ]; then
        # Move this shell out before removing the group.
        echo $$ > "$parent/cgroup.procs" 2>/dev/null || true
        rmdir "$group" 2>/dev/null || true
    fi
}
trap cleanup EXIT
copy=$work/index.swann
dd if="$index" of="$copy" bs=1M oflag=direct status=none

if [ -f /sys/fs/cgroup/cgroup.controllers ] && grep -qw memory /sys/fs/cgroup/cgroup.controllers; then
    # cgroup v2: a child of this process's group.
    parent=/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup)
    group=$parent/swann-capped.$$
    mkdir "$group"
    echo "$cap" > "$group/memory.max"
    echo 0 > "$group/memory.swap.max" 2>/dev/null || true
    peak_file=$group/memory.peak
elif [ -d /sys/fs/cgroup/memory ]; then
    # cgroup v1: a child of this process's memory group.
    parent=/sys/fs/cgroup/memory$(sed -n 's/^[0-9]*:memory://p' /proc/self/cgroup)
    group=$parent/swann-capped.$$
    mkdir "$group"
    echo "$cap" > "$group/memory.limit_in_bytes"
    echo "$cap" > "$group/memory.memsw.limit_in_bytes" 2>/dev/null || true
    peak_file=$group/memory.max_usage_in_bytes
else
    echo "no memory cgroup found under /sys/fs/cgroup" >&2
    exit 1
fi

echo "cap: $cap_mib MiB ($group)"
# The query runs in a child shell moved into the group first.
bash -c 'echo $$ > "$1/cgroup.procs"; shift; exec "$@"' _ "$group" \
    "$swann" query "$copy" --queries "$queries" --groundtruth "$groundtruth" --random "$@"
peak=$(cat "$peak_file" 2>/dev/null || echo 0)
echo "cgroup peak: $(awk -v b="$peak" 'BEGIN { printf "%.1f", b / 1048576 }') MiB (cap $cap_mib MiB)"
