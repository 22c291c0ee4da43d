"""swann.annoy used the way Annoy's README and users use it."""

import json
import os
import random

import numpy as np
import pytest

from conftest import exact_l2, recall

annoy = pytest.importorskip("swann.annoy", exc_type=ImportError)
if not hasattr(__import__("swann"), "Forest"):
    pytest.skip("extension built without the forest", allow_module_level=True)
AnnoyIndex = annoy.AnnoyIndex

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "annoy")


def test_readme_example(tmp_path):
    f = 40
    t = AnnoyIndex(f, "angular")
    rnd = random.Random(0)
    for i in range(1000):
        t.add_item(i, [rnd.gauss(0, 1) for _ in range(f)])
    assert t.build(10)
    path = str(tmp_path / "test.ann")
    assert t.save(path)
    u = AnnoyIndex(f, "angular")
    assert u.load(path)
    res = u.get_nns_by_item(0, 1000)
    assert len(res) == 1000 and res[0] == 0 and sorted(res) == list(range(1000))
    assert u.get_n_items() == 1000 and u.get_n_trees() == 10
    ids, dists = u.get_nns_by_item(0, 5, include_distances=True)
    assert dists[0] == pytest.approx(0.0, abs=1e-3) and dists == sorted(dists)


def test_build_minus_one_chooses_the_tree_count():
    # Annoy's build(-1): trees until their nodes number at least the items.
    # On these 3,000 40-d rows Annoy 1.17 builds 15 trees (16-d: 8, 128-d: 49).
    f = 40
    t = AnnoyIndex(f, "angular")
    t.set_seed(5)
    rnd = random.Random(1)
    for i in range(3000):
        t.add_item(i, [rnd.gauss(0, 1) for _ in range(f)])
    assert t.build(-1)
    n = t.get_n_trees()
    assert 8 <= n <= 40, n
    assert sorted(t.get_nns_by_item(0, 3000)) == list(range(3000))
    t.unbuild()
    with pytest.raises(ValueError):
        t.build(-2)
    t.build(-1)
    assert t.get_n_trees() == n  # the count depends only on the seed and items


def test_old_annoy_file_with_split_nodes_first():
    # Annoy's own test/test.tree, written by an older Annoy.
    for prefault in (False, True):
        u = AnnoyIndex(10, "angular")
        u.load(os.path.join(FIXTURES, "old_split_first.tree"), prefault=prefault)
        assert u.get_nns_by_item(0, 10) == [0, 85, 42, 11, 54, 38, 53, 66, 19, 31]


def test_vector_errors_read_like_annoys():
    class NoLen:
        pass

    class NoGetitem:
        def __len__(self):
            return 5

    class Short:
        def __len__(self):
            return 3

        def __getitem__(self, i):
            raise IndexError

    t = AnnoyIndex(5, "euclidean")
    with pytest.raises(TypeError, match=r"^object of type 'NoLen' has no len\(\)$"):
        t.add_item(1, NoLen())
    with pytest.raises(TypeError, match=r"^'NoGetitem' object is not subscriptable$"):
        t.add_item(1, NoGetitem())
    t3 = AnnoyIndex(3, "euclidean")
    with pytest.raises(IndexError):
        t3.add_item(1, Short())
    with pytest.raises(TypeError, match=r"^must be real number, not str$"):
        t3.add_item(1, ["1", "2", "3"])


def test_euclidean_recall_and_distances(data):
    base, queries = data
    t = AnnoyIndex(16, "euclidean")
    t.set_seed(1)
    for i, v in enumerate(base):
        t.add_item(i, v)
    t.build(20, n_jobs=2)
    found = [t.get_nns_by_vector(q.tolist(), 10, search_k=4000) for q in queries]
    assert recall(np.array(found), exact_l2(base, queries, 10)) >= 0.9
    ids, dist = t.get_nns_by_vector(queries[0], 3, include_distances=True)
    want = np.sqrt(((base[ids] - queries[0]) ** 2).sum(1))
    np.testing.assert_allclose(dist, want, rtol=1e-4)
    assert t.get_distance(0, 1) == pytest.approx(float(np.linalg.norm(base[0] - base[1])), rel=1e-4)
    np.testing.assert_allclose(t.get_item_vector(3), base[3])


@pytest.mark.parametrize("metric", ["angular", "euclidean", "manhattan", "dot", "hamming"])
def test_every_metric_finds_itself(metric):
    rs = np.random.RandomState(5)
    x = rs.normal(size=(300, 24)).astype(np.float32)
    if metric == "hamming":
        x = (x > 0).astype(np.float32)
    t = AnnoyIndex(24, metric)
    for i, v in enumerate(x):
        t.add_item(i, v.tolist())
    t.build(10)
    hits = t.get_nns_by_vector(x[7].tolist(), 5, search_k=3000)
    if metric == "dot":
        assert hits[0] == int(np.argmax(x @ x[7]))
    else:
        assert 7 in hits[:3]


def test_seed_makes_builds_repeatable():
    rs = np.random.RandomState(2)
    x = rs.normal(size=(400, 8)).astype(np.float32)

    def build():
        t = AnnoyIndex(8, "euclidean")
        t.set_seed(123)
        for i, v in enumerate(x):
            t.add_item(i, v)
        t.build(5, n_jobs=1)
        return [t.get_nns_by_item(i, 10, search_k=50) for i in range(20)]

    assert build() == build()


