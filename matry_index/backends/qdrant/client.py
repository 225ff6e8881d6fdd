"""Qdrant through ``qdrant-client``: a server or cluster by URL, or the client's local mode.

One collection holds every level as a named vector (by default the 128-d prefix ``d128`` and
``full``), pre-normalised with DOT distance so scores are cosines. Only the coarse level gets
an HNSW graph, searched over int8 codes kept in RAM; every vector a search reads only for the
candidates handed to it is memory-mapped from disk (:class:`qdrant_common.Layout`). A funnel
search is one ``query_points`` call with nested ``prefetch`` stages (a batch is one
``query_batch_points``); the payload filter is given at the top level, and Qdrant applies it
inside every prefetch.

The collection's ``metadata`` records the schema and the adaptor's hash; opening an existing
collection checks both. Calls that fail with a transport error are retried with backoff, and
a server that stays unreachable raises :class:`~matry_index.errors.Unavailable` naming the URL.

Local mode (``location=":memory:"`` or ``path=...``) runs the same code against a pure-Python
emulation that scans everything: right for tests and small data, never for latency figures.
qdrant-client keeps a local-mode folder's points as pickles, and unpickling runs whatever code
a pickle names; so before a folder is opened every stored point is read with an unpickler that
admits nothing but Qdrant's ``PointStruct`` (:func:`verify_local_storage`), and a folder that
holds anything else is refused unopened. For on-disk embedded use prefer Qdrant Edge, which
stores no pickles at all. An in-memory collection is saved with the index as plain data
(``vectors.npy`` + ``records.jsonl``) and restored from it on load.
"""
from __future__ import annotations

import asyncio
import io
import json
import os
import pickle
import sqlite3
import threading
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
from qdrant_client import AsyncQdrantClient, QdrantClient, models
from tenacity import AsyncRetrying, Retrying, retry_if_exception, stop_after_attempt, wait_exponential
from ..._fs import require_free_space, storage_error
from ..._validation import check_bool, check_int, check_number
from ...errors import Conflict, Corrupt, InvalidInput, Unavailable
from ...filters import Node
from ...funnel import FunnelPlan
from .filters import Vocabulary, shared_builders
from .requests import to_hits
from .schema import EF_CONSTRUCT, HNSW_M, INT8_QUANTILE, Layout, check_metadata, check_payload_indexes, check_same_store, collection_metadata, new_store_id, saved_options, split_payload, vector_names
from .store import QdrantStore, SCROLL_PAGE, StoredPoint, stored_points
from .. import records as saved_records
from ..base import Hit, SavedBackend

