"""Recall parity: swann.hnswlib against the numbers the real hnswlib 0.8
measured on the same seeded data (``make_recall_reference.py``)."""

import json
import os

import numpy as np
import pytest

import recall_data as rd
import swann.hnswlib as hnswlib

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "recall_reference.json")) as f:
    REF = json.load(f)


def test_reference_matches_this_data():
    base, _ = rd.make_data()
    assert base.shape == (REF["n"], REF["dim"])
    assert abs(float(base.astype(np.float64).sum()) - REF["data_sum"]) < 1e-6 * abs(REF["data_sum"])


@pytest.mark.parametrize("space", rd.SPACES)
def test_recall_within_001_of_hnswlib(space):
    base, queries = rd.make_data()
    truth = rd.ground_truth(base, queries, space)
    index = hnswlib.Index(space=space, dim=rd.DIM)
    index.init_index(max_elements=rd.N, M=rd.M, ef_construction=rd.EF_CONSTRUCTION, random_seed=100)
    index.add_items(base, np.arange(rd.N), num_threads=1)
    for ef in rd.EFS:
        index.set_ef(ef)
        labels, _ = index.knn_query(queries, k=rd.K, num_threads=1)
        ours = rd.recall(labels, truth)
        theirs = REF["recall"][space][str(ef)]
        assert ours >= theirs - 0.01, f"{space} ef={ef}: swann {ours:.4f}, hnswlib {theirs:.4f}"
