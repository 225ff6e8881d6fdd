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

Queries are written about documents: by default (``query_model="document"``) a query is a
document of the base plus an offset drawn from the covariance of the real queries' offsets
from their nearest real document, scaled as above. The older model ("centroid") draws queries
around the centroids like documents, from a second fit of real queries; its prefix rankings
agree with the full ones far more than the real sets' do (fewer candidates needed), so it
flatters every funnel. ``benchmarks/peers.py`` reports candidates needed on real vs generated. The fitted
model reports how close it is: per-coordinate variance of real vs generated vectors, and the
mean top-1 cosine of generated queries to the base vs real queries to the real corpus.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

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


QUERY_MODELS = ("document", "centroid")


def _offset_chol(x: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Cholesky factor of the covariance of each query's offset from its nearest document."""
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    _, nearest = index.search(q, 1)
    offset = q - x[nearest[:, 0]]
    cov = np.cov(offset, rowvar=False).astype(np.float64)
    cov += 1e-6 * np.trace(cov) / len(cov) * np.eye(len(cov))
    return np.linalg.cholesky(cov).astype(np.float32)


@dataclass
class EmbeddingGenerator:
    centroids: np.ndarray      # (c, d)
    weights: np.ndarray        # (c,) document cluster frequencies
    chol: np.ndarray           # (d, d) Cholesky factor of the document residual covariance
    query_weights: np.ndarray  # the same two for queries ("centroid" model)
    query_chol: np.ndarray
    query_model: str = "document"
    offset_chol: np.ndarray | None = None  # "document" model: a query's offset from its document

    @classmethod
    def fit(cls, vectors: np.ndarray, queries: np.ndarray, n_clusters: int = 1024,
            seed: int = 0, calibrate: bool = True, query_model: str = "document") -> "EmbeddingGenerator":
        """Fit clusters and residual covariances; with ``calibrate``, scale the query residual
        so that a generated query's nearest document is as close (mean cosine) as a real
        query's is in the real corpus, at the real corpus's size.

        ``query_model``: "document" (default) draws a query as a document of the base plus an
        offset shaped like the real queries' offsets from their nearest real document — as
        real queries are written about documents that are in the corpus; "centroid" draws it
        around a cluster centroid like a document, with the real queries' residual covariance
        (the model of the benchmarks before ``peers.py``: on SciFact and docstrings it makes
        prefix search far easier than on the real sets, see ``benchmarks/results/peers.md``).
        """
        if query_model not in QUERY_MODELS:
            raise ValueError(f"query_model must be one of {QUERY_MODELS}")
        x, q = _normalize(vectors), _normalize(queries)
        km = faiss.Kmeans(x.shape[1], n_clusters, niter=25, seed=seed, verbose=False)
        km.train(x)
        w, chol = _residual_model(x, km.centroids, km.index)
        qw, qchol = _residual_model(q, km.centroids, km.index)
        offset = _offset_chol(x, q) if query_model == "document" else None
        gen = cls(km.centroids.copy(), w, chol, qw, qchol, query_model, offset)
        if calibrate:
            gen = gen._calibrated(x, q, seed)
        return gen

    def _scaled(self, scale: float) -> "EmbeddingGenerator":
        """The same model with the query residual (or offset) multiplied by ``scale``."""
        if self.query_model == "document":
            return replace(self, offset_chol=self.offset_chol * scale)
        return replace(self, query_chol=self.query_chol * scale)

    def _calibrated(self, x: np.ndarray, q: np.ndarray, seed: int) -> "EmbeddingGenerator":
        target = _top1(q[:1000], x)
        docs = self.sample(len(x), seed)

        def query_top1(scale: float) -> float:
            return _top1(self._scaled(scale).sample_queries(min(len(q), 1000), seed + 1, docs), docs)
        lo, hi = 0.05, 3.0  # a larger residual puts queries farther from every document
        for _ in range(14):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if query_top1(mid) > target else (lo, mid)
        return self._scaled((lo + hi) / 2)

    def sample_queries(self, n: int, seed: int, base: np.ndarray | None = None) -> np.ndarray:
        """``n`` queries; the "document" model anchors each on a random row of ``base``."""
        if self.query_model == "document":
            if base is None:
                raise ValueError("near-document queries need the base they are drawn about")
            rng = np.random.default_rng(seed)
            anchors = np.asarray(base[np.sort(rng.integers(0, len(base), n))], np.float32)
            anchors = anchors[rng.permutation(n)]
            z = rng.standard_normal(anchors.shape, dtype=np.float32)
            return _normalize(anchors + z @ self.offset_chol.T)
        return EmbeddingGenerator(self.centroids, self.query_weights, self.query_chol,
                                  self.query_weights, self.query_chol, "centroid").sample(n, seed)

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
