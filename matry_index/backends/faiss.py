"""FAISS backend: a row store of adapted vectors, a coarse ANN index, exact rescoring.

Storage per record (:class:`.rows.RowStore`): the full adapted vector (float32,
L2-normalised), one norm per level, and the coarse prefix inside the ANN index. Middle levels
are *slices* of the full vector divided by their stored norm, so they cost no extra copies.
The stages themselves are the array kernels of :mod:`matry_index.kernels`; this module builds
and keeps the coarse index in step with the rows and wires the stages together. Rows are
append-only; a delete is a tombstone (HNSW cannot remove points), and
:meth:`FaissBackend.compact` — run automatically once a quarter of the rows are dead —
rebuilds without them.

Filters and tombstones become a FAISS ``IDSelectorBitmap`` that the ANN search honours while
it walks, so k results come back whenever k records match. Very selective filters skip the
ANN and score the matching rows exactly; either way the result is the filtered top-k.
"""
from __future__ import annotations

import math
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from .. import kernels
from .._validation import check_bool, check_choice, check_int, check_number, normalize_rows
from ..errors import Corrupt, InvalidInput, MatryIndexError
from ..filters import Node, matches
from ..funnel import CoarseCost, FunnelPlan
from ..ids import UserId
from .base import Hit, Record, SavedBackend
from .records import read_records, write_records
from .rows import RowStore
from .vector_storage import vector_storage as vector_storage_of

COARSE_KINDS = ("auto", "flat", "hnsw", "ivf")
IVF_ENCODINGS = ("flat", "sq8")
HNSW_QUANTIZER_FROM = 1024  # lists; below this a flat scan of the centroids is cheap enough
QUERY_BLOCK = 256           # queries per funnel pass: bounds the (queries × candidates × m) gather
TRAIN_PER_LIST = 256        # k-means needs no more than a few hundred points per IVF list
#: the options a save records and a load reads back (see FaissBackend.open)
SAVED_OPTIONS = ("coarse", "hnsw_m", "ef_construction", "flat_threshold", "nlist", "nprobe", "ivf_encoding",
                 "compact_fraction", "exact_fraction", "deferred_build", "vector_storage")


