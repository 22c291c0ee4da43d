"""swann.distributed on a local Ray cluster of two CPUs (skipped without Ray:
`pip install swann[ray]`)."""

import os
import shutil
import sys
import tempfile

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'swann[ray]')")
pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'swann[ray]')")

from swann import Hnsw, ShardedIndex, read_manifest  # noqa: E402
from swann import distributed as sd  # noqa: E402
from swann.sharding import build_local  # noqa: E402

DIM = 16
PARAMS = dict(M=8, ef_construction=80, seed=11, num_threads=1)


def clustered(n, seed):
    rs = np.random.RandomState(seed)
    centers = np.random.RandomState(0).normal(size=(24, DIM)) * 3
    return (centers[rs.randint(24, size=n)] + rs.normal(size=(n, DIM)) * 0.6).astype(np.float32)


@pytest.fixture(scope="module")
def cluster():
    temp = tempfile.mkdtemp(prefix="ray-")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _temp_dir=temp,
        object_store_memory=256 * 1024 * 1024,
        log_to_driver=False,
        ignore_reinit_error=False,
    )
    try:
        yield
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def data():
    return clustered(6000, 1), clustered(200, 2)


@pytest.fixture(scope="module")
def built(cluster, data, tmp_path_factory):
    """4 HNSW shards built on Ray, with every task's report."""
    base, _ = data
    reports = []
    out = str(tmp_path_factory.mktemp("ray_build"))
    manifest = sd.build(base, out, num_shards=4, index="hnsw", on_shard_built=reports.append, **PARAMS)
    return manifest, reports


def shard_bytes(manifest):
    folder = os.path.dirname(manifest)
    out = []
    for s in read_manifest(manifest)["shards"]:
        with open(os.path.join(folder, s["path"]), "rb") as f:
            out.append(f.read())
    return out


def test_build_runs_in_workers_and_equals_a_local_build(built, data, tmp_path):
    manifest, reports = built
    assert sorted(r["shard"] for r in reports) == [0, 1, 2, 3]
    pids = {r["pid"] for r in reports}
    assert os.getpid() not in pids
    assert len(pids) >= 2, f"every shard was built in one process: {pids}"
    local = build_local(data[0], str(tmp_path / "local"), num_shards=4, index="hnsw", **PARAMS)
    ray_files, local_files = shard_bytes(manifest), shard_bytes(local)
    assert [len(b) for b in ray_files] == [len(b) for b in local_files]
    for i, (a, b) in enumerate(zip(ray_files, local_files)):
        assert a == b, f"shard {i} differs between the Ray build and the local build"
    index = ShardedIndex(manifest, verify=True)
    assert len(index) == len(data[0]) and index.num_shards == 4


def test_build_from_a_dataset_with_a_label_column(cluster, data, tmp_path):
    base, _ = data
    n = 1500
    labels = np.arange(n, dtype=np.int64)[::-1] * 3 + 5
    ds = ray.data.from_items([{"vec": base[i], "id": int(labels[i])} for i in range(n)], override_num_blocks=5)
    manifest = sd.build(
        ds, str(tmp_path / "ds"), num_shards=3, column="vec", label_column="id", index="flat"
    )
    local = build_local(base[:n], str(tmp_path / "local"), num_shards=3, labels=labels, index="flat")
    assert shard_bytes(manifest) == shard_bytes(local)
    # Without a label column, rows are labelled by their row numbers.
    plain = sd.build(ray.data.from_numpy(base[:n]), str(tmp_path / "plain"), num_shards=2, index="flat")
    assert shard_bytes(plain) == shard_bytes(build_local(base[:n], str(tmp_path / "l2"), num_shards=2, index="flat"))
    with pytest.raises(ValueError, match="label column 'nope'"):
        sd.build(ds, str(tmp_path / "x"), num_shards=2, column="vec", label_column="nope")
    with pytest.raises(ValueError, match="pass column="):
        sd.build(ds, str(tmp_path / "x"), num_shards=2)


def test_failing_shard_leaves_no_manifest(cluster, data, tmp_path):
    base = data[0][:2000].copy()
    base[1700, 5] = np.nan  # shard 3 of 4 (rows 1500..2000)
    out = tmp_path / "failed"
    with pytest.raises(sd.ShardBuildError, match=r"shard 3 of 4: .*(nan|finite)") as info:
        sd.build(base, str(out), num_shards=4, index="flat")
    assert set(info.value.failed) == {3}
    assert os.listdir(out) == [], "a failed build left files behind"


