"""Storage engines behind :class:`matry_index.MatryoshkaIndex`, by name (see :mod:`.base` for the protocol).

* ``faiss`` — in-process FAISS (:mod:`.faiss`), the fastest embedded option;
* ``qdrant`` — a Qdrant server or cluster by URL, or qdrant-client's local mode (:mod:`.qdrant.client`);
* ``qdrant-edge`` — the Qdrant engine in-process through ``qdrant-edge-py`` (:mod:`.qdrant.edge`).

A backend kind is a line in the registry: its name, where its class lives, and the optional
modules it needs (a missing one is reported with the extra that installs it). Another engine
registers itself the same way (:func:`register_backend`) and is then usable by name everywhere,
saves and loads included.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._extras import require
from ..errors import Corrupt, InvalidInput
from .base import Backend, BackendBase, Hit, Record, SavedBackend


@dataclass(frozen=True)
class BackendKind:
    """One registered backend: ``target`` is ``"package.module:Class"``; ``requires`` the
    optional top-level modules it imports."""

    name: str
    target: str
    requires: tuple[str, ...] = ()


_REGISTRY: dict[str, BackendKind] = {}


def register_backend(name: str, target: str, requires: tuple[str, ...] = ()) -> None:
    """Make a backend class usable as ``MatryoshkaIndex(dim, backend=name)`` (and by loads of
    indexes saved with it). ``target`` is imported on first use."""
    if not isinstance(name, str) or not name or ":" not in target:
        raise InvalidInput(f"register_backend needs a name and a 'module:Class' target; got {name!r}, {target!r}")
    _REGISTRY[name] = BackendKind(name, target, tuple(requires))


register_backend("faiss", "matry_index.backends.faiss:FaissBackend")
register_backend("qdrant", "matry_index.backends.qdrant.client:QdrantBackend", ("qdrant_client", "tenacity"))
register_backend("qdrant-edge", "matry_index.backends.qdrant.edge:QdrantEdgeBackend", ("qdrant_edge",))


def kinds() -> tuple[str, ...]:
    """The registered backend names."""
    return tuple(_REGISTRY)


def backend_class(name: str) -> type:
    """The class registered as ``name`` (its optional dependencies checked first)."""
    kind = _REGISTRY.get(name)
    if kind is None:
        raise InvalidInput(f"unknown backend {name!r}; use one of {kinds()}")
    for module in kind.requires:
        require(module, f"the {name} backend")
    module_name, _, class_name = kind.target.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def level_policy(name: str, levels: tuple[int, ...]) -> tuple[int, ...]:
    """The prefix levels a ``name`` index keeps of an adaptor's (each backend says)."""
    cls = backend_class(name) if name in _REGISTRY else BackendBase
    return cls.level_policy(tuple(levels))


def create(kind: str, dim: int, levels: tuple[int, ...], adaptor_hash: str | None = None,
           **options: Any) -> Backend:
    """A backend of ``kind`` for ``dim``-d vectors stored at prefix ``levels``.

    Engines that keep their own data (Qdrant) record ``adaptor_hash`` with it and refuse to
    reopen under another adaptor; FAISS lives inside the index directory, whose manifest does.
    """
    return backend_class(kind)(dim, levels, adaptor_hash=adaptor_hash, **options)


def open_saved(kind: str, directory: Path, dim: int, levels: tuple[int, ...], options: dict,
               adaptor_hash: str | None = None, connection: dict[str, Any] | None = None) -> Backend:
    """Reopen a backend saved by an index; ``connection`` overrides what the save recorded
    (a moved shard's ``path``, a server's ``url`` and ``api_key``)."""
    if not isinstance(options, dict):
        raise Corrupt(f"{directory}: the saved backend options are not an object")
    if kind not in _REGISTRY:
        raise Corrupt(f"{directory}: the save names an unknown backend {kind!r} (registered: {kinds()})")
    try:
        return backend_class(kind).open(SavedBackend(directory, dim, tuple(levels), dict(options), adaptor_hash,
                                                     dict(connection or {})))
    except TypeError as exc:  # an option the backend does not take, saved or passed
        raise Corrupt(f"{directory}: cannot reopen the {kind} backend with these options: {exc}") from None


__all__ = ["Backend", "BackendBase", "BackendKind", "Hit", "Record", "SavedBackend", "backend_class", "create",
           "kinds", "level_policy", "open_saved", "register_backend"]
