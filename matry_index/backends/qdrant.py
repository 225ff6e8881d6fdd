"""Qdrant through ``qdrant-client``: a server or cluster by URL, or the client's local mode.

One collection holds every level as a named vector (``d64``, ``d128``, ``d256``, ``full``),
pre-normalised with DOT distance so scores are cosines. Only the coarse level gets an HNSW
graph (the rescoring levels are created with ``m=0``: they are only ever read for the
candidates handed to them), the full vectors can live on disk, and the coarse level can be
scalar-quantised. A funnel search is one ``query_points`` call with nested ``prefetch``
stages (a batch is one ``query_batch_points``); the payload filter is given at the top level,
and Qdrant applies it inside every prefetch.

The collection's ``metadata`` records the schema and the adaptor's hash; opening an existing
collection checks both. Calls that fail with a transport error are retried with backoff, and
a server that stays unreachable raises :class:`MatryIndexError` naming the URL.

Local mode (``location=":memory:"`` or ``path=...``) runs the same code against a pure-Python
emulation that scans everything: right for tests and small data, never for latency figures.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential
from tqdm.auto import tqdm

from .._validation import MatryIndexError
from ..filters import Node
from ..ids import UserId
from . import qdrant_common as qc
from .base import Hit, Record

VOCAB = qc.Vocabulary(
    filter=lambda must=None, should=None, must_not=None: models.Filter(must=must, should=should, must_not=must_not),
    field=lambda key, match=None, range=None: models.FieldCondition(key=key, match=match, range=range),
    match_value=lambda v: models.MatchValue(value=v),
    match_any=lambda vs: models.MatchAny(any=vs),
    range=lambda **kw: models.Range(**kw),
    prefetch=lambda vec, using, limit, ef, inner: models.Prefetch(
        query=vec, using=using, limit=limit, prefetch=inner,
        params=models.SearchParams(hnsw_ef=ef) if ef else None),
    request=lambda full, inner, k, flt, exact: models.QueryRequest(
        query=full, using="full", prefetch=inner, limit=k, filter=flt, with_payload=True,
        params=models.SearchParams(exact=True) if exact else None),
)


def _transient(exc: BaseException) -> bool:
    """Errors worth retrying: the network, timeouts, and 5xx answers."""
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse
    if isinstance(exc, UnexpectedResponse):
        return exc.status_code is not None and exc.status_code >= 500
    if isinstance(exc, ResponseHandlingException):
        return True
    name = type(exc).__module__ + "." + type(exc).__name__
    return name.startswith(("httpx.", "httpcore.", "grpc.")) or isinstance(exc, (ConnectionError, TimeoutError))


class QdrantBackend(qc.FunnelSearch):
    """A Qdrant collection behind the backend protocol.

    Connection: ``url`` (+ ``api_key``, default ``$QDRANT_API_KEY``) for a server or cluster,
    ``path`` for local mode on disk, or ``location=":memory:"`` (the default).
    Collection: ``collection`` name; ``shard_number`` / ``replication_factor`` /
    ``write_consistency_factor`` for clusters; ``on_disk`` keeps full vectors on disk;
    ``quantization="int8"`` scalar-quantises the coarse level; ``hnsw_m`` / ``ef_construct``
    shape its graph.
    """

    kind = "qdrant"
    vocab = VOCAB

    def __init__(self, dim: int, levels: tuple[int, ...], *, adaptor_hash: str | None = None,
                 collection: str = "matry_index", url: str | None = None, api_key: str | None = None,
                 path: str | None = None, location: str | None = None, timeout: float = 30.0,
                 retries: int = 3, shard_number: int | None = None, replication_factor: int | None = None,
                 write_consistency_factor: int | None = None, on_disk: bool = False,
                 quantization: str | None = None, hnsw_m: int = 16, ef_construct: int = 100,
                 batch_size: int = 256, prefer_grpc: bool = False):
        self.dim, self.levels, self.adaptor_hash = int(dim), tuple(levels), adaptor_hash
        self.names = qc.vector_names(self.levels)
        self.collection, self.batch_size, self.retries = collection, batch_size, retries
        if quantization not in (None, "int8"):
            raise MatryIndexError(f"quantization must be None or 'int8'; got {quantization!r}")
        self.options = {"collection": collection, "url": url, "path": str(path) if path else None,
                        "location": location, "timeout": timeout, "retries": retries,
                        "shard_number": shard_number, "replication_factor": replication_factor,
                        "write_consistency_factor": write_consistency_factor, "on_disk": on_disk,
                        "quantization": quantization, "hnsw_m": hnsw_m, "ef_construct": ef_construct,
                        "batch_size": batch_size, "prefer_grpc": prefer_grpc}
        self.where = f"Qdrant collection {collection!r} at {url or path or location or ':memory:'}"
        if url:
            self.client = QdrantClient(url=url, api_key=api_key or os.environ.get("QDRANT_API_KEY"),
                                       timeout=int(timeout), prefer_grpc=prefer_grpc)
        elif path:
            Path(path).mkdir(parents=True, exist_ok=True)
            self.client = self._local(path=str(path))
        else:
            self.client = self._local(location=location or ":memory:")
        if self._call(self.client.collection_exists, collection):
            info = self._call(self.client.get_collection, collection)
            qc.check_metadata(info.config.metadata, self.dim, self.levels, adaptor_hash, self.where)
        else:
            self._create()

    def _local(self, **kwargs: Any) -> QdrantClient:
        try:
            return QdrantClient(**kwargs)
        except RuntimeError as exc:  # the storage folder is locked by another client
            raise MatryIndexError(f"cannot open Qdrant local storage: {exc}") from None

    def _call(self, fn, *args, **kwargs):
        """Run one client call with retries on transport errors; a clear error if it stays down."""
        try:
            for attempt in Retrying(stop=stop_after_attempt(max(1, self.retries)),
                                    wait=wait_exponential(multiplier=0.2, max=5),
                                    retry=retry_if_exception(_transient), reraise=True):
                with attempt:
                    return fn(*args, **kwargs)
        except Exception as exc:
            if _transient(exc):
                raise MatryIndexError(f"{self.where} is unreachable after {self.retries} attempt(s): "
                                      f"{type(exc).__name__}: {exc}") from exc
            raise

    def _create(self) -> None:
        o = self.options
        coarse_q = None
        if o["quantization"] == "int8":
            coarse_q = models.ScalarQuantization(scalar=models.ScalarQuantizationConfig(
                type=models.ScalarType.INT8, always_ram=True))
        no_graph = models.HnswConfigDiff(m=0)
        vectors = {}
        for i, (name, m) in enumerate(zip(self.names, self.levels)):
            first, last = i == 0, i == len(self.levels) - 1
            vectors[name] = models.VectorParams(
                size=m, distance=models.Distance.DOT,
                hnsw_config=None if first else no_graph,
                on_disk=bool(o["on_disk"]) if last and not first else None,
                quantization_config=coarse_q if first else None)
        self._call(self.client.create_collection, self.collection, vectors_config=vectors,
                   hnsw_config=models.HnswConfigDiff(m=o["hnsw_m"], ef_construct=o["ef_construct"]),
                   shard_number=o["shard_number"], replication_factor=o["replication_factor"],
                   write_consistency_factor=o["write_consistency_factor"],
                   metadata=qc.collection_metadata(self.dim, self.levels, self.adaptor_hash))

    # --- protocol ----------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._call(self.client.count, self.collection, exact=True).count)

    def _retrieve(self, ids: list[UserId], vectors: bool) -> dict:
        pids = [qc.point_id(i) for i in ids]
        points = self._call(self.client.retrieve, self.collection, ids=pids, with_payload=True,
                            with_vectors=self.names if vectors else False)
        return {str(p.id): p for p in points}

    def contains(self, ids: list[UserId], keys: np.ndarray) -> np.ndarray:
        found = self._retrieve(ids, vectors=False)
        return np.array([str(qc.point_id(i)) in found for i in ids], bool)

    def _upsert(self, ids: list[UserId], per_level: dict[str, np.ndarray], payloads: list[dict]) -> None:
        n = len(ids)
        batches = range(0, n, self.batch_size)
        for s in tqdm(batches, desc="uploading to Qdrant", disable=len(batches) < 4, leave=False):
            e = min(n, s + self.batch_size)
            self._call(self.client.upsert, self.collection, wait=True, points=models.Batch(
                ids=[qc.point_id(i) for i in ids[s:e]],
                vectors={name: v[s:e].tolist() for name, v in per_level.items()},
                payloads=payloads[s:e]))

    def add(self, ids: list[UserId], keys: np.ndarray, vectors: np.ndarray,
            metadata: list[dict], replace: bool = False) -> None:
        payloads = [qc.payload_for(i, m) for i, m in zip(ids, metadata)]
        before = self._retrieve(ids, vectors=True)
        if before and not replace:
            raise MatryIndexError(f"id {qc.split_payload(next(iter(before.values())).payload)[0]!r} "
                                  "is already in the index (use upsert to replace)")
        try:
            self._upsert(ids, qc.level_vectors(vectors, self.levels), payloads)
        except Exception:
            self._rollback(ids, before)
            raise

    def _rollback(self, ids: list[UserId], before: dict) -> None:
        """Best effort: remove what this add created and put back what it replaced."""
        created = [qc.point_id(i) for i in ids if str(qc.point_id(i)) not in before]
        try:
            if created:
                self.client.delete(self.collection, points_selector=models.PointIdsList(points=created), wait=True)
            if before:
                self.client.upsert(self.collection, wait=True, points=[
                    models.PointStruct(id=p.id, vector=p.vector, payload=p.payload) for p in before.values()])
        except Exception:  # noqa: BLE001 - the original error is the one to report
            pass

    def delete(self, ids: list[UserId], keys: np.ndarray) -> None:
        self._call(self.client.delete, self.collection, wait=True,
                   points_selector=models.PointIdsList(points=[qc.point_id(i) for i in ids]))

    def get(self, ids: list[UserId], keys: np.ndarray) -> list[Record | None]:
        return qc.ordered_records(ids, self._retrieve(ids, vectors=True))

    def _query(self, requests: list[models.QueryRequest]) -> list[list[Hit]]:
        responses = self._call(self.client.query_batch_points, self.collection, requests=requests)
        return [qc.to_hits(r.points) for r in responses]

    def scan(self, filter: Node | None = None) -> list[tuple[UserId, dict]]:
        flt, out, offset = qc.compile_filter(filter, VOCAB), [], None
        while True:
            points, offset = self._call(self.client.scroll, self.collection, scroll_filter=flt, limit=1024,
                                        offset=offset, with_payload=True, with_vectors=False)
            out.extend(qc.split_payload(p.payload) for p in points)
            if offset is None:
                return out

    def save(self, directory: Path) -> dict[str, Any]:
        """Qdrant persists on its own; the index keeps how to reconnect (never the API key)."""
        return dict(self.options)

    def close(self) -> None:
        self.client.close()
