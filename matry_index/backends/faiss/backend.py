"""FAISS backend: a row store of adapted vectors, a coarse ANN index, exact rescoring.

Storage per record (:class:`.rows.RowStore`): the full adapted vector (float32, unit length),
one norm per level, and the coarse prefix inside the ANN index (:class:`.coarse.CoarseIndex`).
Middle levels are *slices* of the full vector divided by their stored norm, so they cost no
extra copies. The stages themselves are the array kernels of :mod:`matry_index.kernels`; this
module wires them together. Rows are append-only; a delete is a tombstone (HNSW cannot remove
points), and :meth:`FaissBackend.compact` — run automatically once a quarter of the rows are
dead — rebuilds without them.

Filters and tombstones become a FAISS ``IDSelectorBitmap`` that the ANN search honours while
it walks, so k results come back whenever k records match. Very selective filters skip the
ANN and score the matching rows exactly; either way the result is the filtered top-k.
"""
from __future__ import annotations

import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ... import kernels
from ..._validation import check_bool, check_int, check_number, normalize_rows
from ...codes import check_row_codes
from ...errors import Corrupt, InvalidInput, MatryIndexError
from ...filters import Node, matches
from ...funnel import CoarseCost, FunnelPlan
from ...ids import UserId
from ..base import BackendBase, Hit, Record, SavedBackend
from ..records import read_records, write_records
from .coarse import AUTO_IVF_FROM, LEGACY_IVF, CoarseIndex, code_of
from .native import NativeFunnel
from .row_codes import TRAIN_FROM as CODES_TRAIN_FROM, RowCodec
from .rows import RowStore
from .vector_storage import vector_storage as vector_storage_of

QUERY_BLOCK = 256  # queries per funnel pass: bounds the (queries × candidates × m) gather
#: the options a save records and a load reads back (see FaissBackend.open)
SAVED_OPTIONS = ("coarse", "hnsw_m", "ef_construction", "flat_threshold", "nlist", "nprobe", "ivf_encoding",
                 "compact_fraction", "exact_fraction", "deferred_build", "vector_storage", "codes", "codes_from")
CODE_RANGES_FILE = "code_ranges.npy"  # a trained 8-bit codec's ranges (see .row_codes)


def _unit_rows(vectors: np.ndarray, block: int = kernels.STREAM_ROWS) -> bool:
    """Whether every row has norm 1 (checked a block at a time: ``vectors`` may be mapped)."""
    return all(np.allclose(np.linalg.norm(vectors[s:s + block], axis=1), 1.0, atol=1e-4)
               for s in range(0, len(vectors), block))


