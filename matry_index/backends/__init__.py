"""Storage engines behind :class:`matry_index.MatryoshkaIndex` (see :mod:`.base` for the protocol)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .._validation import MatryIndexError
from .base import Backend, Hit, Record


def create(kind: str, dim: int, levels: tuple[int, ...], **options: Any) -> Backend:
    """A new, empty backend of ``kind`` ("faiss", "qdrant" or "qdrant-edge")."""
    if kind == "faiss":
        from .faiss import FaissBackend
        return FaissBackend(dim, levels, **options)
    raise MatryIndexError(f"unknown or not yet available backend {kind!r}")


def load(kind: str, directory: Path, dim: int, levels: tuple[int, ...], options: dict) -> Backend:
    """Reopen a backend saved by an index."""
    if kind == "faiss":
        from .faiss import FaissBackend
        return FaissBackend.load(directory, dim, levels, options)
    raise MatryIndexError(f"unknown or not yet available backend {kind!r}")


__all__ = ["Backend", "Hit", "Record", "create", "load"]
