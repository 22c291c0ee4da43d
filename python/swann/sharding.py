"""Building shard files and manifests in one process, without Ray.

These are the pieces :mod:`swann.distributed` runs on a cluster, usable on
their own (a batch scheduler, a loop on one machine):

- :func:`build_shard` builds one shard's index with swann's own classes
  and saves it atomically (a temporary name in the target folder, then a
  rename), so a reader never sees part of a shard;
- :func:`build_local` builds every shard one after another and writes the
  manifest last, atomically: the same files :func:`swann.distributed.build`
  writes for the same data and parameters;
- :func:`cached_copy` copies a shard file into a node-local cache keyed by
  its checksum, once per node.

Rows are split as the command-line tool splits them
(:func:`swann.shard_rows`): contiguous ranges, shard ``i`` of ``n`` rows
starting at ``i * n // num_shards``, labelled by their global row numbers
unless labels are given.

>>> import os, tempfile
>>> import numpy as np
>>> from swann import ShardedIndex
>>> from swann.sharding import build_local
>>> rows = np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)
>>> folder = tempfile.mkdtemp()
>>> manifest = build_local(rows, folder, num_shards=3, index="flat")
>>> os.path.basename(manifest)
'index.manifest.json'
>>> index = ShardedIndex(manifest)
>>> len(index), index.num_shards, index.kind
(300, 3, 'flat')
>>> labels, distances = index.search(rows[[7, 250]], k=1)
>>> labels[:, 0].tolist()
[7, 250]
"""

from __future__ import annotations

import glob
import os
import shutil
import time
import uuid
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ._swann import Flat, Hnsw, file_checksum, shard_rows, write_manifest

__all__ = [
    "INDEX_KINDS",
    "MANIFEST_NAME",
    "build_shard",
    "build_local",
    "shard_file_name",
    "shard_slices",
    "remove_build_files",
    "cached_copy",
    "resolve_shard_paths",
]

_PathLike = Union[str, "os.PathLike[str]"]

#: The index kinds a shard can hold.
INDEX_KINDS = ("hnsw", "forest", "flat")

#: The manifest's file name in a build folder.
MANIFEST_NAME = "index.manifest.json"

_TMP_MARK = ".tmp-"


def shard_file_name(i: int, num_shards: int, build_id: str) -> str:
    """The file name of shard ``i`` of ``num_shards`` in build ``build_id``.

    Each build writes new names, so a manifest already in the folder keeps
    naming intact files until the new manifest replaces it.

    >>> shard_file_name(2, 4, "ab12")
    'shard-00002-of-00004-ab12.swann'
    """
    return f"shard-{i:05d}-of-{num_shards:05d}-{build_id}.swann"


def shard_slices(n: int, num_shards: int) -> List[Tuple[int, int]]:
    """``(start, end)`` of every shard: :func:`swann.shard_rows` for each part.

    >>> shard_slices(10, 3)
    [(0, 3), (3, 6), (6, 10)]
    """
    if num_shards < 1:
        raise ValueError(f"num_shards must be at least 1, got {num_shards}")
    return [shard_rows(n, num_shards, i) for i in range(num_shards)]


def _check_kind(index: str) -> str:
    kind = index.lower()
    if kind not in INDEX_KINDS:
        raise ValueError(f"index must be one of {', '.join(INDEX_KINDS)}, got {index!r}")
    return kind


