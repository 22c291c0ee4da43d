"""swann.hnswlib used the way hnswlib's own users and examples use it."""

import copy
import os
import pickle
import threading

import numpy as np
import pytest

import swann.hnswlib as hnswlib
from conftest import exact_l2, recall

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "hnswlib")


def build(data, space="l2", max_elements=None, **kw):
    base, _ = data
    p = hnswlib.Index(space=space, dim=base.shape[1])
    p.init_index(max_elements=max_elements or len(base), ef_construction=100, M=16, **kw)
    p.add_items(base, np.arange(len(base)))
    p.set_ef(50)
    return p


def test_readme_example(data):
    base, queries = data
    p = hnswlib.Index(space="l2", dim=16)
    p.init_index(max_elements=len(base), ef_construction=200, M=16)
    p.add_items(base)
    p.set_ef(50)
    labels, distances = p.knn_query(queries, k=1)
    assert labels.shape == (len(queries), 1) and labels.dtype == np.uint64
    assert distances.shape == (len(queries), 1) and distances.dtype == np.float32
    truth = exact_l2(base, queries, 1)
    assert recall(labels, truth) >= 0.95
    # Distances are squared L2, as hnswlib reports them.
    d = ((base[labels[:, 0].astype(np.int64)] - queries) ** 2).sum(1)
    np.testing.assert_allclose(distances[:, 0], d, rtol=1e-4, atol=1e-4)


def test_properties(data):
    p = hnswlib.Index("cosine", 16)
    assert (p.space, p.dim, p.max_elements, p.element_count, p.M) == ("cosine", 16, 0, 0, 0)
    assert p.ef == 10
    p.init_index(max_elements=100, M=8, ef_construction=50)
    assert (p.max_elements, p.M, p.ef_construction) == (100, 8, 50)
    p.add_items(data[0][:10])
    assert p.element_count == p.get_current_count() == 10
    assert p.get_max_elements() == 100
    p.ef = 33
    assert p.ef == 33
    p.set_num_threads(2)
    assert p.num_threads == 2
    assert "cosine" in repr(p)
    with pytest.raises(RuntimeError):
        p.init_index(max_elements=10)


def test_bad_space():
    with pytest.raises(ValueError):
        hnswlib.Index("hamming", 4)


def test_ids_default_to_the_count(data):
    base, _ = data
    p = hnswlib.Index("l2", 16)
    p.init_index(100)
    p.add_items(base[:10])
    p.add_items(base[10:20])
    assert sorted(p.get_ids_list()) == list(range(20))
    labels, _ = p.knn_query(base[15], k=1)
    assert labels[0, 0] == 15


def test_explicit_ids_scalar_list_array(data):
    base, _ = data
    p = hnswlib.Index("l2", 16)
    p.init_index(100)
    p.add_items(base[0], 1000)
    p.add_items(base[1:3], [2000, 3000])
    p.add_items(base[3:5], np.array([4000, 5000], dtype=np.int64))
    assert sorted(p.get_ids_list()) == [1000, 2000, 3000, 4000, 5000]
    assert p.knn_query(base[2], k=1)[0][0, 0] == 3000


def test_capacity_limit_like_hnswlib(data):
    base, _ = data
    p = hnswlib.Index("l2", 16)
    p.init_index(max_elements=10)
    p.add_items(base[:10])
    with pytest.raises(RuntimeError, match="exceeds the specified limit"):
        p.add_items(base[10:11])
    # Updating an existing label needs no room.
    p.add_items(base[20:21], [3])
    np.testing.assert_allclose(p.get_items([3])[0], base[20])
    p.resize_index(20)
    p.add_items(base[10:20])
    assert p.element_count == 20 and p.max_elements == 20
    with pytest.raises(RuntimeError):
        p.resize_index(5)


