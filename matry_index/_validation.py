"""Input checks shared by every public entry point.

Every public function that takes vectors funnels them through :func:`as_matrix` so that a
wrong shape, a NaN or an empty batch fails loudly *before* any state changes.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .errors import InvalidInput


#: array kinds that hold real numbers: floats, signed and unsigned integers, booleans (0 / 1)
_REAL_KINDS = "fiub"


def real_array(x: Any, name: str = "vectors") -> np.ndarray:
    """``x`` as a float32 array of any shape, refusing what has no real-number meaning.

    ``np.asarray(x, dtype=float32)`` would drop the imaginary part of complex numbers (with
    only a warning) and parse strings such as ``"1.5"``; both are refused here instead.
    """
    arr = x if isinstance(x, np.ndarray) else None
    if arr is None:
        try:
            arr = np.asarray(x)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"{name} must be numeric: {exc}") from None
    if arr.dtype.kind not in _REAL_KINDS:
        what = {"c": "complex numbers", "U": "strings", "S": "bytes", "O": "Python objects (ragged or mixed rows?)"}
        raise InvalidInput(f"{name} must hold real numbers; got {what.get(arr.dtype.kind, arr.dtype)}")
    if arr.dtype == np.float32:
        return arr
    try:
        return arr.astype(np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{name} must be numeric: {exc}") from None


def as_matrix(x: Any, *, dim: int | None = None, name: str = "vectors",
              allow_empty: bool = False) -> np.ndarray:
    """Return ``x`` as a C-contiguous float32 (n, d) matrix, or raise a clear error.

    Refuses 1-d input (a single vector must be passed as shape (1, d), so that a batch of
    scalars is never mistaken for one vector), non-finite values, and a dimension other
    than ``dim`` when given.
    """
    arr = real_array(x, name)
    if arr.ndim != 2:
        raise InvalidInput(
            f"{name} must be a 2-d array of shape (n, d); got shape {arr.shape}"
            + (" (reshape a single vector with x[None, :])" if arr.ndim == 1 else ""))
    if arr.shape[0] == 0 and not allow_empty:
        raise InvalidInput(f"{name} is empty: at least one vector is needed")
    if dim is not None and arr.shape[1] != dim:
        raise InvalidInput(f"{name} have dimension {arr.shape[1]}, expected {dim}")
    if arr.shape[1] == 0:
        raise InvalidInput(f"{name} have dimension 0")
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).any(axis=1).sum())
        raise InvalidInput(f"{name} contain NaN or inf in {bad} row(s)")
    return np.ascontiguousarray(arr)


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """L2-normalise each row; all-zero rows stay zero instead of becoming NaN.

    Safe for any finite float32 input: a row whose squares would overflow (``|x| > ~1e19``)
    is first scaled by its largest entry, so a huge vector keeps its direction instead of
    becoming zeros.
    """
    if len(x) == 1:  # one query per search call is the common case: skip linalg.norm's overhead
        norm = float(np.sqrt(x[0] @ x[0]))
        if norm > 0 and np.isfinite(norm):
            return x / norm
        return _normalize_scaled(x)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if not np.isfinite(norms).all():
        return _normalize_scaled(x)
    return x / np.where(norms > 0, norms, 1.0)


def _normalize_scaled(x: np.ndarray) -> np.ndarray:
    scale = np.abs(x).max(axis=1, keepdims=True)
    scaled = x / np.where(scale > 0, scale, 1.0)
    norms = np.linalg.norm(scaled, axis=1, keepdims=True)
    return (scaled / np.where(norms > 0, norms, 1.0)).astype(x.dtype, copy=False)


def unit_rows(x: np.ndarray, name: str = "vectors") -> np.ndarray:
    """``x`` L2-normalised row by row, refusing all-zero rows (no direction, no cosine).

    The norm that normalises is also the zero check, so the common single query pays for one
    dot product; rows whose squares overflow or underflow take :func:`_normalize_scaled`.
    """
    if len(x) == 1:
        sq = float(x[0] @ x[0])
        if 0.0 < sq < float("inf"):
            return x / np.float32(np.sqrt(sq))
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if np.all((norms > 0) & np.isfinite(norms)):
        return x / norms
    out = _normalize_scaled(x)
    zero = ~np.any(out != 0, axis=1)
    if zero.any():
        raise InvalidInput(f"{name} row {int(np.argmax(zero))} is all zeros "
                              f"({int(zero.sum())} such row(s)): a zero vector has no direction to search by")
    return out


def unit_vectors(x: Any, name: str = "vectors", dim: int | None = None) -> np.ndarray:
    """The public boundary's one normalisation: ``x`` checked (:func:`as_matrix`) and made unit
    length row by row (:func:`unit_rows`). Everything past it — the index's adaptor, every
    backend, the advice and benchmark code — may take unit-length rows as given."""
    return np.ascontiguousarray(unit_rows(as_matrix(x, dim=dim, name=name), name))


def check_levels(levels: Any, dim: int) -> tuple[int, ...]:
    """Validate explicit prefix levels against ``dim``: positive, increasing, ≤ dim."""
    out = tuple(int(m) for m in levels)
    if not out:
        raise InvalidInput("levels must not be empty")
    if any(m <= 0 for m in out):
        raise InvalidInput(f"levels must be positive; got {out}")
    if list(out) != sorted(set(out)):
        raise InvalidInput(f"levels must be strictly increasing; got {out}")
    if out[-1] > dim:
        raise InvalidInput(f"level {out[-1]} is larger than the embedding dimension {dim}")
    return out


def clip_levels(levels: Any, dim: int) -> tuple[int, ...]:
    """Levels usable for a ``dim``-d index: those below ``dim``, plus ``dim`` itself.

    Lets one default (64, 128, 256) serve any model: a 6-d embedding gets the single level 6.
    """
    kept = sorted({int(m) for m in levels if 0 < int(m) < dim})
    return tuple(kept + [dim])


def check_int(value: Any, name: str, low: int, high: int) -> int:
    """An option that must be an integer in [low, high] (bools are not integers here)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise InvalidInput(f"{name} must be an integer in [{low}, {high}]; got {value!r}")
    return int(value)


def check_number(value: Any, name: str, low: float, high: float, low_open: bool = False) -> float:
    """An option that must be a finite number in [low, high] (or (low, high] with ``low_open``)."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if not ok or not (low < value if low_open else low <= value) or not value <= high:
        bracket = "(" if low_open else "["
        raise InvalidInput(f"{name} must be a number in {bracket}{low}, {high}]; got {value!r}")
    return float(value)


def check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidInput(f"{name} must be True or False; got {value!r}")
    return bool(value)


def check_choice(value: Any, name: str, choices: tuple) -> Any:
    if value not in choices:
        raise InvalidInput(f"{name} must be one of {choices}; got {value!r}")
    return value
