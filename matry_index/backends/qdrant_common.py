"""What the two Qdrant backends share: vector names, point ids, payloads, filters, the funnel.

qdrant-client (server, cluster, local mode) and Qdrant Edge (the engine in-process) speak the
same data model through two different Python APIs. Everything that depends only on the data
model lives here once; each backend supplies a :class:`Vocabulary` — the constructors of its
API — and the handful of calls that actually talk to its engine.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validation import MatryIndexError, normalize_rows
from ..filters import And, Condition, Node, Not, Or
from ..funnel import CoarseCost, FunnelPlan
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
    prefetch: Callable[..., Any]          # (vector, using, limit, ef, inner) -> Prefetch
    request: Callable[..., Any]           # (full vector, inner prefetch, k, filter, exact) -> QueryRequest


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


def payload_for(user_id: UserId, metadata: dict) -> dict:
    if ID_FIELD in metadata:
        raise MatryIndexError(f"metadata key {ID_FIELD!r} is reserved")
    return {**metadata, ID_FIELD: user_id}


def split_payload(payload: dict | None) -> tuple[UserId, dict]:
    payload = dict(payload or {})
    return payload.pop(ID_FIELD), payload


def collection_metadata(dim: int, levels: tuple[int, ...], adaptor_hash: str | None) -> dict:
    return {"matry_index": {"format_version": FORMAT_VERSION, "dim": dim, "levels": list(levels),
                            "vectors": vector_names(levels), "adaptor_hash": adaptor_hash}}


def check_metadata(found: dict | None, dim: int, levels: tuple[int, ...], adaptor_hash: str | None,
                   where: str) -> None:
    """Refuse a collection/shard made for another schema or adaptor."""
    from ..adaptor.model import AdaptorMismatchError
    info = (found or {}).get("matry_index")
    if info is None:
        raise MatryIndexError(f"{where} exists but was not created by matry_index (no schema metadata)")
    if info.get("dim") != dim or tuple(info.get("levels", ())) != tuple(levels):
        raise MatryIndexError(f"{where} stores levels {info.get('levels')} of {info.get('dim')}-d vectors; "
                              f"this index needs {list(levels)} of {dim}-d")
    if info.get("adaptor_hash") != adaptor_hash:
        raise AdaptorMismatchError(f"adaptor mismatch: {where} was built with "
                                   f"{str(info.get('adaptor_hash'))[:12]}, got {str(adaptor_hash)[:12]}")


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


def _condition(c: Condition, v: Vocabulary) -> Any:
    value = c.value
    if c.op in ("$eq", "$ne"):
        if isinstance(value, float) and not float(value).is_integer():
            cond = v.field(c.field, range=v.range(gte=value, lte=value))  # Qdrant matches floats by range
        else:
            cond = v.field(c.field, match=v.match_value(value))
        return cond if c.op == "$eq" else v.filter(must_not=[cond])
    if c.op in ("$in", "$nin"):
        cond = v.field(c.field, match=v.match_any(list(value)))
        return cond if c.op == "$in" else v.filter(must_not=[cond])
    bound = {"$gt": "gt", "$gte": "gte", "$lt": "lt", "$lte": "lte"}[c.op]
    return v.field(c.field, range=v.range(**{bound: value}))


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


def ordered_records(ids: list[UserId], found: dict[str, Any]) -> list[Record | None]:
    """Records for ``ids`` in order from retrieved points keyed by ``str(point id)``."""
    out: list[Record | None] = []
    for i in ids:
        p = found.get(str(point_id(i)))
        if p is None:
            out.append(None)
        else:
            uid, meta = split_payload(p.payload)
            out.append(Record(uid, np.asarray(p.vector["full"], np.float32), meta))
    return out


class FunnelSearch:
    """``search`` / ``exact_search`` for a Qdrant backend that has ``levels``, a class-level
    ``vocab``, ``__len__`` and ``_query(requests) -> list[list[Hit]]``."""

    vocab: Vocabulary
    levels: tuple[int, ...]
    options: dict

    def coarse_cost(self) -> CoarseCost:
        """Qdrant walks an HNSW graph on the coarse level (brute force below its full-scan
        threshold, which the cost order does not need to model)."""
        return CoarseCost("hnsw", int(self.options["hnsw_m"]))

    def search(self, queries: np.ndarray, k: int, plan: FunnelPlan,
               filter: Node | None = None) -> list[list[Hit]]:
        flt = compile_filter(filter, self.vocab)
        # no count() round trip per search: Qdrant returns fewer points when a limit exceeds
        # the collection, so the plan needs no clipping to its size
        return self._query(funnel_requests(queries, self.levels, plan, k, UNBOUNDED, flt, self.vocab))

    def exact_search(self, queries: np.ndarray, k: int, filter: Node | None = None) -> list[list[Hit]]:
        flt = compile_filter(filter, self.vocab)
        return self._query(exact_requests(queries, self.levels, k, flt, self.vocab))
