"""Sharded builds and searches on a Ray cluster (``pip install swann[ray]``).

- :func:`build` builds one shard per Ray task (rows split as
  :func:`swann.shard_rows` splits them) into a folder every node can reach,
  and writes the manifest only after every shard succeeded.
- :class:`ShardedSearcher` answers searches from Ray actors that map the
  shard files: ``placement="partition"`` puts one shard in each actor and
  merges their answers on the driver with :func:`swann.merge_top_k` (the
  memory of the index is split across the cluster); ``"replicate"`` opens
  the whole index in each of ``num_replicas`` actors and spreads batches of
  queries over them (queries per second scale with the replicas).
- :func:`knn_join` appends each row's nearest neighbours to a Ray Dataset,
  the index opened once per actor.

File paths travel between processes, never index bytes: the shard folder
must be on a file system every node mounts, or give ``cache_dir`` and each
node copies every shard it needs once into that local folder, named by its
checksum (:func:`swann.sharding.cached_copy`).

Results are those of :class:`swann.ShardedIndex` over the same manifest,
exactly. A shard whose actor is lost raises :class:`ShardSearchError`
(unless ``max_restarts`` and ``max_task_retries`` let Ray restart the actor
and retry the call): a search never returns results missing a shard.

See ``docs/SCALE_OUT.md`` for running on a multi-node cluster.
"""

from __future__ import annotations

import math
import os
import re
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

try:
    import ray
    import ray.exceptions
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "swann.distributed needs Ray: install the extra with `pip install swann[ray]` "
        f"(or `pip install 'ray[data]>=2.9'`); importing ray failed: {e}"
    ) from e

from ._swann import ShardedIndex, merge_top_k, read_manifest
from .sharding import (
    MANIFEST_NAME,
    _check_kind,
    _labels_for,
    build_shard,
    cached_copy,
    finish_build,
    prepare_out_dir,
    remove_build_files,
    resolve_shard_paths,
    shard_file_name,
    shard_slices,
)

__all__ = [
    "build",
    "ShardedSearcher",
    "knn_join",
    "ShardBuildError",
    "ShardSearchError",
    "shard_mapping",
]


class ShardBuildError(RuntimeError):
    """A shard's build task failed; no manifest was written."""

    def __init__(self, message: str, failed: Dict[int, BaseException]):
        super().__init__(message)
        #: The failed shards: their numbers and the errors they raised.
        self.failed = failed


class ShardSearchError(RuntimeError):
    """An actor holding a shard (or a replica) was lost or failed mid-search."""


# --- build ----------------------------------------------------------------


def _gather_rows(parts: Sequence[Any]) -> np.ndarray:
    return np.concatenate(parts) if len(parts) != 1 else np.asarray(parts[0])


def _build_task(
    i: int,
    path: str,
    source: Dict[str, Any],
    params: Dict[str, Any],
) -> Dict[str, Any]:
    """One shard, on a worker: gathers its rows from the object store, builds
    and saves atomically (:func:`swann.sharding.build_shard`)."""
    if source["type"] == "array":
        x = ray.get(source["data"][0])
        start, end = source["range"]
        vectors = x[start:end]
        labels = ray.get(source["labels"][0])[start:end]
    else:
        blocks = ray.get(list(source["blocks"]))
        col, lcol = source["column"], source["label_column"]
        vectors = _gather_rows([np.asarray(list(b[col])) if b[col].dtype == object else b[col] for b in blocks])
        if vectors.ndim != 2:
            raise ValueError(f"column {col!r} does not hold vectors of one dimension (rows of shape {vectors.shape[1:]})")
        if lcol is None:
            start, end = source["range"]
            labels = np.arange(start, end, dtype=np.uint64)
        else:
            labels = _gather_rows([b[lcol] for b in blocks])
    report = build_shard(vectors, labels, path, **params)
    report["shard"] = i
    report["node"] = ray.get_runtime_context().get_node_id()
    return report


def _is_dataset(data: Any) -> bool:
    try:
        import ray.data
    except ImportError:  # Ray without its data extra: no Dataset to be
        return False
    return isinstance(data, ray.data.Dataset)


