"""The seeded data set of the recall-parity test, shared by the test and by
``make_recall_reference.py`` (which measures the real hnswlib on it).

``numpy.random.RandomState`` is used because its streams are frozen across
numpy versions, so both sides see the same vectors."""

import numpy as np

SEED = 20240601
N, NQ, DIM, K = 10_000, 300, 48, 10
M, EF_CONSTRUCTION = 8, 100
EFS = (10, 20, 40, 80)
SPACES = ("l2", "ip", "cosine")


def make_data():
    """(base, queries): a mixture of 40 Gaussian clusters with unequal
    spreads, float32."""
    rs = np.random.RandomState(SEED)
    centers = rs.normal(0.0, 4.0, size=(40, DIM))
    spread = rs.uniform(0.5, 2.0, size=40)
    which = rs.randint(0, 40, size=N + NQ)
    x = centers[which] + rs.normal(size=(N + NQ, DIM)) * spread[which, None]
    x = x.astype(np.float32)
    return x[:N], x[N:]


def ground_truth(base, queries, space):
    """Exact top-K labels under hnswlib's distance for ``space``."""
    b = base.astype(np.float64)
    q = queries.astype(np.float64)
    if space == "l2":
        d = (q * q).sum(1)[:, None] - 2 * q @ b.T + (b * b).sum(1)[None, :]
    elif space == "ip":
        d = 1.0 - q @ b.T
    else:
        bn = b / np.linalg.norm(b, axis=1, keepdims=True)
        qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        d = 1.0 - qn @ bn.T
    return np.argsort(d, axis=1, kind="stable")[:, :K]


def recall(found, truth):
    """Mean fraction of the true top-K found."""
    hits = sum(len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth))
    return hits / truth.size