def test_partition_and_replicate_search_equal_sharded_index(built, data):
    manifest, _ = built
    _, queries = data
    want_l, want_d = ShardedIndex(manifest).search(queries, 10, ef=32)
    for placement in ("partition", "replicate"):
        with sd.ShardedSearcher(manifest, placement=placement, num_replicas=2, num_cpus=0.25, batch_size=64) as s:
            pids = {i["pid"] for i in s.info()}
            assert os.getpid() not in pids
            assert len(pids) == (4 if placement == "partition" else 2)
            got_l, got_d = s.search(queries, 10, ef=32)
            np.testing.assert_array_equal(got_l, want_l)
            np.testing.assert_array_equal(got_d, want_d)
            with pytest.raises(ValueError, match=r"shape \(n, 16\)"):
                s.search(queries[:, :3], 10)
    # Oversampling: the same rule as ShardedIndex.oversample.
    index = ShardedIndex(manifest)
    index.oversample = 2.0
    want = index.search(queries, 5, ef=8)
    with sd.ShardedSearcher(manifest, num_cpus=0.25, oversample=2.0) as s:
        got = s.search(queries, 5, ef=8)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_recall_of_four_shards_at_least_one_index_minus_002(built, data):
    manifest, _ = built
    base, queries = data
    d = ((queries[:, None, :].astype(np.float64) - base[None]) ** 2).sum(-1)
    truth = np.argsort(d, axis=1, kind="stable")[:, :10]
    one = Hnsw(DIM, M=PARAMS["M"], ef_construction=PARAMS["ef_construction"], seed=PARAMS["seed"])
    one.add(base, num_threads=1)

    def recall(found):
        return sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(found, truth)) / truth.size

    with sd.ShardedSearcher(manifest, num_cpus=0.25) as s:
        for ef in (10, 20):
            single = recall(one.search(queries, 10, ef=ef)[0])
            sharded = recall(s.search(queries, 10, ef=ef)[0])
            assert sharded >= single - 0.02, (ef, sharded, single)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/smaps (Linux)")
def test_two_actors_share_the_pages_of_a_mapped_shard(built, data):
    manifest, _ = built
    _, queries = data
    with sd.ShardedSearcher(manifest, placement="replicate", num_replicas=2, num_cpus=0.25) as s:
        # Both replicas run the same searches, so they touch the same pages.
        ray.get([a.search.remote(queries, 10, 64, None, 1) for a in s.actors])
        maps = ray.get([a.mapping.remote() for a in s.actors])
        pids = {i["pid"] for i in s.info()}
    assert len(pids) == 2
    for path in maps[0]:
        for m in maps:
            assert m[path].get("Rss", 0) > 0, (path, m[path])
            assert m[path].get("Shared_Clean", 0) > 0, (path, m[path])
            # Proportional set size: each process is charged part of the pages.
            assert m[path]["Pss"] < m[path]["Rss"], (path, m[path])


def test_lost_actor_raises_and_restarted_actor_retries(built, data):
    manifest, _ = built
    _, queries = data
    want = ShardedIndex(manifest).search(queries, 10, ef=20)
    s = sd.ShardedSearcher(manifest, num_cpus=0.25)
    try:
        np.testing.assert_array_equal(s.search(queries, 10, ef=20)[0], want[0])
        ray.kill(s.actors[1], no_restart=True)
        with pytest.raises(sd.ShardSearchError, match="shard 1 was lost"):
            s.search(queries, 10, ef=20)
    finally:
        s.close()
    with sd.ShardedSearcher(manifest, num_cpus=0.25, max_restarts=1, max_task_retries=3) as s:
        ray.kill(s.actors[2], no_restart=False)
        got = s.search(queries, 10, ef=20)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


def test_knn_join_appends_neighbours(built, data):
    manifest, _ = built
    _, queries = data
    ds = ray.data.from_numpy(queries)
    joined = sd.knn_join(ds, manifest, 5, ef=32, concurrency=1, num_cpus=0.5, batch_size=50)
    rows = joined.take_all()
    assert len(rows) == len(queries)
    got = {tuple(np.round(r["data"], 5)): (r["neighbors"], r["distances"]) for r in rows}
    want_l, want_d = ShardedIndex(manifest).search(queries, 5, ef=32)
    for q, wl, wd in zip(queries, want_l, want_d):
        gl, gd = got[tuple(np.round(q, 5))]
        np.testing.assert_array_equal(gl, wl)
        np.testing.assert_array_equal(gd, wd)


def test_searcher_reports_a_shard_that_fails_to_open(built, tmp_path):
    manifest, _ = built
    folder = os.path.dirname(manifest)
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    broken = copy / read_manifest(manifest)["shards"][2]["path"]
    with open(broken, "r+b") as f:
        f.truncate(os.path.getsize(broken) - 8)
    with pytest.raises(sd.ShardSearchError, match=r"opening: shard 2 failed: .*bytes"):
        sd.ShardedSearcher(str(copy / os.path.basename(manifest)), num_cpus=0.25)
    with pytest.raises(ValueError, match="placement"):
        sd.ShardedSearcher(manifest, placement="scatter")
