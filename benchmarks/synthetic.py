"""A generator of realistic embeddings at any scale, fitted to a real embedding set.

There is no real million-embedding set on these machines, so the scale benchmark draws one
from a model fitted to real vectors (SciFact MiniLM, raw or adapted):

* **clustering** — k-means (FAISS) with ``n_clusters`` (1024) centroids on the L2-normalised
  real vectors; a sample picks a centroid with the real cluster frequencies;
* **spectrum** — the residuals (vector − its centroid) get one shared full covariance, whose
  Cholesky factor shapes standard-normal noise, so every coordinate's variance and every
  correlation (hence how fast the prefix captures the vector) follows the real set;
* the sum is L2-normalised, as real embeddings are;
* **query distance** — the query residual is scaled (bisection) so that, at the real set's
  size, a generated query's nearest document is as close (mean cosine) as a real query's.
  The document model is left as fitted, so the base keeps the real spectrum exactly.

Queries are drawn the same way from a second fit — real *queries* assigned to the document
centroids, with their own cluster frequencies and residual covariance — and their own seed,
so none is in the base and their offset from the documents is the real one. The fitted
model reports how close it is: per-coordinate variance of real vs generated vectors, and the
mean top-1 cosine of generated queries to the base vs real queries to the real corpus.
"""
from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np


def _normalize(v: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(v / np.linalg.norm(v, axis=1, keepdims=True), dtype=np.float32)


def _residual_model(x: np.ndarray, centroids: np.ndarray, index) -> tuple[np.ndarray, np.ndarray]:
    _, assign = index.search(x, 1)
    assign = assign[:, 0]
    residual = x - centroids[assign]
    cov = np.cov(residual, rowvar=False).astype(np.float64)
    cov += 1e-6 * np.trace(cov) / len(cov) * np.eye(len(cov))
    weights = np.bincount(assign, minlength=len(centroids)).astype(np.float64) + 1e-3
    return weights / weights.sum(), np.linalg.cholesky(cov).astype(np.float32)


def _top1(queries: np.ndarray, base: np.ndarray) -> float:
    """Mean cosine of each query's nearest base vector (self-matches excluded)."""
    sims = queries @ base.T
    if queries is base:
        np.fill_diagonal(sims, -np.inf)
    return float(sims.max(axis=1).mean())


@dataclass
class EmbeddingGenerator:
    centroids: np.ndarray      # (c, d)
    weights: np.ndarray        # (c,) document cluster frequencies
    chol: np.ndarray           # (d, d) Cholesky factor of the document residual covariance
    query_weights: np.ndarray  # the same two for queries
    query_chol: np.ndarray

    @classmethod
    def fit(cls, vectors: np.ndarray, queries: np.ndarray, n_clusters: int = 1024,
            seed: int = 0, calibrate: bool = True) -> "EmbeddingGenerator":
        """Fit clusters and residual covariances; with ``calibrate``, scale the query residual
        so that a generated query's nearest document is as close (mean cosine) as a real
        query's is in the real corpus, at the real corpus's size."""
        x, q = _normalize(vectors), _normalize(queries)
        km = faiss.Kmeans(x.shape[1], n_clusters, niter=25, seed=seed, verbose=False)
        km.train(x)
        w, chol = _residual_model(x, km.centroids, km.index)
        qw, qchol = _residual_model(q, km.centroids, km.index)
        gen = cls(km.centroids.copy(), w, chol, qw, qchol)
        if calibrate:
            gen = gen._calibrated(x, q, seed)
        return gen

    def _calibrated(self, x: np.ndarray, q: np.ndarray, seed: int) -> "EmbeddingGenerator":
        target = _top1(q[:1000], x)
        docs = self.sample(len(x), seed)

        def query_top1(scale: float) -> float:
            g = EmbeddingGenerator(self.centroids, self.query_weights, self.query_chol * scale,
                                   self.query_weights, self.query_chol)
            return _top1(g.sample(min(len(q), 1000), seed + 1), docs)
        lo, hi = 0.05, 1.5  # a larger residual puts queries farther from every document
        for _ in range(14):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if query_top1(mid) > target else (lo, mid)
        return EmbeddingGenerator(self.centroids, self.weights, self.chol,
                                  self.query_weights, self.query_chol * (lo + hi) / 2)

    def sample_queries(self, n: int, seed: int) -> np.ndarray:
        return EmbeddingGenerator(self.centroids, self.query_weights, self.query_chol,
                                  self.query_weights, self.query_chol).sample(n, seed)

    def sample(self, n: int, seed: int, batch: int = 100_000) -> np.ndarray:
        rng = np.random.default_rng(seed)
        d = self.centroids.shape[1]
        out = np.empty((n, d), np.float32)
        for s in range(0, n, batch):
            m = min(batch, n - s)
            c = rng.choice(len(self.weights), size=m, p=self.weights)
            z = rng.standard_normal((m, d), dtype=np.float32)
            v = self.centroids[c] + z @ self.chol.T
            out[s:s + m] = v / np.linalg.norm(v, axis=1, keepdims=True)
        return out

    @staticmethod
    def fidelity(real: np.ndarray, fake: np.ndarray, real_queries: np.ndarray, fake_queries: np.ndarray) -> dict:
        """How closely the generated set matches the real one (reported with the benchmark)."""
        rv, fv = real.var(axis=0), fake.var(axis=0)

        def top1(q: np.ndarray, base: np.ndarray) -> float:
            index = faiss.IndexFlatIP(base.shape[1])
            index.add(np.ascontiguousarray(base))
            return float(index.search(np.ascontiguousarray(q[:500]), 1)[0].mean())

        def prefix_energy(v: np.ndarray) -> list[float]:
            e = np.square(v).sum(axis=0)
            return [float(e[:m].sum() / e.sum()) for m in (32, 64, 128, 256)]

        return {"variance_correlation": float(np.corrcoef(rv, fv)[0, 1]),
                "prefix_energy_real@32/64/128/256": prefix_energy(real),
                "prefix_energy_generated@32/64/128/256": prefix_energy(fake[: len(real)]),
                "query_top1_cosine_real": top1(real_queries, real),
                "query_top1_cosine_generated(same size)": top1(fake_queries, fake[: len(real)])}
