"""``MatryoshkaIndex``: an adaptor, a storage backend and a funnel plan behind one class.

Everything a RAG app needs: ``add`` / ``upsert`` / ``delete`` / ``get`` by the user's own ids
(strings or ints), ``search`` (one query or a batch, optional metadata filter), ``tune`` for
the funnel, and ``save`` / ``load``. Vectors go in and out as numpy; the adaptor is applied
to documents at insert time and to queries at search time, so callers always pass the raw
embeddings of their model.

On disk an index is a directory: ``index.json`` (format, dimension, levels, backend and its
options, the funnel plan, the adaptor's hash, and a sha256 of every file), ``adaptor/`` and
``backend/``. It is written to a temporary sibling and renamed into place, so a crash leaves
either the old index or the new one; a half-written or edited one fails its checksums on load.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._fs import atomic_directory
from ._validation import MatryIndexError, as_matrix, clip_levels, normalize_rows
from .adaptor.model import AdaptorMismatchError, MatryoshkaAdaptor
from .backends.base import Backend, Hit, Record
from .filters import parse_filter
from .funnel import FunnelPlan, tune as tune_plan
from .ids import UserId, check_count, keys_for

FORMAT_VERSION = 1
MANIFEST = "index.json"
DEFAULT_LEVELS = (64, 128, 256)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _checksums(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): _sha256(p) for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != MANIFEST}


def _make_backend(kind: str | Backend, dim: int, levels: tuple[int, ...], adaptor_hash: str | None,
                  options: dict) -> Backend:
    if not isinstance(kind, str):
        if tuple(kind.levels) != levels or kind.dim != dim:
            raise MatryIndexError(f"backend stores levels {kind.levels} of {kind.dim}-d vectors; "
                                  f"the index needs {levels} of {dim}-d")
        return kind
    from . import backends
    return backends.create(kind, dim, levels, adaptor_hash=adaptor_hash, **options)


class MatryoshkaIndex:
    """A coarse-to-fine vector index over adapted embeddings.

    ``dim``: the embedding model's dimension. ``adaptor``: a trained
    :class:`MatryoshkaAdaptor` (None = identity: plain prefix truncation). ``levels``: the
    prefix sizes to store; those ≥ ``dim`` are dropped and ``dim`` itself is always the last,
    so a 6-d index works with the defaults. ``backend``: "faiss" (default), "qdrant",
    "qdrant-edge", or a backend instance; ``backend_options`` go to its constructor.
    """

    def __init__(self, dim: int, *, adaptor: MatryoshkaAdaptor | None = None,
                 levels: Sequence[int] | None = None, backend: str | Backend = "faiss",
                 plan: FunnelPlan | None = None, **backend_options: Any):
        if adaptor is not None and adaptor.dim != dim:
            raise AdaptorMismatchError(f"adaptor is for {adaptor.dim}-d embeddings, index is {dim}-d")
        self.dim = int(dim)
        self.adaptor = adaptor
        wanted = levels if levels is not None else (adaptor.levels if adaptor else DEFAULT_LEVELS)
        self.levels = clip_levels(wanted, self.dim)
        self.backend = _make_backend(backend, self.dim, self.levels, self.adaptor_hash, backend_options)
        self.plan = plan or FunnelPlan.default(self.levels)

    # --- helpers -----------------------------------------------------------------------
    @property
    def adaptor_hash(self) -> str | None:
        return None if self.adaptor is None else self.adaptor.content_hash

    def _adapt(self, vectors: Any, name: str) -> np.ndarray:
        x = as_matrix(vectors, dim=self.dim, name=name)
        return self.adaptor.transform(x) if self.adaptor is not None else x

    def adapt(self, vectors: Any) -> np.ndarray:
        """Raw embeddings → the L2-normalised adapted vectors the index stores and compares."""
        return normalize_rows(self._adapt(vectors, "vectors"))

    def check_adaptor(self, adaptor_hash: str | None) -> None:
        """Refuse vectors produced for another adaptor (compare content hashes)."""
        if adaptor_hash != self.adaptor_hash:
            raise AdaptorMismatchError(
                f"adaptor mismatch: the index uses {str(self.adaptor_hash)[:12]}, got {str(adaptor_hash)[:12]}")

    def __len__(self) -> int:
        return len(self.backend)

    def __repr__(self) -> str:
        return (f"MatryoshkaIndex(dim={self.dim}, levels={self.levels}, backend={type(self.backend).__name__}, "
                f"n={len(self)}, adaptor={str(self.adaptor_hash)[:12]})")

    # --- writes ------------------------------------------------------------------------
    def _prepare(self, ids: Sequence[UserId], vectors: Any, metadata: Sequence[dict] | None):
        x = self._adapt(vectors, "vectors")
        ids, keys = keys_for(ids)
        check_count(ids, len(x))
        if metadata is None:
            metadata = [{} for _ in ids]
        metadata = list(metadata)
        check_count(metadata, len(x), "metadata entries")
        for m in metadata:
            if not isinstance(m, dict):
                raise MatryIndexError(f"metadata entries must be dicts; got {type(m).__name__}")
        return ids, keys, x, metadata

    def add(self, ids: Sequence[UserId], vectors: Any, metadata: Sequence[dict] | None = None) -> None:
        """Add new records. Existing ids are refused (see :meth:`upsert`); all or nothing."""
        ids, keys, x, metadata = self._prepare(ids, vectors, metadata)
        present = self.backend.contains(ids, keys)
        if present.any():
            raise MatryIndexError(f"id {ids[int(np.argmax(present))]!r} is already in the index "
                                  "(use upsert to replace records)")
        self.backend.add(ids, keys, x, metadata, replace=False)

    def upsert(self, ids: Sequence[UserId], vectors: Any, metadata: Sequence[dict] | None = None) -> None:
        """Add records, replacing any with the same id; all or nothing."""
        ids, keys, x, metadata = self._prepare(ids, vectors, metadata)
        self.backend.add(ids, keys, x, metadata, replace=True)

    def delete(self, ids: Sequence[UserId], missing_ok: bool = False) -> None:
        """Delete records by id. Unknown ids raise (nothing is deleted) unless ``missing_ok``."""
        ids, keys = keys_for(ids)
        present = self.backend.contains(ids, keys)
        if not missing_ok and not present.all():
            raise MatryIndexError(f"unknown id {ids[int(np.argmin(present))]!r}; nothing was deleted")
        if present.any():
            self.backend.delete([i for i, p in zip(ids, present) if p], keys[present])

    def optimize(self) -> None:
        """Finish deferred index builds (FAISS ``deferred_build``); a no-op where none is pending."""
        build = getattr(self.backend, "optimize", None)
        if callable(build):
            build()

    def get(self, ids: Sequence[UserId]) -> list[Record | None]:
        """Stored records (adapted vector + metadata) in the given order; None for unknown ids."""
        ids, keys = keys_for(ids)
        return self.backend.get(ids, keys)

    def scan(self, filter: dict | None = None) -> list[tuple[UserId, dict]]:
        """(id, metadata) of every record matching ``filter`` (all records without one).

        For bookkeeping — deleting by metadata, listing a document's chunks — not for ranking.
        """
        return self.backend.scan(parse_filter(filter))

    # --- search ------------------------------------------------------------------------
    def search(self, queries: Any, k: int = 10, filter: dict | None = None,
               plan: FunnelPlan | None = None, exact: bool = False,
               adaptor_hash: str | None = "unchecked") -> list[Hit] | list[list[Hit]]:
        """Top-``k`` records for one query (1-d input → list of hits) or a batch (2-d → list of lists).

        ``filter`` is a metadata filter (see :mod:`matry_index.filters`); ``plan`` overrides the
        index's funnel; ``exact`` (or a plan with ``exact=True``) searches the full dimension
        exhaustively. Pass ``adaptor_hash`` to have queries refused when they were meant for
        another adaptor.
        """
        if adaptor_hash != "unchecked":
            self.check_adaptor(adaptor_hash)
        if not isinstance(k, (int, np.integer)) or k <= 0:
            raise MatryIndexError(f"k must be a positive integer; got {k!r}")
        arr = np.asarray(queries, dtype=np.float32) if not isinstance(queries, np.ndarray) else queries
        single = arr.ndim == 1
        q = self._adapt(arr[None, :] if single else arr, "queries")
        node = parse_filter(filter)
        plan = plan or self.plan
        if exact or plan.exact:
            hits = self.backend.exact_search(q, int(k), node)
        else:
            hits = self.backend.search(q, int(k), plan, node)
        return hits[0] if single else hits

    def tune(self, sample_queries: Any, target_recall: float = 0.99, k: int = 10,
             apply: bool = True) -> FunnelPlan:
        """Pick the cheapest funnel plan reaching ``target_recall`` recall@k against exact search.

        Use held-out queries (or a sample of documents) that resemble real traffic. With
        ``apply`` the plan becomes the index's default.
        """
        q = self._adapt(sample_queries, "sample_queries")
        if len(self) == 0:
            raise MatryIndexError("cannot tune an empty index")
        truth_hits = self.backend.exact_search(q, k)
        key_of = {}

        def keys(hit_lists: list[list[Hit]]) -> np.ndarray:
            out = np.full((len(hit_lists), k), -1, np.int64)
            for i, hits in enumerate(hit_lists):
                for j, h in enumerate(hits[:k]):
                    out[i, j] = key_of.setdefault(h.id, len(key_of))
            return out
        truth = keys(truth_hits)
        plan = tune_plan(lambda p: keys(self.backend.search(q, k, p)), truth, self.levels, k,
                         len(self), target_recall, getattr(self.backend, "coarse_cost", lambda: None)())
        if apply:
            self.plan = plan
        return plan

    # --- persistence -------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write the index atomically to ``directory`` (replacing an older save there)."""
        with atomic_directory(directory) as tmp:
            (tmp / "backend").mkdir()
            options = self.backend.save(tmp / "backend")
            if self.adaptor is not None:
                self.adaptor.save(tmp / "adaptor")
            manifest = {"format_version": FORMAT_VERSION, "kind": "matry-index", "dim": self.dim,
                        "levels": list(self.levels), "backend": self.backend.kind,
                        "backend_options": options, "plan": self.plan.to_dict(), "count": len(self),
                        "adaptor_hash": self.adaptor_hash, "files": _checksums(tmp)}
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
        return directory

    @classmethod
    def load(cls, directory: str | Path, adaptor: MatryoshkaAdaptor | None = None) -> "MatryoshkaIndex":
        """Open a saved index. Passing ``adaptor`` checks it is the one the index was built with."""
        directory = Path(directory)
        manifest_path = directory / MANIFEST
        if not manifest_path.is_file():
            raise MatryIndexError(f"{directory} is not a saved matry_index index (no {MANIFEST}); "
                                  "it may be half-written")
        try:
            manifest = json.loads(manifest_path.read_text())
        except ValueError as exc:
            raise MatryIndexError(f"{manifest_path} is corrupt: {exc}") from None
        if manifest.get("kind") != "matry-index" or manifest.get("format_version") != FORMAT_VERSION:
            raise MatryIndexError(f"{directory}: unsupported index format {manifest.get('format_version')}")
        actual = _checksums(directory)
        expected = manifest.get("files", {})
        if actual != expected:
            bad = sorted(set(actual.items()) ^ set(expected.items()))
            raise MatryIndexError(f"{directory} is corrupt or incomplete: {bad[0][0]} does not match "
                                  "its recorded checksum (or is missing)")
        stored = MatryoshkaAdaptor.load(directory / "adaptor") if (directory / "adaptor").exists() else None
        if (stored.content_hash if stored else None) != manifest.get("adaptor_hash"):
            raise MatryIndexError(f"{directory}: the stored adaptor does not match the manifest")
        if adaptor is not None and (stored is None or adaptor.content_hash != stored.content_hash):
            raise AdaptorMismatchError(
                f"adaptor mismatch: {directory} was built with {str(manifest.get('adaptor_hash'))[:12]}, "
                f"got {adaptor.content_hash[:12]}")
        levels = tuple(manifest["levels"])
        from . import backends
        backend = backends.load(manifest["backend"], directory / "backend", manifest["dim"], levels,
                                manifest["backend_options"], manifest.get("adaptor_hash"))
        index = cls.__new__(cls)
        index.dim, index.adaptor, index.levels = manifest["dim"], stored, levels
        index.backend, index.plan = backend, FunnelPlan.from_dict(manifest["plan"])
        return index

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> "MatryoshkaIndex":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