def test_too_few_results_raise(data):
    base, _ = data
    p = hnswlib.Index("l2", 16)
    p.init_index(10)
    p.add_items(base[:5])
    with pytest.raises(RuntimeError, match="contiguous 2D array"):
        p.knn_query(base[0], k=6)
    labels, _ = p.knn_query(base[0], k=5)
    assert sorted(labels[0].tolist()) == [0, 1, 2, 3, 4]


def test_deletion(data):
    base, queries = data
    p = build(data)
    p.mark_deleted(0)
    labels, _ = p.knn_query(base[0], k=5)
    assert 0 not in labels
    with pytest.raises(RuntimeError, match="Label not found"):
        p.get_items([0])
    with pytest.raises(RuntimeError):
        p.mark_deleted(0)  # already deleted
    with pytest.raises(RuntimeError, match="Label not found"):
        p.mark_deleted(123456)
    p.unmark_deleted(0)
    assert p.knn_query(base[0], k=1)[0][0, 0] == 0
    with pytest.raises(KeyError):  # also a KeyError
        p.unmark_deleted(123456)


def test_replace_deleted(data):
    base, _ = data
    p = hnswlib.Index("l2", 16)
    p.init_index(max_elements=10, allow_replace_deleted=True)
    p.add_items(base[:10])
    p.mark_deleted(3)
    p.mark_deleted(4)
    p.add_items(base[100:102], [100, 101], replace_deleted=True)
    assert p.element_count == 10
    ids = set(p.get_ids_list())
    assert {100, 101} <= ids and not {3, 4} & ids
    assert p.knn_query(base[101], k=1)[0][0, 0] == 101
    with pytest.raises(RuntimeError):
        p.add_items(base[102:103], [102], replace_deleted=True)

    q = hnswlib.Index("l2", 16)
    q.init_index(max_elements=10)
    q.add_items(base[:2])
    with pytest.raises(RuntimeError, match="disabled"):
        q.add_items(base[2:3], replace_deleted=True)


def test_filter(data):
    base, queries = data
    p = build(data)
    labels, _ = p.knn_query(queries, k=5, filter=lambda label: label % 2 == 0)
    assert (labels % 2 == 0).all()
    # Single thread, and a filter that raises: the exception propagates.
    def bad(label):
        raise ZeroDivisionError("boom")

    with pytest.raises(ZeroDivisionError):
        p.knn_query(queries[:3], k=5, filter=bad, num_threads=1)


def test_threads_give_the_same_answers(data):
    base, queries = data
    p = build(data)
    a = p.knn_query(queries, k=10, num_threads=1)
    b = p.knn_query(queries, k=10, num_threads=2)
    c = p.knn_query(queries, k=10)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[0], c[0])


def test_concurrent_python_threads(data):
    base, queries = data
    p = build(data)
    expected = p.knn_query(queries, k=5, num_threads=1)[0]
    errors = []

    def work():
        try:
            for _ in range(5):
                np.testing.assert_array_equal(p.knn_query(queries, k=5, num_threads=1)[0], expected)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_get_items(data):
    base, _ = data
    p = build(data)
    items = p.get_items([5, 6])
    assert items.shape == (2, 16) and items.dtype == np.float32
    np.testing.assert_allclose(items, base[5:7])
    assert p.get_items([5], return_type="list")[0] == pytest.approx(base[5].tolist())
    assert p.get_items().shape == (0, 16)
    # The (n, 1) label array knn_query returns goes straight back in, as in
    # hnswlib; a single integer is refused with hnswlib's ValueError.
    labels, _ = p.knn_query(base[:4], k=1)
    assert labels.shape == (4, 1)
    np.testing.assert_allclose(p.get_items(labels), base[:4])
    with pytest.raises(ValueError, match="accepts a list of indices"):
        p.get_items(5)


def test_cosine_normalizes(data):
    base, _ = data
    p = hnswlib.Index("cosine", 16)
    p.init_index(len(base))
    p.add_items(base * 3.0)
    v = p.get_items([0])[0]
    assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5)
    labels, d = p.knn_query(base[0], k=1)
    assert labels[0, 0] == 0 and abs(d[0, 0]) < 1e-5