def build_shard(
    vectors: Any,
    labels: Any,
    path: _PathLike,
    *,
    index: str = "hnsw",
    metric: str = "l2",
    M: int = 16,
    ef_construction: int = 200,
    seed: int = 100,
    num_threads: int = 1,
    trees: int = 10,
    leaf_size: Optional[int] = None,
    quantization: str = "none",
) -> Dict[str, Any]:
    """Builds one shard over ``vectors`` (``(n, dim)``) labelled ``labels``
    and saves it to ``path`` atomically: written to a temporary name in the
    same folder, then renamed; on failure the temporary file is removed and
    nothing exists at ``path``.

    ``index`` is ``"hnsw"`` (``M``, ``ef_construction``, ``seed``,
    ``quantization``), ``"forest"`` (``trees``, ``seed``, ``leaf_size``;
    labels must fit 32 bits) or ``"flat"``. One build thread with a fixed
    seed gives the same bytes on every machine.

    Returns a report: ``path``, ``rows``, ``seconds``, ``pid``.
    """
    kind = _check_kind(index)
    started = time.perf_counter()
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"vectors must be a 2-D array (n, dim), got shape {x.shape}")
    ids = np.asarray(labels)
    if ids.shape != (x.shape[0],):
        raise ValueError(f"{ids.size} labels for {x.shape[0]} rows")
    if ids.size and (ids.dtype.kind not in "ui" or ids.min() < 0):
        raise ValueError("labels must be non-negative integers")
    ids = ids.astype(np.uint64)
    dim = x.shape[1]
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(
        folder, f".{os.path.basename(path)}{_TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    )
    try:
        built: Any
        if kind == "hnsw":
            built = Hnsw(
                dim,
                metric,
                capacity=max(len(x), 1),
                M=M,
                ef_construction=ef_construction,
                seed=seed,
                quantization=quantization,
            )
            if len(x):
                built.add(x, ids, num_threads=num_threads)
        elif kind == "flat":
            built = Flat(dim, metric)
            if len(x):
                built.add(x, ids)
        else:
            from ._swann import Forest

            if ids.size and int(ids.max()) > 0xFFFFFFFF:
                raise ValueError("forest labels must fit 32 bits (below 2**32)")
            built = Forest(dim, metric)
            built.set_seed(seed)
            if leaf_size is not None:
                built.set_leaf_size(leaf_size)
            if len(x):
                built.add_items(x, ids.astype(np.int64))
            built.build(trees, num_threads=num_threads)
        built.save(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return {
        "path": path,
        "rows": int(len(x)),
        "seconds": time.perf_counter() - started,
        "pid": os.getpid(),
    }


def remove_build_files(out_dir: _PathLike, build_id: str) -> List[str]:
    """Removes every shard file and temporary file of build ``build_id``
    from ``out_dir``; returns the names removed."""
    removed = []
    for p in glob.glob(os.path.join(os.fspath(out_dir), f"*-{glob.escape(build_id)}.swann*")):
        os.remove(p)
        removed.append(os.path.basename(p))
    # Temporary names start with a dot (hidden from the pattern above).
    for p in glob.glob(os.path.join(os.fspath(out_dir), f".*-{glob.escape(build_id)}.swann{_TMP_MARK}*")):
        os.remove(p)
        removed.append(os.path.basename(p))
    return removed


def resolve_shard_paths(manifest: _PathLike) -> List[str]:
    """The absolute path of every shard a manifest names, in its order."""
    from ._swann import read_manifest

    m = read_manifest(manifest)
    folder = os.path.dirname(os.path.abspath(os.fspath(manifest)))
    return [os.path.normpath(os.path.join(folder, s["path"])) for s in m["shards"]]


def _labels_for(n: int, labels: Any) -> np.ndarray:
    if labels is None:
        return np.arange(n, dtype=np.uint64)
    ids = np.asarray(labels)
    if ids.shape != (n,):
        raise ValueError(f"{ids.size} labels for {n} rows")
    if ids.size and (ids.dtype.kind not in "ui" or ids.min() < 0):
        raise ValueError("labels must be non-negative integers")
    if len(np.unique(ids)) != n:
        raise ValueError("labels must be unique")
    return ids.astype(np.uint64)


def prepare_out_dir(out_dir: _PathLike, manifest_name: str, overwrite: bool) -> Tuple[str, str]:
    """Creates ``out_dir`` if needed; returns ``(manifest path, build id)``.
    An existing manifest is kept unless ``overwrite`` (``FileExistsError``)."""
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    manifest = os.path.join(out_dir, manifest_name)
    if os.path.exists(manifest) and not overwrite:
        raise FileExistsError(f"{manifest} exists; pass overwrite=True to replace the index")
    return manifest, uuid.uuid4().hex[:12]


def finish_build(manifest: str, shard_paths: Sequence[str]) -> str:
    """Writes the manifest of ``shard_paths`` atomically, then removes the
    shard files the manifest it replaced named in the same folder (processes
    that already mapped them keep reading them)."""
    old: List[str] = []
    if os.path.exists(manifest):
        try:
            old = resolve_shard_paths(manifest)
        except (OSError, ValueError):
            old = []
    write_manifest(list(shard_paths), manifest)
    keep = {os.path.abspath(p) for p in shard_paths}
    folder = os.path.dirname(os.path.abspath(manifest))
    for p in old:
        p = os.path.abspath(p)
        if p not in keep and os.path.dirname(p) == folder and os.path.exists(p):
            os.remove(p)
    return manifest


def build_local(
    data: Any,
    out_dir: _PathLike,
    *,
    num_shards: int,
    labels: Any = None,
    index: str = "hnsw",
    manifest_name: str = MANIFEST_NAME,
    overwrite: bool = False,
    on_shard_built: Optional[Callable[[Dict[str, Any]], None]] = None,
    **params: Any,
) -> str:
    """Builds ``num_shards`` shards of ``data`` (``(n, dim)``) one after
    another in this process and writes their manifest last; returns its
    path. ``params`` go to :func:`build_shard`.

    On any failure the files of this build are removed and no manifest is
    written (a manifest already there is left as it was).
    """
    kind = _check_kind(index)
    x = np.asarray(data)
    if x.ndim != 2:
        raise ValueError(f"data must be a 2-D array (n, dim), got shape {x.shape}")
    ids = _labels_for(len(x), labels)
    manifest, build_id = prepare_out_dir(out_dir, manifest_name, overwrite)
    paths = []
    try:
        for i, (start, end) in enumerate(shard_slices(len(x), num_shards)):
            path = os.path.join(os.fspath(out_dir), shard_file_name(i, num_shards, build_id))
            try:
                report = build_shard(x[start:end], ids[start:end], path, index=kind, **params)
            except Exception as e:
                raise RuntimeError(f"shard {i} of {num_shards} failed: {e}") from e
            report["shard"] = i
            if on_shard_built is not None:
                on_shard_built(report)
            paths.append(path)
        return finish_build(manifest, paths)
    except BaseException:
        remove_build_files(out_dir, build_id)
        raise


def cached_copy(path: _PathLike, checksum: str, cache_dir: _PathLike) -> str:
    """A copy of the shard file ``path`` in ``cache_dir``, named by its
    ``checksum`` (the manifest's ``xxh3``): copied once, then reused by every
    process on the node. The copy is checked against the checksum before
    it is renamed into place, so a cached file is always whole and right.

    >>> import tempfile
    >>> from swann import file_checksum
    >>> src = tempfile.NamedTemporaryFile(delete=False); _ = src.write(b"shard"); src.close()
    >>> cache = tempfile.mkdtemp()
    >>> first = cached_copy(src.name, file_checksum(src.name), cache)
    >>> first == cached_copy(src.name, file_checksum(src.name), cache)
    True
    >>> cached_copy(src.name, "0" * 16, cache)
    Traceback (most recent call last):
    ...
    ValueError: ... has checksum ..., expected 0000000000000000
    """
    if len(checksum) != 16 or any(c not in "0123456789abcdef" for c in checksum):
        raise ValueError(f"checksum {checksum!r} is not 16 lowercase hex digits")
    cache_dir = os.fspath(cache_dir)
    os.makedirs(cache_dir, exist_ok=True)
    target = os.path.join(cache_dir, f"{checksum}-{os.path.basename(os.fspath(path))}")
    if os.path.exists(target):
        return target
    tmp = f"{target}{_TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        shutil.copyfile(os.fspath(path), tmp)
        got = file_checksum(tmp)
        if got != checksum:
            raise ValueError(f"{os.fspath(path)} has checksum {got}, expected {checksum}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return target
