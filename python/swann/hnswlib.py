"""hnswlib 0.8's Python API on swann's native indexes.

Code written for hnswlib runs unchanged with::

    import swann.hnswlib as hnswlib

:class:`Index` is backed by :class:`swann.Hnsw` and :class:`BFIndex` by
:class:`swann.Flat`. Spaces ``"l2"`` (squared L2), ``"ip"`` (``1 - a.b``)
and ``"cosine"`` (``1 - cos``; vectors are normalized on insert) report the
same distances hnswlib does. Errors follow hnswlib: a full index and a query
with fewer than ``k`` results raise ``RuntimeError`` with hnswlib's
messages; bad shapes raise :class:`swann._errors.InputError`, which is both
a ``ValueError`` and a ``RuntimeError``.

Files: :meth:`Index.save_index` writes swann's format (memory-mappable,
checksummed); :meth:`Index.load_index` reads it and also files written by
hnswlib itself. :class:`BFIndex` reads and writes hnswlib's brute-force format.
"""

from __future__ import annotations

import os
import struct
import tempfile
from typing import Any, Callable, List, Optional

import numpy as np

from . import _swann
from ._errors import InputError, LabelError

__all__ = ["Index", "BFIndex"]

_SPACES = ("l2", "ip", "cosine")
_SWANN_MAGIC = b"SWANNIDX"


def _check_space(space: str) -> str:
    if space not in _SPACES:
        raise ValueError("Space name must be one of l2, ip, or cosine.")
    return space


