"""Key → row lookup in 12 bytes per record instead of a Python dict's ~110.

A dict of a million int keys to int rows holds two int objects and a hash slot per record:
about 110 bytes each, more than the coarse index of a memory-tier FAISS backend. :class:`KeyMap`
keeps the bulk of the map as a sorted int64 key array (binary search) beside the rows as int32
(int64 only once an index passes two billion rows), and the changes since the
last merge in a small dict that is folded into the arrays once it grows past a fraction of them
(so a stream of small adds costs amortised O(log n) each, a bulk add one sort).
"""
from __future__ import annotations

import sys

import numpy as np

MERGE_AT = 4096     # changes kept in the dict before they are folded in, at the least ...
MERGE_FRACTION = 8  # ... or one per this many merged keys


def row_numbers(rows: np.ndarray) -> np.ndarray:
    """``rows`` in the narrowest integer type that holds them: int32 below 2**31, else int64
    (row numbers are most of a compact index's bookkeeping)."""
    rows = np.asarray(rows)
    dtype = np.int32 if not len(rows) or int(rows.max()) < np.iinfo(np.int32).max else np.int64
    return rows.astype(dtype, copy=False)


class KeyMap:
    """A mapping of int64 keys to rows, with dict-like ``get``/``pop``/``len``."""

    def __init__(self) -> None:
        self._keys = np.empty(0, np.int64)    # sorted, unique
        self._rows = np.empty(0, np.int32)    # row of each key in ``_keys`` (see :func:`row_numbers`)
        self._changes: dict[int, int | None] = {}  # newer than the arrays; None = deleted
        self._len = 0

    @classmethod
    def of_rows(cls, keys: np.ndarray) -> "KeyMap":
        """The map of ``keys[r]`` → ``r`` (keys unique)."""
        out = cls()
        order = np.argsort(keys, kind="stable")
        out._keys, out._rows = np.ascontiguousarray(keys[order], np.int64), row_numbers(order)
        out._len = len(keys)
        return out

    def __len__(self) -> int:
        return self._len

    def nbytes(self) -> int:
        """Bytes held: the two arrays and the dict of recent changes."""
        return self._keys.nbytes + self._rows.nbytes + sys.getsizeof(self._changes)

    def _merged_row(self, key: int) -> int | None:
        i = int(np.searchsorted(self._keys, key))
        if i < len(self._keys) and self._keys[i] == key:
            return int(self._rows[i])
        return None

    def get(self, key: int) -> int | None:
        if key in self._changes:
            return self._changes[key]
        return self._merged_row(key)

    def __contains__(self, key: int) -> bool:
        return self.get(key) is not None

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """The row of each of ``keys``, -1 where a key is not there (vectorised :meth:`get`)."""
        keys = np.asarray(keys, np.int64)
        rows = np.full(len(keys), -1, np.int64)
        if len(self._keys):
            i = np.minimum(np.searchsorted(self._keys, keys), len(self._keys) - 1)
            found = self._keys[i] == keys
            rows[found] = self._rows[i[found]]
        if self._changes:
            for j, k in enumerate(keys.tolist()):
                if k in self._changes:
                    row = self._changes[k]
                    rows[j] = -1 if row is None else row
        return rows

    def assign(self, keys: np.ndarray, rows: np.ndarray) -> None:
        """Map each of ``keys`` (unique) to its row, replacing what they mapped to."""
        if len(keys) > MERGE_AT:  # a bulk add: one merge, no dict entries
            self._fold()
            present = np.isin(self._keys, keys)
            new_keys = np.concatenate([self._keys[~present], keys.astype(np.int64)])
            new_rows = np.concatenate([self._rows[~present], rows.astype(np.int64)])
            order = np.argsort(new_keys, kind="stable")
            self._keys, self._rows, self._len = new_keys[order], row_numbers(new_rows[order]), len(new_keys)
            return
        for k, r in zip(keys.tolist(), rows.tolist()):
            if self.get(k) is None:
                self._len += 1
            self._changes[k] = r
        self._maybe_fold()

    def pop(self, key: int) -> int | None:
        """Remove ``key``; its row, or None when it was not there."""
        row = self.get(key)
        if row is not None:
            self._changes[key] = None
            self._len -= 1
            self._maybe_fold()
        return row

    def _maybe_fold(self) -> None:
        if len(self._changes) > max(MERGE_AT, len(self._keys) // MERGE_FRACTION):
            self._fold()

    def _fold(self) -> None:
        """Apply the dict of changes to the sorted arrays."""
        if not self._changes:
            return
        changed = np.fromiter(self._changes, np.int64, count=len(self._changes))
        live = [(k, r) for k, r in self._changes.items() if r is not None]
        keep = ~np.isin(self._keys, changed)
        keys = np.concatenate([self._keys[keep], np.array([k for k, _ in live], np.int64)])
        rows = np.concatenate([self._rows[keep], np.array([r for _, r in live], np.int64)])
        order = np.argsort(keys, kind="stable")
        self._keys, self._rows, self._changes = keys[order], row_numbers(rows[order]), {}
