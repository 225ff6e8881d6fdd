"""What the two Qdrant backends share: vector names, point ids, payloads, filters, the funnel.

qdrant-client (server, cluster, local mode) and Qdrant Edge (the engine in-process) speak the
same data model through two different Python APIs. Everything that depends only on the data
model lives here once; each backend supplies a :class:`Vocabulary` — the constructors of its
API — and the handful of calls that actually talk to its engine.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._fs import atomic_write_text
from .._validation import normalize_rows
from ..errors import AdaptorMismatchError, Corrupt, InvalidInput, StorageError, Unavailable
from ..filters import And, Condition, Node, Not, Or
from ..funnel import RANDOM_READ_COST, CoarseCost, FunnelPlan
from ..ids import UserId
from .base import Hit, Record

ID_FIELD = "_matry_id"          # the user's id, kept in the payload so results return it as given
_NAMESPACE = uuid.UUID("6f1c5a52-3b1e-4f0a-9c55-6d61747279a1")
FORMAT_VERSION = 1
UNBOUNDED = 1 << 62             # "collection size" for plans that Qdrant itself bounds


@dataclass(frozen=True)
class Vocabulary:
    """Constructors of one Qdrant API, so filters and funnels are compiled once for both."""

    filter: Callable[..., Any]            # (must=, should=, must_not=) -> Filter
    field: Callable[..., Any]             # (key, match=None, range=None) -> FieldCondition
    match_value: Callable[[Any], Any]
    match_any: Callable[[list], Any]
    range: Callable[..., Any]             # (gt=, gte=, lt=, lte=) -> Range
    is_empty: Callable[[str], Any]        # key -> condition: missing, null or []
    prefetch: Callable[..., Any]          # (vector, using, limit, ef, inner) -> Prefetch
    request: Callable[..., Any]           # (full vector, inner prefetch, k, filter, exact) -> QueryRequest


QUANTIZATIONS = (None, "int8", "binary")
#: the coarse graph: twice Qdrant's default links and a wider build. At 1M vectors the walk
#: over the 128-d prefix then reached recall@10 0.99 with 480 candidates from ef 1,440 (3.4 ms)
#: where Qdrant's m 16 / ef_construct 100 needed 2,000 from 4,000 (13 ms), for 42 more bytes
#: per vector at load (benchmarks/results/qdrant_layouts.md)
HNSW_M, EF_CONSTRUCT = 32, 200
INT8_QUANTILE = 0.99  # int8 codes span this quantile of the values: outliers clip, the rest keep resolution


@dataclass(frozen=True)
class Layout:
    """How a collection stores each named vector: the layout both Qdrant backends create.

    The coarse (first) vector carries the HNSW graph and, with ``quantization``, its 8-bit
    (``"int8"``) or 1-bit (``"binary"``) codes held in RAM; the graph walk then reads only
    the codes, so with ``on_disk`` the coarse originals stay on disk. Every other vector is
    only read for the few candidates handed to it, so it has no graph and, with ``on_disk``,
    lives in memory-mapped files the OS pages in on demand. The defaults are what won in
    ``benchmarks/qdrant_layouts.py`` (docs/index.md has the table).
    """

    quantization: str | None = "int8"
    on_disk: bool = True

    def __post_init__(self) -> None:
        if self.quantization not in QUANTIZATIONS:
            raise InvalidInput(f"quantization must be one of {QUANTIZATIONS}; got {self.quantization!r}")
        if not isinstance(self.on_disk, bool):
            raise InvalidInput(f"on_disk must be True or False; got {self.on_disk!r}")

    def plan(self, levels: tuple[int, ...]) -> list[tuple[str, int, bool, bool, bool]]:
        """(name, size, has graph, quantised, originals on disk) for each named vector."""
        out = []
        for i, (name, size) in enumerate(zip(vector_names(levels), levels)):
            coarse = i == 0
            quantised = coarse and self.quantization is not None
            # the coarse originals are what an unquantised graph walk reads: they stay in RAM
            on_disk = self.on_disk and (quantised or not coarse)
            out.append((name, size, coarse, quantised, on_disk))
        return out


#: payload index kinds for filtered search: strings ("keyword") and numbers ("float", which
#: holds integers too, so a range on it means what docs/filters.md says: numbers by value)
PAYLOAD_INDEX_KINDS = ("keyword", "float")
MAX_PAYLOAD_INDEXES = 64


def check_payload_indexes(indexes: Any) -> dict[str, str]:
    """``{field: kind}`` checked: string field names, kinds from :data:`PAYLOAD_INDEX_KINDS`."""
    if indexes is None:
        return {}
    if not isinstance(indexes, dict) or not all(isinstance(f, str) and f for f in indexes):
        raise InvalidInput(f"payload_indexes must map field names to kinds; got {indexes!r}")
    if len(indexes) > MAX_PAYLOAD_INDEXES:
        raise InvalidInput(f"at most {MAX_PAYLOAD_INDEXES} payload indexes; got {len(indexes)}")
    bad = {f: k for f, k in indexes.items() if k not in PAYLOAD_INDEX_KINDS}
    if bad:
        raise InvalidInput(f"payload index kinds must be one of {PAYLOAD_INDEX_KINDS}; got {bad}")
    reserved = {ID_FIELD, EXACT_FIELD} & set(indexes)
    if reserved:
        raise InvalidInput(f"{sorted(reserved)} are matry_index's own payload fields")
    return dict(indexes)


def vector_names(levels: tuple[int, ...]) -> list[str]:
    """``d64``, ``d128``, … for the prefixes and ``full`` for the whole vector."""
    return [f"d{m}" for m in levels[:-1]] + ["full"]


def point_id(user_id: UserId) -> int | str:
    """Qdrant point id of a user id: ints as they are, strings as a UUID5 of the string."""
    if isinstance(user_id, int):
        return user_id
    return str(uuid.uuid5(_NAMESPACE, user_id))


def level_vectors(vectors: np.ndarray, levels: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Each level's prefix, re-normalised (stored with DOT distance, so scores are cosines)."""
    return {name: normalize_rows(np.ascontiguousarray(vectors[:, :m]))
            for name, m in zip(vector_names(levels), levels)}


