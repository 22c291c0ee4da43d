"""Measures the real hnswlib's recall@10 on the seeded data of
``recall_data.py`` and writes ``recall_reference.json``, which
``test_recall.py`` holds swann.hnswlib to (within 0.01).

Run with a Python that has the real ``hnswlib`` installed::

    python -m venv /tmp/hv && /tmp/hv/bin/pip install hnswlib numpy
    /tmp/hv/bin/python python/tests/make_recall_reference.py
"""

import json
import os
import sys

import hnswlib
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import recall_data as rd  # noqa: E402


def main():
    base, queries = rd.make_data()
    out = {
        "hnswlib_version": getattr(hnswlib, "__version__", "0.8.0"),
        "numpy_version": np.__version__,
        "seed": rd.SEED,
        "n": rd.N,
        "nq": rd.NQ,
        "dim": rd.DIM,
        "k": rd.K,
        "M": rd.M,
        "ef_construction": rd.EF_CONSTRUCTION,
        "data_sum": float(base.astype(np.float64).sum()),
        "recall": {},
    }
    for space in rd.SPACES:
        truth = rd.ground_truth(base, queries, space)
        index = hnswlib.Index(space=space, dim=rd.DIM)
        index.init_index(max_elements=rd.N, M=rd.M, ef_construction=rd.EF_CONSTRUCTION, random_seed=100)
        index.add_items(base, np.arange(rd.N), num_threads=1)
        out["recall"][space] = {}
        for ef in rd.EFS:
            index.set_ef(ef)
            labels, _ = index.knn_query(queries, k=rd.K, num_threads=1)
            r = rd.recall(labels, truth)
            out["recall"][space][str(ef)] = round(r, 5)
            print(space, ef, r)
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "recall_reference.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
