"""The matry_index filter language compiled to Qdrant's ``Filter`` for either engine's API.

Each backend supplies a :class:`Vocabulary` — the constructors of its API — so the semantics
of ``docs/filters.md`` are compiled once for qdrant-client and Qdrant Edge alike.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...filters import And, Condition, Node, Not, Or


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
