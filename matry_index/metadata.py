"""Metadata as every backend can store it: JSON values, checked and copied at add time.

A record's metadata is saved as JSON (FAISS's ``records.jsonl``, Qdrant's payload), so a value
JSON cannot hold — a set, a datetime, bytes, NaN — must be refused when it is added, not
discovered by a later ``save()`` that then fails for every record. numpy scalars, which
arrive naturally from numpy code, are converted to the Python number they hold. The stored
copy is a deep copy, so mutating the caller's dict afterwards does not change the index.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .errors import InvalidInput
from .ids import utf8

_INT_RANGE = (-(1 << 63), (1 << 63) - 1)  # Qdrant stores integers as i64
#: how deeply lists and dicts may nest in one metadata entry: far beyond any real payload, and
#: well inside what JSON encoders and the engines' parsers handle (a value that contains itself
#: is caught here too)
MAX_DEPTH = 64


def clean_value(value: Any, where: str, depth: int = 0) -> Any:
    """One metadata value as plain JSON data, or an :class:`InvalidInput` naming ``where``."""
    if depth > MAX_DEPTH:
        raise InvalidInput(f"metadata {where}: nested more than {MAX_DEPTH} levels deep (or it contains itself)")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        utf8(value, f"metadata {where}:")
        return str(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        value = int(value)
        if not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
            raise InvalidInput(f"metadata {where}: integer {value} does not fit in 64 bits")
        return value
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if not math.isfinite(value):
            raise InvalidInput(f"metadata {where}: {value} is not a finite number (JSON cannot store it)")
        return value
    if isinstance(value, (list, tuple)):
        return [clean_value(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return clean_metadata(value, where, depth)
    hint = " (convert it with .tolist())" if isinstance(value, np.ndarray) else ""
    raise InvalidInput(f"metadata {where}: {type(value).__name__} values cannot be stored{hint}; "
                          "use str, int, float, bool, None, lists and dicts of them")


def clean_metadata(metadata: Any, where: str = "entry", depth: int = 0) -> dict:
    """A validated deep copy of one metadata dict (string keys, JSON values)."""
    if not isinstance(metadata, dict):
        raise InvalidInput(f"metadata {where} must be a dict; got {type(metadata).__name__}")
    out = {}
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise InvalidInput(f"metadata {where}: keys must be strings; got {key!r}")
        utf8(key, f"metadata {where}: key")
        out[str(key)] = clean_value(value, f"{where}[{key!r}]", depth + 1)
    return out
