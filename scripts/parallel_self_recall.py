#!/usr/bin/env python3
"""Does a parallel HNSW build keep every item findable?

hnswlib's own usage pattern, run through ``swann.hnswlib`` and (when it is
installed) the real ``hnswlib`` side by side: random vectors,
``add_items(..., num_threads=N)``, then every item queried by its own
vector (k=1, ef=100). A run "misses" when some item is not its own nearest
neighbour (exact duplicates aside). Then the same after ``resize_index``
and a second round of parallel adds.

    python scripts/parallel_self_recall.py                 # the default table
    python scripts/parallel_self_recall.py --runs 30 --threads 1,2,4,50 --n 2000 --dim 16

Needs numpy and the swann package (``pip install ./python``); hnswlib is
optional (``pip install hnswlib``). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time

import numpy as np


def misses(index, data: np.ndarray, labels: np.ndarray) -> int:
    """Items not found as their own nearest neighbour (ties at distance 0
    with a duplicate count as found)."""
    found, dist = index.knn_query(data, k=1, num_threads=1)
    return int(((found[:, 0] != labels) & (dist[:, 0] > 0)).sum())


def one_run(lib, n: int, dim: int, threads: int, seed: int, grow: bool) -> int:
    rng = np.random.default_rng(seed)
    data = rng.random((2 * n if grow else n, dim), dtype=np.float32)
    labels = np.arange(len(data))
    index = lib.Index(space="l2", dim=dim)
    index.init_index(max_elements=n, ef_construction=200, M=16, random_seed=seed)
    index.add_items(data[:n], labels[:n], num_threads=threads)
    if grow:
        index.resize_index(2 * n)
        index.add_items(data[n:], labels[n:], num_threads=threads)
    index.set_ef(100)
    return misses(index, data, labels)


def table(libs, args, grow: bool) -> None:
    what = "after resize_index and a second round of adds" if grow else "after one build"
    print(f"\n### {args.n} random vectors x {args.dim}, {args.runs} runs per row, {what}\n")
    head = "| build threads |"
    rule = "|---:|"
    for name, _ in libs:
        head += f" {name}: runs that miss | {name}: worst run |"
        rule += "---:|---:|"
    print(head)
    print(rule)
    for t in args.threads:
        row = f"| {t} |"
        for _, lib in libs:
            started = time.perf_counter()
            per_run = [one_run(lib, args.n, args.dim, t, s, grow) for s in range(args.runs)]
            bad = sum(m > 0 for m in per_run)
            row += f" {bad} | {max(per_run)} missed |"
            print(f"  ({lib.__name__}, {t} threads: {time.perf_counter() - started:.1f} s)", file=sys.stderr)
        print(row, flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--dim", type=int, default=16)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--threads", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 4, 50])
    ap.add_argument("--no-hnswlib", action="store_true", help="run swann only")
    args = ap.parse_args()
    libs = [("swann.hnswlib", importlib.import_module("swann.hnswlib"))]
    if not args.no_hnswlib:
        try:
            libs.append(("hnswlib", importlib.import_module("hnswlib")))
        except ImportError:
            print("hnswlib is not installed: swann only", file=sys.stderr)
    table(libs, args, grow=False)
    table(libs, args, grow=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
