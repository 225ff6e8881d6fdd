"""Metadata filters: one small language, compiled to each backend.

A filter is a dict in the style most vector stores accept::

    {"lang": "en"}                                  # equality
    {"year": {"$gte": 2020, "$lt": 2024}}           # ranges ($gt, $gte, $lt, $lte)
    {"tag": {"$in": ["a", "b"]}}                    # membership ($in, $nin), inequality ($ne)
    {"$and": [f1, f2]}, {"$or": [f1, f2]}, {"$not": f}

Several keys at the top level are combined with AND. :func:`parse_filter` turns it into a
tree of :class:`Condition`, :class:`And`, :class:`Or`, :class:`Not`; :func:`matches` evaluates
the tree on a metadata dict (FAISS), and the Qdrant backends translate the same tree. The
semantics — numbers by value, lists match when any element does, dotted keys are nested
paths, ``None`` means missing/null/empty — are written down once in ``docs/filters.md``, and
every backend follows them (the cross-backend tests check it).
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any, Union

from .errors import InvalidInput
from .ids import utf8

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


SCALARS = (str, int, float, bool, type(None))


def _check_field(field: Any) -> str:
    if not isinstance(field, str) or not field or any(not part for part in field.split(".")):
        raise InvalidInput(f"filter field names must be non-empty strings (dots separate nested keys); "
                              f"got {field!r}")
    if "[" in field or "]" in field:
        raise InvalidInput(f"filter field {field!r}: array paths ([]) are not supported; a condition on "
                           "a list field already matches when any element does")
    utf8(field, "filter field")
    return field


def _check_scalar(field: str, op: str, value: Any) -> Any:
    if not isinstance(value, SCALARS):
        hint = " (use $in for a list of values)" if isinstance(value, (list, tuple, set)) else ""
        raise InvalidInput(f"{op} for {field!r} needs a string, number, bool or None; got {value!r}{hint}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput(f"{op} for {field!r} needs a finite number; got {value!r}")
    if isinstance(value, str):
        utf8(value, f"{op} for {field!r}:")
    return value


def _parse_field(field: str, spec: Any) -> Node:
    field = _check_field(field)
    if not isinstance(spec, dict):
        return Condition(field, "$eq", _check_scalar(field, "$eq", spec))
    if not spec:
        raise InvalidInput(f"empty condition for field {field!r}")
    parts = []
    for op, value in spec.items():
        if op not in OPS:
            raise InvalidInput(f"unknown filter operator {op!r} for {field!r}; use one of {sorted(OPS)} "
                                  "(nested keys are written with dots: {'a.b': 1})")
        if op in ("$in", "$nin"):
            if not isinstance(value, (list, tuple, set)):
                raise InvalidInput(f"{op} for {field!r} needs a list; got {value!r}")
            value = [_check_scalar(field, op, v) for v in value]
        elif op in RANGE_OPS:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise InvalidInput(f"{op} for {field!r} needs a finite number; got {value!r}")
        else:
            _check_scalar(field, op, value)
        parts.append(Condition(field, op, value))
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def parse_filter(spec: dict | Node | None) -> Node | None:
    """Parse a filter dict (see module docstring); ``None`` and ``{}`` mean no filter."""
    if spec is None or isinstance(spec, (Condition, And, Or, Not)):
        return spec
    if not isinstance(spec, dict):
        raise InvalidInput(f"a filter must be a dict; got {type(spec).__name__}")
    parts: list[Node] = []
    for key, value in spec.items():
        if key in ("$and", "$or"):
            if not isinstance(value, (list, tuple)) or not value:
                raise InvalidInput(f"{key} needs a non-empty list of filters")
            sub = tuple(p for p in (parse_filter(v) for v in value) if p is not None)
            if not sub:
                raise InvalidInput(f"{key} needs at least one non-empty filter")
            parts.append(And(sub) if key == "$and" else Or(sub))
        elif key == "$not":
            inner = parse_filter(value)
            if inner is None:
                raise InvalidInput("$not needs a filter")
            parts.append(Not(inner))
        elif isinstance(key, str) and key.startswith("$"):
            raise InvalidInput(f"unknown filter combinator {key!r}; use $and, $or or $not")
        else:
            parts.append(_parse_field(key, value))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def field_values(metadata: dict, field: str) -> list[Any]:
    """The values a condition on ``field`` looks at: the elements of a list, a scalar as a
    one-element list, nothing for a missing or null field. Dots walk nested dicts."""
    value: Any = metadata
    for part in field.split("."):
        if not isinstance(value, dict):
            return []
        value = value.get(part)
    if value is None:
        return []
    if isinstance(value, list):
        return [v for v in value if v is not None]
    return [value]


def values_equal(have: Any, want: Any) -> bool:
    """Equality as every backend applies it: numbers by value (2003 == 2003.0), bools only
    equal bools, strings only strings."""
    if isinstance(want, bool) or isinstance(have, bool):
        return isinstance(want, bool) and isinstance(have, bool) and have == want
    if isinstance(want, (int, float)):
        return isinstance(have, (int, float)) and have == want
    return isinstance(have, str) and isinstance(want, str) and have == want


def _any_equal(values: list[Any], wanted: list[Any]) -> bool:
    if None in wanted and not values:
        return True
    return any(values_equal(v, w) for v in values for w in wanted if w is not None)


def _holds(op: str, values: list[Any], want: Any) -> bool:
    if op == "$eq":
        return _any_equal(values, [want])
    if op == "$ne":
        return not _any_equal(values, [want])
    if op == "$in":
        return _any_equal(values, want)
    if op == "$nin":
        return not _any_equal(values, want)
    compare = RANGE_OPS[op]
    return any(compare(v, want) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool))


def matches(node: Node | None, metadata: dict) -> bool:
    """Whether one record's metadata satisfies the filter tree (see ``docs/filters.md``)."""
    if node is None:
        return True
    if isinstance(node, Condition):
        return _holds(node.op, field_values(metadata, node.field), node.value)
    if isinstance(node, And):
        return all(matches(p, metadata) for p in node.parts)
    if isinstance(node, Or):
        return any(matches(p, metadata) for p in node.parts)
    return not matches(node.part, metadata)
