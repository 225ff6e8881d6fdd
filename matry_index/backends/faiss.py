"""FAISS backend: one stored matrix of adapted vectors, a coarse ANN index, exact rescoring.

Storage per record: the full adapted vector (float32, L2-normalised), one norm per level, and
the coarse prefix inside the ANN index. Middle levels are *slices* of the full vector divided by
their stored norm, so they cost no extra copies, and are rescored in numpy. The last stage —
exact full-dimension cosines of the surviving candidates and their top k — runs inside FAISS
(``knn_inner_products_by_idx``) straight on the stored matrix: no gathered copy of the
candidate rows, no numpy round trips. Rows are append-only; a delete is a tombstone
(HNSW cannot remove points), and :meth:`FaissBackend.compact` — run automatically once a
quarter of the rows are dead — rebuilds without them.

Filters and tombstones become a FAISS ``IDSelectorBitmap`` that the ANN search honours while
it walks, so k results come back whenever k records match. Very selective filters skip the
ANN and score the matching rows exactly; either way the result is the filtered top-k.
"""
from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from .._validation import MatryIndexError, normalize_rows
from ..filters import Node, matches
from ..funnel import CoarseCost, FunnelPlan
from ..ids import UserId
from .base import Hit, Record, level_norms
from .records import read_records, write_records

COARSE_KINDS = ("auto", "flat", "hnsw", "ivf")
IVF_ENCODINGS = ("flat", "sq8")
HNSW_QUANTIZER_FROM = 1024  # lists; below this a flat scan of the centroids is cheap enough


