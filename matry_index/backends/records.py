"""The on-disk form of a set of records, for backends that live in memory.

``vectors.npy`` (float32, one adapted full-dimension vector per row, no pickled objects) and
``records.jsonl`` (one ``{"id": ..., "metadata": {...}}`` per row, same order; ``metadata``
left out where a record has none, so that a save without metadata costs its ids and little else). FAISS saves
itself this way, and so does a Qdrant local-mode collection held in memory: both are plain
data, safe to open from anyone, and the index's manifest checksums cover them.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..errors import Corrupt, InvalidInput
from ..ids import UserId, keys_for
from ..metadata import clean_metadata
from ..kernels import STREAM_ROWS

VECTORS_FILE = "vectors.npy"
RECORDS_FILE = "records.jsonl"


def write_records(directory: Path, ids: Iterable[UserId], metadata: Iterable[dict | None],
                  vectors: np.ndarray) -> None:
    """Write the rows into ``directory`` (the caller makes the directory write atomic)."""
    if vectors.dtype not in (np.float32, np.float16, np.uint8):
        vectors = vectors.astype(np.float32)
    np.save(directory / VECTORS_FILE, np.ascontiguousarray(vectors), allow_pickle=False)
    with (directory / RECORDS_FILE).open("w", encoding="utf-8") as fh:
        for uid, meta in zip(ids, metadata):
            record = {"id": uid, "metadata": meta} if meta else {"id": uid}
            fh.write(json.dumps(record, allow_nan=False, ensure_ascii=False, separators=(",", ":")) + "\n")


def _no_constants(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def read_records(directory: Path, dim: int, mmap: bool = False,
                 dtype: type = np.float32) -> tuple[list[UserId], list[dict], np.ndarray]:
    """(ids, metadata, vectors) written by :func:`write_records`, or :class:`Corrupt`.

    Everything is checked as if a user had passed it to ``add``: ids (unique, str or int),
    metadata (JSON values only: ``NaN`` and ``Infinity`` are refused), vectors (finite, the
    right shape and ``dtype``: float32, or the float16 / 8-bit codes of a compact FAISS index).
    ``mmap``: the vectors come back as a read-only memory map of the file
    instead of an array in RAM (checked a block at a time, so the check does not load them)."""
    try:
        vectors = np.load(directory / VECTORS_FILE, allow_pickle=False, mmap_mode="r" if mmap else None)
        lines = (directory / RECORDS_FILE).read_text(encoding="utf-8").splitlines()
        records = [json.loads(line, parse_constant=_no_constants) for line in lines]
        ids = [r["id"] for r in records]
        metadata = [r.get("metadata") or {} for r in records]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise Corrupt(f"{directory}: cannot read the saved records: {exc!r}") from None
    if vectors.ndim != 2 or vectors.shape != (len(records), dim) or vectors.dtype != dtype:
        raise Corrupt(f"{directory}: {len(records)} records of {dim}-d vectors expected, "
                      f"found vectors of shape {vectors.shape} ({vectors.dtype})")
    if mmap and not vectors.flags.c_contiguous:
        raise Corrupt(f"{directory}: the saved vectors are not stored row by row (C order)")
    if vectors.dtype != np.uint8 and not all(np.isfinite(vectors[s:s + STREAM_ROWS]).all()
                                             for s in range(0, len(vectors), STREAM_ROWS)):
        raise Corrupt(f"{directory}: the saved vectors hold NaN or inf")
    try:
        _, keys = keys_for([i if isinstance(i, (str, int)) and not isinstance(i, bool) else None for i in ids])
        metadata = [clean_metadata(m, f"entry {n}") for n, m in enumerate(metadata)]
    except InvalidInput as exc:
        raise Corrupt(f"{directory}: the saved records are invalid: {exc}") from None
    return ids, metadata, vectors if mmap else np.ascontiguousarray(vectors)