def test_ip_distance(data):
    base, _ = data
    p = hnswlib.Index("ip", 16)
    p.init_index(len(base))
    p.add_items(base)
    p.set_ef(100)
    labels, d = p.knn_query(base[:3], k=3)
    for row in range(3):
        want = 1.0 - base[labels[row].astype(np.int64)] @ base[row]
        np.testing.assert_allclose(d[row], want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "bad, exc",
    [
        (np.zeros((3, 15), dtype=np.float32), ValueError),
        (np.zeros((2, 3, 16), dtype=np.float32), ValueError),
        (np.zeros(17), ValueError),
        ([["a"] * 16], ValueError),
        (np.full((1, 16), np.nan, dtype=np.float32), ValueError),
    ],
)
def test_bad_input_raises(data, bad, exc):
    p = build(data)
    with pytest.raises(exc):
        p.add_items(bad)
    with pytest.raises((exc, RuntimeError)):
        p.knn_query(bad, k=1)
    assert p.element_count == len(data[0])


def test_bad_ids(data):
    base, _ = data
    p = build(data, max_elements=3000)
    with pytest.raises(ValueError):
        p.add_items(base[:2], [1])  # wrong count
    with pytest.raises(ValueError):
        p.add_items(base[:2], [-1, 2])
    with pytest.raises(ValueError):
        p.add_items(base[:2], [0.5, 2.5])


def test_dtype_conversion(data):
    base, queries = data
    p = build(data)
    a = p.knn_query(queries, k=3)[0]
    b = p.knn_query(queries.astype(np.float64), k=3)[0]
    c = p.knn_query(np.asfortranarray(queries), k=3)[0]
    d = p.knn_query(queries.tolist(), k=3)[0]
    for other in (b, c, d):
        np.testing.assert_array_equal(a, other)
    with pytest.raises(ValueError):
        p.knn_query(queries, k=0)


def test_uninitialized_index_raises():
    p = hnswlib.Index("l2", 4)
    with pytest.raises(RuntimeError):
        p.add_items(np.zeros((1, 4)))
    with pytest.raises(RuntimeError):
        p.knn_query(np.zeros((1, 4)))
    assert p.get_ids_list() == []


def test_save_load_round_trip(data, tmp_path):
    base, queries = data
    p = build(data)
    p.mark_deleted(1)
    path = str(tmp_path / "index.bin")
    p.save_index(path)
    assert p.index_file_size() == os.path.getsize(path)
    q = hnswlib.Index("l2", 16)
    q.load_index(path, max_elements=5000)
    assert q.max_elements == 5000 and q.element_count == p.element_count
    assert q.ef == 10
    q.set_ef(50)
    np.testing.assert_array_equal(p.knn_query(queries, k=5)[0], q.knn_query(queries, k=5)[0])
    assert 1 not in q.knn_query(base[1], k=5)[0]
    q.add_items(base[:10], np.arange(10000, 10010))
    wrong = hnswlib.Index("ip", 16)
    with pytest.raises(RuntimeError):
        wrong.load_index(path)


def test_load_real_hnswlib_files():
    meta_path = os.path.join(FIXTURES, "meta.json")
    if not os.path.exists(meta_path):
        pytest.skip("hnswlib fixtures not present")
    import json

    with open(meta_path) as f:
        meta = json.load(f)
    dim = meta["dim"]

    def fvecs(name):
        raw = np.fromfile(os.path.join(FIXTURES, name), dtype=np.float32)
        return raw.reshape(-1, dim + 1)[:, 1:]

    def ivecs(name):
        raw = np.fromfile(os.path.join(FIXTURES, name), dtype=np.int32)
        return raw.reshape(-1, raw[0] + 1)[:, 1:]

    queries = fvecs("queries.fvecs")
    for space in ("l2", "ip", "cosine"):
        p = hnswlib.Index(space, dim)
        p.load_index(os.path.join(FIXTURES, f"{space}.hnsw"))
        assert p.element_count == meta["n"]
        p.set_ef(64)
        labels, _ = p.knn_query(queries, k=10)
        theirs = ivecs(f"{space}_hnswlib_ef64.ivecs")
        exact = ivecs(f"{space}_exact.ivecs")
        assert recall(labels, exact) >= recall(theirs, exact) - 0.01


