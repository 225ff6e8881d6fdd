"""Helpers shared by the test modules: one way to open an index on each backend."""
from __future__ import annotations

from matry_index import MatryoshkaIndex

BACKENDS = ["faiss", "qdrant", "qdrant-edge"]
#: FAISS with its full vectors in a memory-mapped file (``vector_storage="mmap"``): the
#: cross-backend suites run on it as a fourth kind
FAISS_MMAP = "faiss-mmap"
#: Qdrant Edge with every vector in RAM and no codes (the default layout keeps int8 codes of the
#: coarse level in RAM and the rest on disk): the other end of the layout options
EDGE_IN_RAM = "qdrant-edge-in-ram"
#: the cross-backend suites give every backend the same levels: a funnel with middle levels is
#: still an option on Qdrant, whose default keeps only the coarse one
SUITE_LEVELS = (64, 128, 256)


def make_index(kind, tmp_path, dim=384, persistent=False, **kw):
    """An empty index on one backend: FAISS (vectors in RAM or memory-mapped), Qdrant local
    mode (in memory, or on disk where a test reopens it), or an Edge shard."""
    if kind == "faiss":
        return MatryoshkaIndex(dim, coarse=kw.pop("coarse", "hnsw"), **kw)
    if kind == FAISS_MMAP:
        return MatryoshkaIndex(dim, coarse=kw.pop("coarse", "hnsw"), vector_storage="mmap",
                               scratch_dir=str(tmp_path), **kw)
    kw.setdefault("levels", SUITE_LEVELS)
    if kind == "qdrant":
        where = {"path": str(tmp_path / "qdrant")} if persistent else {"location": ":memory:"}
        return MatryoshkaIndex(dim, backend="qdrant", **where, **kw)
    if kind == EDGE_IN_RAM:
        kw.update(quantization=None, on_disk=False)
    return MatryoshkaIndex(dim, backend="qdrant-edge", path=str(tmp_path / "edge"), **kw)


def ids_of(hits):
    return [h.id for h in hits]


def fail_on_call(real, n, error):
    """``real`` wrapped so that its n-th call raises ``error`` instead (calls are counted)."""
    calls = []

    def wrapped(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise error
        return real(*args, **kwargs)
    return wrapped
