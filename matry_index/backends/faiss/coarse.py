"""The FAISS backend's coarse index: the ANN structure over the rows' coarse prefixes.

Which :class:`~matry_index.codes.CoarseCode` it is built as, how it is built (an IVF index is
trained on a sample of the rows, at most one list per row), how it keeps up with the row store
(new rows are added; a structure the index has outgrown is rebuilt), how it is searched (FAISS
parameters, cached; an ID selector for filters and tombstones) and what it holds in memory. Its
labels are row numbers of :class:`~.rows.RowStore`; the backend rebuilds it whenever those
change (a compaction).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import faiss
import numpy as np

from ... import kernels
from ...codes import COARSE_CODES, CoarseCode, codes_for
from ...errors import Corrupt, InvalidInput
from ...funnel import CoarseCost, FunnelPlan

#: the codes this backend builds, and "auto" (chosen by size)
FAISS_CODES = codes_for("faiss")
#: multiply-adds an exact scan of the lists' centroids may cost before they are found through a
#: small HNSW graph instead: up to ~8,000 lists of 128-d prefixes a scan is as fast and finds
#: the right lists more often (at 1M vectors and 4,000 lists, recall 0.992 with 96 probes in
#: 0.48 ms against 0.67 ms through a graph walked with efSearch 192)
FLAT_QUANTIZER_MACS = 1 << 20
#: with ``coarse="auto"``: an exact coarse scan below this many records (an IVF index needs rows
#: to train on, and a scan of a few hundred prefixes costs nothing), inverted lists of 8-bit
#: codes from there on (``benchmarks/results/peers.md``: the fastest layout at every size measured)
AUTO_IVF_FROM = 1_000
AUTO_CODE = "ivf-int8"
#: "auto" where the rows are held as codes (a compact index): 4-bit fast-scan codes, a sixteenth
#: of a float prefix, so that the coarse index does not cost more than the rows it ranks
CODED_AUTO_CODE = "ivf-pq4"
TRAIN_PER_LIST = 256        # k-means needs no more than a few hundred points per IVF list
#: the fewest vectors an IVF list gets by default: k-means wants a few dozen per centroid
MIN_PER_LIST = 39
#: ... and with 4-bit fast-scan codes, which FAISS stores in blocks of 32 vectors per list (a list
#: of 39 takes two blocks, 64 slots): a few hundred, so that padding is a few per cent
PQ4_MIN_PER_LIST = 256
#: ``coarse="ivf"`` with ``ivf_encoding=`` — the spelling before codes had names
LEGACY_IVF = {"flat": "ivf", "sq8": "ivf-int8"}

Prefixes = Callable[[Any], np.ndarray]  # rows (a slice or sorted row numbers) -> unit coarse prefixes


def code_of(coarse: str, ivf_encoding: str = "flat") -> str:
    """The code name a backend option asks for (``"auto"`` stays itself)."""
    if coarse == "ivf":
        if ivf_encoding not in LEGACY_IVF:
            raise InvalidInput(f"ivf_encoding must be one of {tuple(LEGACY_IVF)}; got {ivf_encoding!r}")
        return LEGACY_IVF[ivf_encoding]
    if coarse != "auto" and coarse not in FAISS_CODES:
        raise InvalidInput(f"coarse must be 'auto' or one of {FAISS_CODES}; got {coarse!r}")
    return coarse


def default_nlist(n: int, min_per_list: int = MIN_PER_LIST) -> int:
    """IVF lists for ``n`` training vectors: ~4·√n, and at least ``min_per_list`` vectors per list."""
    return max(1, min(int(4 * math.sqrt(max(n, 1))), n // min_per_list or 1))


def min_per_list(code: CoarseCode) -> int:
    return PQ4_MIN_PER_LIST if code.encoding.name == "pq4" else MIN_PER_LIST


def ivf_lists(wanted: int | None, n: int, code: CoarseCode) -> int:
    """The lists an IVF index of ``code`` over ``n`` vectors gets: ``wanted`` (default
    :func:`default_nlist`), but never more than there are vectors to train them on (a delete can
    leave a few rows)."""
    return max(1, min(wanted or default_nlist(n, min_per_list(code)), n))


def _ivf(code: CoarseCode, m: int, nlist: int) -> faiss.Index:
    quantizer = (faiss.IndexHNSWFlat(m, 32, faiss.METRIC_INNER_PRODUCT) if nlist * m > FLAT_QUANTIZER_MACS
                 else faiss.IndexFlatIP(m))
    encoding = code.encoding.name
    if encoding == "int8":
        # one shared range for all dimensions and the vectors themselves, not residuals:
        # decoding is a single scale (docs/index.md has the measurement behind this choice)
        return faiss.IndexIVFScalarQuantizer(quantizer, m, nlist, faiss.ScalarQuantizer.QT_8bit_uniform,
                                             faiss.METRIC_INNER_PRODUCT, False)
    if encoding == "pq4":
        if m % 2:
            raise InvalidInput(f"a pq4 code pairs coordinates: the coarse prefix must be even; got {m}")
        return faiss.IndexIVFPQFastScan(quantizer, m, nlist, m // 2, 4, faiss.METRIC_INNER_PRODUCT)
    return faiss.IndexIVFFlat(quantizer, m, nlist, faiss.METRIC_INNER_PRODUCT)


def new_index(code: CoarseCode, m: int, options: dict[str, Any], train_on: np.ndarray) -> faiss.Index:
    """An empty coarse index of ``code`` over ``m``-d prefixes; an IVF index is trained on
    ``train_on`` (at most :data:`TRAIN_PER_LIST` per list) with at most one list per vector."""
    if code.structure == "flat":
        return faiss.IndexFlatIP(m)
    if code.structure == "hnsw":
        index = faiss.IndexHNSWFlat(m, options["hnsw_m"], faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = options["ef_construction"]
        return index
    index = _ivf(code, m, ivf_lists(options["nlist"], len(train_on), code))
    index.train(train_on)
    return index


def index_bytes(index: faiss.Index) -> int:
    """Bytes a coarse index holds in memory: codes and list ids of an IVF index (plus its
    quantizer), vectors and links of an HNSW graph, the vectors of a flat one."""
    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexIVF):
        return _lists_bytes(index) + index_bytes(index.quantizer)
    if isinstance(index, faiss.IndexHNSW):
        graph = index.hnsw
        return (index_bytes(index.storage) + 4 * graph.neighbors.size() + 8 * graph.offsets.size()
                + 4 * graph.levels.size())
    return index.ntotal * index.d * 4


def _lists_bytes(index: faiss.IndexIVF) -> int:
    """Codes and ids of an IVF index's lists: fast-scan lists are held in whole blocks of
    ``n_per_block`` vectors, so a short list pays for the rest of its last block."""
    lists = faiss.downcast_InvertedLists(index.invlists)
    sizes = np.array([lists.list_size(i) for i in range(index.nlist)], np.int64)
    if isinstance(lists, faiss.BlockInvertedLists):
        blocks = -(-sizes // lists.n_per_block)
        return int(blocks.sum() * lists.block_size + sizes.sum() * 8)
    return int(sizes.sum() * (index.code_size + 8))


def row_selector(allowed: np.ndarray) -> tuple[faiss.IDSelector, np.ndarray]:
    """A FAISS ID selector of the rows ``allowed`` marks, and the bitmap it reads (the caller
    keeps both alive until the search has run)."""
    bitmap = np.packbits(allowed, bitorder="little")
    return faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bitmap)), bitmap


_STRUCTURE_CLASS = {"flat": faiss.IndexFlat, "hnsw": faiss.IndexHNSW, "ivf": faiss.IndexIVF}


class CoarseIndex:
    """The coarse ANN index of one FAISS backend, kept in step with its rows.

    ``wanted``: a code name, or "auto" (exact ``flat`` below ``options["flat_threshold"]`` live
    rows, :data:`AUTO_IVF_FROM` by default, :data:`AUTO_CODE` from there on —
    :data:`CODED_AUTO_CODE` where the rows are coded; an index built as another structure — a save made when
    "auto" meant HNSW — keeps it). ``prefixes(rows)`` returns the unit-length coarse prefixes of
    rows.
    """

    def __init__(self, wanted: str, m: int, options: dict[str, Any], prefixes: Prefixes):
        self.wanted, self.m, self.options, self.prefixes = wanted, int(m), options, prefixes
        self.index: faiss.Index | None = None
        self.code: CoarseCode = COARSE_CODES["flat"]
        self._params: dict[tuple, Any] = {}

    def code_for(self, live: int) -> CoarseCode:
        """The code the index should have for ``live`` records."""
        if self.wanted != "auto":
            return COARSE_CODES[self.wanted]
        if live < self.options["flat_threshold"]:
            return COARSE_CODES["flat"]
        if self.index is not None and self.code.structure == "hnsw":
            return self.code  # built as a graph (a save from when "auto" meant HNSW): it stays one
        coded = self.options.get("codes", "float32") != "float32"
        return COARSE_CODES[CODED_AUTO_CODE if coded and self.m % 2 == 0 else AUTO_CODE]

    # --- building ------------------------------------------------------------------------
    def rebuild(self, n: int, live: int) -> None:
        """Build over rows 0..n-1 a block at a time (an IVF index trains on a sample), so a
        rebuild never copies every row's prefix at once. With no rows there is no index (an
        IVF index cannot be trained on nothing); the next add builds one."""
        self._params.clear()  # parameters may depend on the index's shape (IVF lists)
        self.index, self.code = None, self.code_for(live)
        if n == 0:
            return
        train_on = np.empty((0, self.m), np.float32)
        if self.code.structure == "ivf":
            wanted = min(n, TRAIN_PER_LIST * ivf_lists(self.options["nlist"], n, self.code))
            rows = np.sort(np.random.default_rng(0).choice(n, wanted, replace=False)) if wanted < n else slice(0, n)
            train_on = self.prefixes(rows)
        index = new_index(self.code, self.m, self.options, train_on)
        for s in range(0, n, kernels.STREAM_ROWS):
            index.add(self.prefixes(slice(s, min(n, s + kernels.STREAM_ROWS))))
        self.index = index

    def outgrown(self, n: int) -> bool:
        """Whether the IVF index has too few lists for the rows there are now, so that it is
        retrained rather than added to: one trained on a few rows (a delete that emptied most
        of the index, a first add of a handful) gets the lists it was asked for once there are
        rows enough; with the default list count (~4·√n) it is retrained each time the count it
        wants doubles, so a growing index is retrained a logarithmic number of times."""
        if self.code.structure != "ivf" or self.index is None:
            return False
        trained, wanted = int(self.index.nlist), ivf_lists(self.options["nlist"], n, self.code)
        return trained < wanted if self.options["nlist"] else 2 * trained <= wanted

    def catch_up(self, n: int, live: int) -> None:
        """Index rows up to ``n`` (add the missing ones, or rebuild when the wanted code
        changed — flat → HNSW as the index grows — or the index outgrew its lists)."""
        if self.index is None or self.code_for(live) != self.code or self.outgrown(n):
            self.rebuild(n, live)
        elif self.index.ntotal < n:
            self.index.add(self.prefixes(slice(self.index.ntotal, n)))

    # --- searching -----------------------------------------------------------------------
    def _parameters(self, ef: int, nprobe: int, sel=None) -> faiss.SearchParameters:
        structure = self.code.structure
        if structure == "hnsw":
            return faiss.SearchParametersHNSW(efSearch=ef, sel=sel)
        if structure == "ivf":
            params = faiss.SearchParametersIVF(nprobe=nprobe, sel=sel)
            if isinstance(faiss.downcast_index(self.index.quantizer), faiss.IndexHNSW):
                # the nprobe nearest lists through the centroid graph
                params.quantizer_params = faiss.SearchParametersHNSW(efSearch=max(16, 2 * nprobe))
            return params
        return faiss.SearchParameters(sel=sel)

    def parameters(self, count: int, plan: FunnelPlan, n: int, sel=None) -> faiss.SearchParameters:
        """Search parameters for ``count`` candidates under ``plan``; cached when there is no
        selector (building the SWIG objects costs more than a small IVF search)."""
        ef = min(plan.ef_for(count), max(count, n))  # a walk wider than the index finds nothing more
        nprobe = plan.nprobe or self.options["nprobe"]
        key = (self.code.structure, ef if self.code.structure == "hnsw" else 0,
               nprobe if self.code.structure == "ivf" else 0)
        params = self._params.get(key) if sel is None else None
        if params is None:
            params = self._parameters(ef, nprobe, sel)
            if sel is None:
                self._params[key] = params
        return params

    def restricted_parameters(self, count: int, plan: FunnelPlan, n: int,
                              allowed: np.ndarray | None) -> tuple[faiss.SearchParameters, tuple]:
        """:meth:`parameters` with an ID selector of the rows ``allowed`` marks (a filter,
        tombstones; None: every row), and what the selector reads — the caller keeps that
        alive until the search has run."""
        if allowed is None:
            return self.parameters(count, plan, n), ()
        sel, bitmap = row_selector(allowed)
        return self.parameters(count, plan, n, sel), (bitmap, sel)

    def search(self, q_coarse: np.ndarray, count: int, plan: FunnelPlan, n: int,
               allowed: np.ndarray | None) -> np.ndarray:
        """Each query's ``count`` best rows by the coarse code (-1 pads), restricted to the
        rows ``allowed`` marks (a filter, tombstones) inside the search itself."""
        params, selector = self.restricted_parameters(count, plan, n, allowed)
        # search_c with our own output buffers: the Python wrapper's checks cost more than
        # a small IVF probe (q_coarse is already a C-contiguous float32 matrix)
        nq = len(q_coarse)
        dist, rows = np.empty((nq, count), np.float32), np.empty((nq, count), np.int64)
        self.index.search_c(nq, faiss.swig_ptr(q_coarse), count, faiss.swig_ptr(dist), faiss.swig_ptr(rows), params)
        del selector  # the search reads it; kept alive until here
        return rows

    # --- cost, memory, persistence -------------------------------------------------------
    def cost(self, live: int) -> CoarseCost:
        """The tuner's cost model of this index (the code it has, or will have once built)."""
        code = self.code if self.index is not None else self.code_for(live)
        nlist = int(self.index.nlist) if code.structure == "ivf" and self.index is not None else 0
        return CoarseCost(code, self.options["hnsw_m"], nlist)

    def nbytes(self) -> int:
        return index_bytes(self.index) if self.index is not None else 0

    def write(self, path) -> None:
        if self.index is not None:
            faiss.write_index(self.index, str(path))

    def read(self, path, code_name: str, n: int) -> None:
        """Adopt a saved coarse index, checked against the code the manifest names and the rows."""
        code = COARSE_CODES.get(code_name)
        if code is None or "faiss" not in code.engines:
            raise Corrupt(f"{path}: unknown coarse code {code_name!r}")
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            raise Corrupt(f"{path}: corrupt FAISS index: {exc}") from None
        typed = faiss.downcast_index(index)  # a view: ``index`` keeps owning the C++ object
        if not isinstance(typed, _STRUCTURE_CLASS[code.structure]):
            raise Corrupt(f"{path} holds a {type(typed).__name__}, not the {code.name} index the manifest names")
        if index.ntotal != n or index.d != self.m:
            raise Corrupt(f"{path} holds {index.ntotal} vectors of {index.d}-d; the manifest expects {n} of "
                          f"{self.m}-d")
        self.index, self.code = index, code
        self._params.clear()