def default_nlist(n: int) -> int:
    """IVF lists for ``n`` training vectors: ~4·√n, and at least 39 vectors per list."""
    return max(1, min(int(4 * math.sqrt(max(n, 1))), n // 39 or 1))


def ivf_lists(wanted: int | None, n: int) -> int:
    """The lists an IVF index over ``n`` vectors gets: ``wanted`` (default :func:`default_nlist`),
    but never more than there are vectors to train them on (a delete can leave a few rows)."""
    return max(1, min(wanted or default_nlist(n), n))


def new_coarse_index(kind: str, m: int, options: dict[str, Any], train_on: np.ndarray,
                     n_total: int | None = None) -> faiss.Index:
    """An empty coarse index of ``kind`` over ``m``-d prefixes for ``n_total`` vectors (default:
    as many as ``train_on``); an IVF index is trained on ``train_on`` (the caller samples at most
    :data:`TRAIN_PER_LIST` per list) and has at most one list per training vector."""
    n_total = len(train_on) if n_total is None else n_total
    if kind == "flat":
        return faiss.IndexFlatIP(m)
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(m, options["hnsw_m"], faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = options["ef_construction"]
        return index
    nlist = ivf_lists(options["nlist"], min(n_total, len(train_on)))
    if nlist >= HNSW_QUANTIZER_FROM:
        quantizer = faiss.IndexHNSWFlat(m, 32, faiss.METRIC_INNER_PRODUCT)
    else:
        quantizer = faiss.IndexFlatIP(m)
    if options["ivf_encoding"] == "sq8":
        # one shared range for all dimensions and the vectors themselves, not residuals:
        # decoding is a single scale (docs/index.md has the measurement behind this choice)
        index = faiss.IndexIVFScalarQuantizer(quantizer, m, nlist, faiss.ScalarQuantizer.QT_8bit_uniform,
                                              faiss.METRIC_INNER_PRODUCT, False)
    else:
        index = faiss.IndexIVFFlat(quantizer, m, nlist, faiss.METRIC_INNER_PRODUCT)
    index.train(train_on)
    return index


def search_parameters(index: faiss.Index, kind: str, ef: int, nprobe: int, sel=None) -> faiss.SearchParameters:
    """FAISS search parameters for one coarse search (``sel``: an optional ID selector)."""
    if kind == "hnsw":
        return faiss.SearchParametersHNSW(efSearch=ef, sel=sel)
    if kind == "ivf":
        params = faiss.SearchParametersIVF(nprobe=nprobe, sel=sel)
        if index.nlist >= HNSW_QUANTIZER_FROM:  # the nprobe nearest lists through the centroid graph
            params.quantizer_params = faiss.SearchParametersHNSW(efSearch=max(16, 2 * nprobe))
        return params
    return faiss.SearchParameters(sel=sel)


def coarse_index_bytes(index: faiss.Index) -> int:
    """Bytes a coarse index holds in memory: codes and list ids of an IVF index (plus its
    quantizer), vectors and links of an HNSW graph, the vectors of a flat one."""
    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexIVF):
        return index.invlists.compute_ntotal() * (index.code_size + 8) + coarse_index_bytes(index.quantizer)
    if isinstance(index, faiss.IndexHNSW):
        graph = index.hnsw
        return (coarse_index_bytes(index.storage) + 4 * graph.neighbors.size() + 8 * graph.offsets.size()
                + 4 * graph.levels.size())
    return index.ntotal * index.d * 4


def _unit_rows(vectors: np.ndarray, block: int = kernels.STREAM_ROWS) -> bool:
    """Whether every row has norm 1 (checked a block at a time: ``vectors`` may be mapped)."""
    return all(np.allclose(np.linalg.norm(vectors[s:s + block], axis=1), 1.0, atol=1e-4)
               for s in range(0, len(vectors), block))


class FaissBackend:
    """In-process FAISS storage for a ``dim``-d index with prefix ``levels``.

    ``coarse``: "hnsw" (default above ``flat_threshold`` records with "auto"), "flat"
    (exact coarse scan), or "ivf" (inverted lists, trained on the first add — or, with
    ``deferred_build``, on everything loaded before :meth:`optimize`). ``ivf_encoding``:
    "flat" (float32 codes) or "sq8" (8-bit scalar quantisation on one shared range: a quarter
    of the bytes to scan; the funnel's exact rescoring removes the quantisation error).
    ``nprobe`` is the IVF breadth when the plan does not set one. With ``nlist`` ≥
    ``HNSW_QUANTIZER_FROM`` the lists' centroids are themselves found through a small HNSW
    graph: scanning thousands of centroids would otherwise cost as much as scanning the lists.
    ``deferred_build``: bulk-load mode — adds only store rows, and the coarse index catches up
    on :meth:`optimize` or the next search.

    ``vector_storage``: "memory" (default) keeps the full vectors in RAM; "mmap" keeps them in a
    memory-mapped file (:mod:`.vector_storage`), so that only the coarse index, the prefix
    norms and the ids are resident and the full vectors are read for the candidates alone.
    ``scratch_dir`` is where an "mmap" index writes its vector file (never saved: a saved index
    must not choose where its reader writes; pass it again to :meth:`MatryoshkaIndex.load`).
    """

    kind = "faiss"
    where = "in process"
    keeps_own_data = False  # its records live in memory and in the index's save
    store_id = None

    def __init__(self, dim: int, levels: tuple[int, ...], *, adaptor_hash: str | None = None,
                 coarse: str = "auto", hnsw_m: int = 32, ef_construction: int = 80,
                 flat_threshold: int = 10_000, nlist: int | None = None, nprobe: int = 16,
                 ivf_encoding: str = "flat", compact_fraction: float = 0.25,
                 exact_fraction: float = 0.02, deferred_build: bool = False,
                 vector_storage: str = "memory", scratch_dir: str | Path | None = None):
        # adaptor_hash: FAISS lives inside the index directory, whose manifest records it
        storage = vector_storage_of(vector_storage, scratch_dir)
        self.dim, self.levels = int(dim), tuple(levels)
        self.coarse_dim = self.levels[0]
        self.options = {"coarse": check_choice(coarse, "coarse", COARSE_KINDS),
                        "hnsw_m": check_int(hnsw_m, "hnsw_m", 2, 256),
                        "ef_construction": check_int(ef_construction, "ef_construction", 1, 1 << 14),
                        "flat_threshold": check_int(flat_threshold, "flat_threshold", 0, 1 << 40),
                        "nlist": None if nlist is None else check_int(nlist, "nlist", 1, 1 << 22),
                        "nprobe": check_int(nprobe, "nprobe", 1, 1 << 22),
                        "ivf_encoding": check_choice(ivf_encoding, "ivf_encoding", IVF_ENCODINGS),
                        "compact_fraction": check_number(compact_fraction, "compact_fraction", 0, 1, low_open=True),
                        "exact_fraction": check_number(exact_fraction, "exact_fraction", 0, 1),
                        "deferred_build": check_bool(deferred_build, "deferred_build"),
                        "vector_storage": vector_storage}
        self._lock = threading.RLock()
        self.rows = RowStore(self.dim, self.levels, storage)
        self._coarse: faiss.Index | None = None
        self._coarse_kind = "flat"
        self._synced: tuple[int, int] | None = None  # (rows.version, rows.n) at the last catch-up
        self._filter_cache: dict[tuple[str, int], np.ndarray] = {}
        self._params_cache: dict[tuple, Any] = {}

    # --- the coarse index ------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.rows)

    @property
    def coarse_kind(self) -> str:
        return self._coarse_kind

    def _wanted_coarse_kind(self, n: int) -> str:
        kind = self.options["coarse"]
        if kind == "auto":
            return "hnsw" if n >= self.options["flat_threshold"] else "flat"
        return kind

    def _coarse_vectors(self, rows: slice) -> np.ndarray:
        r = self.rows
        return np.ascontiguousarray(r.vectors[rows, :self.coarse_dim] / r.norms[rows, :1])

    def _rebuild_coarse(self) -> None:
        """(Re)build the coarse index over rows 0..n-1 (labels = row numbers), a block of
        prefixes at a time (an IVF index trains on a sample), so a rebuild never copies
        every row's prefix at once. With no rows there is no coarse index (an IVF index cannot
        be trained on nothing); the next add builds one."""
        n = self.rows.n
        kind = self._wanted_coarse_kind(len(self))
        self._params_cache.clear()  # parameters may depend on the index's shape (IVF lists)
        if n == 0:
            self._coarse, self._coarse_kind = None, kind
            return
        train_on = np.empty((0, self.coarse_dim), np.float32)
        if kind == "ivf":
            nlist = ivf_lists(self.options["nlist"], n)
            wanted = min(n, TRAIN_PER_LIST * nlist)
            rows = np.sort(np.random.default_rng(0).choice(n, wanted, replace=False)) if wanted < n else slice(0, n)
            train_on = self._coarse_vectors(rows)
        index = new_coarse_index(kind, self.coarse_dim, self.options, train_on, n)
        for s in range(0, n, kernels.STREAM_ROWS):
            index.add(self._coarse_vectors(slice(s, min(n, s + kernels.STREAM_ROWS))))
        self._coarse, self._coarse_kind = index, kind

    def _outgrown(self) -> bool:
        """Whether the IVF index has too few lists for the rows there are now, so that it is
        retrained rather than added to: one trained on a few rows (a delete that emptied most
        of the index, a first add of a handful) gets the lists it was asked for once there are
        rows enough; with the default list count (~4·√n) it is retrained each time the count it
        wants doubles, so a growing index is retrained a logarithmic number of times."""
        if self._coarse_kind != "ivf" or self._coarse is None:
            return False
        trained, wanted = int(self._coarse.nlist), ivf_lists(self.options["nlist"], self.rows.n)
        return trained < wanted if self.options["nlist"] else 2 * trained <= wanted

    def _sync_coarse(self) -> None:
        """Bring the coarse index up to date with the stored rows (add the missing ones, or
        rebuild when the wanted kind changed, e.g. flat → HNSW as the index grows)."""
        state = (self.rows.version, self.rows.n)
        if self._synced == state and self._coarse is not None:
            return  # no rows written since the last sync: every search passes here
        if self._coarse is None or self._wanted_coarse_kind(len(self)) != self._coarse_kind or self._outgrown():
            self._rebuild_coarse()
        elif self._coarse.ntotal < self.rows.n:
            self._coarse.add(self._coarse_vectors(slice(self._coarse.ntotal, self.rows.n)))
        self._synced = state

    def optimize(self) -> None:
        """Build what a deferred bulk load postponed (the HNSW graph); searches do it too."""
        with self._lock:
            self._sync_coarse()

    # --- writes ----------------------------------------------------------------------------
    def stored_ids(self, ids: list[UserId], keys: np.ndarray) -> list[UserId | None]:
        with self._lock:
            rows = (self.rows.row(k) for k in keys)
            return [None if r is None else self.rows.id_of(r) for r in rows]

    def add(self, ids: list[UserId], keys: np.ndarray, vectors: np.ndarray, metadata: list[dict]) -> None:
        with self._lock:
            staged = self.rows.stage(keys, normalize_rows(vectors), metadata)
            try:
                if not self.options["deferred_build"]:
                    self._sync_coarse()
            except BaseException:
                # nothing visible has changed yet except the staged rows and the coarse index
                self.rows.unstage(staged)
                self._rebuild_coarse()
                raise
            self.rows.commit(staged, ids, metadata)
            self._maybe_compact()

    def delete(self, ids: list[UserId], keys: np.ndarray) -> None:
        with self._lock:
            self.rows.tombstone(keys)
            try:
                self._maybe_compact()
            except MatryIndexError as exc:
                # the delete itself is complete (the rows are tombstones, which every search
                # skips); only the clean-up failed, and the next write or save retries it
                warnings.warn(f"records deleted; compacting the index failed and will be retried: {exc}",
                              RuntimeWarning, stacklevel=3)

    def _maybe_compact(self) -> None:
        dead = self.rows.dead
        if dead > 0 and (len(self) == 0 or dead >= self.options["compact_fraction"] * self.rows.n):
            self.compact()

    def compact(self) -> None:
        """Drop tombstoned rows and rebuild the coarse index (row numbers change).

        The rows move only once their new storage is secured (a full disk fails before anything
        moves); if rebuilding the coarse index then fails, it is dropped and rebuilt by the next
        search, so it never points at rows that moved."""
        with self._lock:
            self.rows.compact()
            try:
                self._rebuild_coarse()
            except BaseException:
                self._coarse, self._synced = None, None
                self._params_cache.clear()
                raise

    # --- reads -----------------------------------------------------------------------------
    def get(self, ids: list[UserId], keys: np.ndarray) -> list[Record | None]:
        with self._lock:
            return [self.rows.record(k) for k in keys]

    def _allowed(self, flt: Node | None) -> np.ndarray | None:
        """Boolean mask of searchable rows, or None when every row is (no filter, no tombstones)."""
        rows = self.rows
        if flt is None and rows.dead == 0:
            return None
        live = rows.live[: rows.n]
        if flt is None:
            return live.copy()
        # evaluating a filter is a Python pass over every record's metadata: remember the
        # mask of recent filters until the next write changes the rows
        cache_key = (repr(flt), rows.version)
        mask = self._filter_cache.get(cache_key)
        if mask is None:
            mask = live.copy()
            for r in np.flatnonzero(mask):
                mask[r] = matches(flt, rows.metadata_of(r))
            if len(self._filter_cache) >= 32:
                self._filter_cache.clear()
            self._filter_cache[cache_key] = mask
        return mask

    def _exact_hits(self, queries: np.ndarray, k: int, allowed: np.ndarray | None) -> list[list[Hit]]:
        q, r = normalize_rows(queries), self.rows
        subset = None if allowed is None else np.flatnonzero(allowed)
        top, scores = kernels.exact_top_k(q, r.vectors[:r.n], k, rows=subset)
        return [r.hits(t, s) for t, s in zip(top, scores)]

    def scan(self, filter: Node | None = None) -> list[tuple[UserId, dict]]:
        with self._lock:
            mask = self._allowed(filter)
            rows = range(self.rows.n) if mask is None else np.flatnonzero(mask)
            return [(self.rows.id_of(r), dict(self.rows.metadata_of(r))) for r in rows]

    def exact_search(self, queries: np.ndarray, k: int, filter: Node | None = None) -> list[list[Hit]]:
        with self._lock:
            return self._exact_hits(queries, k, self._allowed(filter))

    def coarse_cost(self) -> CoarseCost:
        """The cost model :func:`matry_index.funnel.tune` uses to rank plans for this index
        (finishing a deferred build first: an IVF index's list count is known only then)."""
        with self._lock:
            if self.rows.n:
                self._sync_coarse()
            kind = self._coarse_kind if self._coarse is not None else self._wanted_coarse_kind(len(self))
            nlist = int(self._coarse.nlist) if kind == "ivf" and self._coarse is not None else 0
        sq8 = kind == "ivf" and self.options["ivf_encoding"] == "sq8"
        return CoarseCost(kind, self.options["hnsw_m"], nlist, 1 if sq8 else 4)

    def _search_params(self, count: int, plan: FunnelPlan, sel=None):
        """Coarse search parameters, cached when there is no selector (building the SWIG
        objects costs more than a small IVF search)."""
        ef = min(plan.ef_for(count), max(count, self.rows.n))  # a walk wider than the index finds nothing more
        nprobe = plan.nprobe or self.options["nprobe"]
        key = (self._coarse_kind, ef if self._coarse_kind == "hnsw" else 0,
               nprobe if self._coarse_kind == "ivf" else 0)
        params = self._params_cache.get(key) if sel is None else None
        if params is None:
            params = search_parameters(self._coarse, self._coarse_kind, ef, nprobe, sel)
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
        r = self.rows
        first_level, first_count = stages[0]
        rows = self._coarse_search(np.ascontiguousarray(q[:, :first_level]), first_count, allowed, plan)
        middle = stages[1:-1]
        if middle and len(q) == 1:
            rows = kernels.narrow_one(r.vectors, r.norms, self.levels, q[0], rows[0][rows[0] >= 0], middle)[None, :]
        elif middle:
            rows = kernels.narrow(r.vectors, r.norms, self.levels, q, rows, middle)
        return kernels.top_k_of_rows(q, r.vectors[:r.n], rows, stages[-1][1])

    def search(self, queries: np.ndarray, k: int, plan: FunnelPlan,
               filter: Node | None = None) -> list[list[Hit]]:
        with self._lock:
            self._sync_coarse()
            allowed = self._allowed(filter)
            n_ok = self.rows.n if allowed is None else int(allowed.sum())
            if n_ok == 0:
                return [[] for _ in range(len(queries))]
            stages = plan.stages(self.levels, k, n_ok)
            # exact search over the matches when the first stage would have to return them all
            # anyway, or a filter is so selective that walking the graph would mostly skip nodes
            selective = allowed is not None and n_ok <= self.options["exact_fraction"] * self.rows.n
            if selective or len(stages) == 1 or n_ok <= stages[0][1]:
                return self._exact_hits(queries, k, allowed)
            # full-dimension cosines at the last stage: normalise once; earlier stages rank
            # within a query and need no normalisation of the query's prefix
            q_all = normalize_rows(queries)
            out: list[list[Hit]] = []
            for s in range(0, len(q_all), QUERY_BLOCK):
                q = q_all[s:s + QUERY_BLOCK]
                rows, scores = self._funnel(q, stages, allowed, plan)
                for i in range(len(q)):
                    hits = self.rows.hits(rows[i], scores[i])
                    if len(hits) < min(k, n_ok):  # the coarse stage ran dry under a filter: go exact
                        hits = self._exact_hits(q[i:i + 1], k, allowed)[0]
                    out.append(hits)
            return out

    def memory_bytes(self) -> dict[str, int]:
        """Bytes this backend holds for its rows, by part: "vectors" (0 when they are
        memory-mapped: those pages are the kernel's page cache, read for the candidates and
        reclaimable), "coarse" (the ANN index), "rows" (prefix norms, keys, flags, the key map)
        and "python" (the per-record lists: metadata, and the ids unless they are ints)."""
        with self._lock:
            self._sync_coarse()
            r, n = self.rows, self.rows.n
            mapped = isinstance(r.vectors, np.memmap)
            python = sys.getsizeof(r.meta) + sum(sys.getsizeof(m) for m in r.meta if m)
            if not r.int_ids:
                python += sys.getsizeof(r.ids) + sum(sys.getsizeof(i) for i in r.ids)
            return {"vectors": 0 if mapped else n * self.dim * 4,
                    "coarse": coarse_index_bytes(self._coarse) if self._coarse is not None else 0,
                    "rows": n * (r.norms.shape[1] * 4 + 8 + 2) + r.row_of.nbytes(), "python": python}

    # --- persistence -----------------------------------------------------------------------
    def save(self, directory: Path) -> dict[str, Any]:
        with self._lock:
            if self.rows.dead:
                self.compact()
            self._sync_coarse()
            write_records(directory, self.rows.ids, self.rows.meta, self.rows.vectors[:self.rows.n])
            if self._coarse is not None:
                faiss.write_index(self._coarse, str(directory / "coarse.faiss"))
            return {**self.options, "coarse_kind": self._coarse_kind}

    @classmethod
    def open(cls, saved: SavedBackend) -> "FaissBackend":
        """Rebuild the backend from the files :meth:`save` wrote (plain data: arrays, JSON and a
        FAISS index, checked for shape against the manifest).

        The saved options are those :meth:`save` writes, each checked as a constructor argument
        is (a crafted value is :class:`Corrupt`, never a resource grab); any other key, notably
        a ``scratch_dir`` (where a loaded index writes is the caller's to say), is refused. The connection options are how to hold the vectors:
        ``vector_storage`` (overrides the saved choice) and ``scratch_dir``. An "mmap" index maps
        the saved ``vectors.npy`` read-only and first copies it to a scratch file when it is
        written to.
        """
        directory, dim, levels, connection = saved.directory, saved.dim, saved.levels, saved.connection
        unknown = set(connection) - {"vector_storage", "scratch_dir"}
        if unknown:
            raise InvalidInput(f"a FAISS index takes no connection options but vector_storage and "
                               f"scratch_dir; got {sorted(unknown)}")
        unknown = set(saved.options) - set(SAVED_OPTIONS) - {"coarse_kind"}
        if unknown:  # e.g. a scratch_dir: where a loaded index writes is the caller's to say
            raise Corrupt(f"{directory}: the save holds FAISS options a save never writes: {sorted(unknown)}")
        options = {k: v for k, v in saved.options.items() if k in SAVED_OPTIONS}
        coarse_kind = saved.options.get("coarse_kind", "flat")
        if coarse_kind not in COARSE_KINDS[1:]:
            raise Corrupt(f"{directory}: unknown coarse index kind {coarse_kind!r}")
        try:
            cls(dim, levels, **options)  # the saved options alone, so that a bad one is the save's fault
        except InvalidInput as exc:
            raise Corrupt(f"{directory}: the saved FAISS options are invalid: {exc}") from None
        backend = cls(dim, levels, **{**options, **connection})
        mapped = backend.options["vector_storage"] == "mmap"
        ids, metadata, vectors = read_records(directory, dim, mmap=mapped)
        if not _unit_rows(vectors):
            vectors = normalize_rows(vectors)  # saved before rows were normalised
        backend.rows = RowStore.from_records(dim, backend.levels, ids, metadata, vectors, backend.rows.storage)
        coarse_path = directory / "coarse.faiss"
        if coarse_path.exists():
            try:
                coarse = faiss.read_index(str(coarse_path))
            except RuntimeError as exc:
                raise Corrupt(f"{coarse_path}: corrupt FAISS index: {exc}") from None
            expected = {"flat": faiss.IndexFlat, "hnsw": faiss.IndexHNSW, "ivf": faiss.IndexIVF}[coarse_kind]
            typed = faiss.downcast_index(coarse)  # a view: ``coarse`` keeps owning the index
            if not isinstance(typed, expected):
                raise Corrupt(f"{coarse_path} holds a {type(typed).__name__}, not the {coarse_kind} index "
                              "the manifest names")
            if coarse.ntotal != len(ids) or coarse.d != backend.coarse_dim:
                raise Corrupt(f"{coarse_path} holds {coarse.ntotal} vectors of {coarse.d}-d; "
                              f"the manifest expects {len(ids)} of {backend.coarse_dim}-d")
            backend._coarse, backend._coarse_kind = coarse, coarse_kind
        return backend

    def storage_paths(self) -> list[Path]:
        """FAISS keeps nothing on disk outside the index directory."""
        return []

    def close(self) -> None:
        """Nothing to release: the FAISS backend lives in memory."""
