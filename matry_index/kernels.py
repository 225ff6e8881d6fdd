"""Search kernels: arrays in, arrays out, no state (in the style of ``faiss.contrib``).

Every stage of a coarse-to-fine search over one stored matrix is one function here, so the
FAISS backend only wires them together and the evaluation code reuses the same exact search:

* :func:`exact_top_k` — exhaustive top-k by inner product (the reference everything is
  measured against, and the path for tiny or very selective searches);
* :func:`rescore_prefix` / :func:`narrow` / :func:`narrow_one` — the middle stages: exact
  cosines of a prefix for each query's candidate rows, keeping the best of them;
* :func:`top_k_of_rows` — the last stage: full-dimension inner products of each query's
  candidate rows and their top k, computed inside FAISS straight on the stored matrix.

* :func:`level_norms` — the prefix norms a stored row keeps, so middle levels need no copies.

Conventions: ``vectors`` is the (n, d) float32 matrix of stored rows — or a view that decodes
coded rows as they are indexed (``rows[idx]``, ``rows[a:b]``, ``rows[idx, :m]``; the FAISS
backend's ``DecodedRows``) — ``norms`` its (n, L) prefix norms at the L levels, candidate
``rows`` are int64 with -1 for "no candidate".
"""
from __future__ import annotations

from collections.abc import Sequence

import faiss
import numpy as np


#: rows one streaming pass over a (possibly memory-mapped) matrix handles at a time: bounds the
#: RAM its temporaries take, whatever the matrix's size
STREAM_ROWS = 65_536


def level_norms(vectors: np.ndarray, levels: tuple[int, ...], block: int = STREAM_ROWS) -> np.ndarray:
    """‖v[:m]‖ for every level m, shape (n, len(levels)); zeros become 1 to avoid NaN.

    Computed ``block`` rows at a time, so a memory-mapped matrix is streamed through rather
    than copied into RAM by the temporaries."""
    out = np.empty((len(vectors), len(levels)), np.float32)
    cols = [m - 1 for m in levels]
    for s in range(0, len(vectors), block):
        sq = np.cumsum(np.square(vectors[s:s + block], dtype=np.float32), axis=1, dtype=np.float32)
        out[s:s + block] = np.sqrt(sq[:, cols])
    return np.where(out > 0, out, 1.0).astype(np.float32)


def unit_prefix(vectors: np.ndarray, m: int) -> np.ndarray:
    """The first ``m`` coordinates of unit-length rows, re-normalised (so that an inner product
    of prefixes is their cosine); the whole vector (``m`` = its dimension) is returned as it is."""
    if m >= vectors.shape[1]:
        return vectors
    return renormalized(np.ascontiguousarray(vectors[:, :m]))


def renormalized(prefixes: np.ndarray) -> np.ndarray:
    """Rows of prefixes of unit vectors scaled back to unit length (all-zero rows stay zero).
    Their entries are at most 1, so the squares need none of the input checks' overflow care."""
    norms = np.sqrt(np.einsum("ij,ij->i", prefixes, prefixes))[:, None]
    return prefixes / np.where(norms > 0, norms, 1.0)