VOCAB = Vocabulary(
    **shared_builders(models),
    match_value=lambda v: models.MatchValue(value=v),
    match_any=lambda vs: models.MatchAny(any=vs),
    range=lambda **kw: models.Range(**kw),
    is_empty=lambda key: models.IsEmptyCondition(is_empty=models.PayloadField(key=key)),
    prefetch=lambda vec, using, limit, ef, inner: models.Prefetch(
        query=vec, using=using, limit=limit, prefetch=inner,
        # the coarse stage ranks by its codes alone: the next stage rescores the candidates anyway
        params=models.SearchParams(hnsw_ef=ef, quantization=models.QuantizationSearchParams(rescore=False))
        if ef else None),
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


JOURNAL_FILE = "matry_index.journal"
LOCAL_HEADROOM = 16 << 20     # bytes kept free beyond a write's estimate in local mode on disk
_POINT_CLASS = ("qdrant_client.http.models.models", "PointStruct")


class _PointsOnlyUnpickler(pickle.Unpickler):
    """Admits the one class qdrant-client pickles into local storage, nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == _POINT_CLASS:
            return models.PointStruct
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def verify_local_storage(path: str | Path) -> None:
    """Check that a local-mode folder holds only Qdrant points before qdrant-client opens it.

    qdrant-client unpickles every stored point when it opens the folder; a folder received
    from someone else could name any code in those pickles. Each one is read here first with
    an unpickler that admits only ``PointStruct``; anything else raises, unopened.
    """
    for db in sorted(Path(path).glob("collection/*/storage.sqlite")):
        try:
            # read-write, as qdrant-client opens it: SQLite must roll back the journal of a
            # transaction that a killed process left open before anything can be read
            con = sqlite3.connect(db)
            try:
                for (blob,) in con.execute("SELECT point FROM points"):
                    point = _PointsOnlyUnpickler(io.BytesIO(blob)).load()
                    if not isinstance(point, models.PointStruct):
                        raise pickle.UnpicklingError(f"a stored point is a {type(point).__name__}")
            finally:
                con.close()
        except sqlite3.Error as exc:
            raise Corrupt(f"cannot read Qdrant local storage {db}: {exc}") from None
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
                KeyError) as exc:
            raise Corrupt(f"refusing to open Qdrant local storage {path}: {db.name} in "
                                  f"{db.parent.name!r} holds something other than Qdrant points ({exc}); "
                                  "a local-mode folder is code when opened, so only open your own") from None


#: the options a save records and a load reads back (the store id aside)
SAVED_OPTIONS = ("collection", "url", "path", "location", "timeout", "retries", "shard_number",
                 "replication_factor", "write_consistency_factor", "on_disk", "quantization", "payload_indexes",
                 "hnsw_m", "ef_construct", "batch_size", "prefer_grpc", "codes")


def _optional_count(value: Any, name: str, high: int) -> int | None:
    return None if value is None else check_int(value, name, 1, high)


def local_store_id(path: str, collection: str) -> str | None:
    """The store id a local-mode folder's collection carries, read from its plain-JSON
    ``meta.json`` without opening the folder (None where there is none to read)."""
    try:
        meta = json.loads((Path(path) / "meta.json").read_text(encoding="utf-8"))
        found = meta["collections"][collection]["metadata"]["matry_index"]["store_id"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return found if isinstance(found, str) else None


def _checked_options(**o: Any) -> dict[str, Any]:
    """The constructor's options, each checked against bounds that no real use comes near:
    options are also read back from saves, and a crafted one must not take a process's
    resources (a batch of a billion points, a day-long timeout, thousands of retries)."""
    if not isinstance(o["collection"], str) or not o["collection"] or len(o["collection"]) > 255:
        raise InvalidInput(f"collection must be a non-empty name of at most 255 characters; got {o['collection']!r}")
    for name in ("url", "path"):
        if o[name] is not None and not isinstance(o[name], str):
            raise InvalidInput(f"{name} must be a string; got {o[name]!r}")
    return {**o, "timeout": check_number(o["timeout"], "timeout", 0, 3600, low_open=True),
            "retries": check_int(o["retries"], "retries", 1, 20),
            "shard_number": _optional_count(o["shard_number"], "shard_number", 1 << 16),
            "replication_factor": _optional_count(o["replication_factor"], "replication_factor", 1 << 10),
            "write_consistency_factor": _optional_count(o["write_consistency_factor"], "write_consistency_factor",
                                                        1 << 10),
            "hnsw_m": check_int(o["hnsw_m"], "hnsw_m", 2, 256),
            "ef_construct": check_int(o["ef_construct"], "ef_construct", 4, 1 << 14),
            "batch_size": check_int(o["batch_size"], "batch_size", 1, 1 << 16),
            "prefer_grpc": check_bool(o["prefer_grpc"], "prefer_grpc")}


class QdrantBackend(QdrantStore):
    """A Qdrant collection behind the backend protocol.

    Connection: ``url`` (+ ``api_key``, default ``$QDRANT_API_KEY``) for a server or cluster,
    ``path`` for local mode on disk, or ``location=":memory:"`` (the default); or a ready
    ``client``. Collection: ``collection`` name; ``shard_number`` / ``replication_factor`` /
    ``write_consistency_factor`` for clusters; ``quantization`` (``"int8"``, ``"binary"`` or
    None) keeps codes of the coarse level in RAM and ``on_disk`` the vectors the search reads
    only for candidates on disk, ``codes`` ("float16" or "int8") holds every vector coarser
    (:class:`qdrant_common.Layout`); ``payload_indexes``
    (``{"lang": "keyword", "year": "float"}``) indexes fields filters use; ``hnsw_m`` /
    ``ef_construct`` shape the coarse graph. ``must_exist``: open an existing collection only
    (what a load does), never create an empty one in its place.

    Async: :meth:`asearch` on a server goes through qdrant-client's ``AsyncQdrantClient``
    (made on first use in each event loop from the same URL, key and timeout, or given as
    ``async_client``), so a service awaiting searches holds no thread per request; local mode
    is a synchronous emulation, so there it runs the search in a worker thread.
    """

    kind = "qdrant"
    vocab = VOCAB

    def __init__(self, dim: int, levels: tuple[int, ...], *, adaptor_hash: str | None = None,
                 collection: str = "matry_index", url: str | None = None, api_key: str | None = None,
                 path: str | None = None, location: str | None = None, timeout: float = 30.0,
                 retries: int = 3, shard_number: int | None = None, replication_factor: int | None = None,
                 write_consistency_factor: int | None = None, on_disk: bool = True,
                 quantization: str | None = "int8", codes: str = "float32",
                 payload_indexes: dict[str, str] | None = None,
                 hnsw_m: int = HNSW_M, ef_construct: int = EF_CONSTRUCT,
                 batch_size: int = 256, prefer_grpc: bool = False, client: QdrantClient | None = None,
                 async_client: AsyncQdrantClient | None = None, must_exist: bool = False):
        if location not in (None, ":memory:"):  # qdrant-client reads any other location as a server's URL
            if url:
                raise InvalidInput("give a server as url= or as location=, not both")
            url, location = str(location), None
        self.dim, self.levels, self.adaptor_hash = int(dim), tuple(levels), adaptor_hash
        self.names = vector_names(self.levels)
        self.layout = Layout(quantization, on_disk, codes)
        self.options = _checked_options(
            collection=collection, url=url, path=str(path) if path else None, location=location, timeout=timeout,
            retries=retries, shard_number=shard_number, replication_factor=replication_factor,
            write_consistency_factor=write_consistency_factor, on_disk=on_disk, quantization=quantization,
            codes=codes, payload_indexes=check_payload_indexes(payload_indexes), hnsw_m=hnsw_m, ef_construct=ef_construct,
            batch_size=batch_size, prefer_grpc=prefer_grpc)
        self.collection, self.batch_size, self.retries = collection, self.options["batch_size"], self.options["retries"]
        self.where = f"Qdrant collection {collection!r} at {url or path or ':memory:'}"
        self.in_memory = client is None and not url and not path
        self.keeps_own_data = not self.in_memory
        self.client_is_local = client is None and not url
        self._lock = threading.RLock()
        # local mode is a single-threaded Python emulation: reads take the lock too; a server
        # serves concurrent reads itself
        self._read_lock = nullcontext() if (url and client is None) else self._lock
        # never saved (options are): the async client is made from these when first needed
        self._connect = {"url": url, "api_key": api_key or os.environ.get("QDRANT_API_KEY"),
                         "timeout": self.options["timeout"], "prefer_grpc": prefer_grpc} \
            if url and client is None else None
        self._given_async_client = async_client
        self._async_client: tuple[asyncio.AbstractEventLoop, AsyncQdrantClient] | None = None
        if client is not None:
            self.client = client
            self.where = f"Qdrant collection {collection!r} (given client)"
        else:
            self.client = self._new_client(must_exist)
        self._open_collection(must_exist)
        self._replay_journal()
        self._index_payload(self.options["payload_indexes"])

    def _new_client(self, must_exist: bool) -> QdrantClient:
        """A client for the server, the local-mode folder (checked before qdrant-client
        unpickles anything in it) or an in-memory collection."""
        if self._connect is not None:
            return QdrantClient(**self._connect)
        path = self.options["path"]
        if not path:
            return self._local(location=":memory:")
        folder = Path(path)
        if must_exist and not (folder / "meta.json").is_file():
            raise InvalidInput(f"no Qdrant local storage at {path} (was it moved or deleted?); "
                               "pass its new location as path=")
        if folder.exists() and (not folder.is_dir() or (any(folder.iterdir()) and not (folder / "meta.json").is_file())):
            raise InvalidInput(f"{path} already holds files that are not Qdrant local storage "
                               "(nothing was written); give a new or empty directory")
        verify_local_storage(path)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(exc, f"create {path}") from exc
        return self._local(path=str(path))

    def _open_collection(self, must_exist: bool) -> None:
        """Check an existing collection's schema and adaptor (and read its store id), or create
        it — never in place of one that should exist (``must_exist``)."""
        if self._call(self.client.collection_exists, self.collection):
            info = self._call(self.client.get_collection, self.collection)
            self.store_id = check_metadata(info.config.metadata, self.dim, self.levels, self.adaptor_hash,
                                              self.where)
        elif must_exist and not self.in_memory:
            raise InvalidInput(f"{self.where} does not exist (was it deleted, or is this the wrong "
                               "server?); nothing was created")
        else:
            self.store_id = new_store_id()
            self._create()

    def _local(self, **kwargs: Any) -> QdrantClient:
        try:
            return QdrantClient(**kwargs)
        except RuntimeError as exc:  # the storage folder is locked by another client
            raise Conflict(f"cannot open Qdrant local storage: {exc}") from None

    def _retry_policy(self) -> dict[str, Any]:
        return {"stop": stop_after_attempt(max(1, self.retries)), "wait": wait_exponential(multiplier=0.2, max=5),
                "retry": retry_if_exception(_transient), "reraise": True}

    def _unreachable(self, exc: Exception) -> None:
        """Raise the clear error for a transport failure that outlasted the retries."""
        if _transient(exc):
            raise Unavailable(f"{self.where} is unreachable after {self.retries} attempt(s): "
                                  f"{type(exc).__name__}: {exc}") from exc

    def _call(self, fn, *args, **kwargs):
        """Run one client call with retries on transport errors; a clear error if it stays down."""
        try:
            for attempt in Retrying(**self._retry_policy()):
                with attempt:
                    return fn(*args, **kwargs)
        except Exception as exc:
            self._unreachable(exc)
            raise

    async def _acall(self, fn, *args, **kwargs):
        """:meth:`_call` for a coroutine function of the async client."""
        try:
            async for attempt in AsyncRetrying(**self._retry_policy()):
                with attempt:
                    return await fn(*args, **kwargs)
        except Exception as exc:
            self._unreachable(exc)
            raise

    def _create(self) -> None:
        """The collection in :class:`qdrant_common.Layout`: codes ``always_ram``, on-disk
        vectors ``on_disk`` (memory-mapped), a graph on the coarse vector only."""
        o = self.options
        codes = {"int8": lambda: models.ScalarQuantization(scalar=models.ScalarQuantizationConfig(
                     type=models.ScalarType.INT8, quantile=INT8_QUANTILE, always_ram=True)),
                 "binary": lambda: models.BinaryQuantization(binary=models.BinaryQuantizationConfig(always_ram=True))}
        vectors = {name: models.VectorParams(size=m, distance=models.Distance.DOT,
                                             hnsw_config=None if graph else models.HnswConfigDiff(m=0),
                                             on_disk=on_disk,
                                             quantization_config=codes[quantised]() if quantised else None,
                                             datatype=models.Datatype(self.layout.datatype))
                   for name, m, graph, quantised, on_disk in self.layout.plan(self.levels)}
        self._call(self.client.create_collection, self.collection, vectors_config=vectors,
                   hnsw_config=models.HnswConfigDiff(m=o["hnsw_m"], ef_construct=o["ef_construct"]),
                   shard_number=o["shard_number"], replication_factor=o["replication_factor"],
                   write_consistency_factor=o["write_consistency_factor"],
                   metadata=collection_metadata(self.dim, self.levels, self.adaptor_hash, self.store_id))

    # --- primitives --------------------------------------------------------------------
    def _journal_path(self) -> Path | None:
        """Local mode on disk commits point by point: the undo journal sits beside its files."""
        return Path(self.options["path"]) / JOURNAL_FILE if self.options["path"] and self.client_is_local else None

    def _count(self) -> int:
        return int(self._call(self.client.count, self.collection, exact=True).count)

    def _fetch(self, pids: list, with_vectors: bool) -> list[StoredPoint]:
        points = self._call(self.client.retrieve, self.collection, ids=pids, with_payload=True,
                            with_vectors=["full"] if with_vectors else False)
        return stored_points(points, with_vectors)

    def _upsert_batch(self, pids: list, per_level: dict[str, np.ndarray], payloads: list[dict]) -> None:
        self._call(self.client.upsert, self.collection, wait=True, points=models.Batch(
            ids=pids, vectors={name: v.tolist() for name, v in per_level.items()}, payloads=payloads))

    def _delete_points(self, pids: list) -> None:
        self._call(self.client.delete, self.collection, wait=True,
                   points_selector=models.PointIdsList(points=pids))

    def _scroll_page(self, flt: Any, offset: Any) -> tuple[list[dict], Any]:
        points, offset = self._call(self.client.scroll, self.collection, scroll_filter=flt, limit=SCROLL_PAGE,
                                    offset=offset, with_payload=True, with_vectors=False)
        return [p.payload or {} for p in points], offset

    def _query(self, requests: list[models.QueryRequest]) -> list[list[Hit]]:
        responses = self._call(self.client.query_batch_points, self.collection, requests=requests)
        return [to_hits(r.points) for r in responses]

    # --- async ---------------------------------------------------------------------------
    def _async(self) -> AsyncQdrantClient | None:
        """The async client for the running event loop: the one given, else one made for a
        server (an httpx client belongs to the loop it first ran in, so a new loop gets its
        own); None in local mode, which has no async transport to await."""
        if self._given_async_client is not None:
            return self._given_async_client
        if self._connect is None:
            return None
        loop = asyncio.get_running_loop()
        if self._async_client is None or self._async_client[0] is not loop:
            self._async_client = (loop, AsyncQdrantClient(**self._connect))
        return self._async_client[1]

    async def asearch(self, queries: np.ndarray, k: int, plan: FunnelPlan | None,
                      filter: Node | None = None) -> list[list[Hit]]:
        """The funnel (exact where ``plan`` is None) as one awaited ``query_batch_points``."""
        client = self._async()
        if client is None:  # local mode: a synchronous emulation, run in a worker thread
            return await super().asearch(queries, k, plan, filter)
        requests = self._requests(queries, k, plan, filter)
        responses = await self._acall(client.query_batch_points, self.collection, requests=requests)
        return [to_hits(r.points) for r in responses]

    async def aclose(self) -> None:
        """Close the async client this backend made (a given one stays its owner's)."""
        made, self._async_client = self._async_client, None
        if made is not None and made[0] is asyncio.get_running_loop():
            await made[1].close()

    def _create_payload_index(self, field: str, kind: str) -> None:
        schema = {"keyword": models.PayloadSchemaType.KEYWORD, "float": models.PayloadSchemaType.FLOAT}[kind]
        with warnings.catch_warnings():
            if self.client_is_local:  # local mode scans everything: it says an index has no effect there
                warnings.simplefilter("ignore", UserWarning)
            self._call(self.client.create_payload_index, self.collection, field_name=field, field_schema=schema,
                       wait=True)

    def _check_space(self, n_points: int, payload_bytes: int) -> None:
        """Local mode on disk writes every point into SQLite at once; refuse a write that
        cannot fit rather than leave part of it behind."""
        if self.options["path"]:
            per_point = 12 * sum(self.levels) + 256  # floats as pickled Python lists, plus keys
            require_free_space(self.options["path"], n_points * per_point + 2 * payload_bytes + LOCAL_HEADROOM,
                               f"a write of {n_points} points")

    # --- persistence -------------------------------------------------------------------
    def save(self, directory: Path) -> dict[str, Any]:
        """A server and local storage on disk persist on their own; an in-memory collection is
        written into ``directory`` as plain data. The API key is never saved."""
        with self._lock:
            if self.in_memory:
                ids, meta, vectors = [], [], []
                offset = None
                while True:
                    points, offset = self._call(self.client.scroll, self.collection, limit=SCROLL_PAGE,
                                                offset=offset, with_payload=True, with_vectors=["full"])
                    for p in stored_points(points, with_vectors=True):
                        uid, m = split_payload(p.payload)
                        ids.append(uid)
                        meta.append(m)
                        vectors.append(p.full)
                    if offset is None:
                        break
                saved_records.write_records(directory, ids, meta,
                                            np.stack(vectors) if vectors else np.empty((0, self.dim), np.float32))
            return {**self.options, "snapshot": self.in_memory, "store_id": None if self.in_memory else self.store_id}

    @classmethod
    def open(cls, saved: SavedBackend) -> "QdrantBackend":
        """Reopen what :meth:`save` recorded.

        A saved file never chooses where requests and credentials go: a server (``url``, or a
        ``location`` that is not ``":memory:"``) is used only when the caller passes ``url=``
        (and ``api_key=``), ``client=``, or ``trust_stored_url=True``. A local-mode folder named
        by the save is opened only if it carries the store id the save recorded (read from its
        plain-JSON ``meta.json`` first); whatever store opens must carry that id.
        """
        connection = dict(saved.connection)
        trust = bool(connection.pop("trust_stored_url", False))
        opts, store_id = saved_options(saved.options, SAVED_OPTIONS, saved.directory)
        stored_server = opts.get("url") or (opts.get("location") if opts.get("location") not in (None, ":memory:") else None)
        caller_server = any(key in connection for key in ("url", "client", "location"))
        if stored_server and not caller_server and not trust:
            raise InvalidInput(
                f"this index lives on the Qdrant server {stored_server!r}, as written in its saved files; "
                "a loaded file does not choose where to connect or send an API key: pass url=... "
                "(and api_key=...) to load(), or trust_stored_url=True if you wrote this file yourself")
        if caller_server:
            opts.update(path=None, location=None, url=None)
        if saved.options.get("snapshot") and not caller_server and not connection.get("path"):
            return cls._restored(saved, {**opts, "url": None, "path": None, "location": None})
        if opts.get("path") and "path" not in connection and store_id is not None \
                and (Path(opts["path"]) / "meta.json").is_file():  # (a missing folder is reported when opened)
            check_same_store(local_store_id(opts["path"], opts.get("collection", "matry_index")), store_id,
                                f"the Qdrant local storage at {opts['path']} named by the save")
        backend = cls._reopened(saved, {**opts, **connection})
        return backend.confirm_store(store_id)

    @classmethod
    def _reopened(cls, saved: SavedBackend, opts: dict) -> "QdrantBackend":
        try:
            return cls(saved.dim, saved.levels, adaptor_hash=saved.adaptor_hash, must_exist=True, **opts)
        except TypeError as exc:
            raise InvalidInput(f"cannot reopen the Qdrant collection with these options: {exc}") from None

    @classmethod
    def _restored(cls, saved: SavedBackend, opts: dict) -> "QdrantBackend":
        """An in-memory collection filled from the save's plain-data records."""
        try:
            backend = cls(saved.dim, saved.levels, adaptor_hash=saved.adaptor_hash, **opts)
        except InvalidInput as exc:
            raise Corrupt(f"{saved.directory}: the saved Qdrant options are invalid: {exc}") from None
        ids, meta, vectors = saved_records.read_records(saved.directory, saved.dim)
        if ids:
            backend.add(ids, np.zeros(len(ids), np.int64), vectors, meta)
        return backend

    def storage_paths(self) -> list[Path]:
        return [Path(self.options["path"])] if self.options["path"] else []

    def close(self) -> None:
        self._async_client = None  # an async client is closed by aclose(), inside its loop
        self.client.close()