EXACT_FIELD = "_matry_exact"    # the metadata as JSON text, where the engine may round floats


def _has_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_float(v) for v in value)
    return False


def payload_for(user_id: UserId, metadata: dict, keep_exact_floats: bool = False) -> dict:
    """The point payload: the metadata (filterable), the user's id, and — where the engine's
    JSON parser may move a float by a unit in the last place (qdrant-edge-py 0.9) — an exact
    text copy of metadata that holds floats, which reads return instead."""
    for reserved in (ID_FIELD, EXACT_FIELD):
        if reserved in metadata:
            raise InvalidInput(f"metadata key {reserved!r} is reserved")
    payload = {**metadata, ID_FIELD: user_id}
    if keep_exact_floats and _has_float(metadata):
        payload[EXACT_FIELD] = json.dumps(metadata, allow_nan=False)
    return payload


def split_payload(payload: dict | None) -> tuple[UserId, dict]:
    payload = dict(payload or {})
    uid = payload.pop(ID_FIELD)
    exact = payload.pop(EXACT_FIELD, None)
    return uid, (json.loads(exact) if isinstance(exact, str) else payload)


def collection_metadata(dim: int, levels: tuple[int, ...], adaptor_hash: str | None, store_id: str) -> dict:
    """What a collection or shard made by matry_index records about itself: its schema, the
    adaptor's hash and a random id that tells this store from any other (a save records it,
    and a load refuses a store that carries another one)."""
    return {"matry_index": {"format_version": FORMAT_VERSION, "dim": dim, "levels": list(levels),
                            "vectors": vector_names(levels), "adaptor_hash": adaptor_hash, "store_id": store_id}}


def new_store_id() -> str:
    return uuid.uuid4().hex


def check_metadata(found: dict | None, dim: int, levels: tuple[int, ...], adaptor_hash: str | None,
                   where: str) -> str | None:
    """Refuse a collection/shard made for another schema or adaptor; its store id (None for a
    store made before stores carried one)."""
    info = (found or {}).get("matry_index")
    if not isinstance(info, dict):
        raise InvalidInput(f"{where} exists but was not created by matry_index (no schema metadata)")
    if info.get("dim") != dim or tuple(info.get("levels", ())) != tuple(levels):
        raise InvalidInput(f"{where} stores levels {info.get('levels')} of {info.get('dim')}-d vectors; "
                           f"this index needs {list(levels)} of {dim}-d")
    if info.get("adaptor_hash") != adaptor_hash:
        raise AdaptorMismatchError(f"adaptor mismatch: {where} was built with "
                                   f"{str(info.get('adaptor_hash'))[:12]}, got {str(adaptor_hash)[:12]}")
    store_id = info.get("store_id")
    return store_id if isinstance(store_id, str) else None


