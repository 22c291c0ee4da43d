"""swann.n2 used the way N2's examples use it."""

import random

import numpy as np
import pytest

from conftest import exact_l2, recall
from swann.n2 import HnswIndex


def test_readme_example(tmp_path):
    f = 3
    t = HnswIndex(f, "L2")
    rnd = random.Random(1)
    for _ in range(1000):
        t.add_data([rnd.gauss(0, 1) for _ in range(f)])
    t.build(m=5, max_m0=10, n_threads=4)
    path = str(tmp_path / "test.n2")
    t.save(path)
    u = HnswIndex(f, "L2")
    assert u.load(path)
    ids = u.search_by_id(1, 10)
    assert len(ids) == 10 and ids[0] == 1 and all(isinstance(i, int) for i in ids)
    nns = u.search_by_vector([0.1, 0.2, 0.3], 10, include_distances=True)
    assert len(nns) == 10 and all(isinstance(p, tuple) and len(p) == 2 for p in nns)
    dists = [d for _, d in nns]
    assert dists == sorted(dists)


def test_l2_recall_and_batch(data):
    base, queries = data
    t = HnswIndex(16, "L2")
    for v in base:
        t.add_data(v)
    t.build(m=12, ef_construction=100, n_threads=2)
    truth = exact_l2(base, queries, 10)
    single = [t.search_by_vector(q, 10, ef_search=100) for q in queries]
    assert recall(np.array(single), truth) >= 0.95
    batch = t.batch_search_by_vectors(queries, 10, ef_search=100, num_threads=2)
    assert batch == single
    by_ids = t.batch_search_by_ids([0, 1, 2], 5, include_distances=True)
    assert [r[0][0] for r in by_ids] == [0, 1, 2]
    assert by_ids[0][0][1] == pytest.approx(0.0, abs=1e-5)
    # Squared L2, as N2 reports it.
    i, d = t.search_by_vector(queries[0], 1, include_distances=True)[0]
    assert d == pytest.approx(float(((base[i] - queries[0]) ** 2).sum()), rel=1e-4)


def test_angular_distance(data):
    base, _ = data
    t = HnswIndex(16)  # angular by default
    for v in base[:300]:
        t.add_data(v.tolist())
    t.build()
    (i, d), = t.search_by_vector(base[5] * 2.0, 1, include_distances=True)
    assert i == 5 and d == pytest.approx(0.0, abs=1e-5)
    res = t.search_by_id(5, 3, include_distances=True)
    for j, dist in res:
        cos = base[5] @ base[j] / np.linalg.norm(base[5]) / np.linalg.norm(base[j])
        assert dist == pytest.approx(1.0 - cos, abs=1e-4)


def test_dot_scores_larger_first():
    rs = np.random.RandomState(3)
    x = rs.normal(size=(500, 8)).astype(np.float32)
    t = HnswIndex(8, "dot")
    for v in x:
        t.add_data(v)
    t.build(ef_construction=200)
    q = rs.normal(size=8).astype(np.float32)
    res = t.search_by_vector(q, 5, ef_search=500, include_distances=True)
    scores = [s for _, s in res]
    assert scores == sorted(scores, reverse=True)
    best = int(np.argmax(x @ q))
    assert res[0][0] == best
    assert res[0][1] == pytest.approx(float(x[best] @ q), rel=1e-4)


def test_fewer_items_than_k():
    t = HnswIndex(2, "L2")
    for v in ([0, 0], [1, 1], [2, 2]):
        t.add_data(v)
    t.build()
    assert sorted(t.search_by_vector([0, 0], 10)) == [0, 1, 2]


def test_load_without_mmap_then_adds_are_refused(tmp_path, data):
    base, _ = data
    t = HnswIndex(16, "L2")
    for v in base[:100]:
        t.add_data(v)
    t.build()
    path = str(tmp_path / "a.n2")
    t.save(path)
    u = HnswIndex(16, "L2")
    u.load(path, use_mmap=False)
    # N2 refuses to add to a loaded model.
    with pytest.raises(RuntimeError, match="Adding an item is not allowed"):
        u.add_data(base[100])
    assert u.search_by_vector(base[0], 1) == [0]
    u.unload()
    u.add_data(base[0])  # an unloaded index takes data again
    m = HnswIndex(16, "L2")
    m.load(path)  # mmap
    assert m.search_by_id(3, 1) == [3]
    with pytest.raises(RuntimeError):
        HnswIndex(16, "angular").load(path)
    m.unload()
    with pytest.raises(RuntimeError):
        m.search_by_id(3, 1)


