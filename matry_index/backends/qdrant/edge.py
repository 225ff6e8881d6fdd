"""Qdrant Edge: the Qdrant engine in-process (``qdrant-edge-py``), one shard in a directory.

The same schema as the qdrant-client backend — one named vector per level, DOT on
pre-normalised prefixes, an HNSW graph only on the coarse level (``m=0`` elsewhere), the
layout of :class:`qdrant_common.Layout` — and the same nested-prefetch funnel, through Edge's
own API. Edge has no background optimiser:
:meth:`optimize` builds the HNSW graph after bulk loads (searches work before it, by scanning).
A shard is single-process; :meth:`close` releases it.

Layout: ``<path>/shard/`` (Edge's files) and ``<path>/matry_index.json`` (schema and adaptor
hash, checked when the shard is reopened).

Disk space: Edge preallocates its write-ahead log segments, vector chunks and payload pages
as sparse memory-mapped files (32 MiB each) and fills them later; on a full disk that fill is
a SIGBUS that kills the process. So before the shard is opened and before every write, the
free space must cover what those files may still claim, the write's own estimate and
``EDGE_HEADROOM`` for new segments; otherwise the call raises and nothing is written.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from ..._fs import atomic_write_text, require_free_space, storage_error, unallocated_bytes
from ..._validation import check_int
from ...errors import Conflict, Corrupt, InvalidInput, MatryIndexError, StorageError
from .filters import Vocabulary, shared_builders
from .requests import to_hits
from .schema import EF_CONSTRUCT, HNSW_M, INT8_QUANTILE, Layout, check_metadata, check_payload_indexes, check_same_store, collection_metadata, new_store_id, saved_options, vector_names
from .store import QdrantStore, SCROLL_PAGE, StoredPoint, stored_points
from ..base import Hit, SavedBackend

def _not_bool(value):
    """qdrant-edge-py 0.9 passes Python bools to the engine as integers, so an equality filter
    on a boolean field silently matches nothing; refuse it instead of returning no results."""
    if isinstance(value, bool):
        raise InvalidInput("Qdrant Edge (qdrant-edge-py 0.9) cannot filter on boolean values; "
                              "store the flag as a string or an integer")
    return value


VOCAB = Vocabulary(
    **shared_builders(qe),
    match_value=lambda v: qe.MatchValue(_not_bool(v)),
    match_any=lambda vs: qe.MatchAny([_not_bool(v) for v in vs]),
    range=lambda **kw: qe.RangeFloat(**kw),
    is_empty=lambda key: qe.IsEmptyCondition(key),
    prefetch=lambda vec, using, limit, ef, inner: qe.Prefetch(
        limit=limit, query=qe.Query.Nearest(vec, using=using),
        prefetches=[inner] if inner is not None else None,
        # the coarse stage ranks by its codes alone: the next stage rescores the candidates anyway
        params=qe.SearchParams(hnsw_ef=ef, quantization=qe.QuantizationSearchParams(rescore=False)) if ef else None),
    request=lambda full, inner, k, flt, exact: qe.QueryRequest(
        limit=k, query=qe.Query.Nearest(full, using="full"),
        prefetches=[inner] if inner is not None else None, filter=flt, with_payload=True,
        params=qe.SearchParams(exact=True) if exact else None),
)
META_FILE = "matry_index.json"


def shard_metadata(path: Path) -> dict | None:
    """What a shard directory says about itself (its ``matry_index.json``), or None."""
    try:
        found = json.loads((Path(path) / META_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise Corrupt(f"{Path(path) / META_FILE} cannot be read: {exc}") from None
    return found if isinstance(found, dict) else None


def _edge_error(exc: Exception, where: str) -> MatryIndexError:
    """Edge reports every failure as a plain ``Exception`` (some as a ``TypeError`` from its
    bindings); a lock held by another process becomes :class:`Conflict`, the rest
    :class:`StorageError` — except what Edge refuses as input, which is :class:`InvalidInput`."""
    text = str(exc)
    if "lock" in text.lower() or "already in use" in text.lower():
        return Conflict(f"{where} is held by another process (a shard is single-process): {text}")
    if isinstance(exc, (TypeError, ValueError)) or "Vector dimension error" in text:
        return InvalidInput(f"{where}: the engine refused the input: {text}")
    return StorageError(f"{where}: {text}")
JOURNAL_FILE = "matry_index.journal"
EDGE_HEADROOM = 96 << 20  # new WAL segments and vector/payload chunks, 32 MiB each
#: the options a save records and a load reads back (the store id aside)
SAVED_OPTIONS = ("path", "hnsw_m", "ef_construct", "full_scan_threshold", "quantization", "on_disk",
                 "payload_indexes", "batch_size", "codes")
DATATYPES = {"float32": qe.VectorStorageDatatype.Float32, "float16": qe.VectorStorageDatatype.Float16}


class QdrantEdgeBackend(QdrantStore):
    """An Edge shard at ``path`` behind the backend protocol (created if absent, unless
    ``must_exist``, which a load passes so that a moved shard is an error, not a new one).

    ``quantization`` / ``on_disk`` / ``codes``: the layout (:class:`qdrant_common.Layout`), fixed
    when the shard is created; ``payload_indexes`` (``{"lang": "keyword", "year": "float"}``): fields
    filters use, indexed; ``hnsw_m`` / ``ef_construct`` / ``full_scan_threshold``: the coarse
    graph; ``batch_size``: points per write call."""

    kind = "qdrant-edge"
    vocab = VOCAB
    keep_exact_floats = True  # qdrant-edge-py 0.9 can move a float payload by one ulp

    def __init__(self, dim: int, levels: tuple[int, ...], *, path: str | Path,
                 adaptor_hash: str | None = None, hnsw_m: int = HNSW_M,
                 ef_construct: int = EF_CONSTRUCT, full_scan_threshold: int = 10_000,
                 quantization: str | None = "int8", on_disk: bool = True, codes: str = "float32",
                 payload_indexes: dict[str, str] | None = None, batch_size: int = 512, must_exist: bool = False):
        self.dim, self.levels, self.adaptor_hash = int(dim), tuple(levels), adaptor_hash
        self.layout = Layout(quantization, on_disk, codes)
        self.names = vector_names(self.levels)
        if not isinstance(path, (str, Path)) or not str(path):
            raise InvalidInput(f"path must be a directory name; got {path!r}")
        self.path = Path(path)
        self.options = {"path": str(self.path), "hnsw_m": check_int(hnsw_m, "hnsw_m", 2, 256),
                        "ef_construct": check_int(ef_construct, "ef_construct", 4, 1 << 14),
                        "full_scan_threshold": check_int(full_scan_threshold, "full_scan_threshold", 0, 1 << 40),
                        "quantization": quantization, "on_disk": on_disk, "codes": codes,
                        "payload_indexes": check_payload_indexes(payload_indexes),
                        "batch_size": check_int(batch_size, "batch_size", 1, 1 << 16)}
        self.batch_size = self.options["batch_size"]
        self.where = f"Qdrant Edge shard at {self.path}"
        self._lock = self._read_lock = threading.RLock()  # one shard handle: nothing runs alongside a write
        try:
            if (self.path / META_FILE).exists():
                self._load()
            elif must_exist:
                raise InvalidInput(f"no matry_index Qdrant Edge shard at {self.path} (was it moved or "
                                   "deleted?); pass its new location as path=; nothing was created")
            else:
                self._create()
            self._index_payload(self.options["payload_indexes"])
        except MatryIndexError:
            raise
        except OSError as exc:
            raise storage_error(exc, f"open {self.where}") from exc
        except Exception as exc:  # Edge raises plain Exception (locked WAL, corrupt files, ...)
            raise _edge_error(exc, self.where) from None

    def _load(self) -> None:
        """Open the existing shard after checking its schema, adaptor and free space."""
        self.store_id = check_metadata(shard_metadata(self.path), self.dim, self.levels, self.adaptor_hash,
                                          self.where)
        if not (self.path / "shard" / "edge_config.json").is_file():
            raise Corrupt(f"{self.where}: the shard files are missing (only {META_FILE} is there)")
        self._check_space(0, 0)
        self.shard = qe.EdgeShard.load(str(self.path / "shard"))
        self._replay_journal()

    def _create(self) -> None:
        """A new shard in an empty (or new) directory, never among someone else's files."""
        if self.path.exists() and not self.path.is_dir():
            raise InvalidInput(f"{self.path} exists and is not a directory")
        if self.path.is_dir() and any(self.path.iterdir()):
            raise InvalidInput(f"{self.path} already holds files that are not a matry_index "
                               "Qdrant Edge shard (nothing was written); give a new or empty directory")
        require_free_space(self.path, EDGE_HEADROOM + (128 << 20), "a new Qdrant Edge shard")
        (self.path / "shard").mkdir(parents=True, exist_ok=True)
        self.shard = qe.EdgeShard.create(str(self.path / "shard"), self._config())
        self.store_id = new_store_id()
        atomic_write_text(self.path / META_FILE, json.dumps(
            collection_metadata(self.dim, self.levels, self.adaptor_hash, self.store_id)))

    def _config(self) -> "qe.EdgeConfig":
        """The shard's configuration: :class:`qdrant_common.Layout` in Edge's terms (codes
        ``Pinned`` in RAM, on-disk vectors ``Cold``: mapped, read on demand)."""
        o = self.options
        no_graph = qe.HnswIndexConfig(m=0, ef_construct=o["ef_construct"], full_scan_threshold=o["full_scan_threshold"])
        codes = {"int8": lambda: qe.ScalarQuantizationConfig(type=qe.ScalarType.Int8, quantile=INT8_QUANTILE,
                                                             memory=qe.Memory.Pinned),
                 "binary": lambda: qe.BinaryQuantizationConfig(memory=qe.Memory.Pinned)}
        vectors = {name: qe.EdgeVectorParams(size=m, distance=qe.Distance.Dot,
                                             hnsw_config=None if graph else no_graph,
                                             quantization_config=codes[quantised]() if quantised else None,
                                             datatype=DATATYPES[self.layout.datatype],
                                             memory=qe.Memory.Cold if on_disk else qe.Memory.Cached)
                   for name, m, graph, quantised, on_disk in self.layout.plan(self.levels)}
        return qe.EdgeConfig(vectors=vectors, hnsw_config=qe.HnswIndexConfig(
            m=o["hnsw_m"], ef_construct=o["ef_construct"], full_scan_threshold=o["full_scan_threshold"]))

    def _run(self, fn, *args):
        try:
            return fn(*args)
        except MatryIndexError:
            raise
        except Exception as exc:  # noqa: BLE001 - Edge reports every failure as Exception
            raise _edge_error(exc, self.where) from None

    def _journal_path(self) -> Path:
        return self.path / JOURNAL_FILE

    def _check_space(self, n_points: int, payload_bytes: int) -> None:
        """Free space for the holes Edge's sparse files may still fill, this write (it lands in
        the WAL and then in a segment) and new segments; see the module docstring."""
        estimate = 2 * (n_points * 4 * sum(self.levels) + payload_bytes)
        require_free_space(self.path, unallocated_bytes(self.path) + estimate + EDGE_HEADROOM,
                           f"a write of {n_points} points" if n_points else "opening or changing the shard")

    # --- primitives --------------------------------------------------------------------
    def _count(self) -> int:
        return int(self._run(self.shard.count, qe.CountRequest(exact=True)))

    def _fetch(self, pids: list, with_vectors: bool) -> list[StoredPoint]:
        points = self._run(self.shard.retrieve, pids, True, ["full"] if with_vectors else False)
        return stored_points(points, with_vectors)

    def _upsert_batch(self, pids: list, per_level: dict[str, np.ndarray], payloads: list[dict]) -> None:
        points = [qe.Point(pid, {name: v[r] for name, v in per_level.items()}, payloads[r])
                  for r, pid in enumerate(pids)]
        self._run(self.shard.update, qe.UpdateOperation.upsert_points(points))

    def _delete_points(self, pids: list) -> None:
        self._run(self.shard.update, qe.UpdateOperation.delete_points(pids))

    def _scroll_page(self, flt: Any, offset: Any) -> tuple[list[dict], Any]:
        points, offset = self._run(self.shard.scroll, qe.ScrollRequest(
            offset=offset, limit=SCROLL_PAGE, filter=flt, with_payload=True, with_vector=False))
        return [p.payload or {} for p in points], offset

    def _query(self, requests: list) -> list[list[Hit]]:
        results = self._run(self.shard.query_batch, qe.QueryBatchRequest(requests))
        return [to_hits(points) for points in results]

    def _create_payload_index(self, field: str, kind: str) -> None:
        schema = {"keyword": qe.PayloadSchemaType.Keyword, "float": qe.PayloadSchemaType.Float}[kind]
        self._run(self.shard.update, qe.UpdateOperation.create_field_index(field, schema))

    # --- the rest of the protocol ------------------------------------------------------
    def optimize(self) -> None:
        """Build the HNSW graph (Edge does not do it in the background)."""
        with self._lock:
            self._check_space(len(self), 0)
            self._run(self.shard.optimize)

    def save(self, directory: Path) -> dict[str, Any]:
        """Flush the shard to disk; the index keeps its path and the shard's store id."""
        with self._lock:
            self._run(self.shard.flush)
        return {**self.options, "store_id": self.store_id}

    @classmethod
    def open(cls, saved: SavedBackend) -> "QdrantEdgeBackend":
        """Reopen the shard the index was saved with (``path=`` where it has moved).

        A shard named by the save is opened only if its ``matry_index.json`` (read first, as
        plain JSON) carries the store id the save recorded; a shard given as ``path=`` must
        carry it too. Of the saved options only those :meth:`save` writes are read.
        """
        opts, store_id = saved_options(saved.options, SAVED_OPTIONS, saved.directory)
        unknown = set(saved.connection) - {"path"}
        if unknown:
            raise InvalidInput(f"a Qdrant Edge index takes no connection options but path; got {sorted(unknown)}")
        path = saved.connection.get("path", opts.get("path"))
        if not isinstance(path, (str, Path)) or not str(path):
            raise Corrupt(f"{saved.directory}: the save names no shard path")
        if "path" not in saved.connection and store_id is not None:
            meta = shard_metadata(Path(path))
            found = (meta or {}).get("matry_index", {}).get("store_id") if isinstance(meta, dict) else None
            if meta is not None:
                check_same_store(found, store_id, f"the Qdrant Edge shard at {path} named by the save")
        backend = cls(saved.dim, saved.levels, adaptor_hash=saved.adaptor_hash, must_exist=True,
                      **{**opts, "path": path})
        return backend.confirm_store(store_id)

    def storage_paths(self) -> list[Path]:
        return [self.path]

    def close(self) -> None:
        with self._lock:
            try:
                self.shard.close()
            except Exception:  # noqa: BLE001 - closing twice is harmless
                pass
