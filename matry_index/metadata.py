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

from ._validation import MatryIndexError

_INT_RANGE = (-(1 << 63), (1 << 63) - 1)  # Qdrant stores integers as i64


def clean_value(value: Any, where: str) -> Any:
    """One metadata value as plain JSON data, or a :class:`MatryIndexError` naming ``where``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        value = int(value)
        if not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
            raise MatryIndexError(f"metadata {where}: integer {value} does not fit in 64 bits")
        return value
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if not math.isfinite(value):
            raise MatryIndexError(f"metadata {where}: {value} is not a finite number (JSON cannot store it)")
        return value
    if isinstance(value, np.str_):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [clean_value(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return clean_metadata(value, where)
    hint = " (convert it with .tolist())" if isinstance(value, np.ndarray) else ""
    raise MatryIndexError(f"metadata {where}: {type(value).__name__} values cannot be stored{hint}; "
                          "use str, int, float, bool, None, lists and dicts of them")


def clean_metadata(metadata: Any, where: str = "entry") -> dict:
    """A validated deep copy of one metadata dict (string keys, JSON values)."""
    if not isinstance(metadata, dict):
        raise MatryIndexError(f"metadata {where} must be a dict; got {type(metadata).__name__}")
    out = {}
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise MatryIndexError(f"metadata {where}: keys must be strings; got {key!r}")
        out[key] = clean_value(value, f"{where}[{key!r}]")
    return out
