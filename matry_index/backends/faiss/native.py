"""The two-stage funnel as one FAISS call: coarse search on the prefix, exact rescoring on the rows.

A funnel without middle levels is "approximate search on the coarse prefix, then the stored
rows rank the candidates". FAISS has that shape built in — ``IndexRefine`` searches a base index
for ``k_factor·k`` candidates and re-ranks them with a second index's exact scores — and runs it
per query in C++ (and across queries on every core for a batch). Doing it there removes the
Python between the stages, the copy of the candidates' row numbers, and, for a batch, runs the
rescoring in parallel (``benchmarks/results/peers*.md`` has what that is worth).

The composite is assembled from what the backend already holds, without copying anything:

* the base is the backend's own coarse index behind two vector transforms — keep the first
  ``m`` coordinates (``RemapDimensionsTransform``), re-normalise them
  (``NormalizationTransform``) — so it is queried with the same unit prefix as the Python path;
* the refining index is a *view* of the row store's array: an ``IndexFlatIP`` over float32
  rows, an ``IndexScalarQuantizer`` over float16 or 8-bit rows (the 8-bit ranges are the row
  codec's own: the codec is FAISS's ``QT_8bit`` quantiser), whose code buffer points at the
  rows (RAM or a memory-mapped file) rather than owning them.

The composite is checked before every search against what it points at — the rows' address,
count and code, the coarse index's address and size — and rebuilt when any of them changed (an
add that grows the array, a compaction, a reload, a rebuilt coarse index), so it is never used
while it points at freed memory; it holds no reference to the rows or the coarse index, so it
never keeps an array the row store has let go of. Building one costs a few microseconds.
Filters and tombstones reach the base search as the same ID selector the Python path uses. The results are those of :func:`matry_index.kernels.top_k_of_rows` after
:meth:`~.coarse.CoarseIndex.search` (``tests/test_native_funnel.py`` checks it on every coarse
code, row code and storage).
"""
from __future__ import annotations

from typing import Any

import faiss
import numpy as np

from .coarse import row_selector
from .rows import RowStore

#: search-parameter objects kept per (candidates, k, base parameters): SWIG objects cost more to
#: make than a small search, and a running index asks for the same few again and again
_PARAMS_KEPT = 64


def _refining_index(rows: RowStore) -> faiss.Index:
    """An empty FAISS index that scores rows stored as ``rows`` holds them (no codes yet)."""
    dim, dtype = rows.dim, rows.vectors.dtype
    ip = faiss.METRIC_INNER_PRODUCT
    if dtype == np.float32:
        return faiss.IndexFlatIP(dim)
    if dtype == np.float16:
        return faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, ip)
    index = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit, ip)
    faiss.copy_array_to_vector(np.ascontiguousarray(rows.codec.state().ravel()), index.sq.trained)
    index.is_trained = True
    return index


def _view_rows(index: faiss.Index, stored: np.ndarray) -> None:
    """Point ``index``'s code buffer at ``stored`` (C-contiguous rows in the index's own code
    layout) without copying. The view does not keep ``stored`` alive: it may be searched only
    while that memory is still the row store's (:class:`NativeFunnel` checks before every use)."""
    flat_bytes = stored.view(np.uint8).reshape(-1)
    pointer, size = faiss.swig_ptr(flat_bytes), flat_bytes.size
    codes = index.codes
    codes.is_owned, codes.view_data, codes.view_size, codes.c_ptr, codes.c_size = False, pointer, size, pointer, size
    index.ntotal = len(stored)


