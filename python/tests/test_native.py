"""The native classes swann.Hnsw and swann.Flat."""

import os
import threading
import time

import numpy as np
import pytest

import swann
from conftest import exact_l2, recall


def test_hnsw_basics(data, tmp_path):
    base, queries = data
    h = swann.Hnsw(16, "l2", M=12, ef_construction=100)
    h.add(base)  # grows as needed
    assert len(h) == len(base) and h.capacity >= len(base)
    assert (h.dim, h.metric, h.M, h.ef_construction, h.seed) == (16, "l2", 12, 100, 100)
    labels, dist = h.search(queries, 10, ef=64)
    assert labels.shape == dist.shape == (len(queries), 10)
    assert recall(labels, exact_l2(base, queries, 10)) >= 0.95
    assert 5 in h and 10**9 not in h
    assert h.labels().dtype == np.uint64 and len(h.labels()) == len(base)
    h.mark_deleted(5)
    assert h.is_deleted(5) and h.deleted_count == 1
    with pytest.raises(KeyError):
        h.get_vectors([5], include_deleted=False)
    h.save(str(tmp_path / "h.swann"))
    m = swann.Hnsw.load(str(tmp_path / "h.swann"), mmap=True)
    assert m.is_mapped and len(m) == len(h)
    np.testing.assert_array_equal(m.search(queries, 5, ef=64)[0], h.search(queries, 5, ef=64)[0])
    with pytest.raises(RuntimeError):
        m.mark_deleted(6)  # read-only map
    with pytest.raises(KeyError):
        h.mark_deleted(10**9)
    assert "Hnsw(" in repr(h)


@pytest.mark.parametrize("scheme", ["sq8", "pq4"])
def test_hnsw_quantized(data, tmp_path, scheme):
    base, queries = data
    # One build thread each: the same graph with and without codes.
    exact = swann.Hnsw(16, "l2", M=12, ef_construction=100)
    exact.add(base, num_threads=1)
    h = swann.Hnsw(16, "l2", M=12, ef_construction=100, quantization=scheme)
    assert h.quantization == scheme and not h.is_quantized
    h.add(base, num_threads=1)
    assert h.is_quantized and h.rerank == 0
    truth = exact_l2(base, queries, 10)
    labels, dist = h.search(queries, 10, ef=64)
    r_exact = recall(exact.search(queries, 10, ef=64)[0], truth)
    assert recall(labels, truth) >= r_exact - 0.02
    # Reranked (sq8) or taken on expansion (pq4): the reported distances
    # are the exact ones.
    d = ((base[labels.astype(np.int64)] - queries[:, None, :]) ** 2).sum(-1)
    np.testing.assert_allclose(dist, d, rtol=1e-4, atol=1e-4)
    h.rerank = 10
    assert h.rerank == 10
    assert h.search(queries, 10, ef=64)[0].shape == (len(queries), 10)
    h.save(str(tmp_path / "q.swann"))
    m = swann.Hnsw.load(str(tmp_path / "q.swann"), mmap=True)
    assert m.quantization == scheme and m.is_quantized
    np.testing.assert_array_equal(m.search(queries, 10, ef=64)[0], labels)
    # pq4's records stored in the file: larger, and mapped with the same answers.
    h.save(str(tmp_path / "p.swann"), pq4_records=True)
    grew = os.path.getsize(tmp_path / "p.swann") - os.path.getsize(tmp_path / "q.swann")
    assert (grew > 0) == (scheme == "pq4")
    p = swann.Hnsw.load(str(tmp_path / "p.swann"), mmap=True)
    np.testing.assert_array_equal(p.search(queries, 10, ef=64)[0], labels)
    h.train_quantizer()
    assert h.is_quantized
    with pytest.raises(ValueError):
        swann.Hnsw(16, quantization="pq")


def test_hnsw_padding_and_require_k():
    h = swann.Hnsw(2)
    h.add([[0, 0], [1, 1]], [7, 8])
    labels, dist = h.search([0, 0], 4)
    assert labels[0, :2].tolist() == [7, 8]
    assert labels[0, 2] == 2**64 - 1 and np.isinf(dist[0, 2])
    with pytest.raises(RuntimeError):
        h.search([0, 0], 4, require_k=True)


