"""swann: approximate nearest-neighbour search on hand-vectorized SIMD kernels.

Native classes (numpy arrays in and out; the GIL is released while they
build and search; ``num_threads`` picks how many threads a call uses):

- :class:`Hnsw`: hierarchical navigable small-world graph (hnswlib's and N2's method).
- :class:`Flat`: exact search by scanning every vector.
- :class:`Lsh`: locality-sensitive hashing engine (NearPy's method).
- :class:`Forest`: random-projection forest (Annoy's method), when the
  extension was built with it.

Drop-in modules for code written for other libraries: change one import.

- ``import swann.hnswlib as hnswlib``
- ``from swann.annoy import AnnoyIndex``
- ``from swann.n2 import HnswIndex``
"""

from ._swann import Flat, Hnsw, Lsh, __version__

__all__ = ["Hnsw", "Flat", "Lsh", "__version__"]

try:  # present when the native module was built with the forest index
    from ._swann import Forest  # noqa: F401

    __all__.append("Forest")
except ImportError:  # pragma: no cover - depends on the build
    pass