def _dataset_column(ds: Any, column: Optional[str], label_column: Optional[str]) -> str:
    cols = list(ds.columns())
    if label_column is not None and label_column not in cols:
        raise ValueError(f"label column {label_column!r} is not one of the dataset's columns {cols}")
    if column is not None:
        if column not in cols:
            raise ValueError(f"column {column!r} is not one of the dataset's columns {cols}")
        return column
    rest = [c for c in cols if c != label_column]
    if len(rest) != 1:
        raise ValueError(f"pass column=: the dataset has columns {cols}")
    return rest[0]


def build(
    data: Any,
    out_dir: str,
    *,
    num_shards: int,
    index: str = "hnsw",
    metric: str = "l2",
    labels: Any = None,
    column: Optional[str] = None,
    label_column: Optional[str] = None,
    M: int = 16,
    ef_construction: int = 200,
    seed: int = 100,
    num_threads: int = 1,
    trees: int = 10,
    leaf_size: Optional[int] = None,
    quantization: str = "none",
    num_cpus: Optional[float] = None,
    max_retries: int = 0,
    manifest_name: str = MANIFEST_NAME,
    overwrite: bool = False,
    on_shard_built: Optional[Callable[[Dict[str, Any]], None]] = None,
) -> str:
    """Builds ``num_shards`` shards of ``data``, one Ray task each, into
    ``out_dir`` (a folder every node can write) and returns the manifest's
    path.

    ``data`` is a numpy array ``(n, dim)`` (with ``labels``, default the row
    numbers) or a Ray Dataset with a column of vectors (``column``; found by
    itself when it is the only column besides ``label_column``) and an
    optional column of labels (default the row numbers). Shard ``i`` holds
    rows :func:`swann.shard_rows` ``(n, num_shards, i)``; its task builds it
    with swann's own classes (``index`` ``"hnsw"``, ``"forest"`` or
    ``"flat"``; the other parameters as :func:`swann.sharding.build_shard`)
    and saves it under a temporary name, then renames it.

    The manifest is written (atomically) only when every shard succeeded.
    If one fails, every file of this build is removed, no manifest is
    written (a manifest already there is untouched) and
    :class:`ShardBuildError` names the failed shards and why.

    Each task asks Ray for ``num_cpus`` (default ``num_threads``) CPUs.
    ``on_shard_built`` is called on the driver with each shard's report
    (``shard``, ``path``, ``rows``, ``seconds``, ``pid``, ``node``).
    """
    kind = _check_kind(index)
    if num_shards < 1:
        raise ValueError(f"num_shards must be at least 1, got {num_shards}")
    if not ray.is_initialized():
        ray.init()
    params = dict(
        index=kind,
        metric=metric,
        M=M,
        ef_construction=ef_construction,
        seed=seed,
        num_threads=num_threads,
        trees=trees,
        leaf_size=leaf_size,
        quantization=quantization,
    )
    sources: List[Dict[str, Any]] = []
    if _is_dataset(data):
        if labels is not None:
            raise ValueError("with a Dataset, give labels as label_column")
        col = _dataset_column(data, column, label_column)
        n = data.count()
        cuts = [start for start, _ in shard_slices(n, num_shards)[1:]]
        splits = data.split_at_indices(cuts) if cuts else [data.materialize()]
        for (start, end), split in zip(shard_slices(n, num_shards), splits):
            sources.append(
                {
                    "type": "dataset",
                    "blocks": split.to_numpy_refs(),
                    "column": col,
                    "label_column": label_column,
                    "range": (start, end),
                }
            )
        if label_column is not None:
            # Labels must be unique across shards: checked before building
            # (only the label column comes to the driver).
            parts = [
                b[label_column] if isinstance(b, dict) else b
                for split in splits
                for b in ray.get(split.select_columns([label_column]).to_numpy_refs())
            ]
            _labels_for(n, np.concatenate(parts) if parts else np.zeros(0, np.uint64))
    else:
        x = np.ascontiguousarray(data, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f"data must be a 2-D array (n, dim), got shape {x.shape}")
        ids = _labels_for(len(x), labels)
        # Wrapped in lists, so each task fetches the shared copy itself.
        x_ref, ids_ref = ray.put(x), ray.put(ids)
        for start, end in shard_slices(len(x), num_shards):
            sources.append({"type": "array", "data": [x_ref], "labels": [ids_ref], "range": (start, end)})

    manifest, build_id = prepare_out_dir(out_dir, manifest_name, overwrite)
    out_dir = os.path.abspath(os.fspath(out_dir))
    paths = [os.path.join(out_dir, shard_file_name(i, num_shards, build_id)) for i in range(num_shards)]
    task = ray.remote(_build_task).options(
        num_cpus=num_threads if num_cpus is None else num_cpus,
        max_retries=max_retries,
        name="swann-build-shard",
    )
    pending = {task.remote(i, paths[i], sources[i], params): i for i in range(num_shards)}
    failed: Dict[int, BaseException] = {}
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                i = pending.pop(ref)
                try:
                    report = ray.get(ref)
                except Exception as e:  # a task error, a lost worker or node
                    failed[i] = e
                    continue
                if on_shard_built is not None:
                    on_shard_built(report)
        if failed:
            why = "; ".join(f"shard {i} of {num_shards}: {_reason(e)}" for i, e in sorted(failed.items()))
            raise ShardBuildError(f"{len(failed)} shard build(s) failed, no manifest written: {why}", failed)
        return finish_build(manifest, paths)
    except BaseException:
        # Interrupted: stop the tasks still running before removing their
        # files, so none renames a shard into place afterwards.
        for ref in pending:
            ray.cancel(ref, force=True)
        if pending:
            ray.wait(list(pending), num_returns=len(pending), timeout=60)
        remove_build_files(out_dir, build_id)
        raise


