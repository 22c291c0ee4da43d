#!/usr/bin/env python3
"""Writes the hnswlib import fixtures under tests/data/hnswlib/.

Needs `pip install numpy hnswlib` (hnswlib 0.7 or 0.8; both write the same
file layout). The output is committed, so the tests need neither Python nor
hnswlib; rerun this only to regenerate the fixtures:

    python3 tests/data/make_hnswlib_fixtures.py

For each hnswlib space (l2, ip, cosine) it builds an index of 500 random
16-dimensional vectors with non-trivial labels, marks a few labels deleted
(l2 only), saves it with `save_index`, and records hnswlib's own answers
for 50 queries (k=10 at ef=10 and ef=64) and the exact top 10 (ef = n, which makes
hnswlib's search exhaustive on a connected graph, cross-checked with numpy).

Files (all little-endian):
  base.fvecs, queries.fvecs          vectors (.fvecs: i32 dim, then dim f32)
  labels.u64                         the 500 labels, raw u64
  {space}.hnsw                       hnswlib save_index output
  {space}_hnswlib_ef{10,64}.ivecs    hnswlib's top-10 labels per query at ef=10 and 64
  {space}_exact.ivecs                exact top-10 labels per query (deleted excluded)
  meta.json                          parameters and versions
"""

import json
import os
import struct

import hnswlib
import numpy as np

N, DIM, NQ, K = 500, 16, 50, 10
M, EF_CONSTRUCTION, SEED = 8, 100, 4242
DELETED = [7, 123, 250]  # row indices marked deleted in the l2 index

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hnswlib")


def write_vecs(path, rows, fmt):
    with open(path, "wb") as f:
        for row in rows:
            f.write(struct.pack("<i", len(row)))
            f.write(struct.pack("<%d%s" % (len(row), fmt), *row))


def exact(space, base, labels, queries, exclude):
    if space == "l2":
        d = ((queries[:, None, :] - base[None, :, :]) ** 2).sum(-1)
    elif space == "ip":
        d = 1.0 - queries @ base.T
    else:
        b = base / np.linalg.norm(base, axis=1, keepdims=True)
        q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        d = 1.0 - q @ b.T
    d = d.astype(np.float64)
    d[:, list(exclude)] = np.inf
    order = np.argsort(d, axis=1, kind="stable")[:, :K]
    # No ties at the k boundary, so the expected set is unambiguous.
    srt = np.sort(d, axis=1)
    assert np.all(srt[:, K - 1] < srt[:, K]), "tie at the k-th neighbour"
    return labels[order]


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(SEED)
    base = rng.standard_normal((N, DIM)).astype(np.float32)
    queries = rng.standard_normal((NQ, DIM)).astype(np.float32)
    labels = (np.arange(N, dtype=np.uint64) * 3 + 1000).astype(np.uint64)
    write_vecs(os.path.join(OUT, "base.fvecs"), base.tolist(), "f")
    write_vecs(os.path.join(OUT, "queries.fvecs"), queries.tolist(), "f")
    labels.astype("<u8").tofile(os.path.join(OUT, "labels.u64"))

    meta = {
        "n": N, "dim": DIM, "n_queries": NQ, "k": K, "M": M,
        "ef_construction": EF_CONSTRUCTION, "seed": SEED,
        "deleted_rows_l2": DELETED,
        "hnswlib": getattr(hnswlib, "__version__", "0.8.0"),
        "numpy": np.__version__,
    }
    for space in ["l2", "ip", "cosine"]:
        index = hnswlib.Index(space=space, dim=DIM)
        index.init_index(max_elements=N + 20, M=M, ef_construction=EF_CONSTRUCTION,
                         random_seed=SEED)
        index.set_num_threads(1)
        index.add_items(base, labels)
        exclude = []
        if space == "l2":
            for row in DELETED:
                index.mark_deleted(int(labels[row]))
            exclude = DELETED
        index.save_index(os.path.join(OUT, f"{space}.hnsw"))

        answers = {}
        for ef in (10, 64):
            index.set_ef(ef)
            got, _ = index.knn_query(queries, k=K)
            answers[ef] = got
            write_vecs(os.path.join(OUT, f"{space}_hnswlib_ef{ef}.ivecs"),
                       got.astype(np.int64).tolist(), "i")

        truth = exact(space, base, labels, queries, exclude)
        index.set_ef(N)
        full, _ = index.knn_query(queries, k=K)
        agree = np.mean([len(set(a) & set(b)) / K for a, b in zip(full, truth)])
        assert agree == 1.0, f"{space}: exhaustive hnswlib search disagrees with numpy ({agree})"
        write_vecs(os.path.join(OUT, f"{space}_exact.ivecs"),
                   truth.astype(np.int64).tolist(), "i")
        for ef, got in answers.items():
            recall = np.mean([len(set(a) & set(b)) / K for a, b in zip(got, truth)])
            meta[f"{space}_hnswlib_recall_ef{ef}"] = float(recall)

    with open(os.path.join(OUT, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
