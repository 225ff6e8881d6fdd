"""The FAISS backend's records: parallel arrays addressed by row number.

A row holds one record: its adapted vector (L2-normalised; stored as float32, or as the codes of
:mod:`.row_codes`), its norm at every prefix level (of the vector as stored), its int64 key, a live flag, whether it has metadata, and — in Python lists beside the
arrays — the user's id and metadata. Rows are append-only: a delete or a replacement is a
tombstone (an HNSW graph cannot remove points), and :meth:`RowStore.compact` rewrites the
arrays without the dead rows. This class is the only code that keeps the arrays, the lists
and the key → row map in step.

An append is two steps so a caller can build derived structures on the new rows before they
become visible: :meth:`RowStore.stage` writes them after the last row, then
:meth:`RowStore.commit` makes them the records of their keys (tombstoning what they replace),
or :meth:`RowStore.unstage` forgets them.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ...ids import UserId, key_for
from ...kernels import level_norms
from ..base import Hit, Record
from .keymap import KeyMap
from .row_codes import DecodedRows, RowCodec
from .packed import PackedMetadata, StringIds
from .vector_storage import MemoryStorage, VectorStorage


class RowStore:
    """Records of ``dim``-d vectors with prefix norms at ``levels``; the vectors' array is
    allocated by ``storage`` (anonymous memory by default, or a memory-mapped file) and holds
    them as ``codec`` encodes them (float32 by default)."""

    def __init__(self, dim: int, levels: tuple[int, ...], storage: VectorStorage | None = None,
                 codec: RowCodec | None = None):
        self.dim, self.levels = int(dim), tuple(levels)
        #: the levels whose norms a row keeps: the middle ones, which a search rescores by prefix
        #: cosine (the coarse prefix's norm is only needed to build the coarse index, and a stored
        #: row is unit length as a whole)
        self.norm_levels = self.levels[1:-1]
        self.storage = storage or MemoryStorage()
        self.codec = codec or RowCodec("float32", self.dim)
        self.vectors = np.empty((0, self.dim), np.float32)
        self.norms = np.empty((0, len(self.norm_levels)), np.float32)
        self.keys = np.empty(0, np.int64)
        self.live = np.empty(0, bool)
        self.has_meta = np.empty(0, bool)
        self.n = 0                               # rows in use, dead ones included
        self.meta = PackedMetadata()             # metadata of rows 0..n-1, as compact JSON
        self._strings: StringIds | None = None  # string ids of rows 0..n-1; None while every id is an int
        self.row_of = KeyMap()
        self.version = 0                         # bumped by every change of the records

    @classmethod
    def from_records(cls, dim: int, levels: tuple[int, ...], ids: list[UserId], metadata: list[dict],
                     vectors: np.ndarray, storage: VectorStorage | None = None,
                     codec: RowCodec | None = None) -> "RowStore":
        """A store holding saved records (``vectors`` already normalised and encoded as
        ``codec`` stores them, possibly a read-only mapping that ``storage`` replaces at the
        first write), all live."""
        store = cls(dim, levels, storage, codec)
        n = len(ids)
        store.vectors, store.n = vectors, n
        store.norms = level_norms(store.matrix, store.norm_levels)
        store.keys = np.fromiter((key_for(i) for i in ids), np.int64, count=n)
        store.live = np.ones(n, bool)
        store._set_records(ids, metadata)
        return store

    def _set_records(self, ids: list[UserId], meta: list[dict | None]) -> None:
        """Rebuild everything derived from the rows' keys, ids and metadata (rows 0..n-1 live).

        Ids are not kept as Python objects: an int id is its own key, and string ids are packed
        (:class:`.packed.StringIds`), nor is metadata (:class:`.packed.PackedMetadata`); at a
        million records Python objects for them cost more than the arrays."""
        self.meta = PackedMetadata(meta)
        self.has_meta = np.fromiter((bool(m) for m in meta), bool, count=len(meta))
        self._strings = None
        if not all(isinstance(i, int) for i in ids):
            self._strings = StringIds()
            self._strings.extend(ids)
        self.row_of = KeyMap.of_rows(self.keys[:self.n])
        self.version += 1

    # --- ids ------------------------------------------------------------------------------
    @property
    def int_ids(self) -> bool:
        """Every id is an int, hence its own key: ids are read from the key array."""
        return self._strings is None

    def id_of(self, row: int) -> UserId:
        key = int(self.keys[row])
        return key if self._strings is None else self._strings.get(row, key)

    def ids_of(self, rows: np.ndarray) -> list[UserId]:
        """The ids of ``rows`` (row numbers below n)."""
        keys = self.keys.take(rows).tolist()
        return keys if self._strings is None else self._strings.take(np.asarray(rows).tolist(), keys)

    @property
    def ids(self) -> list[UserId]:
        """The ids of rows 0..n-1, dead ones included (a new list)."""
        return self.ids_of(np.arange(self.n))

    def ids_nbytes(self) -> int:
        """Bytes the packed string ids hold (0 while every id is an int)."""
        return 0 if self._strings is None else self._strings.nbytes()

    # --- the vectors ----------------------------------------------------------------------
    @property
    def matrix(self) -> np.ndarray | DecodedRows:
        """Rows 0..n-1 as float32 for the search kernels (a decoding view of coded rows)."""
        stored = self.vectors[: self.n]
        return stored if stored.dtype == np.float32 else DecodedRows(stored, self.codec)

    @property
    def encoded(self) -> bool:
        """Whether the rows are held as the codec's codes (an 8-bit codec trains first)."""
        return self.vectors.dtype == self.codec.dtype

    def _encode_all(self, incoming: np.ndarray) -> None:
        """Train the codec on the stored rows and ``incoming`` ones, then hold every stored row
        as codes (the one time rows change form: when an 8-bit index reaches its training size)."""
        stored = np.asarray(self.vectors[: self.n], np.float32)
        self.codec.train(np.concatenate([stored, incoming]))
        coded = self.codec.encode(stored)
        self.vectors = self.storage.grow(coded, self.n, max(len(self.vectors), 1))
        self.norms[: self.n] = level_norms(self.codec.decode(coded), self.norm_levels)

    # --- size -----------------------------------------------------------------------------
    def __len__(self) -> int:
        """Live records."""
        return len(self.row_of)

    @property
    def dead(self) -> int:
        return self.n - len(self.row_of)

    def row(self, key: int) -> int | None:
        return self.row_of.get(int(key))

    # --- writes ---------------------------------------------------------------------------
    def _reserve(self, extra: int, incoming: np.ndarray) -> None:
        """Room for ``extra`` more rows. The vectors' capacity is the storage's own (a mapped
        file keeps its length through a compaction), the small arrays' is theirs: each grows
        when it is short, by doubling."""
        need = self.n + extra
        if not self.encoded and self.codec.ready_for(need):
            self._encode_all(incoming)
        # the vectors first: the only allocation that can fail for want of disk space
        if need <= len(self.vectors):
            self.vectors = self.storage.writable(self.vectors, self.n)
        else:
            self.vectors = self.storage.grow(self.vectors, self.n, max(need, 2 * len(self.vectors), 1024))
        if need <= len(self.keys):
            return
        cap = max(need, 2 * len(self.keys), 1024)

        def grow(arr: np.ndarray) -> np.ndarray:
            out = np.empty((cap,) + arr.shape[1:], arr.dtype)
            out[: self.n] = arr[: self.n]
            return out
        self.norms, self.keys, self.live, self.has_meta = map(
            grow, (self.norms, self.keys, self.live, self.has_meta))

    def stage(self, keys: np.ndarray, vectors: np.ndarray, metadata: list[dict]) -> slice:
        """Write rows after the last one (not yet the records of their keys); their slice."""
        old_n = self.n
        self._reserve(len(keys), vectors)
        rows = slice(old_n, old_n + len(keys))
        if self.encoded:
            coded = self.codec.encode(vectors)
            self.vectors[rows], self.norms[rows] = coded, level_norms(self.codec.decode(coded), self.norm_levels)
        else:
            self.vectors[rows], self.norms[rows] = vectors, level_norms(vectors, self.norm_levels)
        self.keys[rows], self.live[rows] = keys, True
        self.has_meta[rows] = [bool(m) for m in metadata]
        self.n = rows.stop
        return rows

    def unstage(self, rows: slice) -> None:
        """Forget rows written by :meth:`stage` and not committed."""
        self.n = rows.start

    def commit(self, rows: slice, ids: list[UserId], metadata: list[dict]) -> None:
        """Make staged rows the records of their keys; rows they replace become tombstones."""
        keys = self.keys[rows]
        replaced = self.row_of.lookup(keys)
        self.live[replaced[replaced >= 0]] = False
        self.row_of.assign(keys, np.arange(rows.start, rows.stop))
        if self._strings is None and not all(isinstance(i, int) for i in ids):
            self._strings = StringIds(int_rows=rows.start)
        if self._strings is not None:
            self._strings.extend(ids)
        self.meta.extend(metadata)
        self.version += 1

    def tombstone(self, keys: Iterable[int]) -> None:
        """Delete the records of ``keys`` (unknown keys are ignored)."""
        rows = [r for r in (self.row_of.pop(int(k)) for k in keys) if r is not None]
        self.live[rows] = False
        self.version += 1

    def compact(self) -> None:
        """Rewrite the arrays without tombstoned rows (row numbers change)."""
        keep = np.flatnonzero(self.live[: self.n])
        ids, meta = self.ids_of(keep), [self.metadata_of(r) for r in keep.tolist()]  # read before the rows move
        self.vectors, self.norms = self.storage.compacted(self.vectors, keep), self.norms[keep].copy()
        self.keys, self.live = self.keys[keep].copy(), np.ones(len(keep), bool)
        self.n = len(keep)
        self._set_records(ids, meta)

    # --- reads ----------------------------------------------------------------------------
    def record(self, key: int) -> Record | None:
        row = self.row_of.get(int(key))
        if row is None:
            return None
        vector = np.array(self.codec.decode(self.vectors[row:row + 1])[0], np.float32)
        return Record(self.id_of(row), vector, self.metadata_of(row))

    def metadata_list(self) -> list[dict | None]:
        """The metadata of rows 0..n-1 in order (None where a row has none)."""
        return [self.metadata_of(r) if self.has_meta[r] else None for r in range(self.n)]

    def metadata_of(self, row: int) -> dict:
        """Row ``row``'s metadata, a new dict the caller may keep."""
        return self.meta.get(row) if self.has_meta[row] else {}

    def hits(self, rows: np.ndarray, scores: np.ndarray) -> list[Hit]:
        """Hits for result rows (-1 = none).

        Touches as few scattered Python objects as it can: right after a search has streamed
        through the index each one is a cache miss, and for one query these misses cost
        more than the rest of the Python around the search. Int ids are read from the packed
        key array (an int id is its own key), metadata only where a record has some.
        """
        row_list = rows.tolist()
        keys = self.keys.take(rows).tolist()
        ids = keys if self._strings is None else self._strings.take(row_list, keys)
        meta = self.meta
        return [Hit(i, s, meta.get(r) if m else {}) for i, r, s, m in
                zip(ids, row_list, scores.tolist(), self.has_meta.take(rows).tolist()) if r >= 0]
