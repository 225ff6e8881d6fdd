"""Qdrant Edge: the Qdrant engine in-process (``qdrant-edge-py``), one shard in a directory.

The same schema as the qdrant-client backend — one named vector per level, DOT on
pre-normalised prefixes, an HNSW graph only on the coarse level (``m=0`` elsewhere) — and the
same nested-prefetch funnel, through Edge's own API. Edge has no background optimiser:
:meth:`optimize` builds the HNSW graph after bulk loads (searches work before it, by scanning).
A shard is single-process; :meth:`close` releases it.

Layout: ``<path>/shard/`` (Edge's files) and ``<path>/matry_index.json`` (schema and adaptor
hash, checked when the shard is reopened).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe
from tqdm.auto import tqdm

from .._fs import atomic_write_text
from .._validation import MatryIndexError
from ..filters import Node
from ..ids import UserId
from . import qdrant_common as qc
from .base import Hit, Record

def _not_bool(value):
    """qdrant-edge-py 0.9 passes Python bools to the engine as integers, so an equality filter
    on a boolean field silently matches nothing; refuse it instead of returning no results."""
    if isinstance(value, bool):
        raise MatryIndexError("Qdrant Edge (qdrant-edge-py 0.9) cannot filter on boolean values; "
                              "store the flag as a string or an integer")
    return value


VOCAB = qc.Vocabulary(
    filter=lambda must=None, should=None, must_not=None: qe.Filter(must=must, should=should, must_not=must_not),
    field=lambda key, match=None, range=None: qe.FieldCondition(key=key, match=match, range=range),
    match_value=lambda v: qe.MatchValue(_not_bool(v)),
    match_any=lambda vs: qe.MatchAny([_not_bool(v) for v in vs]),
    range=lambda **kw: qe.RangeFloat(**kw),
    prefetch=lambda vec, using, limit, ef, inner: qe.Prefetch(
        limit=limit, query=qe.Query.Nearest(vec, using=using),
        prefetches=[inner] if inner is not None else None,
        params=qe.SearchParams(hnsw_ef=ef) if ef else None),
    request=lambda full, inner, k, flt, exact: qe.QueryRequest(
        limit=k, query=qe.Query.Nearest(full, using="full"),
        prefetches=[inner] if inner is not None else None, filter=flt, with_payload=True,
        params=qe.SearchParams(exact=True) if exact else None),
)
META_FILE = "matry_index.json"


class QdrantEdgeBackend(qc.FunnelSearch):
    """An Edge shard at ``path`` behind the backend protocol (created if absent)."""

    kind = "qdrant-edge"
    vocab = VOCAB

    def __init__(self, dim: int, levels: tuple[int, ...], *, path: str | Path,
                 adaptor_hash: str | None = None, hnsw_m: int = 16, ef_construct: int = 100,
                 full_scan_threshold: int = 10_000, batch_size: int = 512):
        self.dim, self.levels, self.adaptor_hash = int(dim), tuple(levels), adaptor_hash
        self.names = qc.vector_names(self.levels)
        self.path, self.batch_size = Path(path), batch_size
        self.options = {"path": str(self.path), "hnsw_m": hnsw_m, "ef_construct": ef_construct,
                        "full_scan_threshold": full_scan_threshold, "batch_size": batch_size}
        self.where = f"Qdrant Edge shard at {self.path}"
        shard_dir, meta_path = self.path / "shard", self.path / META_FILE
        try:
            if meta_path.exists():
                qc.check_metadata(json.loads(meta_path.read_text()), self.dim, self.levels, adaptor_hash, self.where)
                self.shard = qe.EdgeShard.load(str(shard_dir))
            else:
                if shard_dir.exists() and any(shard_dir.iterdir()):
                    raise MatryIndexError(f"{self.where} holds a shard without matry_index metadata")
                shard_dir.mkdir(parents=True, exist_ok=True)
                self.shard = qe.EdgeShard.create(str(shard_dir), self._config())
                atomic_write_text(meta_path, json.dumps(qc.collection_metadata(self.dim, self.levels, adaptor_hash)))
        except MatryIndexError:
            raise
        except Exception as exc:  # Edge raises plain Exception (locked WAL, corrupt files, ...)
            raise MatryIndexError(f"cannot open {self.where}: {exc}") from None

    def _config(self) -> "qe.EdgeConfig":
        o = self.options
        no_graph = qe.HnswIndexConfig(m=0, ef_construct=o["ef_construct"], full_scan_threshold=o["full_scan_threshold"])
        vectors = {name: qe.EdgeVectorParams(size=m, distance=qe.Distance.Dot,
                                             hnsw_config=None if i == 0 else no_graph)
                   for i, (name, m) in enumerate(zip(self.names, self.levels))}
        return qe.EdgeConfig(vectors=vectors, hnsw_config=qe.HnswIndexConfig(
            m=o["hnsw_m"], ef_construct=o["ef_construct"], full_scan_threshold=o["full_scan_threshold"]))

    def _run(self, fn, *args):
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001 - Edge reports every failure as Exception
            raise MatryIndexError(f"{self.where}: {exc}") from None

    # --- protocol ----------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._run(self.shard.count, qe.CountRequest(exact=True)))

    def _retrieve(self, ids: list[UserId], vectors: bool) -> dict:
        points = self._run(self.shard.retrieve, [qc.point_id(i) for i in ids], True,
                           ["full"] if vectors else False)
        return {str(p.id): p for p in points}

    def contains(self, ids: list[UserId], keys: np.ndarray) -> np.ndarray:
        found = self._retrieve(ids, vectors=False)
        return np.array([str(qc.point_id(i)) in found for i in ids], bool)

    def add(self, ids: list[UserId], keys: np.ndarray, vectors: np.ndarray,
            metadata: list[dict], replace: bool = False) -> None:
        payloads = [qc.payload_for(i, m) for i, m in zip(ids, metadata)]
        before = self._retrieve(ids, vectors=False) if not replace else {}
        if before:
            raise MatryIndexError(f"id {qc.split_payload(next(iter(before.values())).payload)[0]!r} "
                                  "is already in the index (use upsert to replace)")
        per_level = qc.level_vectors(vectors, self.levels)
        points = [qe.Point(qc.point_id(uid), {name: v[r] for name, v in per_level.items()}, payloads[r])
                  for r, uid in enumerate(ids)]
        # one update is applied as a unit, so a batch fails or lands whole; batches are
        # only split for progress on large loads
        batches = range(0, len(points), self.batch_size)
        for s in tqdm(batches, desc="writing to Qdrant Edge", disable=len(batches) < 4, leave=False):
            self._run(self.shard.update, qe.UpdateOperation.upsert_points(points[s:s + self.batch_size]))

    def delete(self, ids: list[UserId], keys: np.ndarray) -> None:
        self._run(self.shard.update, qe.UpdateOperation.delete_points([qc.point_id(i) for i in ids]))

    def get(self, ids: list[UserId], keys: np.ndarray) -> list[Record | None]:
        return qc.ordered_records(ids, self._retrieve(ids, vectors=True))

    def _query(self, requests: list) -> list[list[Hit]]:
        results = self._run(self.shard.query_batch, qe.QueryBatchRequest(requests))
        return [qc.to_hits(points) for points in results]

    def scan(self, filter: Node | None = None) -> list[tuple[UserId, dict]]:
        flt, out, offset = qc.compile_filter(filter, VOCAB), [], None
        while True:
            points, offset = self._run(self.shard.scroll, qe.ScrollRequest(
                offset=offset, limit=1024, filter=flt, with_payload=True, with_vector=False))
            out.extend(qc.split_payload(p.payload) for p in points)
            if offset is None or not points:
                return out

    def optimize(self) -> None:
        """Build the HNSW graph (Edge does not do it in the background)."""
        self._run(self.shard.optimize)

    def save(self, directory: Path) -> dict[str, Any]:
        """Flush the shard to disk; the index keeps its path."""
        self._run(self.shard.flush)
        return dict(self.options)

    def close(self) -> None:
        try:
            self.shard.close()
        except Exception:  # noqa: BLE001 - closing twice is harmless
            pass
