"""N2's Python API (``n2.HnswIndex``) on swann's native HNSW index.

Code written for N2 runs unchanged with::

    from swann.n2 import HnswIndex

Metrics: ``"angular"`` (distance ``1 - cos``, as N2 reports it), ``"L2"``
(squared Euclidean) and ``"dot"`` (the dot product as a score: larger is
nearer, results sorted by decreasing score).

:meth:`HnswIndex.build` takes N2's parameters: ``m``, ``max_m0`` (default
``2 * m``), ``ef_construction``, ``n_threads``, ``mult`` (level multiplier,
default ``1 / ln m``) and ``neighbor_selecting`` (``"heuristic"``,
``"naive"`` or ``"heuristic_save_remains"``). Differences from N2, none of
which change results' meaning: ``graph_merging="merge_level0"`` (N2's
optional second build in reverse order whose level-0 links are merged in)
is accepted and validated but builds the single graph of ``"skip"``; and
items may be added after :meth:`HnswIndex.build` (call ``build`` again to
index them; the parameters of the first build stay).
"""

from __future__ import annotations

import os
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _swann
from ._errors import InputError, LabelError

__all__ = ["HnswIndex"]

_METRICS = {
    "angular": "cosine",
    "l2": "l2",
    "euclidean": "l2",
    "dot": "dot",
}
_NO_LABEL = np.iinfo(np.uint64).max