def test_add_after_build_unbuild_and_loaded(tmp_path):
    t = AnnoyIndex(3, "euclidean")
    t.add_item(0, [0, 0, 0])
    t.add_item(2, [1, 1, 1])  # ids are dense: item 1 is simply absent
    assert t.get_n_items() == 3
    t.build(2)
    with pytest.raises(Exception):
        t.add_item(3, [2, 2, 2])
    assert t.unbuild()
    t.add_item(3, [2, 2, 2])
    t.build(2)
    assert t.get_nns_by_vector([2, 2, 2], 1) == [3]
    path = str(tmp_path / "x.ann")
    t.save(path)  # continues on the saved file, read-only
    with pytest.raises(Exception):
        t.add_item(4, [3, 3, 3])
    t.unload()
    assert t.get_n_items() == 0


def test_on_disk_build(tmp_path):
    path = str(tmp_path / "disk.ann")
    t = AnnoyIndex(4, "angular")
    t.on_disk_build(path)
    rs = np.random.RandomState(0)
    for i in range(200):
        t.add_item(i, rs.normal(size=4).tolist())
    t.build(4)
    u = AnnoyIndex(4, "angular")
    u.load(path)
    assert u.get_n_items() == 200 and u.get_nns_by_item(5, 1) == [5]


def test_errors(tmp_path):
    t = AnnoyIndex(4, "angular")
    with pytest.raises(IndexError):
        t.add_item(0, [1, 2, 3])
    with pytest.raises(ValueError):  # the same error is also a ValueError
        t.add_item(0, [1, 2, 3, 4, 5])
    with pytest.raises(IndexError):
        t.add_item(-1, [1, 2, 3, 4])
    with pytest.raises((TypeError, ValueError)):
        t.add_item(0, ["a", "b", "c", "d"])
    with pytest.raises(ValueError):
        t.add_item(0, [1, 2, float("nan"), 4])
    with pytest.raises(ValueError):
        AnnoyIndex(4, "cosine")
    t.add_item(0, [1, 2, 3, 4])
    t.add_item(1, [4, 3, 2, 1])
    with pytest.raises(Exception):
        t.get_nns_by_item(0, 1)  # not built
    t.build(3)
    with pytest.raises(IndexError):
        t.get_nns_by_item(5, 1)
    with pytest.raises(IndexError):
        t.get_nns_by_item(-1, 1)
    with pytest.raises(IndexError):
        t.get_nns_by_vector([1, 2], 1)
    with pytest.raises(IndexError):
        t.get_distance(0, 9)
    bad = tmp_path / "garbage.ann"
    bad.write_bytes(b"\x01\x02\x03")
    with pytest.raises(OSError):
        AnnoyIndex(4, "angular").load(str(bad))
    path = str(tmp_path / "e.ann")
    t.save(path)
    # Annoy raises IOError (OSError) for a file of another dimension and for
    # failed saves, and TypeError for components that are not numbers.
    with pytest.raises(OSError):
        AnnoyIndex(5, "angular").load(path)
    u = AnnoyIndex(4, "angular")
    u.add_item(0, [1, 2, 3, 4])
    u.build(2)
    with pytest.raises(OSError):
        u.save(str(tmp_path / "no" / "such" / "dir.ann"))
    v = AnnoyIndex(3, "angular")
    with pytest.raises(TypeError):
        v.add_item(0, [1.0, "2.0", 3.0])
    with pytest.raises(TypeError):
        v.add_item(0, "abc")


def test_save_after_load_writes_a_copy(tmp_path):
    t = AnnoyIndex(8, "euclidean")
    rnd = random.Random(3)
    for i in range(200):
        t.add_item(i, [rnd.gauss(0, 1) for _ in range(8)])
    t.build(5)
    first = str(tmp_path / "first.ann")
    t.save(first)
    u = AnnoyIndex(8, "euclidean")
    u.load(first)
    copy = str(tmp_path / "copy.ann")
    assert u.save(copy)
    assert u.save(first)  # its own file: nothing to write
    w = AnnoyIndex(8, "euclidean")
    w.load(copy)
    for i in range(0, 200, 17):
        assert w.get_nns_by_item(i, 5) == u.get_nns_by_item(i, 5)
    # A saved (so mapped) index saves copies too.
    again = str(tmp_path / "again.ann")
    assert t.save(again)
    x = AnnoyIndex(8, "euclidean")
    x.load(again)
    assert x.get_nns_by_item(3, 5) == t.get_nns_by_item(3, 5)


@pytest.mark.parametrize("metric", ["angular", "euclidean", "manhattan", "dot"])
def test_reads_real_annoy_files(metric):
    meta_path = os.path.join(FIXTURES, f"{metric}.json")
    if not os.path.exists(meta_path):
        pytest.skip("Annoy fixtures not present")
    with open(meta_path) as f:
        meta = json.load(f)
    u = AnnoyIndex(meta["dim"], metric)
    u.load(os.path.join(FIXTURES, f"{metric}.ann"))
    assert u.get_n_items() == meta["n_items"] and u.get_n_trees() == meta["n_trees"]
    for i, v in meta["item_vectors"].items():
        np.testing.assert_allclose(u.get_item_vector(int(i)), v, rtol=1e-6)
    for case in meta["default"]["by_item"]:
        ids, dists = u.get_nns_by_item(case["item"], meta["k"], include_distances=True)
        assert ids == case["ids"]
        np.testing.assert_allclose(dists, case["distances"], rtol=1e-4, atol=1e-4)
    for q, case in zip(meta["queries"], meta["default"]["by_vector"]):
        assert u.get_nns_by_vector(q, meta["k"]) == case["ids"]


def test_native_batch_search(data):
    import swann

    base, queries = data
    f = swann.Forest(16, "euclidean")
    f.add_items(base)
    f.build(10, num_threads=2)
    ids, dist = f.search(queries, 10, search_k=4000, num_threads=2)
    assert ids.shape == (len(queries), 10) and ids.dtype == np.int64
    single = [f.nns_by_vector(q, 10, 4000)[0] for q in queries]
    assert ids.tolist() == single