def _rows(data: Any, dim: int) -> np.ndarray:
    """``data`` as a float32 C-contiguous ``(n, dim)`` array (no copy when
    it already is one)."""
    try:
        a = np.ascontiguousarray(data, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise InputError(f"data must be convertible to a float32 array: {e}") from None
    if a.ndim == 1:
        a = a.reshape(1, -1)
    if a.ndim != 2:
        raise InputError(
            f"Data must be a 1d/2d array, got an array of shape {a.shape}"
        )
    if a.shape[1] != dim:
        raise InputError(
            f"Wrong dimensionality of the vectors: got {a.shape[1]}, expected {dim}"
        )
    return a


def _ids(ids: Any, rows: int) -> Optional[np.ndarray]:
    if ids is None:
        return None
    a = np.asarray(ids)
    if a.ndim == 0:
        a = a.reshape(1)
    if a.ndim != 1 or a.shape[0] != rows:
        raise InputError("Wrong dimensionality of the labels")
    if a.size and a.dtype.kind not in "iu":
        raise InputError(f"labels must be integers, got dtype {a.dtype}")
    if a.size and a.dtype.kind == "i" and a.min() < 0:
        raise InputError("labels must be non-negative")
    return a.astype(np.uint64, copy=False)


def _threads(requested: int, default: int) -> int:
    return requested if requested is not None and requested > 0 else default


def _is_swann_file(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(len(_SWANN_MAGIC)) == _SWANN_MAGIC


class Index:
    """An HNSW index, as ``hnswlib.Index(space, dim)``.

    Call :meth:`init_index` (or :meth:`load_index`) before adding or querying.
    """

    def __init__(self, space: str, dim: int) -> None:
        self._space = _check_space(space)
        if int(dim) <= 0:
            raise ValueError("dim must be positive")
        self._dim = int(dim)
        self._index: Optional[_swann.Hnsw] = None
        self._ef = 10
        self._num_threads = os.cpu_count() or 1
        self._allow_replace_deleted = False

    # -- construction ----------------------------------------------------

    def init_index(
        self,
        max_elements: int,
        M: int = 16,
        ef_construction: int = 200,
        random_seed: int = 100,
        allow_replace_deleted: bool = False,
    ) -> None:
        """Creates an empty index holding at most ``max_elements`` vectors."""
        if self._index is not None:
            raise RuntimeError("The index is already initiated.")
        self._index = _swann.Hnsw(
            self._dim,
            self._space,
            capacity=int(max_elements),
            M=int(M),
            ef_construction=int(ef_construction),
            seed=int(random_seed),
        )
        self._index.ef = self._ef
        self._allow_replace_deleted = bool(allow_replace_deleted)

    def _native(self) -> _swann.Hnsw:
        if self._index is None:
            raise RuntimeError("Index is not initialized: call init_index or load_index first")
        return self._index

    # -- adding and deleting ---------------------------------------------

    def add_items(
        self,
        data: Any,
        ids: Any = None,
        num_threads: int = -1,
        replace_deleted: bool = False,
    ) -> None:
        """Adds the rows of ``data`` (``(n, dim)`` or ``(dim,)``) under
        ``ids`` (default: the current count onwards). An existing label has
        its vector updated. Raises ``RuntimeError`` when the index would hold
        more than ``max_elements`` vectors (resize it first)."""
        index = self._native()
        rows = _rows(data, self._dim)
        labels = _ids(ids, rows.shape[0])
        if replace_deleted and not self._allow_replace_deleted:
            raise RuntimeError(
                "Replacement of deleted elements is disabled in constructor"
            )
        index.add(
            rows,
            labels,
            num_threads=_threads(num_threads, self._num_threads),
            grow=False,
            replace_deleted=bool(replace_deleted),
        )

    def mark_deleted(self, label: int) -> None:
        """Marks ``label`` deleted: it is no longer returned by queries."""
        try:
            self._native().mark_deleted(int(label))
        except KeyError:
            raise LabelError("Label not found") from None

    def unmark_deleted(self, label: int) -> None:
        """Clears the deleted mark of ``label``."""
        try:
            self._native().unmark_deleted(int(label))
        except KeyError:
            raise LabelError("Label not found") from None

    def remove_items(self, ids: Any) -> None:
        """Removes labels for good (a swann extension; hnswlib only marks
        them deleted): the graph is repaired around each and its slot is
        reused by later adds. Raises ``RuntimeError`` (nothing removed) if a
        label is unknown."""
        try:
            self._native().remove(np.asarray(ids, dtype=np.uint64).reshape(-1))
        except KeyError:
            raise LabelError("Label not found") from None

    def compact(self) -> None:
        """Rewrites the index without deleted labels and free slots, so
        memory and the saved file shrink (a swann extension)."""
        self._native().compact()

    def check_integrity(self) -> dict:
        """Checks the graph: links, levels, entry point, and that every
        element is reachable from the entry point (a swann extension; a
        dict with ``ok``, ``unreachable``, ``problems``, ``report``)."""
        return self._native().check()

    def resize_index(self, new_size: int) -> None:
        """Changes ``max_elements`` (not below the current count)."""
        index = self._native()
        if int(new_size) < len(index):
            raise RuntimeError(
                "Cannot resize, max element is less than the current number of elements"
            )
        index.resize(int(new_size))

    # -- queries ----------------------------------------------------------

    def knn_query(
        self,
        data: Any,
        k: int = 1,
        num_threads: int = -1,
        filter: Optional[Callable[[int], bool]] = None,
    ):
        """The ``k`` nearest labels to each row of ``data``: ``(labels
        uint64 (n, k), distances float32 (n, k))``. Raises ``RuntimeError``
        when some row has fewer than ``k`` results (raise ``ef`` or ``M``).

        ``filter`` is hnswlib's ``filter(label) -> bool``, or (a swann
        extension) an array of the allowed labels, which is much cheaper to
        test. The search is planned from the share of labels allowed: a
        graph walk when most pass, an exact scan when few do; for a batch,
        a callable may be called once per label instead of once per node
        visited by every query."""
        index = self._native()
        rows = _rows(data, self._dim)
        return index.search(
            rows,
            int(k),
            ef=self._ef,
            num_threads=_threads(num_threads, self._num_threads),
            filter=filter,
            require_k=True,
        )

    def set_ef(self, ef: int) -> None:
        """Sets the query-time candidate list size (default 10)."""
        self.ef = ef

    @property
    def ef(self) -> int:
        return self._ef

    @ef.setter
    def ef(self, value: int) -> None:
        self._ef = int(value)
        if self._index is not None:
            self._index.ef = self._ef

    def set_num_threads(self, num_threads: int) -> None:
        """Sets the default number of threads of adds and queries."""
        self.num_threads = num_threads

    @property
    def num_threads(self) -> int:
        return self._num_threads

    @num_threads.setter
    def num_threads(self, value: int) -> None:
        value = int(value)
        self._num_threads = value if value > 0 else (os.cpu_count() or 1)

    # -- items ------------------------------------------------------------

    def get_items(self, ids: Any = None, return_type: str = "numpy"):
        """The stored vectors of ``ids`` (normalized, for cosine), as a
        float32 array ``(n, dim)`` or, with ``return_type="list"``, a list
        of lists. Deleted or unknown labels raise ``RuntimeError``."""
        index = self._native()
        if ids is None:
            labels = np.zeros(0, dtype=np.uint64)
        else:
            labels = np.asarray(ids)
            if labels.ndim == 0:
                # hnswlib's message and type for a single label.
                raise ValueError(
                    "get_items accepts a list of indices and returns a list of vectors"
                )
            # Any shape, as hnswlib reads it: the first shape[0] labels of
            # the flattened array (all of them for the (n, 1) arrays that
            # knn_query returns).
            n = labels.shape[0]
            labels = _ids(labels.reshape(-1)[:n], n)
        try:
            out = index.get_vectors(labels, include_deleted=False)
        except KeyError:
            raise LabelError("Label not found") from None
        if return_type == "numpy":
            return out
        if return_type == "list":
            return out.tolist()
        raise ValueError("return_type should be 'numpy' or 'list'")

    def get_ids_list(self) -> List[int]:
        """Every label in the index (deleted ones included)."""
        if self._index is None:
            return []
        return self._index.labels().tolist()

    def get_max_elements(self) -> int:
        return self.max_elements

    def get_current_count(self) -> int:
        return self.element_count

    # -- files --------------------------------------------------------------

    def save_index(self, path_to_index: str) -> None:
        """Writes the index to ``path_to_index`` in swann's format."""
        self._native().save(os.fspath(path_to_index))

    def index_file_size(self) -> int:
        """Size in bytes of the file :meth:`save_index` would write now."""
        return int(self._native().saved_size())

    def load_index(
        self,
        path_to_index: str,
        max_elements: int = 0,
        allow_replace_deleted: bool = False,
    ) -> None:
        """Loads an index saved by :meth:`save_index` or by hnswlib's own
        ``save_index`` (the space and dimension must match those given to
        the constructor). ``max_elements`` raises the capacity."""
        path = os.fspath(path_to_index)
        if _is_swann_file(path):
            index = _swann.Hnsw.load(path)
            if index.metric != self._space or index.dim != self._dim:
                raise RuntimeError(
                    f"{path} holds a {index.metric} index of dimension {index.dim}, "
                    f"not {self._space} of dimension {self._dim}"
                )
        else:
            try:
                index = _swann.Hnsw.import_hnswlib(path, self._space, self._dim)
            except ValueError as e:
                raise RuntimeError(f"Cannot read {path} as an hnswlib index: {e}") from None
        if int(max_elements) > index.capacity:
            index.resize(int(max_elements))
        self._index = index
        self._ef = 10
        index.ef = self._ef
        self._allow_replace_deleted = bool(allow_replace_deleted)

    # -- properties -----------------------------------------------------------

    @property
    def space(self) -> str:
        return self._space

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def max_elements(self) -> int:
        return 0 if self._index is None else self._index.capacity

    @property
    def element_count(self) -> int:
        return 0 if self._index is None else len(self._index)

    @property
    def M(self) -> int:  # noqa: N802 - hnswlib's name
        return 0 if self._index is None else self._index.M

    @property
    def ef_construction(self) -> int:
        return 0 if self._index is None else self._index.ef_construction

    # -- pickling -------------------------------------------------------------

    def __getstate__(self) -> dict:
        state = {
            "space": self._space,
            "dim": self._dim,
            "ef": self._ef,
            "num_threads": self._num_threads,
            "allow_replace_deleted": self._allow_replace_deleted,
            "index": None,
        }
        if self._index is not None:
            with tempfile.TemporaryDirectory() as d:
                p = os.path.join(d, "index.swann")
                self._index.save(p)
                with open(p, "rb") as f:
                    state["index"] = f.read()
        return state

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["space"], state["dim"])
        self._num_threads = state["num_threads"]
        self._allow_replace_deleted = state["allow_replace_deleted"]
        if state["index"] is not None:
            with tempfile.TemporaryDirectory() as d:
                p = os.path.join(d, "index.swann")
                with open(p, "wb") as f:
                    f.write(state["index"])
                self._index = _swann.Hnsw.load(p)
        self.ef = state["ef"]

    def __repr__(self) -> str:
        return f"<swann.hnswlib.Index(space='{self._space}', dim={self._dim})>"


# hnswlib's BruteforceSearch file: three size_t (max elements, bytes per
# element, count), then max_elements records of dim float32 and a size_t label.
_BF_HEADER = struct.Struct("<QQQ")


class BFIndex:
    """Exact search, as ``hnswlib.BFIndex(space, dim)``."""

    def __init__(self, space: str, dim: int) -> None:
        self._space = _check_space(space)
        if int(dim) <= 0:
            raise ValueError("dim must be positive")
        self._dim = int(dim)
        self._index: Optional[_swann.Flat] = None
        self._max_elements = 0
        self._num_threads = os.cpu_count() or 1

    def init_index(self, max_elements: int) -> None:
        """Creates an empty index holding at most ``max_elements`` vectors."""
        if self._index is not None:
            raise RuntimeError("The index is already initiated.")
        self._index = _swann.Flat(self._dim, self._space)
        self._max_elements = int(max_elements)

    def _native(self) -> _swann.Flat:
        if self._index is None:
            raise RuntimeError("Index is not initialized: call init_index or load_index first")
        return self._index

    def add_items(self, data: Any, ids: Any = None, num_threads: int = -1) -> None:
        """Adds the rows of ``data``; an existing label has its vector replaced."""
        index = self._native()
        rows = _rows(data, self._dim)
        labels = _ids(ids, rows.shape[0])
        count = len(index)
        if labels is None:
            labels = np.arange(count, count + rows.shape[0], dtype=np.uint64)
        # The last row of a repeated label wins.
        _, rev_pos = np.unique(labels[::-1], return_index=True)
        keep = np.sort(labels.shape[0] - 1 - rev_pos)
        labels, rows = labels[keep], rows[keep]
        present = np.isin(labels, index.labels())
        if count + int((~present).sum()) > self._max_elements:
            raise RuntimeError("The number of elements exceeds the specified limit")
        if present.any():
            index.remove(labels[present])
        index.add(np.ascontiguousarray(rows), labels)

    def delete_vector(self, label: int) -> None:
        """Removes ``label`` from the index."""
        if self._native().remove([int(label)]) == 0:
            raise LabelError("Label not found")

    def knn_query(
        self,
        data: Any,
        k: int = 1,
        num_threads: int = -1,
        filter: Optional[Callable[[int], bool]] = None,
    ):
        """Exact ``k`` nearest labels: ``(labels uint64 (n, k), distances float32 (n, k))``."""
        index = self._native()
        rows = _rows(data, self._dim)
        labels, dist = index.search(
            rows,
            int(k),
            num_threads=_threads(num_threads, self._num_threads),
            filter=filter,
        )
        if rows.shape[0] and np.isinf(dist[:, -1]).any():
            raise RuntimeError(_swann.TOO_FEW_MESSAGE)
        return labels, dist

    def set_num_threads(self, num_threads: int) -> None:
        self.num_threads = num_threads

    @property
    def num_threads(self) -> int:
        return self._num_threads

    @num_threads.setter
    def num_threads(self, value: int) -> None:
        value = int(value)
        self._num_threads = value if value > 0 else (os.cpu_count() or 1)

    def get_max_elements(self) -> int:
        return self._max_elements

    def get_current_count(self) -> int:
        return 0 if self._index is None else len(self._index)

    @property
    def space(self) -> str:
        return self._space

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def max_elements(self) -> int:
        return self._max_elements

    @property
    def element_count(self) -> int:
        return self.get_current_count()

    def save_index(self, path_to_index: str) -> None:
        """Writes hnswlib's brute-force file format."""
        index = self._native()
        vectors = index.vectors()
        labels = index.labels()
        n = vectors.shape[0]
        cap = max(self._max_elements, n)
        rec = np.zeros(cap, dtype=[("v", "<f4", (self._dim,)), ("label", "<u8")])
        rec["v"][:n] = vectors
        rec["label"][:n] = labels
        with open(os.fspath(path_to_index), "wb") as f:
            f.write(_BF_HEADER.pack(cap, 4 * self._dim + 8, n))
            f.write(rec.tobytes())

    def load_index(self, path_to_index: str, max_elements: int = 0) -> None:
        """Reads a file written by :meth:`save_index` or by hnswlib's ``BFIndex``."""
        with open(os.fspath(path_to_index), "rb") as f:
            head = f.read(_BF_HEADER.size)
            if len(head) != _BF_HEADER.size:
                raise RuntimeError("Cannot read the index: file too short")
            cap, size, n = _BF_HEADER.unpack(head)
            if size != 4 * self._dim + 8:
                raise RuntimeError(
                    f"Cannot read the index: records of {size} bytes do not match dimension {self._dim}"
                )
            if n > cap:
                raise RuntimeError("Cannot read the index: count above capacity")
            body = f.read(n * size)
            if len(body) != n * size:
                raise RuntimeError("Cannot read the index: file truncated")
        rec = np.frombuffer(body, dtype=[("v", "<f4", (self._dim,)), ("label", "<u8")])
        index = _swann.Flat(self._dim, self._space)
        if n:
            index.add(np.ascontiguousarray(rec["v"]), np.ascontiguousarray(rec["label"]))
        self._index = index
        self._max_elements = max(int(cap), int(max_elements))

    def __repr__(self) -> str:
        return f"<swann.hnswlib.BFIndex(space='{self._space}', dim={self._dim})>"