def _top_k_columns(sims: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's ``k`` largest values (in no particular order)."""
    return np.argpartition(-sims, k - 1, axis=1)[:, :k]


def exact_top_k(queries: np.ndarray, vectors: np.ndarray, k: int, batch: int = 1024,
                rows: np.ndarray | None = None, block: int = STREAM_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """Rows and inner products of each query's top-``k`` rows of ``vectors``, best first.

    ``rows``: search only these rows (increasing), e.g. those a filter allows. The stored rows
    are scored ``block`` at a time, so a memory-mapped matrix or a large subset is never
    copied whole. Ties keep the lower row first (a stable sort), so results are reproducible.
    ``k`` is clipped to the number of rows; with no rows at all both outputs have 0 columns.
    """
    n = len(vectors) if rows is None else len(rows)
    nq, k = len(queries), min(int(k), n)
    out_rows, out_scores = np.empty((nq, k), np.int64), np.empty((nq, k), np.float32)
    if k == 0:
        return out_rows, out_scores
    for s in range(0, nq, batch):
        q = queries[s:s + batch]
        cand_rows, cand_sims = [], []
        for b in range(0, n, block):
            ids = np.arange(b, min(n, b + block)) if rows is None else rows[b:b + block]
            sims = q @ (vectors[b:b + block] if rows is None else vectors[ids]).T
            top = _top_k_columns(sims, min(k, sims.shape[1]))
            cand_rows.append(ids[top])
            cand_sims.append(np.take_along_axis(sims, top, 1))
        found, sims = np.concatenate(cand_rows, 1), np.concatenate(cand_sims, 1)
        top = _top_k_columns(sims, k)
        found, top_sims = np.take_along_axis(found, top, 1), np.take_along_axis(sims, top, 1)
        order = np.lexsort((found, -top_sims))  # by score, then by row
        out_rows[s:s + batch] = np.take_along_axis(found, order, 1)
        out_scores[s:s + batch] = np.take_along_axis(top_sims, order, 1)
    return out_rows, out_scores


def rescore_prefix(vectors: np.ndarray, level_norms: np.ndarray, q_prefix: np.ndarray,
                   rows: np.ndarray) -> np.ndarray:
    """Prefix scores (nq, C) of each query's own candidate rows; -1 rows score -inf.

    ``q_prefix`` is the queries' first m coordinates and ``level_norms`` the stored rows'
    norms at that prefix. The score is proportional to the prefix cosine: within one query
    the ranking needs only each candidate's norm, not the query's.
    """
    m = q_prefix.shape[1]
    missing = rows < 0
    any_missing = bool(missing.any())
    safe = np.where(missing, 0, rows) if any_missing else rows
    cand = vectors[safe, :m]                                           # (nq, C, m)
    scores = np.matmul(cand, q_prefix[:, :, None])[..., 0] / level_norms[safe]
    return np.where(missing, -np.inf, scores) if any_missing else scores


def narrow(vectors: np.ndarray, norms: np.ndarray, levels: tuple[int, ...], queries: np.ndarray,
           rows: np.ndarray, stages: Sequence[tuple[int, int]]) -> np.ndarray:
    """The middle stages for a batch: at each (level, kept) stage, rescore the prefix of
    that level and keep each query's best ``kept`` rows (``norms[:, i]`` is the rows' norm at
    ``levels[i]``).

    Returns each query's survivors with its -1 padding moved to the end of the row, where
    :func:`top_k_of_rows` expects it.
    """
    for level, kept in stages:
        scores = rescore_prefix(vectors, norms[:, levels.index(level)], queries[:, :level], rows)
        if kept < rows.shape[1]:
            rows = np.take_along_axis(rows, np.argpartition(-scores, kept - 1, axis=1)[:, :kept], 1)
    if (rows < 0).any():
        rows = np.take_along_axis(rows, np.argsort(rows < 0, axis=1, kind="stable"), 1)
    return rows


def narrow_one(vectors: np.ndarray, norms: np.ndarray, levels: tuple[int, ...], query: np.ndarray,
               rows: np.ndarray, stages: Sequence[tuple[int, int]]) -> np.ndarray:
    """:func:`narrow` for one query's valid candidate rows (1-d arrays: a third of the
    per-call overhead of the batch path, which matters at one query per call)."""
    for level, kept in stages:
        scores = vectors[rows, :level] @ query[:level] / norms[rows, levels.index(level)]
        if kept < len(rows):
            rows = rows[np.argpartition(-scores, kept - 1)[:kept]]
    return rows


def top_k_of_rows(queries: np.ndarray, vectors: np.ndarray, rows: np.ndarray,
                  k: int) -> tuple[np.ndarray, np.ndarray]:
    """Full-dimension inner products of each query's candidate ``rows`` and their top ``k``.

    Computed by FAISS (``knn_inner_products_by_idx``) on the stored matrix itself: no gathered
    copy of the candidates. ``queries`` and ``vectors`` must be C-contiguous float32. A
    candidate list ends at its first -1 (FAISS stops reading there); fewer than ``k``
    candidates leave -1 rows at the end of the result.
    """
    rows = np.ascontiguousarray(rows, np.int64)
    if not isinstance(vectors, np.ndarray):
        return _top_k_of_decoded(queries, vectors, rows, k)
    nq, count = rows.shape
    scores, top = np.empty((nq, k), np.float32), np.empty((nq, k), np.int64)
    ptr = faiss.swig_ptr
    faiss.knn_inner_products_by_idx(ptr(queries), ptr(vectors), ptr(rows), vectors.shape[1], nq,
                                    len(vectors), count, k, ptr(scores), ptr(top), count)
    return top, scores


def _top_k_of_decoded(queries: np.ndarray, vectors, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`top_k_of_rows` for rows decoded as they are read: each query's candidates are
    gathered (and decoded), scored, and the best ``k`` kept, best first; -1 pads."""
    rows = np.where(np.cumsum(rows < 0, axis=1) > 0, -1, rows)  # a list ends at its first -1
    missing = rows < 0
    candidates = vectors[np.where(missing, 0, rows)]                     # (nq, C, d)
    scores = np.matmul(candidates, queries[:, :, None])[..., 0].astype(np.float32)
    scores[missing] = -np.inf
    k_here = min(k, rows.shape[1])
    best = np.argpartition(-scores, k_here - 1, axis=1)[:, :k_here] if k_here else np.empty((len(rows), 0), int)
    best = np.take_along_axis(best, np.argsort(-np.take_along_axis(scores, best, 1), axis=1, kind="stable"), 1)
    top, top_scores = np.take_along_axis(rows, best, 1), np.take_along_axis(scores, best, 1)
    top[~np.isfinite(top_scores)] = -1
    out_rows, out_scores = np.full((len(rows), k), -1, np.int64), np.full((len(rows), k), -np.inf, np.float32)
    out_rows[:, :k_here], out_scores[:, :k_here] = top, top_scores
    return out_rows, out_scores