def test_hnsw_no_grow():
    h = swann.Hnsw(2, capacity=2)
    h.add([[0, 0], [1, 1]], grow=False)
    with pytest.raises(RuntimeError):
        h.add([[2, 2]], grow=False)
    assert len(h) == 2


@pytest.mark.parametrize("metric", ["angular", "hamming", "nope"])
def test_hnsw_metric_errors(metric):
    with pytest.raises(ValueError):
        swann.Hnsw(4, metric)


def test_dim_zero_and_bad_params():
    with pytest.raises(ValueError):
        swann.Hnsw(0)
    with pytest.raises(ValueError):
        swann.Hnsw(4, M=1)
    with pytest.raises(ValueError):
        swann.Flat(0)


def test_corrupt_file_is_an_exception(tmp_path):
    p = tmp_path / "bad.swann"
    p.write_bytes(b"SWANNIDX" + b"\x00" * 100)
    with pytest.raises(ValueError):
        swann.Hnsw.load(str(p))
    with pytest.raises(OSError):
        swann.Hnsw.load(str(tmp_path / "missing"))
    p.write_bytes(b"not an hnswlib file at all")
    with pytest.raises(ValueError):
        swann.Hnsw.import_hnswlib(str(p), "l2", 4)


def test_flat(data):
    base, queries = data
    f = swann.Flat(16, "euclidean")
    f.add(base)
    labels, dist = f.search(queries, 10, num_threads=2)
    np.testing.assert_array_equal(labels, exact_l2(base, queries, 10))
    d = np.sqrt(((base[labels[0].astype(np.int64)] - queries[0]) ** 2).sum(1))
    np.testing.assert_allclose(dist[0], d, rtol=1e-4)
    assert f.remove([int(labels[0, 0])]) == 1
    assert f.search(queries[0], 1)[0][0, 0] == labels[0, 1]
    assert len(f) == len(base) - 1 and f.vectors().shape == (len(base) - 1, 16)
    with pytest.raises(ValueError):
        f.add(np.zeros((1, 3)))


def test_gil_is_released_during_search(data):
    """A pure-Python thread keeps running while a long search holds no GIL."""
    base, _ = data
    h = swann.Hnsw(16)
    h.add(base)
    queries = np.repeat(base[:50], 200, axis=0)
    ticks = []
    done = threading.Event()

    def ticker():
        while not done.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=ticker)
    t.start()
    start = time.perf_counter()
    h.search(queries, 10, ef=200, num_threads=1)
    elapsed = time.perf_counter() - start
    done.set()
    t.join()
    during = [x for x in ticks if start <= x <= start + elapsed]
    if elapsed > 0.05:
        assert len(during) >= 3, f"{len(during)} ticks in {elapsed:.3f}s"


def test_absurd_k_is_an_exception_not_a_crash():
    h = swann.Hnsw(2)
    h.add([[0, 0], [1, 1]])
    with pytest.raises((MemoryError, ValueError, OverflowError)):
        h.search([[0, 0]] * 4, 2**62)
    with pytest.raises((MemoryError, ValueError, OverflowError)):
        h.search([0, 0], -1)
    f = swann.Flat(2)
    f.add([[0, 0]])
    with pytest.raises((MemoryError, ValueError, OverflowError)):
        f.search([0, 0], 2**61)


def test_lsh(data):
    base, queries = data
    e = swann.Lsh(16, bits=6, tables=4, metric="l2", n_nearest=5, seed=1)
    e.store(base)
    labels, dist = e.neighbours(base[3])
    assert labels[0] == 3 and dist[0] == pytest.approx(0.0, abs=1e-6)
    assert len(labels) <= 5 and len(set(labels)) == len(labels)
    assert dist == sorted(dist)
    assert e.candidate_count(base[3]) >= len(labels)
    assert e.delete(3) >= 1
    assert 3 not in e.neighbours(base[3])[0]
    e.store(base[:2], [10**12, 10**12 + 1])
    assert e.neighbours(base[1])[0][0] in (1, 10**12 + 1)
    with pytest.raises(ValueError):
        e.store(np.zeros((1, 3)))
    with pytest.raises(ValueError):
        e.neighbours(np.zeros(5))
    unranked = swann.Lsh(16, metric="none")
    unranked.store(base[:50])
    labels, dist = unranked.neighbours(base[0])
    assert 0 in labels and all(d is None for d in dist)
    with pytest.raises(ValueError):
        swann.Lsh(16, tables=0)
