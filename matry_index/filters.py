"""Metadata filters: one small language, compiled to each backend.

A filter is a dict in the style most vector stores accept::

    {"lang": "en"}                                  # equality
    {"year": {"$gte": 2020, "$lt": 2024}}           # ranges ($gt, $gte, $lt, $lte)
    {"tag": {"$in": ["a", "b"]}}                    # membership ($in, $nin), inequality ($ne)
    {"$and": [f1, f2]}, {"$or": [f1, f2]}, {"$not": f}

Several keys at the top level are combined with AND. :func:`parse_filter` turns it into a
tree of :class:`Condition`, :class:`And`, :class:`Or`, :class:`Not`; :func:`matches` evaluates
the tree on a metadata dict (FAISS), and the Qdrant backends translate the same tree.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, Union

from ._validation import MatryIndexError

RANGE_OPS = {"$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt, "$lte": operator.le}
OPS = {"$eq", "$ne", "$in", "$nin", *RANGE_OPS}


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: Any


@dataclass(frozen=True)
class And:
    parts: tuple["Node", ...]


@dataclass(frozen=True)
class Or:
    parts: tuple["Node", ...]


@dataclass(frozen=True)
class Not:
    part: "Node"


Node = Union[Condition, And, Or, Not]


def _parse_field(field: str, spec: Any) -> Node:
    if not isinstance(spec, dict):
        return Condition(field, "$eq", spec)
    if not spec:
        raise MatryIndexError(f"empty condition for field {field!r}")
    parts = []
    for op, value in spec.items():
        if op not in OPS:
            raise MatryIndexError(f"unknown filter operator {op!r} for {field!r}; use one of {sorted(OPS)}")
        if op in ("$in", "$nin") and not isinstance(value, (list, tuple, set)):
            raise MatryIndexError(f"{op} for {field!r} needs a list; got {value!r}")
        if op in RANGE_OPS and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise MatryIndexError(f"{op} for {field!r} needs a number; got {value!r}")
        parts.append(Condition(field, op, list(value) if op in ("$in", "$nin") else value))
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def parse_filter(spec: dict | Node | None) -> Node | None:
    """Parse a filter dict (see module docstring); ``None`` and ``{}`` mean no filter."""
    if spec is None or isinstance(spec, (Condition, And, Or, Not)):
        return spec
    if not isinstance(spec, dict):
        raise MatryIndexError(f"a filter must be a dict; got {type(spec).__name__}")
    parts: list[Node] = []
    for key, value in spec.items():
        if key in ("$and", "$or"):
            if not isinstance(value, (list, tuple)) or not value:
                raise MatryIndexError(f"{key} needs a non-empty list of filters")
            sub = tuple(p for p in (parse_filter(v) for v in value) if p is not None)
            parts.append(And(sub) if key == "$and" else Or(sub))
        elif key == "$not":
            inner = parse_filter(value)
            if inner is None:
                raise MatryIndexError("$not needs a filter")
            parts.append(Not(inner))
        elif key.startswith("$"):
            raise MatryIndexError(f"unknown filter combinator {key!r}; use $and, $or or $not")
        else:
            parts.append(_parse_field(key, value))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def _compare(op: str, have: Any, want: Any) -> bool:
    if op == "$eq":
        return have == want
    if op == "$ne":
        return have != want
    if op == "$in":
        return have in want
    if op == "$nin":
        return have not in want
    try:
        return have is not None and not isinstance(have, bool) and RANGE_OPS[op](have, want)
    except TypeError:
        return False


def matches(node: Node | None, metadata: dict) -> bool:
    """Whether one record's metadata satisfies the filter tree (missing fields never match,
    except under ``$ne`` / ``$nin``)."""
    if node is None:
        return True
    if isinstance(node, Condition):
        return _compare(node.op, metadata.get(node.field), node.value)
    if isinstance(node, And):
        return all(matches(p, metadata) for p in node.parts)
    if isinstance(node, Or):
        return any(matches(p, metadata) for p in node.parts)
    return not matches(node.part, metadata)
