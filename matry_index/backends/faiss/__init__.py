"""The FAISS backend: rows of adapted vectors (:mod:`.rows`, in RAM or memory-mapped:
:mod:`.vector_storage`), a coarse ANN index over their prefixes (:mod:`.coarse`), and the
backend that wires them to the kernels of :mod:`matry_index.kernels` (:mod:`.backend`)."""
from .backend import FaissBackend
from .coarse import default_nlist

__all__ = ["FaissBackend", "default_nlist"]