def _reason(e: BaseException) -> str:
    """The error a task raised, without Ray's traceback framing."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {cause}"
    text = str(e).strip().splitlines()
    return text[-1] if text else type(e).__name__


def _init_error(e: BaseException) -> str:
    """The exception an actor's constructor raised, from Ray's report of it."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    raised = [line for line in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception): ", line)]
    return raised[-1] if raised else (lines[-1] if lines else type(e).__name__)


# --- search -----------------------------------------------------------------


def shard_mapping(path: str) -> Dict[str, int]:
    """Memory counters (kB) of this process's mappings of the file ``path``,
    summed from ``/proc/self/smaps`` (Linux): ``Rss``, ``Pss``,
    ``Shared_Clean``, ``Private_Clean``, ... Empty when it is not mapped.
    Pages of a shard mapped by several processes on one node show up as
    ``Shared_Clean``: the node holds them once."""
    path = os.path.realpath(path)
    totals: Dict[str, int] = {}
    current = False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split(None, 5)
            if re.match(r"^[0-9a-f]+-[0-9a-f]+$", head[0]):
                current = len(head) >= 6 and head[5].strip() == path
                continue
            if current and line.endswith(" kB\n") and len(head) >= 2:
                key = head[0].rstrip(":")
                totals[key] = totals.get(key, 0) + int(head[1])
    return totals


class _IndexActor:
    """A Ray actor holding some shards of a manifest (or all of them)."""

    def __init__(
        self,
        manifest: str,
        shards: Optional[List[int]],
        cache_dir: Optional[str],
        mmap: bool,
        verify: bool,
    ):
        paths = None
        if cache_dir is not None:
            m = read_manifest(manifest)
            files = resolve_shard_paths(manifest)
            picked = range(len(files)) if shards is None else shards
            paths = [cached_copy(files[i], m["shards"][i]["xxh3"], cache_dir) for i in picked]
        self.index = ShardedIndex(manifest, mmap=mmap, verify=verify, shards=shards, paths=paths)
        self.files = paths if paths is not None else [
            resolve_shard_paths(manifest)[i]
            for i in (range(self.index.num_shards) if shards is None else shards)
        ]

    def search(self, queries: np.ndarray, k: int, ef: Optional[int], search_k: Optional[int], num_threads: int):
        return self.index.search(queries, k, ef=ef, search_k=search_k, num_threads=num_threads)

    def info(self) -> Dict[str, Any]:
        return {
            "pid": os.getpid(),
            "node": ray.get_runtime_context().get_node_id(),
            "files": list(self.files),
            "len": len(self.index),
        }

    def mapping(self) -> Dict[str, Dict[str, int]]:
        return {p: shard_mapping(p) for p in self.files}


