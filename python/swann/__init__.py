"""swann: approximate nearest-neighbour search on hand-vectorized SIMD kernels.

Native classes (numpy arrays in and out; the GIL is released while they
build and search; ``num_threads`` picks how many threads a call uses):

- :class:`Hnsw`: hierarchical navigable small-world graph (hnswlib's and N2's method).
- :class:`Flat`: exact search by scanning every vector.
- :class:`Lsh`: locality-sensitive hashing engine (NearPy's method).
- :class:`Forest`: random-projection forest (Annoy's method), when the
  extension was built with it.
- :class:`ShardedIndex`: one index over shard files (HNSW, forest or flat)
  named by a manifest, merged exactly; :func:`write_manifest`,
  :func:`read_manifest`, :func:`shard_rows` and :func:`merge_top_k` are its
  helpers. ``swann.distributed`` builds and searches shards on a Ray
  cluster (``pip install swann[ray]``).

Drop-in modules for code written for other libraries: change one import.

- ``import swann.hnswlib as hnswlib``
- ``from swann.annoy import AnnoyIndex``
- ``from swann.n2 import HnswIndex``
"""

from ._swann import (
    Flat,
    Hnsw,
    Lsh,
    ShardedIndex,
    __version__,
    file_checksum,
    merge_top_k,
    read_manifest,
    shard_rows,
    write_manifest,
)

__all__ = [
    "Hnsw",
    "Flat",
    "Lsh",
    "ShardedIndex",
    "write_manifest",
    "read_manifest",
    "shard_rows",
    "merge_top_k",
    "file_checksum",
    "__version__",
]

try:  # present when the native module was built with the forest index
    from ._swann import Forest  # noqa: F401

    __all__.append("Forest")
except ImportError:  # pragma: no cover - depends on the build
    pass