class FaissBackend:
    """In-process FAISS storage for a ``dim``-d index with prefix ``levels``.

    ``coarse``: "hnsw" (default above ``flat_threshold`` records with "auto"), "flat"
    (exact coarse scan), or "ivf" (inverted lists, trained on the first add — or, with
    ``deferred_build``, on everything loaded before :meth:`optimize`). ``ivf_encoding``:
    "flat" (float32 codes) or "sq8" (8-bit scalar quantisation on one shared range: a quarter
    of the bytes to scan; the funnel's exact rescoring removes the quantisation error).
    ``nprobe`` is the IVF breadth when the plan does not set one. With ``nlist`` ≥ ``HNSW_QUANTIZER_FROM`` the
    lists' centroids are themselves found through a small HNSW graph: scanning thousands of
    centroids would otherwise cost as much as scanning the lists.
    ``deferred_build``: bulk-load mode — adds only store rows, and the coarse index catches up
    on :meth:`optimize` or the next search.
    """

    kind = "faiss"

    def __init__(self, dim: int, levels: tuple[int, ...], *, coarse: str = "auto", hnsw_m: int = 32,
                 ef_construction: int = 80, flat_threshold: int = 10_000, nlist: int | None = None,
                 nprobe: int = 16, ivf_encoding: str = "flat", compact_fraction: float = 0.25,
                 exact_fraction: float = 0.02, deferred_build: bool = False):
        if coarse not in COARSE_KINDS:
            raise MatryIndexError(f"coarse must be one of {COARSE_KINDS}; got {coarse!r}")
        if ivf_encoding not in IVF_ENCODINGS:
            raise MatryIndexError(f"ivf_encoding must be one of {IVF_ENCODINGS}; got {ivf_encoding!r}")
        self.dim, self.levels = int(dim), tuple(levels)
        self.coarse_dim = self.levels[0]
        self._level_of = {m: i for i, m in enumerate(self.levels)}
        self.options = {"coarse": coarse, "hnsw_m": hnsw_m, "ef_construction": ef_construction,
                        "flat_threshold": flat_threshold, "nlist": nlist, "nprobe": nprobe,
                        "ivf_encoding": ivf_encoding, "compact_fraction": compact_fraction,
                        "exact_fraction": exact_fraction, "deferred_build": deferred_build}
        self._lock = threading.RLock()
        self._vectors = np.empty((0, self.dim), np.float32)
        self._norms = np.empty((0, len(self.levels)), np.float32)
        self._keys = np.empty(0, np.int64)
        self._live = np.empty(0, bool)
        self._has_meta = np.empty(0, bool)
        self._n = 0
        self._ids: list[UserId] = []
        self._meta: list[dict | None] = []
        self._int_ids = True                    # every id an int (= its key): hits read ids from _keys
        self._row_of: dict[int, int] = {}
        self._coarse = None
        self._coarse_kind = "flat"
        self._version = 0                       # bumped by every write; keys the filter cache
        self._synced: tuple[int, int] | None = None  # (_version, _n) when the coarse index last caught up
        self._filter_cache: dict[tuple[str, int], np.ndarray] = {}
        self._params_cache: dict[tuple, Any] = {}

    # --- structure ---------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._row_of)

    @property
    def coarse_kind(self) -> str:
        return self._coarse_kind

    def _wanted_coarse_kind(self, n: int) -> str:
        kind = self.options["coarse"]
        if kind == "auto":
            return "hnsw" if n >= self.options["flat_threshold"] else "flat"
        return kind

    def _new_coarse(self, kind: str, train_on: np.ndarray):
        m = self.coarse_dim
        if kind == "flat":
            return faiss.IndexFlatIP(m)
        if kind == "hnsw":
            index = faiss.IndexHNSWFlat(m, self.options["hnsw_m"], faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = self.options["ef_construction"]
            return index
        nlist = self.options["nlist"] or max(1, min(int(4 * math.sqrt(max(len(train_on), 1))),
                                                   len(train_on) // 39 or 1))
        if len(train_on) < nlist:
            raise MatryIndexError(f"an IVF coarse index with {nlist} lists needs at least {nlist} "
                                  f"vectors in its first add; got {len(train_on)}")
        if nlist >= HNSW_QUANTIZER_FROM:
            quantizer = faiss.IndexHNSWFlat(m, 32, faiss.METRIC_INNER_PRODUCT)
        else:
            quantizer = faiss.IndexFlatIP(m)
        if self.options["ivf_encoding"] == "sq8":
            # one shared range for all dimensions and the vectors themselves, not residuals:
            # decoding is a single scale, and on the 1M benchmark set the scan ran ~17 % faster
            # than per-dimension ranges over residuals at the same recall
            index = faiss.IndexIVFScalarQuantizer(quantizer, m, nlist, faiss.ScalarQuantizer.QT_8bit_uniform,
                                                  faiss.METRIC_INNER_PRODUCT, False)
        else:
            index = faiss.IndexIVFFlat(quantizer, m, nlist, faiss.METRIC_INNER_PRODUCT)
        # k-means needs no more than a few hundred points per list; more only costs time
        sample = train_on
        if len(train_on) > 256 * nlist:
            sample = train_on[np.random.default_rng(0).choice(len(train_on), 256 * nlist, replace=False)]
        index.train(sample)
        return index

    def _coarse_vectors(self, rows: slice | np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self._vectors[rows, :self.coarse_dim] / self._norms[rows, :1])

    def _rebuild_coarse(self) -> None:
        """(Re)build the coarse index over rows 0..n-1 (labels = row numbers)."""
        kind = self._wanted_coarse_kind(len(self))
        data = self._coarse_vectors(slice(0, self._n))
        index = self._new_coarse(kind, data)
        if self._n:
            index.add(data)
        self._coarse, self._coarse_kind = index, kind

    def _sync_coarse(self) -> None:
        """Bring the coarse index up to date with the stored rows (add the missing ones, or
        rebuild when the wanted kind changed, e.g. flat → HNSW as the index grows)."""
        if self._synced == (self._version, self._n) and self._coarse is not None:
            return  # no rows written since the last sync: every search passes here
        if self._coarse is None or self._wanted_coarse_kind(len(self)) != self._coarse_kind:
            self._rebuild_coarse()
        elif self._coarse.ntotal < self._n:
            self._coarse.add(self._coarse_vectors(slice(self._coarse.ntotal, self._n)))
        self._synced = (self._version, self._n)

    def optimize(self) -> None:
        """Build what a deferred bulk load postponed (the HNSW graph); searches do it too."""
        with self._lock:
            self._sync_coarse()

    def _reserve(self, extra: int) -> None:
        need = self._n + extra
        if need <= len(self._vectors):
            return
        cap = max(need, 2 * len(self._vectors), 1024)

        def grow(arr: np.ndarray) -> np.ndarray:
            out = np.empty((cap,) + arr.shape[1:], arr.dtype)
            out[: self._n] = arr[: self._n]
            return out
        self._vectors, self._norms, self._keys, self._live, self._has_meta = map(
            grow, (self._vectors, self._norms, self._keys, self._live, self._has_meta))

    # --- writes ------------------------------------------------------------------------
    def contains(self, ids: list[UserId], keys: np.ndarray) -> np.ndarray:
        return np.fromiter((int(k) in self._row_of for k in keys), bool, count=len(keys))

    def add(self, ids: list[UserId], keys: np.ndarray, vectors: np.ndarray,
            metadata: list[dict], replace: bool = False) -> None:
        with self._lock:
            for uid, key in zip(ids, keys):
                row = self._row_of.get(int(key))
                if row is not None and self._ids[row] != uid:
                    raise MatryIndexError(f"id {uid!r} collides with stored id {self._ids[row]!r} "
                                          "(same 63-bit key); use another id")
                if row is not None and not replace:
                    raise MatryIndexError(f"id {uid!r} is already in the index (use upsert to replace)")
            vectors = normalize_rows(vectors)  # full-dimension dot products are then cosines
            norms = level_norms(vectors, self.levels)
            old_n = self._n
            replaced = [self._row_of[int(k)] for k in keys if int(k) in self._row_of]
            self._reserve(len(keys))
            rows = np.arange(old_n, old_n + len(keys))
            self._vectors[rows], self._norms[rows] = vectors, norms
            self._keys[rows], self._live[rows] = keys, True
            self._has_meta[rows] = [bool(m) for m in metadata]
            self._n = old_n + len(keys)
            try:
                if not self.options["deferred_build"]:
                    self._sync_coarse()
            except BaseException:
                # nothing visible has changed yet except the row counter and the coarse index
                self._n = old_n
                self._rebuild_coarse()
                raise
            self._live[replaced] = False
            self._row_of.update((int(key), int(row)) for row, key in zip(rows, keys))
            self._ids.extend(ids)
            self._meta.extend(m or None for m in metadata)
            self._int_ids = self._int_ids and all(isinstance(i, int) for i in ids)
            self._version += 1
            self._maybe_compact()

    def delete(self, ids: list[UserId], keys: np.ndarray) -> None:
        with self._lock:
            rows = [self._row_of.pop(int(k)) for k in keys if int(k) in self._row_of]
            self._live[rows] = False
            self._version += 1
            self._maybe_compact()

    def _maybe_compact(self) -> None:
        dead = self._n - len(self)
        if dead > 0 and (len(self) == 0 or dead >= self.options["compact_fraction"] * self._n):
            self.compact()

    def compact(self) -> None:
        """Drop tombstoned rows and rebuild the coarse index (row numbers change)."""
        with self._lock:
            keep = np.flatnonzero(self._live[: self._n])
            self._vectors, self._norms = self._vectors[keep].copy(), self._norms[keep].copy()
            self._keys, self._live = self._keys[keep].copy(), np.ones(len(keep), bool)
            self._has_meta = self._has_meta[keep].copy()
            self._ids = [self._ids[r] for r in keep]
            self._meta = [self._meta[r] for r in keep]
            self._int_ids = all(isinstance(i, int) for i in self._ids)
            self._n = len(keep)
            self._row_of = {int(k): r for r, k in enumerate(self._keys)}
            self._version += 1
            self._rebuild_coarse()

    # --- reads -------------------------------------------------------------------------
    def get(self, ids: list[UserId], keys: np.ndarray) -> list[Record | None]:
        with self._lock:
            out: list[Record | None] = []
            for k in keys:
                row = self._row_of.get(int(k))
                out.append(None if row is None else
                           Record(self._ids[row], self._vectors[row].copy(),
                                  dict(self._meta[row] or {})))
            return out

    def _allowed(self, flt: Node | None) -> np.ndarray | None:
        """Boolean mask of searchable rows, or None when every row is (no filter, no tombstones)."""
        if flt is None and self._n == len(self._row_of):  # O(1): no tombstones
            return None
        live = self._live[: self._n]
        if flt is None:
            return live.copy()
        # evaluating a filter is a Python pass over every record's metadata: remember the
        # mask of recent filters until the next write changes the rows
        cache_key = (repr(flt), self._version)
        mask = self._filter_cache.get(cache_key)
        if mask is None:
            mask = live.copy()
            for r in np.flatnonzero(mask):
                mask[r] = matches(flt, self._meta[r] or {})
            if len(self._filter_cache) >= 32:
                self._filter_cache.clear()
            self._filter_cache[cache_key] = mask
        return mask

    def _hits(self, rows: np.ndarray, scores: np.ndarray) -> list[Hit]:
        """Hits for result rows (-1 = none).

        Touches as few scattered Python objects as it can: right after a search has streamed
        through the index each one is a cache miss, and for one query these misses cost
        more than the rest of the Python around the search. Int ids are read from the packed
        key array (an int id is its own key), metadata only where a record has some.
        """
        row_list = rows.tolist()
        ids = self._keys.take(rows).tolist() if self._int_ids else [self._ids[r] for r in row_list]
        meta = self._meta
        return [Hit(i, s, dict(meta[r]) if m else {}) for i, r, s, m in
                zip(ids, row_list, scores.tolist(), self._has_meta.take(rows).tolist()) if r >= 0]

    def _rescore(self, q_prefix: np.ndarray, rows: np.ndarray, level_index: int) -> np.ndarray:
        """Prefix scores of each query's own candidate rows (-1 = none → -inf).

        Proportional to the cosine at that level: within one query the ranking does not
        need the query's own prefix norm, only each candidate's stored one.
        """
        m = self.levels[level_index]
        missing = rows < 0
        any_missing = bool(missing.any())
        safe = np.where(missing, 0, rows) if any_missing else rows
        cand = self._vectors[safe, :m]                                  # (nq, C, m)
        scores = np.matmul(cand, q_prefix[:, :, None])[..., 0] / self._norms[safe, level_index]
        return np.where(missing, -np.inf, scores) if any_missing else scores

    def _exact_rows(self, queries: np.ndarray, k: int, allowed: np.ndarray | None):
        rows = np.arange(self._n) if allowed is None else np.flatnonzero(allowed)
        q = normalize_rows(queries)
        if len(rows) == 0:
            return np.full((len(q), 0), -1), np.empty((len(q), 0), np.float32)
        # every row: a view, not a fancy-indexed copy of the whole matrix
        scores = q @ (self._vectors[:self._n] if allowed is None else self._vectors[rows]).T
        k = min(k, len(rows))
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        top_scores = np.take_along_axis(scores, top, 1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        return rows[np.take_along_axis(top, order, 1)], np.take_along_axis(top_scores, order, 1)

    def scan(self, filter: Node | None = None) -> list[tuple[UserId, dict]]:
        with self._lock:
            mask = self._allowed(filter)
            rows = range(self._n) if mask is None else np.flatnonzero(mask)
            return [(self._ids[r], dict(self._meta[r] or {})) for r in rows]

    def exact_search(self, queries: np.ndarray, k: int, filter: Node | None = None) -> list[list[Hit]]:
        with self._lock:
            rows, scores = self._exact_rows(queries, k, self._allowed(filter))
            return [self._hits(r, s) for r, s in zip(rows, scores)]

    def coarse_cost(self) -> CoarseCost:
        """The cost model :func:`matry_index.funnel.tune` uses to rank plans for this index
        (finishing a deferred build first: an IVF index's list count is known only then)."""
        with self._lock:
            if self._n:
                self._sync_coarse()
            kind = self._coarse_kind if self._coarse is not None else self._wanted_coarse_kind(len(self))
            nlist = int(self._coarse.nlist) if kind == "ivf" and self._coarse is not None else 0
        sq8 = kind == "ivf" and self.options["ivf_encoding"] == "sq8"
        return CoarseCost(kind, self.options["hnsw_m"], nlist, 1 if sq8 else 4)

    def _search_params(self, count: int, plan: FunnelPlan, sel=None):
        """FAISS search parameters for the coarse stage (cached when there is no selector:
        building the SWIG objects costs more than a small IVF search)."""
        if self._coarse_kind == "hnsw":
            key = ("hnsw", plan.ef_for(count))
        elif self._coarse_kind == "ivf":
            key = ("ivf", plan.nprobe or self.options["nprobe"], self._coarse.nlist >= HNSW_QUANTIZER_FROM)
        else:
            key = ("flat",)
        params = self._params_cache.get(key) if sel is None else None
        if params is not None:
            return params
        if key[0] == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=key[1], sel=sel)
        elif key[0] == "ivf":
            params = faiss.SearchParametersIVF(nprobe=key[1], sel=sel)
            if key[2]:  # the nprobe nearest lists through the centroid graph: ef 2·nprobe finds them
                params.quantizer_params = faiss.SearchParametersHNSW(efSearch=max(16, 2 * key[1]))
        else:
            params = faiss.SearchParameters(sel=sel)
        if sel is None:
            self._params_cache[key] = params
        return params

    def _coarse_search(self, q_coarse: np.ndarray, count: int, allowed: np.ndarray | None,
                       plan: FunnelPlan) -> np.ndarray:
        sel = bitmap = None
        if allowed is not None:
            bitmap = np.packbits(allowed, bitorder="little")
            sel = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bitmap))
        # search_c with our own output buffers: the Python wrapper's checks cost more than
        # a small IVF probe (q_coarse is already a C-contiguous float32 matrix)
        n = len(q_coarse)
        dist, rows = np.empty((n, count), np.float32), np.empty((n, count), np.int64)
        self._coarse.search_c(n, faiss.swig_ptr(q_coarse), count, faiss.swig_ptr(dist),
                              faiss.swig_ptr(rows), self._search_params(count, plan, sel))
        del bitmap  # the selector reads it during the search; keep it alive until here
        return rows

    def _funnel(self, q: np.ndarray, stages: list[tuple[int, int]], allowed: np.ndarray | None,
                plan: FunnelPlan) -> tuple[np.ndarray, np.ndarray]:
        """Rows and full-dimension cosines of each query's top hits, best first (-1 rows pad)."""
        first_level, first_count = stages[0]
        rows = self._coarse_search(np.ascontiguousarray(q[:, :first_level]), first_count, allowed, plan)
        if len(stages) > 2:
            rows = (self._narrow_one(q[0], rows[0][rows[0] >= 0], stages[1:-1])[None, :] if len(q) == 1
                    else self._narrow(q, rows, stages[1:-1]))
        return self._top_full(q, rows, stages[-1][1])

    def _narrow(self, q: np.ndarray, rows: np.ndarray, stages: list[tuple[int, int]]) -> np.ndarray:
        """The middle stages for a batch: exact prefix rescoring keeping each stage's count.

        Returns each query's survivors with its -1 padding moved to the end of the row, where
        :meth:`_top_full` expects it.
        """
        for level, kept in stages:
            scores = self._rescore(q[:, :level], rows, self._level_of[level])
            if kept < rows.shape[1]:
                rows = np.take_along_axis(rows, np.argpartition(-scores, kept - 1, axis=1)[:, :kept], 1)
        if (rows < 0).any():
            rows = np.take_along_axis(rows, np.argsort(rows < 0, axis=1, kind="stable"), 1)
        return rows

    def _narrow_one(self, q: np.ndarray, rows: np.ndarray, stages: list[tuple[int, int]]) -> np.ndarray:
        """:meth:`_narrow` for one query's valid candidate rows (1-d numpy: a third of the
        per-call overhead of the batch path)."""
        for level, kept in stages:
            scores = self._vectors[rows, :level] @ q[:level] / self._norms[rows, self._level_of[level]]
            if kept < len(rows):
                rows = rows[np.argpartition(-scores, kept - 1)[:kept]]
        return rows

    def _top_full(self, q: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact full-dimension cosines of each query's candidate rows and their top ``k``,
        computed by FAISS on the stored matrix (``q``: normalised, C-contiguous).

        A candidate list ends at its first -1 (FAISS stops reading there); fewer than ``k``
        candidates leave -1 rows at the end of the result.
        """
        rows = np.ascontiguousarray(rows, np.int64)
        nq, count = rows.shape
        scores, top = np.empty((nq, k), np.float32), np.empty((nq, k), np.int64)
        ptr = faiss.swig_ptr
        faiss.knn_inner_products_by_idx(ptr(q), ptr(self._vectors), ptr(rows), self.dim, nq, self._n,
                                        count, k, ptr(scores), ptr(top), count)
        return top, scores

    def search(self, queries: np.ndarray, k: int, plan: FunnelPlan,
               filter: Node | None = None) -> list[list[Hit]]:
        with self._lock:
            self._sync_coarse()
            allowed = self._allowed(filter)
            n_ok = self._n if allowed is None else int(allowed.sum())
            if n_ok == 0:
                return [[] for _ in range(len(queries))]
            stages = plan.stages(self.levels, k, n_ok)
            # exact search over the matches when the first stage would have to return them all
            # anyway, or a filter is so selective that walking the graph would mostly skip nodes
            selective = allowed is not None and n_ok <= self.options["exact_fraction"] * self._n
            if selective or len(stages) == 1 or n_ok <= stages[0][1]:
                rows, scores = self._exact_rows(queries, k, allowed)
                return [self._hits(r, s) for r, s in zip(rows, scores)]
            # full-dimension cosines at the last stage: normalise once; earlier stages rank
            # within a query and need no normalisation of the query's prefix
            q_all = normalize_rows(queries)
            out: list[list[Hit]] = []
            for s in range(0, len(q_all), 256):
                q = q_all[s:s + 256]
                rows, scores = self._funnel(q, stages, allowed, plan)
                for i in range(len(q)):
                    hits = self._hits(rows[i], scores[i])
                    if len(hits) < min(k, n_ok):  # the coarse stage ran dry under a filter: go exact
                        er, es = self._exact_rows(q[i:i + 1], k, allowed)
                        hits = self._hits(er[0], es[0])
                    out.append(hits)
            return out

    # --- persistence -------------------------------------------------------------------
    def save(self, directory: Path) -> dict[str, Any]:
        with self._lock:
            if self._n != len(self):
                self.compact()
            self._sync_coarse()
            write_records(directory, self._ids, self._meta, self._vectors[:self._n])
            if self._coarse is not None:
                faiss.write_index(self._coarse, str(directory / "coarse.faiss"))
            return {**self.options, "coarse_kind": self._coarse_kind}

    @classmethod
    def open(cls, directory: Path, dim: int, levels: tuple[int, ...], options: dict[str, Any],
             adaptor_hash: str | None = None, connection: dict[str, Any] | None = None) -> "FaissBackend":
        """Rebuild the backend from the files :meth:`save` wrote (plain data: arrays, JSON and a
        FAISS index, checked for shape against the manifest)."""
        from ..ids import key_for
        if connection:
            raise MatryIndexError(f"a FAISS index takes no connection options; got {sorted(connection)}")
        opts = dict(options)
        coarse_kind = opts.pop("coarse_kind", "flat")
        try:
            backend = cls(dim, levels, **opts)
        except TypeError as exc:
            raise MatryIndexError(f"{directory}: unknown FAISS backend options: {exc}") from None
        ids, metadata, vectors = read_records(directory, dim)
        backend._vectors = vectors
        backend._norms = level_norms(backend._vectors, backend.levels)
        if not np.allclose(backend._norms[:, -1], 1.0, atol=1e-4):  # saved before rows were normalised
            backend._vectors = normalize_rows(backend._vectors)
            backend._norms = level_norms(backend._vectors, backend.levels)
        n = len(ids)
        backend._ids = ids
        backend._meta = [m or None for m in metadata]
        backend._keys = np.fromiter((key_for(i) for i in ids), np.int64, count=n)
        if len(np.unique(backend._keys)) != n:
            raise MatryIndexError(f"{directory}: the saved records repeat an id")
        backend._live = np.ones(n, bool)
        backend._has_meta = np.fromiter((bool(m) for m in backend._meta), bool, count=n)
        backend._int_ids = all(isinstance(i, int) for i in ids)
        backend._n = n
        backend._row_of = {int(k): r for r, k in enumerate(backend._keys)}
        coarse_path = directory / "coarse.faiss"
        if coarse_path.exists():
            try:
                backend._coarse = faiss.read_index(str(coarse_path))
            except RuntimeError as exc:
                raise MatryIndexError(f"{coarse_path}: corrupt FAISS index: {exc}") from None
            if backend._coarse.ntotal != n or backend._coarse.d != backend.coarse_dim:
                raise MatryIndexError(f"{coarse_path} holds {backend._coarse.ntotal} vectors of "
                                      f"{backend._coarse.d}-d; the manifest expects {n} of {backend.coarse_dim}-d")
            if coarse_kind not in ("flat", "hnsw", "ivf"):
                raise MatryIndexError(f"{directory}: unknown coarse index kind {coarse_kind!r}")
            backend._coarse_kind = coarse_kind
        return backend

    def storage_paths(self) -> list[Path]:
        """FAISS keeps nothing on disk outside the index directory."""
        return []

    def close(self) -> None:
        """Nothing to release: the FAISS backend lives in memory."""