class ShardedSearcher:
    """Searches a sharded index from Ray actors.

    ``ShardedSearcher(manifest, placement="partition")`` starts one actor
    per shard; ``placement="replicate"`` starts ``num_replicas`` actors that
    each open every shard. Each actor asks Ray for ``num_cpus`` CPUs and
    searches with ``num_threads`` threads (``-1``: every core of its node).
    ``cache_dir``: copy shards into this node-local folder first (once per
    node, keyed by checksum). ``max_restarts`` / ``max_task_retries`` let
    Ray restart a lost actor and retry its calls; without them (the
    default) a lost actor makes :meth:`search` raise
    :class:`ShardSearchError`.

    Use as a context manager, or call :meth:`close`, to stop the actors.
    """

    def __init__(
        self,
        manifest: str,
        *,
        placement: str = "partition",
        num_replicas: int = 2,
        num_cpus: float = 1,
        num_threads: int = 1,
        mmap: bool = True,
        verify: bool = False,
        cache_dir: Optional[str] = None,
        oversample: float = 1.0,
        batch_size: int = 1024,
        max_restarts: int = 0,
        max_task_retries: int = 0,
    ):
        if placement not in ("partition", "replicate"):
            raise ValueError(f"placement must be 'partition' or 'replicate', got {placement!r}")
        if not (math.isfinite(oversample) and oversample >= 1):
            raise ValueError(f"oversample factor {oversample} must be a finite number of at least 1")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if placement == "replicate" and num_replicas < 1:
            raise ValueError("num_replicas must be at least 1")
        if not ray.is_initialized():
            ray.init()
        self.manifest = os.path.abspath(os.fspath(manifest))
        m = read_manifest(self.manifest)  # fails here, not in an actor, on a bad manifest
        self.placement = placement
        self.num_shards = len(m["shards"])
        self.dim = int(m["dim"])
        self.larger_is_closer = m["kind"] == "forest" and m["metric"] == "dot"
        self.oversample = oversample
        self.batch_size = batch_size
        self.num_threads = num_threads
        actor = ray.remote(_IndexActor).options(
            num_cpus=num_cpus,
            max_restarts=max_restarts,
            max_task_retries=max_task_retries,
        )
        if placement == "partition":
            groups: List[Optional[List[int]]] = [[i] for i in range(self.num_shards)]
        else:
            groups = [None] * num_replicas
        self.actors: List[Any] = [actor.remote(self.manifest, g, cache_dir, mmap, verify) for g in groups]
        try:
            # Opening errors surface here, naming the shard.
            self._info = self._get([a.info.remote() for a in self.actors], "opening")
        except BaseException:
            self.close()
            raise

    def _what(self, j: int) -> str:
        return f"shard {j}" if self.placement == "partition" else f"replica {j}"

    def _get(self, refs: List[Any], doing: str) -> List[Any]:
        out = []
        for j, ref in enumerate(refs):
            try:
                out.append(ray.get(ref))
            except ray.exceptions.RayActorError as e:
                if getattr(e, "actor_init_failed", False):
                    raise ShardSearchError(
                        f"{doing}: {self._what(j % len(self.actors))} failed: {_init_error(e)}"
                    ) from e
                raise ShardSearchError(
                    f"{doing}: the actor of {self._what(j % len(self.actors))} was lost "
                    f"({type(e).__name__}); no partial results are returned"
                ) from e
            except ray.exceptions.RayTaskError as e:
                raise ShardSearchError(f"{doing}: {self._what(j % len(self.actors))} failed: {_reason(e)}") from e
        return out

    def info(self) -> List[Dict[str, Any]]:
        """Each actor's process id, node id and shard files (when started)."""
        return list(self._info)

    def search(
        self,
        queries: Any,
        k: int = 10,
        *,
        ef: Optional[int] = None,
        search_k: Optional[int] = None,
    ) -> Tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest labels to each row of ``queries``: ``(labels
        uint64 (n, k), distances float32 (n, k))`` as
        :meth:`swann.ShardedIndex.search` returns them, searched in batches
        of ``batch_size`` rows. Raises :class:`ShardSearchError` when an
        actor is lost (after Ray's retries, if any)."""
        if k < 1:
            raise ValueError("k must be at least 1")
        if ef is not None and search_k is not None:
            raise ValueError("give ef (HNSW shards) or search_k (forest shards), not both")
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if q.ndim == 1:
            q = q[None, :]
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ValueError(f"queries must have shape (n, {self.dim}), got {np.shape(queries)}")
        n = len(q)
        batches = [(s, min(s + self.batch_size, n)) for s in range(0, n, self.batch_size)]
        if self.placement == "partition":
            kk = max(k, math.ceil(k * self.oversample))
            refs = []
            for s, e in batches:
                ref = ray.put(q[s:e])
                refs.append([a.search.remote(ref, kk, ef, search_k, self.num_threads) for a in self.actors])
            out_l = np.empty((n, k), np.uint64)
            out_d = np.empty((n, k), np.float32)
            for (s, e), per_shard in zip(batches, refs):
                lists = self._get(per_shard, "searching")
                out_l[s:e], out_d[s:e] = merge_top_k(lists, k, self.larger_is_closer)
            return out_l, out_d
        # Replicas: each batch to the next actor, round robin; every replica
        # holds every shard and applies the oversample itself.
        # Asking a replica (oversample 1) for kk results and keeping the
        # first k is the same as asking each shard for kk and merging to k.
        kk = max(k, math.ceil(k * self.oversample))
        calls = [
            self.actors[j % len(self.actors)].search.remote(q[s:e], kk, ef, search_k, self.num_threads)
            for j, (s, e) in enumerate(batches)
        ]
        results = self._get(calls, "searching")
        if not results:
            return np.empty((0, k), np.uint64), np.empty((0, k), np.float32)
        labels = np.concatenate([r[0] for r in results])
        dists = np.concatenate([r[1] for r in results])
        return np.ascontiguousarray(labels[:, :k]), np.ascontiguousarray(dists[:, :k])

    def close(self) -> None:
        """Stops the actors."""
        for a in self.actors:
            ray.kill(a, no_restart=True)
        self.actors = []

    def __enter__(self) -> "ShardedSearcher":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# --- knn join -----------------------------------------------------------------


class _KnnJoin:
    """``map_batches`` callable: opens the index once per actor."""

    def __init__(self, manifest, column, k, ef, search_k, labels_out, distances_out, cache_dir, num_threads):
        paths = None
        if cache_dir is not None:
            m = read_manifest(manifest)
            files = resolve_shard_paths(manifest)
            paths = [cached_copy(f, s["xxh3"], cache_dir) for f, s in zip(files, m["shards"])]
        self.index = ShardedIndex(manifest, paths=paths)
        self.column, self.k, self.ef, self.search_k = column, k, ef, search_k
        self.labels_out, self.distances_out = labels_out, distances_out
        self.num_threads = num_threads

    def __call__(self, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        q = batch[self.column]
        if q.dtype == object:
            q = np.stack(list(q))
        labels, dists = self.index.search(q, self.k, ef=self.ef, search_k=self.search_k, num_threads=self.num_threads)
        batch[self.labels_out] = labels
        batch[self.distances_out] = dists
        return batch


def knn_join(
    dataset: Any,
    manifest: str,
    k: int = 10,
    *,
    column: Optional[str] = None,
    ef: Optional[int] = None,
    search_k: Optional[int] = None,
    labels_column: str = "neighbors",
    distances_column: str = "distances",
    concurrency: int = 2,
    num_cpus: float = 1,
    num_threads: int = 1,
    batch_size: int = 1024,
    cache_dir: Optional[str] = None,
) -> Any:
    """``dataset`` with two columns appended to every row: the labels
    (``labels_column``, uint64 ``(k,)``) and distances (``distances_column``,
    float32 ``(k,)``) of the ``k`` nearest vectors in the sharded index at
    ``manifest`` to the row's vector (``column``; found by itself when the
    dataset has one column). Runs lazily as ``map_batches`` over a pool of
    ``concurrency`` actors, each opening the whole index once (mapped, so
    the actors of a node share its pages)."""
    if k < 1:
        raise ValueError("k must be at least 1")
    manifest = os.path.abspath(os.fspath(manifest))
    read_manifest(manifest)
    col = _dataset_column(dataset, column, None)
    return dataset.map_batches(
        _KnnJoin,
        fn_constructor_kwargs=dict(
            manifest=manifest,
            column=col,
            k=k,
            ef=ef,
            search_k=search_k,
            labels_out=labels_column,
            distances_out=distances_column,
            cache_dir=cache_dir,
            num_threads=num_threads,
        ),
        batch_format="numpy",
        batch_size=batch_size,
        concurrency=concurrency,
        num_cpus=num_cpus,
    )
