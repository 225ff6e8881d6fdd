"""Small generated data for the conformance checks: clustered unit vectors with metadata.

Clustered, so that a prefix carries part of a vector's direction (as real embeddings' do) and a
funnel has something to find; small, so that every check runs in well under a second on any
backend; seeded, so that a failure reproduces.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DIM = 32
LEVELS = (8, 16)  # the full dimension is added by the index


@dataclass(frozen=True)
class Corpus:
    ids: list[str]
    vectors: np.ndarray        # (n, DIM) float32, not normalised (the index normalises)
    metadata: list[dict]
    queries: np.ndarray        # (q, DIM) float32

    def exact_ids(self, query: np.ndarray, k: int, keep=None, vectors: np.ndarray | None = None) -> list[str]:
        """The reference answer: the ``k`` ids of highest cosine, computed here in float64 — or,
        given ``vectors`` (one per id: e.g. what a compact index stores of them), of highest
        inner product with them as they are."""
        if vectors is None:
            x = self.vectors.astype(np.float64)
            x /= np.linalg.norm(x, axis=1, keepdims=True)
        else:
            x = vectors.astype(np.float64)
        q = query.astype(np.float64) / np.linalg.norm(query)
        scores = x @ q
        order = [i for i in np.argsort(-scores, kind="stable") if keep is None or keep(self.metadata[i])]
        return [self.ids[i] for i in order[:k]]


def corpus(n: int = 600, queries: int = 12, seed: int = 0) -> Corpus:
    """``n`` records around 12 cluster centres, metadata ``{"n": i % 50, "tag": even/odd}``."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((12, DIM)) * 2.0
    vectors = centres[rng.integers(0, 12, n)] + rng.standard_normal((n, DIM))
    meta = [{"n": i % 50, "tag": "even" if i % 2 == 0 else "odd"} for i in range(n)]
    q = centres[rng.integers(0, 12, queries)] + rng.standard_normal((queries, DIM))
    return Corpus([f"doc-{i}" for i in range(n)], vectors.astype(np.float32), meta, q.astype(np.float32))