class FaissBackend(BackendBase):
    """In-process FAISS storage for a ``dim``-d index with prefix ``levels``.

    ``coarse``: the coarse code (:mod:`matry_index.codes`) — "flat" (exact coarse scan),
    "hnsw", "ivf" (inverted lists of float prefixes), "ivf-int8" (8-bit codes on one shared
    range: a quarter of the bytes to scan; the funnel's exact rescoring removes the quantisation
    error), "ivf-pq4" (4-bit fast-scan codes), or "auto" (the default: flat below
    ``flat_threshold`` records, 1,000 by default, "ivf-int8" from there on — the layout that won
    every size the benchmarks measured). ``ivf_encoding="sq8"`` with ``coarse="ivf"`` is the
    older spelling of "ivf-int8". An IVF index is trained on the first add — or, with
    ``deferred_build``, on everything loaded before :meth:`optimize` — and retrained as it
    outgrows its lists. ``nprobe`` is the IVF breadth when the plan does not set one. The lists'
    centroids are scanned exactly, or, where that would cost over a million multiply-adds (more
    than ~8,000 lists of 128-d prefixes), found through a small HNSW graph.
    ``deferred_build``: bulk-load mode — adds only store rows, and the coarse index catches up
    on :meth:`optimize` or the next search.

    ``vector_storage``: "memory" (default) keeps the full vectors in RAM; "mmap" keeps them in a
    memory-mapped file (:mod:`.vector_storage`), so that only the coarse index, the prefix
    norms and the ids are resident and the full vectors are read for the candidates alone.
    ``scratch_dir`` is where an "mmap" index writes its vector file (never saved: a saved index
    must not choose where its reader writes; pass it again to :meth:`MatryoshkaIndex.load`).

    ``codes``: how the rescoring vectors are held (:mod:`.row_codes`): "float32" (default),
    "float16" or "int8" (a compact index's choice: a half or a quarter of the bytes; the final
    ranking is then that of the decoded codes). 8-bit codes are trained once the index holds
    ``codes_from`` records (float32 rows until then).

    Vectors handed to it are unit length (the index's precondition); it keeps one norm per
    prefix level so that every prefix is compared by cosine.
    """

    kind = "faiss"

    def __init__(self, dim: int, levels: tuple[int, ...], *, adaptor_hash: str | None = None,
                 coarse: str = "auto", hnsw_m: int = 32, ef_construction: int = 80,
                 flat_threshold: int = AUTO_IVF_FROM, nlist: int | None = None, nprobe: int = 16,
                 ivf_encoding: str = "flat", compact_fraction: float = 0.25,
                 exact_fraction: float = 0.02, deferred_build: bool = False,
                 vector_storage: str = "memory", scratch_dir: str | Path | None = None,
                 codes: str = "float32", codes_from: int = CODES_TRAIN_FROM):
        # adaptor_hash: FAISS lives inside the index directory, whose manifest records it
        storage = vector_storage_of(vector_storage, scratch_dir)
        self.dim, self.levels = int(dim), tuple(levels)
        self.options = {"coarse": coarse, "hnsw_m": check_int(hnsw_m, "hnsw_m", 2, 256),
                        "ef_construction": check_int(ef_construction, "ef_construction", 1, 1 << 14),
                        "flat_threshold": check_int(flat_threshold, "flat_threshold", 0, 1 << 40),
                        "nlist": None if nlist is None else check_int(nlist, "nlist", 1, 1 << 22),
                        "nprobe": check_int(nprobe, "nprobe", 1, 1 << 22), "ivf_encoding": ivf_encoding,
                        "compact_fraction": check_number(compact_fraction, "compact_fraction", 0, 1, low_open=True),
                        "exact_fraction": check_number(exact_fraction, "exact_fraction", 0, 1),
                        "deferred_build": check_bool(deferred_build, "deferred_build"),
                        "vector_storage": vector_storage, "codes": check_row_codes(codes),
                        "codes_from": check_int(codes_from, "codes_from", 1, 1 << 40)}
        self._lock = threading.RLock()
        self.rows = RowStore(self.dim, self.levels, storage, RowCodec(codes, self.dim, self.options["codes_from"]))
        self.coarse = CoarseIndex(code_of(coarse, ivf_encoding), self.levels[0], self.options, self._prefixes)
        self._synced: tuple[int, int] | None = None  # (rows.version, rows.n) at the last catch-up
        self._filter_cache: dict[tuple[str, int], np.ndarray] = {}
        self.native = NativeFunnel(self.levels[0])
        #: run two-stage plans (coarse prefix, then the stored rows) as one FAISS call
        #: (:mod:`.native`); False runs every plan stage by stage, the reference the tests compare with
        self.native_funnel = True

    def __len__(self) -> int:
        return len(self.rows)

    # --- the coarse index ------------------------------------------------------------------
    def _prefixes(self, rows: Any) -> np.ndarray:
        """Unit-length coarse prefixes of ``rows`` (a slice or sorted row numbers)."""
        r, m = self.rows, self.levels[0]
        if len(self.levels) == 1:  # the coarse level is the whole stored vector: unit already
            return np.ascontiguousarray(r.matrix[rows])
        return kernels.renormalized(np.ascontiguousarray(r.matrix[rows, :m], np.float32))

    def _sync_coarse(self, incoming: int = 0) -> None:
        """Bring the coarse index up to date with the stored rows (``incoming``: rows staged by
        an add in progress, which count towards the size the coarse code is chosen for)."""
        state = (self.rows.version, self.rows.n)
        if self._synced == state and self.coarse.index is not None:
            return  # no rows written since the last sync: every search passes here
        self.coarse.catch_up(self.rows.n, len(self) + incoming)
        self._synced = state

    def _rebuild_coarse(self) -> None:
        self.coarse.rebuild(self.rows.n, len(self))
        self._synced = (self.rows.version, self.rows.n)

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
            staged = self.rows.stage(keys, vectors, metadata)
            try:
                if not self.options["deferred_build"]:
                    self._sync_coarse(incoming=len(keys))
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
                self.coarse.index, self._synced = None, None
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
        """Exact top-``k`` of the ``allowed`` rows. Float32 rows are scored with numpy's matrix
        product; coded rows (float16, 8-bit) by FAISS's scan of the codes as stored, which
        decodes them without copying the index into float32 blocks."""
        r = self.rows
        n_ok = r.n if allowed is None else int(np.count_nonzero(allowed))
        if r.vectors.dtype != np.float32 and n_ok and self.native_funnel and self.native.viewable(r):
            top, scores = self.native.exhaustive(r, queries, min(k, n_ok), allowed)
        else:
            subset = None if allowed is None else np.flatnonzero(allowed)
            top, scores = kernels.exact_top_k(queries, r.matrix, k, rows=subset)
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
            return self.coarse.cost(len(self))

    def _funnel(self, q: np.ndarray, stages: list[tuple[int, int]], allowed: np.ndarray | None,
                plan: FunnelPlan) -> tuple[np.ndarray, np.ndarray]:
        """Rows and full-dimension cosines of each query's top hits, best first (-1 rows pad)."""
        r = self.rows
        first_level, first_count = stages[0]
        if len(stages) == 2 and self.native_funnel and self.native.usable(r, self.coarse.index):
            params, selector = self.coarse.restricted_parameters(first_count, plan, r.n, allowed)
            found = self.native.search(self.coarse.index, r, q, first_count, stages[-1][1], params,
                                       keep_params=allowed is None)
            del selector  # read by the search; kept alive until here
            return found
        matrix = r.matrix
        rows = self.coarse.search(np.ascontiguousarray(q[:, :first_level]), first_count, plan, r.n, allowed)
        middle = stages[1:-1]
        if middle and len(q) == 1:
            rows = kernels.narrow_one(matrix, r.norms, r.norm_levels, q[0], rows[0][rows[0] >= 0], middle)[None, :]
        elif middle:
            rows = kernels.narrow(matrix, r.norms, r.norm_levels, q, rows, middle)
        return kernels.top_k_of_rows(q, matrix, rows, stages[-1][1])

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
            out: list[list[Hit]] = []
            for s in range(0, len(queries), QUERY_BLOCK):
                q = queries[s:s + QUERY_BLOCK]
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
        "ids" (string ids, packed; int ids are their keys) and "metadata" (packed as JSON)."""
        with self._lock:
            self._sync_coarse()
            r, n = self.rows, self.rows.n
            mapped = isinstance(r.vectors, np.memmap)
            return {"vectors": 0 if mapped else n * self.dim * r.vectors.dtype.itemsize, "coarse": self.coarse.nbytes(),
                    "rows": n * (r.norms.shape[1] * 4 + 8 + 2) + r.row_of.nbytes(), "ids": r.ids_nbytes(),
                    "metadata": r.meta.nbytes()}

    def stats_parts(self) -> tuple[dict[str, int], dict[str, int], str]:
        """RAM from :meth:`memory_bytes`; on disk, the memory-mapped vector file's blocks."""
        with self._lock:
            ram = self.memory_bytes()
            vectors = self.rows.vectors
            disk = {"vectors": self.rows.storage.file_bytes(vectors)} if isinstance(vectors, np.memmap) else {}
            return ram, disk, "measured from the arrays and the FAISS index held"

    # --- persistence -----------------------------------------------------------------------
    def save(self, directory: Path) -> dict[str, Any]:
        with self._lock:
            if self.rows.dead:
                self.compact()
            self._sync_coarse()
            write_records(directory, self.rows.ids, self.rows.metadata_list(), self.rows.vectors[:self.rows.n])
            ranges = self.rows.codec.state()
            if ranges is not None:
                np.save(directory / CODE_RANGES_FILE, ranges, allow_pickle=False)
            self.coarse.write(directory / "coarse.faiss")
            return {**self.options, "coarse_code": self.coarse.code.name}

    @classmethod
    def open(cls, saved: SavedBackend) -> "FaissBackend":
        """Rebuild the backend from the files :meth:`save` wrote (plain data: arrays, JSON and a
        FAISS index, checked for shape against the manifest).

        The saved options are those :meth:`save` writes, each checked as a constructor argument
        is (a crafted value is :class:`Corrupt`, never a resource grab); any other key, notably
        a ``scratch_dir`` (where a loaded index writes is the caller's to say), is refused. The
        connection options are how to hold the vectors: ``vector_storage`` (overrides the saved
        choice) and ``scratch_dir``. An "mmap" index maps the saved ``vectors.npy`` read-only and
        first copies it to a scratch file when it is written to.
        """
        directory, dim, levels, connection = saved.directory, saved.dim, saved.levels, saved.connection
        unknown = set(connection) - {"vector_storage", "scratch_dir"}
        if unknown:
            raise InvalidInput(f"a FAISS index takes no connection options but vector_storage and "
                               f"scratch_dir; got {sorted(unknown)}")
        options, built = _saved_options(saved)
        backend = cls(dim, levels, **{**options, **connection})
        mapped = backend.options["vector_storage"] == "mmap"
        codec = _saved_codec(directory, backend.rows.codec)
        ids, metadata, vectors = read_records(directory, dim, mmap=mapped,
                                              dtype=codec.dtype if codec.trained else np.float32)
        if vectors.dtype == np.float32 and not _unit_rows(vectors):
            vectors = normalize_rows(vectors)  # saved before rows were normalised
        backend.rows = RowStore.from_records(dim, backend.levels, ids, metadata, vectors, backend.rows.storage, codec)
        coarse_path = directory / "coarse.faiss"
        if coarse_path.exists():
            backend.coarse.read(coarse_path, built, len(ids))
        return backend

    def storage_paths(self) -> list[Path]:
        """FAISS keeps nothing on disk outside the index directory."""
        return []


