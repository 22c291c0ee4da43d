"""Annoy 1.17's Python API (``annoy.AnnoyIndex``) on swann's random-projection forest.

Code written for Annoy runs unchanged with::

    from swann.annoy import AnnoyIndex

Metrics and distances are Annoy's: ``"angular"`` (``sqrt(2 - 2 cos)``),
``"euclidean"``, ``"manhattan"``, ``"dot"`` (the dot product, larger is
nearer) and ``"hamming"``. :meth:`AnnoyIndex.save` writes swann's forest
format; :meth:`AnnoyIndex.load` reads it and also files written by Annoy
itself (read-only: Annoy's files are searched in place).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _swann

__all__ = ["AnnoyIndex"]

if not hasattr(_swann, "Forest"):
    raise ImportError(
        "swann.annoy needs the forest index, and this build of swann's "
        "extension was made without it (python crate feature 'forest')"
    )

_METRICS = ("angular", "euclidean", "manhattan", "hamming", "dot")
_FOREST_MAGIC = b"SWANNIDX"


class VectorError(IndexError, ValueError):
    """A vector of the wrong length: an ``IndexError`` as Annoy raises, and a ``ValueError``."""


def _is_swann_forest(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(len(_FOREST_MAGIC)) == _FOREST_MAGIC


def _components(vector: Any) -> Any:
    """The components of ``vector`` read as Annoy reads them: its length
    first (``TypeError`` "object of type 'X' has no len()"), then each item
    by index ("'X' object is not subscriptable", or the ``IndexError`` the
    sequence raises), each a real number (``TypeError`` "must be real
    number, not str": numpy's conversion would accept numeric strings).
    numpy arrays of numbers pass as they are."""
    if isinstance(vector, np.ndarray):
        if vector.dtype.kind not in "biuf":
            raise TypeError(f"must be real numbers, not {vector.dtype}")
        return vector
    if isinstance(vector, (str, bytes)):
        raise TypeError(f"must be real number, not {type(vector).__name__}")
    n = len(vector)
    out = []
    for j in range(n):
        x = vector[j]
        if isinstance(x, (str, bytes)):
            raise TypeError(f"must be real number, not {type(x).__name__}")
        out.append(x)
    return out


def _copy_atomically(src: Optional[str], dst: str) -> None:
    """Copies ``src`` to ``dst`` through a temporary file in ``dst``'s
    folder and a rename, so ``dst`` is never left half written."""
    if src is None:
        raise OSError("the loaded index has no file to copy")
    folder = os.path.dirname(os.path.abspath(dst))
    fd, tmp = tempfile.mkstemp(prefix=".annoy-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
            shutil.copyfileobj(inp, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dst)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class AnnoyIndex:
    """A forest of random-projection trees, as ``annoy.AnnoyIndex(f, metric)``."""

    def __init__(self, f: int, metric: str = "angular") -> None:
        if metric not in _METRICS:
            raise ValueError(f"No such metric: {metric}")
        if int(f) <= 0:
            raise ValueError("f must be positive")
        self.f = int(f)
        self._metric = metric
        self._seed: Optional[int] = None
        self._new()

    def _new(self) -> None:
        self._index = _swann.Forest(self.f, self._metric)
        if self._seed is not None:
            self._index.set_seed(self._seed)
        self._loaded = False
        self._path: Optional[str] = None

    # -- building -------------------------------------------------------------

    def add_item(self, i: int, vector: Sequence[float]) -> None:
        """Adds item ``i`` (a non-negative integer) with ``vector``."""
        i = int(i)
        if i < 0:
            raise IndexError("Item index can not be negative")
        if self._loaded:
            raise RuntimeError("You can't add an item to a loaded index")
        vector = _components(vector)
        try:
            self._index.add_item(i, vector)
        except ValueError as e:
            if "dimension" in str(e):
                n = len(vector) if hasattr(vector, "__len__") else "?"
                raise VectorError(f"Vector has wrong length (expected {self.f}, got {n})") from None
            raise

    def build(self, n_trees: int, n_jobs: int = -1) -> bool:
        """Builds ``n_trees`` trees on ``n_jobs`` threads (``-1``: every core).

        ``n_trees=-1`` builds trees until their nodes number at least the
        items, as Annoy does (about half a leaf's capacity in trees).
        """
        if self._loaded:
            raise RuntimeError("You can't build a loaded index")
        self._index.build(int(n_trees), num_threads=int(n_jobs))
        return True

    def unbuild(self) -> bool:
        """Drops the trees so items can be added again."""
        if self._loaded:
            raise RuntimeError("You can't unbuild a loaded index")
        self._index.unbuild()
        return True

    def on_disk_build(self, fn: str) -> bool:
        """Builds into the file ``fn`` instead of memory (call before adding items)."""
        self._index.on_disk_build(os.fspath(fn))
        return True

    def set_seed(self, seed: int) -> None:
        """Seeds the tree builder (same seed and items: same trees)."""
        self._seed = int(seed)
        if not self._loaded:
            self._index.set_seed(self._seed)

    def verbose(self, v: bool) -> bool:
        """Accepted for compatibility; swann builds quietly."""
        return True

    # -- files ----------------------------------------------------------------

    def save(self, fn: str, prefault: bool = False) -> bool:
        """Writes the built index to ``fn`` and, as Annoy does, continues
        with the saved file mapped read-only. After :meth:`load` (or an
        earlier save) it writes a copy of the mapped file. Failures raise
        ``OSError``, as Annoy's do."""
        fn = os.fspath(fn)
        try:
            if self._loaded:
                # The file already holds the index: copy it (the mapping of
                # the file it came from stays in use).
                if self._path is None or os.path.abspath(fn) != os.path.abspath(self._path):
                    _copy_atomically(self._path, fn)
                return True
            self._index.save(fn)
            index = _swann.Forest.load(fn, mmap=True, prefault=bool(prefault))
        except (RuntimeError, ValueError, OSError) as e:
            raise OSError(f"Unable to save {fn}: {e}") from None
        self._index = index
        self._path = fn
        self._loaded = True
        return True

    def load(self, fn: str, prefault: bool = False) -> bool:
        """Maps ``fn``: a file written by :meth:`save`, or by Annoy itself
        (with the dimension and metric this object was created with)."""
        fn = os.fspath(fn)
        if _is_swann_forest(fn):
            index = _swann.Forest.load(fn, mmap=True, prefault=bool(prefault))
            if index.dim != self.f or index.metric != self._metric:
                raise OSError(
                    f"{fn} holds a {index.metric} index of dimension {index.dim}, "
                    f"not {self._metric} of dimension {self.f}"
                )
        else:
            try:
                index = _swann.Forest.open_annoy(fn, self.f, self._metric, prefault=bool(prefault))
            except ValueError as e:
                raise OSError(f"Unable to load {fn}: {e}") from None
        self._index = index
        self._path = fn
        self._loaded = True
        return True

    def unload(self) -> bool:
        """Drops the index; the object is empty again."""
        self._new()
        return True

    # -- queries --------------------------------------------------------------

    def _check_item(self, i: int) -> int:
        i = int(i)
        if i < 0:
            raise IndexError("Item index can not be negative")
        if i >= self._index.n_items:
            raise IndexError("Item index larger than the largest item index")
        return i

    def get_nns_by_item(
        self, i: int, n: int, search_k: int = -1, include_distances: bool = False
    ) -> Union[List[int], Tuple[List[int], List[float]]]:
        """The ``n`` nearest items to item ``i`` (itself first)."""
        ids, dist = self._index.nns_by_item(self._check_item(i), int(n), int(search_k))
        return (ids, dist) if include_distances else ids

    def get_nns_by_vector(
        self, vector: Sequence[float], n: int, search_k: int = -1, include_distances: bool = False
    ) -> Union[List[int], Tuple[List[int], List[float]]]:
        """The ``n`` nearest items to ``vector``, looking at about
        ``search_k`` candidates (``-1``: ``n * n_trees``)."""
        try:
            ids, dist = self._index.nns_by_vector(vector, int(n), int(search_k))
        except ValueError as e:
            if "dimension" in str(e):
                n_ = len(vector) if hasattr(vector, "__len__") else "?"
                raise VectorError(f"Vector has wrong length (expected {self.f}, got {n_})") from None
            raise
        return (ids, dist) if include_distances else ids

    def get_item_vector(self, i: int) -> List[float]:
        """Item ``i``'s vector."""
        return self._index.item_vector(self._check_item(i))

    def get_distance(self, i: int, j: int) -> float:
        """The distance between items ``i`` and ``j``."""
        return self._index.distance(self._check_item(i), self._check_item(j))

    def get_n_items(self) -> int:
        """One more than the largest item id added."""
        return self._index.n_items

    def get_n_trees(self) -> int:
        """The number of trees."""
        return self._index.n_trees

    def __repr__(self) -> str:
        return f"<swann.annoy.AnnoyIndex(f={self.f}, metric='{self._metric}')>"