def test_pickle_and_deepcopy(data):
    base, queries = data
    p = build(data)
    p.set_ef(40)
    for q in (pickle.loads(pickle.dumps(p)), copy.deepcopy(p)):
        assert (q.space, q.dim, q.ef, q.element_count, q.max_elements) == (
            "l2", 16, 40, p.element_count, p.max_elements)
        np.testing.assert_array_equal(p.knn_query(queries, k=5)[0], q.knn_query(queries, k=5)[0])
    empty = pickle.loads(pickle.dumps(hnswlib.Index("ip", 3)))
    assert empty.space == "ip" and empty.element_count == 0


# -- BFIndex --------------------------------------------------------------


def test_bf_index_is_exact(data):
    base, queries = data
    bf = hnswlib.BFIndex(space="l2", dim=16)
    bf.init_index(max_elements=len(base))
    bf.add_items(base)
    labels, dist = bf.knn_query(queries, k=10)
    np.testing.assert_array_equal(labels, exact_l2(base, queries, 10))
    assert dist.dtype == np.float32 and bf.get_current_count() == len(base)


def test_bf_index_update_delete_capacity(data, tmp_path):
    base, _ = data
    bf = hnswlib.BFIndex("ip", 16)
    bf.init_index(5)
    bf.add_items(base[:5], [10, 11, 12, 13, 14])
    with pytest.raises(RuntimeError, match="exceeds"):
        bf.add_items(base[5:6], [15])
    bf.add_items(base[7:8], [12])  # update in place
    assert bf.knn_query(base[7], k=1)[0][0, 0] == 12
    bf.delete_vector(12)
    assert 12 not in bf.knn_query(base[7], k=4)[0]
    with pytest.raises(RuntimeError):
        bf.delete_vector(12)
    with pytest.raises(RuntimeError, match="contiguous"):
        bf.knn_query(base[0], k=5)
    path = str(tmp_path / "bf.bin")
    bf.save_index(path)
    other = hnswlib.BFIndex("ip", 16)
    other.load_index(path)
    assert other.get_max_elements() == 5 and other.get_current_count() == 4
    np.testing.assert_array_equal(other.knn_query(base[:3], k=4)[0], bf.knn_query(base[:3], k=4)[0])
    with pytest.raises(RuntimeError):
        hnswlib.BFIndex("ip", 8).load_index(path)


def test_filtered_searches_beside_adds_do_not_deadlock(data):
    """Searches whose filter calls back into Python, adds (which take the
    write lock) and property reads, from several threads at once."""
    base, queries = data
    p = hnswlib.Index("l2", 16)
    p.init_index(max_elements=len(base))
    p.add_items(base[:500])
    p.set_ef(30)
    errors = []

    def searcher():
        try:
            for _ in range(20):
                p.knn_query(queries[:8], k=3, num_threads=2, filter=lambda label: label % 3 != 0)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    def adder():
        try:
            for start in range(500, 2000, 100):
                p.add_items(base[start:start + 100], np.arange(start, start + 100))
        except Exception as e:  # pragma: no cover
            errors.append(e)

    def reader():
        for _ in range(2000):
            _ = p.element_count, p.max_elements, p.M

    threads = [threading.Thread(target=f, daemon=True) for f in (searcher, searcher, adder, reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "deadlock"
    assert not errors
    assert p.element_count == 2000