class NativeFunnel:
    """The composite ``IndexRefine`` of one FAISS backend, kept pointing at its current rows.

    ``prefix`` is the coarse level (the base index's dimension). :meth:`usable` says whether a
    funnel search can run here, :meth:`search` runs it; :meth:`exhaustive` ranks every row with
    the same view of the rows.
    """

    def __init__(self, prefix: int):
        self.prefix = int(prefix)
        self._view: faiss.Index | None = None   # the refining index over the current rows
        self._view_key: tuple | None = None
        self._key: tuple | None = None
        self._parts: tuple = ()          # the FAISS objects the composite owns, kept alive
        self._refine: faiss.IndexRefine | None = None
        self._params: dict[tuple, tuple] = {}

    @staticmethod
    def viewable(rows: RowStore) -> bool:
        """Whether FAISS can read the rows as they are: contiguous, in a code FAISS reads
        (float32, float16, or 8-bit with trained ranges)."""
        stored = rows.vectors
        return (rows.n > 0 and isinstance(stored, np.ndarray) and stored.flags.c_contiguous
                and stored.dtype in (np.float32, np.float16, np.uint8)
                and (stored.dtype != np.uint8 or rows.codec.trained))

    @classmethod
    def usable(cls, rows: RowStore, coarse_index: faiss.Index | None) -> bool:
        """Whether a funnel search can run natively: the rows are viewable and the coarse
        index covers every one of them."""
        return coarse_index is not None and coarse_index.ntotal == rows.n and cls.viewable(rows)

    def _viewed(self, rows: RowStore) -> faiss.Index:
        """The refining index viewing the rows as they are now (made again when they moved)."""
        stored = rows.vectors[: rows.n]
        key = (stored.__array_interface__["data"][0], rows.n, stored.dtype.str, id(rows.codec), rows.codec.trained)
        if key != self._view_key or self._view is None:
            view = _refining_index(rows)
            _view_rows(view, stored)
            self._view, self._view_key = view, key
        return self._view

    def _composite(self, coarse_index: faiss.Index, rows: RowStore) -> faiss.IndexRefine:
        refining = self._viewed(rows)
        key = (int(coarse_index.this), coarse_index.ntotal, self._view_key)
        if key == self._key and self._refine is not None:
            return self._refine
        keep_first = faiss.RemapDimensionsTransform(rows.dim, self.prefix, False)
        unit = faiss.NormalizationTransform(self.prefix)
        base = faiss.IndexPreTransform(coarse_index)  # does not own the coarse index
        base.prepend_transform(unit)
        base.prepend_transform(keep_first)
        refine = faiss.IndexRefine(base, refining)  # owns neither: they are kept in _parts
        self._parts = (keep_first, unit, base, refining)
        self._refine, self._key = refine, key
        self._params.clear()
        return refine

    def _search_params(self, count: int, k: int, base_params: faiss.SearchParameters, keep: bool) -> Any:
        """FAISS's parameters for one search; kept (with the base parameters they point at)
        where ``keep`` — the base parameters are the coarse index's cached ones, not a selector's."""
        key = (count, k, id(base_params))
        kept = self._params.get(key) if keep else None
        if kept is None or kept[0] is not base_params:
            params = faiss.IndexRefineSearchParameters()
            params.k_factor = (count + 0.5) / k  # FAISS takes int(k · k_factor) candidates: exactly count
            params.base_index_params = base_params
            kept = (base_params, params)
            if keep:
                if len(self._params) >= _PARAMS_KEPT:
                    self._params.clear()
                self._params[key] = kept
        return kept[1]

    def search(self, coarse_index: faiss.Index, rows: RowStore, queries: np.ndarray, count: int, k: int,
               base_params: faiss.SearchParameters, keep_params: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Rows and scores of each query's top ``k`` (best first, -1 pads) among the ``count``
        candidates of the coarse search under ``base_params``. ``queries``: C-contiguous float32
        unit vectors of the rows' dimension; ``keep_params``: False where ``base_params`` holds a
        selector made for this search alone."""
        refine = self._composite(coarse_index, rows)
        nq = len(queries)
        scores, top = np.empty((nq, k), np.float32), np.empty((nq, k), np.int64)
        params = self._search_params(count, k, base_params, keep_params)
        refine.search_c(nq, faiss.swig_ptr(queries), k, faiss.swig_ptr(scores), faiss.swig_ptr(top), params)
        return top, scores

    def exhaustive(self, rows: RowStore, queries: np.ndarray, k: int,
                   allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Each query's top ``k`` of every row ``allowed`` marks (None: all), best first, ties
        by lower row: the exact ranking of the rows as stored, decoded inside FAISS's scan
        rather than in numpy. ``k`` at most the number of such rows."""
        view = self._viewed(rows)
        selector = row_selector(allowed) if allowed is not None else None
        params = faiss.SearchParameters(sel=selector[0]) if selector else None
        nq = len(queries)
        scores, top = np.empty((nq, k), np.float32), np.empty((nq, k), np.int64)
        view.search_c(nq, faiss.swig_ptr(queries), k, faiss.swig_ptr(scores), faiss.swig_ptr(top), params)
        del selector
        order = np.lexsort((top, -scores))  # FAISS's heap leaves ties in no set order
        return np.take_along_axis(top, order, 1), np.take_along_axis(scores, order, 1)
