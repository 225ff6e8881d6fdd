"""Where the FAISS backend keeps its full-dimension vectors: anonymous memory or a mapped file.

A funnel reads the full vectors of a few hundred candidates per query and nothing else, so
they need not be resident at all: only the coarse structure must be in RAM. Two storages
share one small interface (:class:`VectorStorage`) that :class:`.rows.RowStore` calls for the
three things that allocate — growing, compacting, and making a read-only array writable:

* :class:`MemoryStorage` — plain numpy arrays (the default; fastest for indexes that fit).
* :class:`MappedStorage` — the rows live in a file that the kernel pages in on demand. The
  pages a search touches are page cache, reclaimable under memory pressure, not the
  process's anonymous memory. A new index writes to an *unlinked* scratch file in
  ``scratch_dir`` (nothing to clean up, even after a crash); an opened index maps its saved
  ``vectors.npy`` read-only and moves to a scratch file at its first write. Every growth
  reserves its disk blocks with ``posix_fallocate`` first, so a full disk is a clear error at
  the write that needed the space (which then leaves the index as it was), never a ``SIGBUS``
  at a later page fault.
"""
from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Protocol

import numpy as np

from ..._fs import storage_error
from ...errors import InvalidInput, NoSpace, StorageError
from ...kernels import STREAM_ROWS

STORAGES = ("memory", "mmap")


class VectorStorage(Protocol):
    kind: str

    def grow(self, vectors: np.ndarray, n: int, capacity: int) -> np.ndarray:
        """An array of ``capacity`` rows whose first ``n`` rows are those of ``vectors``."""

    def writable(self, vectors: np.ndarray, n: int) -> np.ndarray:
        """``vectors`` itself if it may be written to, else a writable copy of its ``n`` rows."""

    def compacted(self, vectors: np.ndarray, keep: np.ndarray) -> np.ndarray:
        """The rows ``keep`` (increasing) of ``vectors``, in order, at the start of an array."""


class MemoryStorage:
    """Full vectors in anonymous memory."""

    kind = "memory"

    def grow(self, vectors: np.ndarray, n: int, capacity: int) -> np.ndarray:
        out = np.empty((capacity, vectors.shape[1]), vectors.dtype)
        out[:n] = vectors[:n]
        return out

    def writable(self, vectors: np.ndarray, n: int) -> np.ndarray:
        return vectors if vectors.flags.writeable else self.grow(vectors, n, n)

    def compacted(self, vectors: np.ndarray, keep: np.ndarray) -> np.ndarray:
        return vectors[keep]


class MappedStorage:
    """Full vectors in memory-mapped files; scratch files are created in ``scratch_dir``
    (default: the system's temporary directory — on a system whose ``/tmp`` is a RAM disk,
    pass a directory on a real disk, or the vectors stay in RAM after all)."""

    kind = "mmap"

    def __init__(self, scratch_dir: str | Path | None = None):
        self.scratch_dir = Path(scratch_dir) if scratch_dir is not None else Path(tempfile.gettempdir())
        self._file: BinaryIO | None = None   # the scratch file behind ``self._array``
        self._array: np.ndarray | None = None  # the last array this storage handed out

    def _map(self, fh: BinaryIO, capacity: int, dim: int, dtype: np.dtype) -> np.ndarray:
        """Map ``capacity`` rows of ``fh`` after reserving their disk blocks."""
        capacity = max(capacity, 1)
        size = capacity * dim * np.dtype(dtype).itemsize
        try:
            os.posix_fallocate(fh.fileno(), 0, size)
        except OSError as exc:
            kind = NoSpace if exc.errno in (errno.ENOSPC, errno.EDQUOT) else StorageError
            raise kind(f"cannot reserve {size / 2**20:.0f} MiB for the vectors "
                       f"in {self.scratch_dir}: {exc.strerror}; nothing was written") from None
        self._array = np.memmap(fh, dtype, "r+", shape=(capacity, dim))
        return self._array

    def grow(self, vectors: np.ndarray, n: int, capacity: int) -> np.ndarray:
        dim, dtype = vectors.shape[1], vectors.dtype
        if self._file is not None and vectors is self._array:
            return self._map(self._file, capacity, dim, dtype)  # our scratch file: extend it where it is
        try:
            fh = tempfile.TemporaryFile(dir=self.scratch_dir)
        except OSError as exc:
            raise storage_error(exc, f"create the vector file in {self.scratch_dir}") from None
        try:
            out = self._map(fh, capacity, dim, dtype)
        except BaseException:
            fh.close()
            raise
        for s in range(0, n, STREAM_ROWS):
            out[s:min(n, s + STREAM_ROWS)] = vectors[s:min(n, s + STREAM_ROWS)]
        self._file = fh
        return out

    def file_bytes(self, vectors: np.memmap) -> int:
        """Blocks on disk of the file behind ``vectors`` (our scratch file, or a saved file)."""
        try:
            if vectors is self._array and self._file is not None:
                return os.fstat(self._file.fileno()).st_blocks * 512
            return os.stat(vectors.filename).st_blocks * 512
        except (OSError, TypeError, AttributeError):
            return int(vectors.nbytes)

    def writable(self, vectors: np.ndarray, n: int) -> np.ndarray:
        if vectors is self._array:
            return vectors
        return self.grow(vectors, n, n)

    def compacted(self, vectors: np.ndarray, keep: np.ndarray) -> np.ndarray:
        # in place, chunk by chunk: keep is increasing, so every source row of a chunk lies at
        # or after the rows the chunk overwrites, and no chunk reads a row already moved
        vectors = self.writable(vectors, int(keep[-1]) + 1 if len(keep) else 0)
        for s in range(0, len(keep), STREAM_ROWS):
            chunk = keep[s:s + STREAM_ROWS]
            vectors[s:s + len(chunk)] = vectors[chunk]
        return vectors


def vector_storage(kind: str, scratch_dir: str | Path | None = None) -> VectorStorage:
    """The storage named ``kind`` ("memory" or "mmap")."""
    if kind == "memory":
        if scratch_dir is not None:
            raise InvalidInput("scratch_dir is only used with vector_storage='mmap'")
        return MemoryStorage()
    if kind == "mmap":
        return MappedStorage(scratch_dir)
    raise InvalidInput(f"vector_storage must be one of {STORAGES}; got {kind!r}")
