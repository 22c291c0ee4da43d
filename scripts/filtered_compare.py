#!/usr/bin/env python3
"""Filtered HNSW search, swann against hnswlib, in one run.

Both libraries get the same data, parameters (M, ef_construction, build
threads) and queries; each query may only return labels from a random
subset holding a given share of the base. hnswlib takes the filter as a
callable (``knn_query(..., filter=f)``, its only form); ``swann.hnswlib``
is run with the same callable, and with the allowed labels as an array
(a swann extension). Recall@k is measured against the exact filtered
neighbours; queries run as one batch on one thread. For each share the
script prints queries per second at each ef and the best queries per
second reaching the target recall, with the swann/hnswlib ratio.

    python scripts/filtered_compare.py --base ../shared/data/sift-real_base.bvecs \\
        --queries ../shared/data/sift-real_query.bvecs --fractions 0.5,0.01,0.001

Needs numpy, hnswlib and the swann package (``pip install ./python``).
Reads .fvecs/.bvecs/.npy. Writes a Markdown table to standard output.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def read_vectors(path: str) -> np.ndarray:
    if path.endswith(".npy"):
        return np.load(path).astype(np.float32)
    raw = np.fromfile(path, dtype=np.uint8)
    dim = int(raw[:4].view(np.int32)[0])
    if path.endswith(".bvecs"):
        return raw.reshape(-1, 4 + dim)[:, 4:].astype(np.float32)
    if path.endswith(".fvecs"):
        return raw.view(np.float32).reshape(-1, 1 + dim)[:, 1:].copy()
    raise SystemExit(f"{path}: expected .fvecs, .bvecs or .npy")


def exact(base: np.ndarray, queries: np.ndarray, allowed: np.ndarray, k: int) -> np.ndarray:
    """Labels of the exact k nearest allowed rows (squared L2), per query."""
    rows = base[allowed].astype(np.float32)
    norms = (rows * rows).sum(1)
    out = np.empty((len(queries), min(k, len(allowed))), dtype=np.int64)
    for i in range(0, len(queries), 256):
        q = queries[i : i + 256]
        d = norms[None, :] - 2.0 * q @ rows.T
        top = np.argpartition(d, out.shape[1] - 1, axis=1)[:, : out.shape[1]]
        order = np.take_along_axis(d, top, 1).argsort(1)
        out[i : i + 256] = allowed[np.take_along_axis(top, order, 1)]
    return out


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth))
    return hits / truth.size


def sweep(index, queries, k, efs, filt, truth, target):
    points = []
    for ef in efs:
        index.set_ef(ef)
        started = time.perf_counter()
        labels, _ = index.knn_query(queries, k=k, num_threads=1, filter=filt)
        secs = time.perf_counter() - started
        points.append((ef, recall(labels, truth), len(queries) / secs))
        if points[-1][1] >= 0.999:
            break
    best = max((qps for _, r, qps in points if r >= target), default=None)
    return points, best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--limit-queries", type=int, default=1000)
    ap.add_argument("--fractions", default="0.5,0.01,0.001")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--M", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2, help="build threads")
    ap.add_argument("--efs", default="10,16,24,32,48,64,96,128,192,256,384,512")
    ap.add_argument("--target", type=float, default=0.95, help="recall the ratio is taken at")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    import hnswlib
    import swann.hnswlib as shnswlib

    base = read_vectors(args.base)
    queries = read_vectors(args.queries)[: args.limit_queries]
    n, dim = base.shape
    efs = [int(x) for x in args.efs.split(",")]
    labels = np.arange(n)
    built = {}
    for name, lib in (("hnswlib", hnswlib), ("swann", shnswlib)):
        index = lib.Index(space="l2", dim=dim)
        index.init_index(max_elements=n, M=args.M, ef_construction=args.ef_construction, random_seed=100)
        started = time.perf_counter()
        index.add_items(base, labels, num_threads=args.threads)
        print(f"{name}: built {n} x {dim} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        built[name] = index

    print(f"\n{n} x {dim} base, {len(queries)} queries, k={args.k}, M={args.M}, "
          f"ef_construction={args.ef_construction}; one thread, one batch; "
          f"ratios at recall >= {args.target}\n")
    print("| allowed | library, filter | best qps at target | ratio to hnswlib | sweep (ef: recall @ qps) |")
    print("|---:|---|---:|---:|---|")
    rng = np.random.default_rng(args.seed)
    for fraction in [float(x) for x in args.fractions.split(",")]:
        mask = rng.random(n) < fraction
        allowed = np.flatnonzero(mask)
        truth = exact(base, queries, allowed, args.k)
        lookup = bytearray(mask.astype(np.uint8).tobytes())

        def allow(label: int) -> bool:
            return lookup[label] == 1

        runs = [
            ("hnswlib, callable", built["hnswlib"], allow),
            ("swann, callable", built["swann"], allow),
            ("swann, label array", built["swann"], allowed.astype(np.uint64)),
        ]
        anchor = None
        for what, index, filt in runs:
            points, best = sweep(index, queries, args.k, efs, filt, truth, args.target)
            if anchor is None:
                anchor = best
            ratio = "" if best is None or anchor is None else f"{best / anchor:.1f}x"
            trail = ", ".join(f"{ef}: {r:.3f} @ {q:,.0f}" for ef, r, q in points)
            best_s = "not reached" if best is None else f"{best:,.0f}"
            print(f"| {fraction:.1%} ({len(allowed)}) | {what} | {best_s} | {ratio} | {trail} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
