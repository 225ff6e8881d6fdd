"""Embedding caches: ``<name>.npy`` (float32, one row per item) beside ``<name>.ids`` (one id per line).

This is the layout of ``shared/data/*/embeddings/<model>/`` and what :func:`save_embeddings`
writes, so embeddings from any source (an API, a local model) can be cached once and reused.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._fs import atomic_write
from .._validation import as_matrix
from ..errors import InvalidInput


@dataclass
class EmbeddingSet:
    """Row-aligned ids and vectors, with lookup by id."""

    ids: list[str]
    vectors: np.ndarray

    def __post_init__(self) -> None:
        if len(self.ids) != len(self.vectors):
            raise InvalidInput(f"{len(self.ids)} ids for {len(self.vectors)} vectors")
        self._row = {i: r for r, i in enumerate(self.ids)}
        if len(self._row) != len(self.ids):
            raise InvalidInput("embedding ids are not unique")

    def rows(self, ids: list[str]) -> np.ndarray:
        """Row numbers of ``ids``; unknown ids raise."""
        missing = [i for i in ids if i not in self._row]
        if missing:
            raise InvalidInput(f"{len(missing)} id(s) have no embedding, e.g. {missing[:3]}")
        return np.fromiter((self._row[i] for i in ids), dtype=np.int64, count=len(ids))

    def take(self, ids: list[str]) -> np.ndarray:
        """Vectors of ``ids`` in the given order."""
        return self.vectors[self.rows(ids)]


def load_embeddings(folder: str | Path, name: str) -> EmbeddingSet:
    """Load ``folder/name.npy`` and ``folder/name.ids``."""
    folder = Path(folder)
    npy, ids_path = folder / f"{name}.npy", folder / f"{name}.ids"
    if not npy.is_file() or not ids_path.is_file():
        raise InvalidInput(f"no embedding cache {name!r} in {folder} (need {npy.name} and {ids_path.name})")
    vectors = as_matrix(np.load(npy), name=str(npy))
    ids = ids_path.read_text(encoding="utf-8").splitlines()
    return EmbeddingSet(ids=ids, vectors=vectors)


def save_embeddings(folder: str | Path, name: str, ids: list[str], vectors: np.ndarray) -> None:
    """Write an embedding cache atomically (temporary files, then rename)."""
    folder = Path(folder)
    vectors = as_matrix(vectors)
    EmbeddingSet(list(ids), vectors)  # validates alignment and uniqueness
    atomic_write(folder / f"{name}.npy", lambda fh: np.save(fh, vectors))
    atomic_write(folder / f"{name}.ids", lambda fh: fh.write("\n".join(ids).encode() + b"\n"))