class HnswIndex:
    """An HNSW index, as ``n2.HnswIndex(dimension, metric="angular")``."""

    def __init__(self, dimension: int, metric: str = "angular") -> None:
        key = str(metric).lower()
        if key not in _METRICS:
            raise ValueError(
                f"unknown metric {metric!r}: expected 'angular', 'L2' or 'dot'"
            )
        if int(dimension) <= 0:
            raise ValueError("dimension must be positive")
        self._dim = int(dimension)
        self._metric = key if key != "euclidean" else "l2"
        self._native_metric = _METRICS[key]
        self._pending: List[np.ndarray] = []
        self._count = 0
        self._index: Optional[_swann.Hnsw] = None
        self._loaded = False

    # -- building -----------------------------------------------------------

    def add_data(self, v: Sequence[float]) -> bool:
        """Queues vector ``v`` under the next id (0, 1, ...); it is indexed
        by the next :meth:`build`."""
        if self._loaded:
            # N2 refuses to add to a model read from a file.
            raise RuntimeError(
                "[Error] This index already has a trained model. Adding an item is not allowed."
            )
        a = np.asarray(v, dtype=np.float32).reshape(-1)
        if a.shape[0] != self._dim:
            raise InputError(
                f"[Error] Invalid dimension data inserted: {a.shape[0]}, Predefined dimension: {self._dim}"
            )
        if not np.isfinite(a).all():
            raise InputError("vector holds NaN or infinity")
        self._pending.append(a)
        self._count += 1
        return True

    def build(
        self,
        m: Optional[int] = None,
        max_m0: Optional[int] = None,
        ef_construction: Optional[int] = None,
        n_threads: Optional[int] = None,
        mult: Optional[float] = None,
        neighbor_selecting: Optional[str] = None,
        graph_merging: Optional[str] = None,
    ) -> bool:
        """Builds the graph over every vector added so far (N2's defaults:
        ``m=12``, ``ef_construction=150``, ``n_threads=1``). Releases the GIL."""
        if neighbor_selecting not in (None, "heuristic", "naive", "heuristic_save_remains"):
            raise ValueError(f"unknown neighbor_selecting {neighbor_selecting!r}")
        if graph_merging not in (None, "skip", "merge_level0"):
            raise ValueError(f"unknown graph_merging {graph_merging!r}")
        if mult is not None and not (np.isfinite(float(mult)) and float(mult) > 0):
            raise ValueError("mult must be a positive number")
        if max_m0 is not None and int(max_m0) <= 0:
            raise ValueError("max_m0 must be positive")
        if self._index is None and not self._pending:
            raise RuntimeError("No data to fit. Load data first.")
        threads = 1 if n_threads is None or int(n_threads) <= 0 else int(n_threads)
        if self._index is None:
            self._index = _swann.Hnsw(
                self._dim,
                self._native_metric,
                capacity=len(self._pending),
                M=12 if m is None else int(m),
                ef_construction=150 if ef_construction is None else int(ef_construction),
                M0=None if max_m0 is None else int(max_m0),
                level_mult=None if mult is None else float(mult),
                selection=neighbor_selecting or "heuristic",
            )
        if self._pending:
            first = len(self._index)
            data = np.stack(self._pending)
            labels = np.arange(first, first + data.shape[0], dtype=np.uint64)
            self._index.add(data, labels, num_threads=threads)
            self._pending = []
        return True

    # -- files --------------------------------------------------------------

    def save(self, fname: str) -> bool:
        """Writes the built index to ``fname``."""
        self._built().save(os.fspath(fname))
        return True

    def load(self, fname: str, use_mmap: bool = True) -> bool:
        """Loads an index written by :meth:`save`; with ``use_mmap`` the file
        is memory-mapped and searched in place."""
        index = _swann.Hnsw.load(os.fspath(fname), mmap=bool(use_mmap))
        if index.dim != self._dim or index.metric != self._native_metric:
            raise RuntimeError(
                f"{fname} holds a {index.metric} index of dimension {index.dim}, "
                f"not {self._metric} of dimension {self._dim}"
            )
        self._index = index
        self._pending = []
        self._count = len(index)
        self._loaded = True
        return True

    def unload(self) -> None:
        """Drops the index (and any vectors not built yet)."""
        self._index = None
        self._pending = []
        self._count = 0
        self._loaded = False

    # -- searching ----------------------------------------------------------

    def _built(self) -> _swann.Hnsw:
        if self._index is None:
            raise RuntimeError("the index is not built: call build() or load() first")
        return self._index

    def _results(self, labels: np.ndarray, dist: np.ndarray, include_distances: bool):
        out = []
        score = self._metric == "dot"
        for lrow, drow in zip(labels, dist):
            keep = lrow != _NO_LABEL
            ids = lrow[keep].astype(np.int64).tolist()
            if not include_distances:
                out.append(ids)
                continue
            d = drow[keep]
            if score:
                d = 1.0 - d
            out.append(list(zip(ids, d.tolist())))
        return out

    def _search(self, queries: np.ndarray, k: int, ef_search: int, num_threads: int):
        k = int(k)
        if k <= 0:
            raise ValueError("k must be positive")
        ef = k * 10 if ef_search is None or int(ef_search) < 0 else int(ef_search)
        return self._built().search(queries, k, ef=ef, num_threads=num_threads)

    def _vector(self, v: Any) -> np.ndarray:
        a = np.asarray(v, dtype=np.float32)
        if a.ndim != 1 or a.shape[0] != self._dim:
            raise InputError(
                f"query must be a vector of dimension {self._dim}, got shape {a.shape}"
            )
        return a

    def _item(self, item_ids: Any) -> np.ndarray:
        ids = np.asarray(item_ids).reshape(-1)
        if ids.size and (ids.dtype.kind not in "iu" or ids.min() < 0):
            raise InputError("item ids must be non-negative integers")
        try:
            return self._built().get_vectors(ids.astype(np.uint64))
        except KeyError as e:
            raise LabelError(f"item {e.args[0]} is not in the index") from None

    def search_by_vector(
        self, v: Sequence[float], k: int, ef_search: int = -1, include_distances: bool = False
    ) -> Union[List[int], List[Tuple[int, float]]]:
        """The ``k`` nearest item ids to ``v`` (``ef_search`` defaults to
        ``10 * k``); with ``include_distances``, ``(id, distance)`` pairs."""
        labels, dist = self._search(self._vector(v), k, ef_search, 1)
        return self._results(labels, dist, include_distances)[0]

    def _search_ids(self, item_ids: Any, k: int, ef_search: int, num_threads: int):
        k = int(k)
        if k <= 0:
            raise ValueError("k must be positive")
        ids = np.asarray(item_ids).reshape(-1)
        if ids.size and (ids.dtype.kind not in "iu" or ids.min() < 0):
            raise InputError("item ids must be non-negative integers")
        # N2 searches by id from the item itself with ef_search = 50 * k by
        # default (by vector: 10 * k).
        ef = k * 50 if ef_search is None or int(ef_search) < 0 else int(ef_search)
        try:
            return self._built().search_by_label(
                ids.astype(np.uint64), k, ef=ef, num_threads=num_threads
            )
        except KeyError as e:
            raise LabelError(f"item {e.args[0]} is not in the index") from None

    def search_by_id(
        self, item_id: int, k: int, ef_search: int = -1, include_distances: bool = False
    ) -> Union[List[int], List[Tuple[int, float]]]:
        """The ``k`` nearest item ids to item ``item_id``, the search starting
        at the item itself as N2's does, so the item is always among them
        (``ef_search`` defaults to ``50 * k``)."""
        labels, dist = self._search_ids([item_id], k, ef_search, 1)
        return self._results(labels, dist, include_distances)[0]

    def batch_search_by_vectors(
        self,
        vs: Any,
        k: int,
        ef_search: int = -1,
        num_threads: int = 4,
        include_distances: bool = False,
    ):
        """:meth:`search_by_vector` for every row of ``vs`` on ``num_threads`` threads."""
        a = np.asarray(vs, dtype=np.float32)
        if a.ndim != 2 or a.shape[1] != self._dim:
            raise InputError(
                f"queries must have shape (n, {self._dim}), got {a.shape}"
            )
        labels, dist = self._search(a, k, ef_search, int(num_threads))
        return self._results(labels, dist, include_distances)

    def batch_search_by_ids(
        self,
        item_ids: Sequence[int],
        k: int,
        ef_search: int = -1,
        num_threads: int = 4,
        include_distances: bool = False,
    ):
        """:meth:`search_by_id` for every id in ``item_ids``."""
        labels, dist = self._search_ids(item_ids, k, ef_search, int(num_threads))
        return self._results(labels, dist, include_distances)

    def print_degree_dist(self) -> None:
        """Prints how many items have each level-0 degree (not tracked; prints the item count)."""
        print(f"{len(self._built())} items")

    def print_configs(self) -> None:
        """Prints the index parameters."""
        i = self._built()
        print(f"M: {i.M}, MaxM0: {2 * i.M}, efConstruction: {i.ef_construction}, metric: {self._metric}")