def test_errors(data):
    t = HnswIndex(4, "L2")
    with pytest.raises(ValueError):
        t.add_data([1, 2, 3])
    with pytest.raises(RuntimeError):  # N2 raises RuntimeError here too
        t.add_data([1, 2, 3, 4, 5])
    with pytest.raises(RuntimeError):
        t.build()  # no data
    with pytest.raises(ValueError):
        HnswIndex(4, "cosine-ish")
    t.add_data([1, 2, 3, 4])
    t.add_data([4, 3, 2, 1])
    t.build()
    with pytest.raises(ValueError):
        t.search_by_vector([1, 2], 1)
    with pytest.raises(KeyError):
        t.search_by_id(99, 1)
    with pytest.raises(ValueError):
        t.search_by_id(-1, 1)
    with pytest.raises(ValueError):
        t.search_by_vector([1, 2, 3, 4], 0)
    with pytest.raises(ValueError):
        t.build(neighbor_selecting="magic")
    with pytest.raises(ValueError):
        t.batch_search_by_vectors([[1, 2, 3]], 1)


@pytest.mark.parametrize(
    "selecting, expected",
    [
        (None, "heuristic"),
        ("heuristic", "heuristic"),
        ("naive", "simple"),
        ("heuristic_save_remains", "heuristic_keep_pruned"),
    ],
)
def test_build_parameters_reach_the_graph(data, tmp_path, selecting, expected):
    base, queries = data
    t = HnswIndex(16, "L2")
    for v in base:
        t.add_data(v)
    t.build(m=8, max_m0=20, mult=0.7, neighbor_selecting=selecting, n_threads=2)
    native = t._index
    assert (native.M, native.M0, native.selection) == (8, 20, expected)
    assert native.level_mult == pytest.approx(0.7)
    # They are saved with the index.
    path = str(tmp_path / "p.n2")
    t.save(path)
    u = HnswIndex(16, "L2")
    u.load(path, use_mmap=False)
    assert (u._index.M0, u._index.selection) == (20, expected)
    assert u._index.level_mult == pytest.approx(0.7)
    if selecting != "naive":
        truth = exact_l2(base, queries, 10)
        got = t.batch_search_by_vectors(queries, 10, ef_search=100, num_threads=2)
        assert recall(np.array(got), truth) >= 0.95


def test_default_build_parameters_are_n2s(data):
    base, _ = data
    t = HnswIndex(16, "angular")
    for v in base[:200]:
        t.add_data(v)
    t.build()
    assert (t._index.M, t._index.M0, t._index.selection) == (12, 24, "heuristic")
    assert t._index.level_mult == pytest.approx(1 / np.log(12))


def test_bad_build_parameters():
    for kwargs in [
        {"max_m0": 0},
        {"max_m0": 1},
        {"mult": 0.0},
        {"mult": -1.0},
        {"mult": float("nan")},
        {"graph_merging": "fold"},
    ]:
        t = HnswIndex(4, "L2")
        t.add_data([1, 2, 3, 4])
        with pytest.raises(ValueError):
            t.build(**kwargs)


def test_search_by_id_always_finds_the_item_itself():
    # N2's large-index check: every item is its own first result. N2 starts
    # an id search at the item; a search by its vector from the entry point
    # can miss it on hard data (uniform, 64-d, small M).
    for seed in range(16):
        rng = np.random.default_rng(seed)
        data = rng.random((1500, 64), dtype=np.float32)
        t = HnswIndex(64, "L2")
        for row in data:
            t.add_data(row)
        t.build(m=4, max_m0=8, ef_construction=16, n_threads=2)
        ids = list(range(0, 1500, 7))
        for i in ids:
            assert t.search_by_id(i, 1, ef_search=1)[0] == i, (seed, i)
        batch = t.batch_search_by_ids(ids, 3, num_threads=2)
        assert [r[0] for r in batch] == ids
