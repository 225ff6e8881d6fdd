"""Per-row strings and metadata packed into one buffer: a few bytes of overhead per record
instead of a Python object's 50–200.

A RAG app's ids are strings (UUIDs, file paths, chunk names) and its records carry small
metadata dicts. Kept as Python objects, an id costs about 60 bytes and a one-field dict about
200 — more than the 8-bit codes of a compact index's 128-d vectors. Both are kept here as UTF-8
bytes end to end in one ``bytearray`` with an end offset per row (uint32 until the buffer
passes 4 GiB): :class:`StringIds` with a flag per row saying whether its id is a string at all
(an int id is its own key, read from the key array the row store already keeps), and
:class:`PackedMetadata` as compact JSON, decoded when a hit or a filter reads it (metadata is
checked as JSON when it is added, so the round trip gives back what was stored).
"""
from __future__ import annotations

import json

import numpy as np

from ...ids import UserId


class PackedBytes:
    """The byte strings of rows 0..n-1, end to end (no offsets at all while every row's is
    empty: an index without metadata pays nothing for it)."""

    def __init__(self, empty_rows: int = 0):
        self._blob = bytearray()
        self._ends: np.ndarray | None = None   # _ends[r]: where row r's bytes end; None: all empty
        self.n = int(empty_rows)

    def _grow(self, need: int, extra_bytes: int) -> None:
        if self._ends is None:
            self._ends = np.zeros(max(need, 16), np.uint32)
        end = int(self._ends[self.n - 1]) if self.n else 0
        dtype = np.int64 if end + extra_bytes > np.iinfo(np.uint32).max else self._ends.dtype
        if need > len(self._ends) or dtype != self._ends.dtype:
            ends = np.zeros(max(need, 2 * len(self._ends)), dtype)
            ends[:self.n] = self._ends[:self.n]
            self._ends = ends

    def extend(self, items: list[bytes]) -> None:
        """Append the next rows' bytes (``b""`` for a row with none)."""
        size = sum(map(len, items))
        if self._ends is None and size == 0:
            self.n += len(items)
            return
        self._grow(self.n + len(items), size)
        start = int(self._ends[self.n - 1]) if self.n else 0
        self._blob += b"".join(items)
        self._ends[self.n:self.n + len(items)] = start + np.cumsum([len(b) for b in items], dtype=np.int64)
        self.n += len(items)

    def get(self, row: int) -> bytes:
        if self._ends is None:
            return b""
        start = int(self._ends[row - 1]) if row else 0
        return bytes(self._blob[start:int(self._ends[row])])

    def nbytes(self) -> int:
        return len(self._blob) + (0 if self._ends is None else self._ends.nbytes)


class StringIds:
    """The string ids of rows 0..n-1 (rows whose id is an int hold an empty entry)."""

    def __init__(self, int_rows: int = 0):
        self._bytes = PackedBytes(int_rows)
        self._is_str = np.zeros(max(int_rows, 16), bool)

    def extend(self, ids: list[UserId]) -> None:
        """Append the ids of the next rows (strings are kept; ints leave an empty entry)."""
        n = self._bytes.n
        if n + len(ids) > len(self._is_str):
            is_str = np.zeros(max(n + len(ids), 2 * len(self._is_str)), bool)
            is_str[:n] = self._is_str[:n]
            self._is_str = is_str
        self._is_str[n:n + len(ids)] = [isinstance(uid, str) for uid in ids]
        self._bytes.extend([uid.encode("utf-8", "surrogatepass") if isinstance(uid, str) else b"" for uid in ids])

    def get(self, row: int, key: int) -> UserId:
        """Row ``row``'s id (``key``: its int key, which is the id where the id is an int)."""
        if not self._is_str[row]:
            return int(key)
        return self._bytes.get(row).decode("utf-8", "surrogatepass")

    def take(self, rows: list[int], keys: list[int]) -> list[UserId]:
        return [self.get(r, k) for r, k in zip(rows, keys)]

    def nbytes(self) -> int:
        return self._bytes.nbytes() + self._is_str.nbytes


class PackedMetadata:
    """The metadata dicts of rows 0..n-1 as compact JSON (an empty entry: no metadata)."""

    def __init__(self, metadata: list[dict | None] | None = None):
        self._bytes = PackedBytes()
        if metadata:
            self.extend(metadata)

    def extend(self, metadata: list[dict | None]) -> None:
        self._bytes.extend([json.dumps(m, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
                            if m else b"" for m in metadata])

    def get(self, row: int) -> dict:
        """Row ``row``'s metadata, a new dict ({} where it has none)."""
        data = self._bytes.get(row)
        return json.loads(data.decode("utf-8", "surrogatepass")) if data else {}

    def nbytes(self) -> int:
        return self._bytes.nbytes()
