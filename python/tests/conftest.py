import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def data():
    """2,000 seeded float32 vectors of dimension 16 and 50 queries."""
    rs = np.random.RandomState(7)
    x = rs.normal(size=(2050, 16)).astype(np.float32)
    return x[:2000], x[2000:]


def exact_l2(base, queries, k):
    d = ((queries[:, None, :].astype(np.float64) - base[None, :, :]) ** 2).sum(-1)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def recall(found, truth):
    hits = sum(len(set(map(int, f)) & set(map(int, t))) for f, t in zip(found, truth))
    return hits / truth.size