def check_same_store(found: str | None, saved: str | None, where: str) -> None:
    """Refuse a store other than the one a save was made with (the ids differ)."""
    if saved is not None and found != saved:
        raise InvalidInput(f"{where} is not the store this index was saved with (it carries store id "
                           f"{str(found)[:12]}, the save {saved[:12]}): it was re-created, or another store "
                           "was given; nothing was changed")


def saved_options(options: dict, names: tuple[str, ...], where: Path,
                  bookkeeping: tuple[str, ...] = ("store_id", "snapshot")) -> tuple[dict, str | None]:
    """The options a save recorded that the backend reads back, and the store id it recorded.

    A key the backend never writes is refused (:class:`Corrupt`): the manifest is checksummed,
    so such a key was put there by hand, and a save must not add what the backend did not
    choose (a host, a scratch directory, a resource knob)."""
    unknown = set(options) - set(names) - set(bookkeeping)
    if unknown:
        raise Corrupt(f"{where}: the save holds backend options this backend never writes: {sorted(unknown)}")
    store_id = options.get("store_id")
    return {k: v for k, v in options.items() if k in names}, store_id if isinstance(store_id, str) else None


def shared_builders(engine: Any) -> dict[str, Callable]:
    """The two :class:`Vocabulary` builders both engines spell alike (``Filter`` and
    ``FieldCondition`` with the same keywords); ``engine`` is ``qdrant_client.models`` or
    ``qdrant_edge``."""
    return {"filter": lambda must=None, should=None, must_not=None: engine.Filter(must=must, should=should,
                                                                                  must_not=must_not),
            "field": lambda key, match=None, range=None: engine.FieldCondition(key=key, match=match, range=range)}


def compile_filter(node: Node | None, v: Vocabulary) -> Any:
    """The matry_index filter tree as a Qdrant ``Filter`` (None for no filter)."""
    if node is None:
        return None
    if isinstance(node, Condition):  # a bare condition must sit inside a Filter at the top
        return v.filter(must=[_compile(node, v)])
    return _compile(node, v)


def _compile(node: Node, v: Vocabulary) -> Any:
    if isinstance(node, And):
        return v.filter(must=[_compile(p, v) for p in node.parts])
    if isinstance(node, Or):
        return v.filter(should=[_compile(p, v) for p in node.parts])
    if isinstance(node, Not):
        return v.filter(must_not=[_compile(node.part, v)])
    return _condition(node, v)


EXACT_FLOAT_INTS = 1 << 53  # integers a range bound (f64) represents exactly


def _equals(field: str, value: Any, v: Vocabulary) -> Any:
    """``field == value`` under the shared semantics (docs/filters.md): numbers by value,
    so 2003 also matches a stored 2003.0 — a range [v, v] does that for ints and floats
    alike; ``None`` means missing, null or an empty list."""
    if value is None:
        return v.is_empty(field)
    if isinstance(value, (bool, str)):
        return v.field(field, match=v.match_value(value))
    if isinstance(value, int) and abs(value) > EXACT_FLOAT_INTS:
        return v.field(field, match=v.match_value(value))  # beyond f64's exact integers
    return v.field(field, range=v.range(gte=value, lte=value))


def _equals_any(field: str, values: list, v: Vocabulary) -> Any:
    """``field`` equals one of ``values``: strings in one MatchAny, the rest one by one."""
    strings = [x for x in values if isinstance(x, str)]
    others = [_equals(field, x, v) for x in values if not isinstance(x, str)]
    conds = ([v.field(field, match=v.match_any(strings))] if strings else []) + others
    if not conds:
        return v.filter(must_not=[v.filter()])  # $in [] matches nothing (an empty should matches all)
    return conds[0] if len(conds) == 1 else v.filter(should=conds)


