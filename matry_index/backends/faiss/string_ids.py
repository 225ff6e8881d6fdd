"""String ids packed into one buffer: ~10 bytes per record instead of a Python string's ~60.

A RAG app's ids are strings (UUIDs, file paths, chunk names). Kept as a list of Python ``str``
they cost about 50 bytes of object header plus an 8-byte list slot each — more than the 8-bit
codes of a compact index's 128-d vectors. :class:`StringIds` keeps their UTF-8 bytes end to end
in one ``bytearray`` with an offset per row (uint32 until the buffer passes 4 GiB), and a flag per row saying whether the row's id is a
string at all (an int id is its own key, read from the key array the row store already keeps).
"""
from __future__ import annotations

import numpy as np

from ...ids import UserId


class StringIds:
    """The string ids of rows 0..n-1 (rows whose id is an int hold an empty entry)."""

    def __init__(self, int_rows: int = 0):
        self._blob = bytearray()
        self._ends = np.zeros(max(int_rows, 16), np.uint32)   # _ends[r]: where row r's bytes end
        self._is_str = np.zeros(max(int_rows, 16), bool)
        self.n = int(int_rows)

    def _grow(self, need: int) -> None:
        if need <= len(self._ends):
            return
        cap = max(need, 2 * len(self._ends))
        ends, is_str = np.zeros(cap, self._ends.dtype), np.zeros(cap, bool)
        ends[:self.n], is_str[:self.n] = self._ends[:self.n], self._is_str[:self.n]
        self._ends, self._is_str = ends, is_str

    def extend(self, ids: list[UserId]) -> None:
        """Append the ids of the next rows (strings are kept; ints leave an empty entry)."""
        self._grow(self.n + len(ids))
        end = int(self._ends[self.n - 1]) if self.n else 0
        encoded = [uid.encode("utf-8", "surrogatepass") if isinstance(uid, str) else b"" for uid in ids]
        if end + sum(map(len, encoded)) > np.iinfo(self._ends.dtype).max:
            self._ends = self._ends.astype(np.int64)  # past 4 GiB of ids
        for i, (uid, data) in enumerate(zip(ids, encoded)):
            if isinstance(uid, str):
                self._blob += data
                end += len(data)
                self._is_str[self.n + i] = True
            self._ends[self.n + i] = end
        self.n += len(ids)

    def get(self, row: int, key: int) -> UserId:
        """Row ``row``'s id (``key``: its int key, which is the id where the id is an int)."""
        if not self._is_str[row]:
            return int(key)
        start = int(self._ends[row - 1]) if row else 0
        return self._blob[start:int(self._ends[row])].decode("utf-8", "surrogatepass")

    def take(self, rows: list[int], keys: list[int]) -> list[UserId]:
        return [self.get(r, k) for r, k in zip(rows, keys)]

    def select(self, keep: np.ndarray, keys: np.ndarray) -> "StringIds":
        """The ids of rows ``keep`` (increasing), renumbered from 0 (a compaction)."""
        out = StringIds()
        out.extend(self.take(keep.tolist(), keys.tolist()))
        return out

    def nbytes(self) -> int:
        return len(self._blob) + self._ends.nbytes + self._is_str.nbytes
