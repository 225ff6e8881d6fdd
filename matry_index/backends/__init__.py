"""Storage engines behind :class:`matry_index.MatryoshkaIndex` (see :mod:`.base` for the protocol).

* ``faiss`` — in-process FAISS (:mod:`.faiss`), the fastest embedded option;
* ``qdrant`` — a Qdrant server or cluster by URL, or qdrant-client's local mode (:mod:`.qdrant`);
* ``qdrant-edge`` — the Qdrant engine in-process through ``qdrant-edge-py`` (:mod:`.qdrant_edge`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .._extras import require
from ..errors import Corrupt, InvalidInput
from .base import Backend, Hit, Record, SavedBackend

KINDS = ("faiss", "qdrant", "qdrant-edge")


def _backend_class(kind: str):
    if kind == "faiss":
        from .faiss import FaissBackend
        return FaissBackend
    if kind in ("qdrant", "qdrant-edge"):
        require("qdrant_client" if kind == "qdrant" else "qdrant_edge", f"the {kind} backend")
        require("tenacity", f"the {kind} backend")
    if kind == "qdrant":
        from .qdrant import QdrantBackend
        return QdrantBackend
    if kind == "qdrant-edge":
        from .qdrant_edge import QdrantEdgeBackend
        return QdrantEdgeBackend
    raise InvalidInput(f"unknown backend {kind!r}; use one of {KINDS}")


def create(kind: str, dim: int, levels: tuple[int, ...], adaptor_hash: str | None = None,
           **options: Any) -> Backend:
    """A backend of ``kind`` for ``dim``-d vectors stored at prefix ``levels``.

    Engines that keep their own data (Qdrant) record ``adaptor_hash`` with it and refuse to
    reopen under another adaptor; FAISS lives inside the index directory, whose manifest does.
    """
    return _backend_class(kind)(dim, levels, adaptor_hash=adaptor_hash, **options)


def open_saved(kind: str, directory: Path, dim: int, levels: tuple[int, ...], options: dict,
               adaptor_hash: str | None = None, connection: dict[str, Any] | None = None) -> Backend:
    """Reopen a backend saved by an index; ``connection`` overrides what the save recorded
    (a moved shard's ``path``, a server's ``url`` and ``api_key``)."""
    if not isinstance(options, dict):
        raise Corrupt(f"{directory}: the saved backend options are not an object")
    if kind not in KINDS:
        raise Corrupt(f"{directory}: the save names an unknown backend {kind!r}")
    try:
        return _backend_class(kind).open(SavedBackend(directory, dim, tuple(levels), dict(options), adaptor_hash,
                                                      dict(connection or {})))
    except TypeError as exc:  # an option the backend does not take, saved or passed
        raise Corrupt(f"{directory}: cannot reopen the {kind} backend with these options: {exc}") from None


__all__ = ["Backend", "Hit", "Record", "SavedBackend", "KINDS", "create", "open_saved"]