def _saved_codec(directory: Path, codec: RowCodec) -> RowCodec:
    """``codec`` as the save left it: an 8-bit codec with its saved ranges, or untrained (its
    rows were saved as float32) where the save has none."""
    path = directory / CODE_RANGES_FILE
    if path.exists():
        try:
            state = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise Corrupt(f"{directory}: cannot read the saved code ranges: {exc!r}") from None
        codec.restore(state, str(directory))
    return codec


def _saved_options(saved: SavedBackend) -> tuple[dict[str, Any], str]:
    """The constructor options a save recorded, each checked, and the code its coarse index
    was built as (saves made before codes had names record ``coarse_kind`` instead)."""
    bookkeeping = {"coarse_code", "coarse_kind"}
    unknown = set(saved.options) - set(SAVED_OPTIONS) - bookkeeping
    if unknown:  # e.g. a scratch_dir: where a loaded index writes is the caller's to say
        raise Corrupt(f"{saved.directory}: the save holds FAISS options a save never writes: {sorted(unknown)}")
    options = {k: v for k, v in saved.options.items() if k in SAVED_OPTIONS}
    try:
        FaissBackend(saved.dim, saved.levels, **options)  # the saved options alone: a bad one is the save's fault
    except (InvalidInput, TypeError) as exc:
        raise Corrupt(f"{saved.directory}: the saved FAISS options are invalid: {exc}") from None
    built = saved.options.get("coarse_code")
    if built is None:
        kind = saved.options.get("coarse_kind", "flat")
        built = LEGACY_IVF.get(options.get("ivf_encoding", "flat"), "?") if kind == "ivf" else kind
    return options, str(built)