def _condition(c: Condition, v: Vocabulary) -> Any:
    if c.op in ("$eq", "$ne"):
        cond = _equals(c.field, c.value, v)
        return cond if c.op == "$eq" else v.filter(must_not=[cond])
    if c.op in ("$in", "$nin"):
        cond = _equals_any(c.field, list(c.value), v)
        return cond if c.op == "$in" else v.filter(must_not=[cond])
    bound = {"$gt": "gt", "$gte": "gte", "$lt": "lt", "$lte": "lte"}[c.op]
    return v.field(c.field, range=v.range(**{bound: c.value}))


def compile_funnel(query: np.ndarray, levels: tuple[int, ...], plan: FunnelPlan, k: int, n: int,
                   v: Vocabulary) -> tuple[Any, dict[str, list[float]]]:
    """Nested prefetches for one query: (outermost prefetch or None, final query vectors).

    The innermost prefetch is the ANN stage on the coarsest level (``ef`` ≥ its limit); each
    enclosing one rescores its child's candidates on a longer prefix; the caller's final query
    runs on ``full`` with limit ``k``.
    """
    stages = plan.stages(levels, k, n)
    names = dict(zip(levels, vector_names(levels)))
    prefix = {m: normalize_rows(query[None, :m])[0].tolist() for m, _ in stages}
    inner = None
    for level, limit in stages[:-1]:
        ef = plan.ef_for(limit) if inner is None else None
        inner = v.prefetch(prefix[level], names[level], limit, ef, inner)
    return inner, prefix[levels[-1]]


def funnel_requests(queries: np.ndarray, levels: tuple[int, ...], plan: FunnelPlan, k: int, n: int,
                    flt: Any, v: Vocabulary) -> list:
    """One query request per row of ``queries``: the funnel as nested prefetches."""
    requests = []
    for q in queries:
        inner, full = compile_funnel(q, levels, plan, k, n, v)
        requests.append(v.request(full, inner, k, flt, False))
    return requests


def exact_requests(queries: np.ndarray, levels: tuple[int, ...], k: int, flt: Any, v: Vocabulary) -> list:
    """Exact (brute-force) full-dimension requests, the reference for recall and tuning."""
    full = level_vectors(queries, levels)["full"]
    return [v.request(q.tolist(), None, k, flt, True) for q in full]


def to_hits(points: list) -> list[Hit]:
    out = []
    for p in points:
        uid, meta = split_payload(p.payload)
        out.append(Hit(uid, float(p.score), meta))
    return out


@dataclass
class StoredPoint:
    """One point as the primitives return it: its id as a string, payload, full vector."""

    pid: str
    payload: dict
    full: np.ndarray | None = None


SCROLL_PAGE = 1024  # points per scroll request when listing a collection


def stored_points(points: list, with_vectors: bool) -> list[StoredPoint]:
    """Points as either engine returns them (``.id``, ``.payload``, ``.vector["full"]``)."""
    return [StoredPoint(str(p.id), p.payload or {},
                        np.asarray(p.vector["full"], np.float32) if with_vectors else None) for p in points]


