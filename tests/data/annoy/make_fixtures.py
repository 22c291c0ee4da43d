#!/usr/bin/env python3
"""Writes the Annoy fixtures that tests/forest_annoy.rs reads.

Run with the Python `annoy` package 1.17.3 (`pip install annoy==1.17.3 numpy`)
from this folder: `python3 make_fixtures.py`. For each metric it builds a small
seeded index, saves it as `<name>.ann`, and records in `<name>.json` the data,
the queries, and Annoy's own answers (neighbour ids and distances) for a
default and an exhaustive search_k, by vector and by item.
"""
import json

import annoy
import numpy as np

N_TREES = 8
N_QUERIES = 12
K = 10


def clustered(rng, n, dim, centers=6):
    c = rng.normal(0, 4, size=(centers, dim))
    lab = rng.integers(0, centers, size=n)
    return (c[lab] + rng.normal(0, 1, size=(n, dim))).astype(np.float32)


def make(name, metric, dim, n, gaps=False, binary=False, seed=0):
    rng = np.random.default_rng(seed)
    if binary:
        x = (rng.random((n, dim)) < 0.5).astype(np.float32)
        # give the bits some structure so that trees matter
        x[: n // 2, : dim // 4] = 1.0
        q = (rng.random((N_QUERIES, dim)) < 0.5).astype(np.float32)
    else:
        x = clustered(rng, n, dim)
        q = clustered(rng, N_QUERIES, dim) if metric != "dot" else rng.normal(0, 1, (N_QUERIES, dim)).astype(np.float32)
    ids = list(range(n))
    if gaps:  # ids never added: Annoy still counts max(id) + 1 items
        ids = [i for i in range(n + n // 10) if i % 11 != 5][:n]
    idx = annoy.AnnoyIndex(dim, metric)
    idx.set_seed(42)
    for i, v in zip(ids, x):
        idx.add_item(i, v.tolist())
    idx.build(N_TREES, n_jobs=1)
    idx.save(f"{name}.ann")
    exhaustive = N_TREES * (max(ids) + 1) * 4

    def by_vector(search_k):
        out = []
        for v in q:
            r, d = idx.get_nns_by_vector(v.tolist(), K, search_k=search_k, include_distances=True)
            out.append({"ids": r, "distances": d})
        return out

    def by_item(search_k):
        out = []
        for i in ids[:N_QUERIES]:
            r, d = idx.get_nns_by_item(i, K, search_k=search_k, include_distances=True)
            out.append({"item": i, "ids": r, "distances": d})
        return out

    pairs = [(ids[a], ids[b]) for a, b in [(0, 1), (2, 3), (5, 8), (13, 21)]]
    doc = {
        "annoy_version": "1.17.3",
        "metric": metric,
        "dim": dim,
        "n_trees": idx.get_n_trees(),
        "n_items": idx.get_n_items(),
        "k": K,
        "ids": ids,
        "queries": q.tolist(),
        "item_vectors": {str(i): idx.get_item_vector(i) for i in ids[:3]},
        "item_distances": [[a, b, idx.get_distance(a, b)] for a, b in pairs],
        "default": {"search_k": -1, "by_vector": by_vector(-1), "by_item": by_item(-1)},
        "exhaustive": {"search_k": exhaustive, "by_vector": by_vector(exhaustive),
                       "by_item": by_item(exhaustive)},
    }
    with open(f"{name}.json", "w") as f:
        json.dump(doc, f)


if __name__ == "__main__":
    make("angular", "angular", 16, 600, seed=1)
    make("euclidean", "euclidean", 16, 600, gaps=True, seed=2)
    make("manhattan", "manhattan", 12, 500, seed=3)
    make("dot", "dot", 16, 600, seed=4)
    make("hamming", "hamming", 100, 500, binary=True, seed=5)
