"""Create (or validate) a Qdrant collection for an adaptor, and bulk-load it.

The same as ``matry-index qdrant-setup``. A collection made here has the layout of
:class:`matry_index.backends.qdrant.schema.Layout` (by default the 128-d prefix with an HNSW
graph over int8 codes in RAM, and the full vector on disk) and the adaptor's hash in its
metadata; pointing the function at an existing collection checks that schema and hash instead
of touching it, and refuses a mismatch. Ingest reads ``.npy`` embeddings (raw model output:
the adaptor is applied here), an ``.ids`` file and an optional ``.jsonl`` payload, in chunks
with a progress bar; re-running it upserts, so an interrupted load can simply be repeated.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .errors import InvalidInput
from .inputs import load_matrix, read_jsonl, read_lines
from .adaptor import MatryoshkaAdaptor
from .index import MatryoshkaIndex


def _read_ids(path: Path) -> list[str]:
    ids = read_lines(path, "ids file")
    if not ids:
        raise InvalidInput(f"{path} holds no ids")
    return ids


def setup_collection(*, adaptor: MatryoshkaAdaptor | str | Path | None = None, dim: int | None = None,
                     levels: tuple[int, ...] | None = None, backend: str = "qdrant",
                     embeddings: str | Path | None = None, ids: str | Path | None = None,
                     payload: str | Path | None = None, chunk: int = 10_000,
                     **connection: Any) -> tuple[MatryoshkaIndex, dict]:
    """Create or validate the collection, optionally ingest, and report what is there.

    ``connection`` goes to the backend: ``url``/``api_key``/``collection``/``shard_number``/
    ``replication_factor`` for qdrant-client (or ``path`` / ``location`` for its local mode),
    ``path`` for ``backend="qdrant-edge"``; ``quantization`` / ``on_disk`` / ``codes`` for either,
    and ``full=False`` for a compact collection (only the adaptor's prefix is stored).
    Returns the open index and a report dict.
    """
    if isinstance(adaptor, (str, Path)):
        adaptor = MatryoshkaAdaptor.load(adaptor)
    if adaptor is None and dim is None:
        raise InvalidInput("give an adaptor, or the embedding dimension for an index without one")
    dim = adaptor.dim if adaptor is not None else int(dim)
    index = MatryoshkaIndex(dim, adaptor=adaptor, levels=levels, backend=backend, **connection)
    before = len(index)
    loaded = 0
    if embeddings is not None:
        if ids is None:
            raise InvalidInput("ingest needs --ids next to --embeddings")
        vectors = load_matrix(embeddings, "embeddings", mmap=True)
        if vectors.ndim != 2:
            raise InvalidInput(f"embeddings {embeddings} must be a 2-d array (n, d); got shape {vectors.shape}")
        id_list = _read_ids(Path(ids))
        if len(id_list) != len(vectors):
            raise InvalidInput(f"{ids} has {len(id_list)} ids for {len(vectors)} vectors in {embeddings}")
        meta = read_jsonl(payload) if payload else None
        if meta is not None and len(meta) != len(vectors):
            raise InvalidInput(f"{payload} has {len(meta)} payload lines for {len(vectors)} vectors")
        for s in tqdm(range(0, len(vectors), chunk), desc="ingesting", unit="chunk"):
            e = min(len(vectors), s + chunk)
            index.upsert(id_list[s:e], np.asarray(vectors[s:e]), meta[s:e] if meta else None)
            loaded += e - s
        index.optimize()
    report = {"backend": backend, "where": index.backend.where, "dim": dim,
              "levels": list(index.levels), "compact": not index.full, "codes": index.codes,
              "adaptor_hash": index.adaptor_hash,
              "count_before": before, "ingested": loaded, "count": len(index)}
    return index, report