class QdrantStore:
    """Everything the two Qdrant backends share above six engine primitives.

    A subclass sets ``vocab``, ``levels``, ``names``, ``options``, ``where``,
    ``batch_size``, ``_lock`` (writes) and ``_read_lock`` (reads; the same lock where the
    engine is not thread-safe), and implements ``_fetch``, ``_upsert_batch``,
    ``_delete_points``, ``_count``, ``_scroll_page`` and ``_query``. Writes are all or
    nothing: a failure in any batch undoes the batches before it (new points deleted,
    replaced ones restored), and if the undo fails too the error says so instead of hiding it.
    """

    vocab: Vocabulary
    dim: int
    levels: tuple[int, ...]
    names: list[str]
    options: dict
    where: str
    batch_size: int
    _lock: Any
    _read_lock: Any
    keep_exact_floats = False  # see payload_for
    keeps_own_data = True      # the collection or shard outlives the process (an in-memory one overrides)
    store_id: str | None = None  # read from, or written to, the store's metadata when it opens

    # --- primitives -------------------------------------------------------------------
    def _fetch(self, pids: list, with_vectors: bool) -> list[StoredPoint]:
        raise NotImplementedError

    def _upsert_batch(self, pids: list, per_level: dict[str, np.ndarray], payloads: list[dict]) -> None:
        raise NotImplementedError

    def _delete_points(self, pids: list) -> None:
        raise NotImplementedError

    def _count(self) -> int:
        raise NotImplementedError

    def _scroll_page(self, flt: Any, offset: Any) -> tuple[list[dict], Any]:
        raise NotImplementedError

    def _query(self, requests: list) -> list[list[Hit]]:
        raise NotImplementedError

    def _create_payload_index(self, field: str, kind: str) -> None:
        raise NotImplementedError

    def _index_payload(self, indexes: dict[str, str]) -> None:
        """Create the payload indexes asked for (Qdrant keeps one it already has): with them a
        filtered search estimates how many points match and walks the graph or scans the
        matches accordingly, instead of reading every visited point's payload from disk."""
        for field, kind in indexes.items():
            self._create_payload_index(field, kind)

    def _check_space(self, n_points: int, payload_bytes: int) -> None:
        """Refuse a write the disk cannot hold (engines on local disk override it)."""

    def confirm_store(self, saved_id: str | None) -> "QdrantStore":
        """This store, once it proves to be the one a save was made with (else closed and refused)."""
        try:
            check_same_store(self.store_id, saved_id, self.where)
        except InvalidInput:
            self.close()
            raise
        return self

    # --- the protocol -----------------------------------------------------------------
    def __len__(self) -> int:
        with self._read_lock:
            return self._count()

    def stored_ids(self, ids: list[UserId], keys: np.ndarray) -> list[UserId | None]:
        with self._read_lock:
            found = {p.pid: split_payload(p.payload)[0] for p in self._fetch([point_id(i) for i in ids],
                                                                             with_vectors=False)}
        return [found.get(str(point_id(i))) for i in ids]

    def get(self, ids: list[UserId], keys: np.ndarray) -> list[Record | None]:
        with self._read_lock:
            found = {p.pid: p for p in self._fetch([point_id(i) for i in ids], with_vectors=True)}
        out: list[Record | None] = []
        for i in ids:
            p = found.get(str(point_id(i)))
            if p is None:
                out.append(None)
            else:
                uid, meta = split_payload(p.payload)
                out.append(Record(uid, p.full, meta))
        return out

    def add(self, ids: list[UserId], keys: np.ndarray, vectors: np.ndarray, metadata: list[dict]) -> None:
        from tqdm.auto import tqdm
        payloads = [payload_for(i, m, self.keep_exact_floats) for i, m in zip(ids, metadata)]
        pids = [point_id(i) for i in ids]
        with self._lock:
            before = {p.pid: p for p in self._fetch(pids, with_vectors=True)}
            self._check_space(len(pids), sum(len(json.dumps(p)) for p in payloads))
            per_level = level_vectors(vectors, self.levels)
            batches = range(0, len(pids), self.batch_size)
            with self._undoable(pids, before):
                for s in tqdm(batches, desc=f"writing to {self.where}", disable=len(batches) < 4, leave=False):
                    e = s + self.batch_size
                    self._upsert_batch(pids[s:e], {n: v[s:e] for n, v in per_level.items()}, payloads[s:e])

    def delete(self, ids: list[UserId], keys: np.ndarray) -> None:
        pids = [point_id(i) for i in ids]
        with self._lock:
            self._check_space(0, 0)
            before = {p.pid: p for p in self._fetch(pids, with_vectors=True)}
            with self._undoable([], before):
                self._delete_points(pids)

    # --- all or nothing ---------------------------------------------------------------
    def _journal_path(self) -> Path | None:
        """Where an engine on local disk keeps the undo journal of the write in progress
        (None where the store is in memory or on a server)."""
        return None

    @contextmanager
    def _undoable(self, pids: list, before: dict[str, StoredPoint]) -> Iterator[None]:
        """Run a write so that it lands whole or not at all.

        In-process failures are undone at once. Where the store is on local disk, what the
        undo needs (the ids the write creates, the points it replaces or deletes) is first
        written to a journal and fsynced, and removed once the write is complete: a process
        killed in the middle leaves the journal, and the next open undoes the partial write.
        """
        journal = self._journal_path()
        created = [p for p in pids if str(p) not in before]
        if journal is not None:
            atomic_write_text(journal, json.dumps({
                "created": created,
                "before": [{"pid": p.pid, "payload": p.payload, "full": p.full.tolist()} for p in before.values()]}))
        try:
            yield
        except BaseException as exc:
            self._undo(created, list(before.values()), exc)
            raise
        if journal is not None:
            journal.unlink(missing_ok=True)

    def _undo(self, created: list, before: list[StoredPoint], exc: BaseException | None) -> None:
        """Put the store back as it was before a failed write: delete the points the write
        created, restore the ones it replaced or deleted. A failure here is reported, never
        swallowed (and where there is a journal it stays, so the next open retries)."""
        try:
            if created:
                self._delete_points(created)
            if before:
                full = np.stack([np.asarray(p.full, np.float32) for p in before])
                self._upsert_batch([_as_pid(p.pid) for p in before], level_vectors(full, self.levels),
                                   [p.payload for p in before])
        except Exception as undo_exc:
            kind = Unavailable if isinstance(undo_exc, Unavailable) else StorageError
            raise kind(
                f"{self.where}: a write failed ({exc!r}) and undoing it failed too ({undo_exc!r}): part of "
                "that write may be stored; reopen the index once the store is healthy (a journal on local "
                "disk is replayed then) or repeat the same write to finish it") from exc
        journal = self._journal_path()
        if journal is not None:
            journal.unlink(missing_ok=True)

    def _replay_journal(self) -> None:
        """Undo a write that a killed process left half done (called when the store opens)."""
        journal = self._journal_path()
        if journal is None or not journal.exists():
            return
        try:
            entry = json.loads(journal.read_text())
            created = list(entry["created"])
            before = [StoredPoint(str(p["pid"]), dict(p["payload"]), np.asarray(p["full"], np.float32))
                      for p in entry["before"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise Corrupt(f"{self.where}: the journal of an interrupted write ({journal}) cannot be "
                                  f"read ({exc}); the store may hold part of that write") from None
        if any(p.full.shape != (self.dim,) for p in before):
            raise Corrupt(f"{self.where}: the journal {journal} does not match this store's dimension")
        self._undo(created, before, None)

    def scan(self, filter: Node | None = None) -> list[tuple[UserId, dict]]:
        flt, out, offset = compile_filter(filter, self.vocab), [], None
        with self._read_lock:
            while True:
                payloads, offset = self._scroll_page(flt, offset)
                out.extend(split_payload(p) for p in payloads)
                if offset is None or not payloads:
                    return out

    def optimize(self) -> None:
        """Nothing to do: a Qdrant server builds its graphs in the background (Edge overrides)."""

    def coarse_cost(self) -> CoarseCost:
        """Qdrant walks an HNSW graph on the coarse level (brute force below its full-scan
        threshold, which the cost order does not need to model); each candidate a later stage
        rescores is fetched by id from vector storage, which on Edge took about as long as a
        node of the walk (0.6 µs each at 100k, warm)."""
        m = int(self.options["hnsw_m"])
        return CoarseCost("hnsw", m, candidate_read=m * (self.levels[0] + RANDOM_READ_COST))

    def search(self, queries: np.ndarray, k: int, plan: FunnelPlan,
               filter: Node | None = None) -> list[list[Hit]]:
        requests = self._requests(queries, k, plan, filter)
        with self._read_lock:
            return self._query(requests)

    def exact_search(self, queries: np.ndarray, k: int, filter: Node | None = None) -> list[list[Hit]]:
        requests = self._requests(queries, k, None, filter)
        with self._read_lock:
            return self._query(requests)

    def _requests(self, queries: np.ndarray, k: int, plan: FunnelPlan | None, filter: Node | None) -> list:
        """One query request per row: the funnel as nested prefetches, or (``plan`` None) an
        exact full-dimension search."""
        flt = compile_filter(filter, self.vocab)
        if plan is None:
            return exact_requests(queries, self.levels, k, flt, self.vocab)
        # no count() round trip per search: Qdrant returns fewer points when a limit exceeds
        # the collection, so the plan needs no clipping to its size
        return funnel_requests(queries, self.levels, plan, k, UNBOUNDED, flt, self.vocab)


def _as_pid(text: str) -> int | str:
    """A point id back from its string form (ints were stored as ints)."""
    return int(text) if text.isdigit() else text
