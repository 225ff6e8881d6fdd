"""The methods a benchmark compares: the funnel as users get it, and the strongest rivals.

Each builder takes the benchmark's :class:`Data` (unit-length original vectors, tuning and test
queries with their exact answers) and returns a :class:`Method`: its build time, the bytes its
structures hold per vector, and the settings to sweep, each a search function (one query per
call runs on one thread; a batch on ``threads``). Rivals from other libraries are built where
their package is installed (``pip install scann scalable-vs usearch hnswlib``); otherwise the
builder raises :class:`Unavailable` with the install line, and the benchmark says so.

* ``funnel`` — ``MatryoshkaIndex(dim, adaptor=...)`` with no options: the default layout, tuned
  per target by ``index.tune`` (its own promise rule); with a PCA rotation or no adaptor too;
* ``faiss PCAR…,IVF,SQ8 + refine`` — the expert's one-line FAISS rival, nprobe × k_factor swept
  (and the other FAISS strings an expert reaches for: ``IVF,SQ8``, ``OPQ32,IVF,PQ32``);
* ``binary hnsw + rescore`` — sign bits in a binary HNSW graph, rescored in float;
* ``faiss IVF,RaBitQfs + refine`` — RaBitQ 1-bit fast-scan codes (and ``RaBitQfs4``, 4 bits);
* ``faiss HNSW`` — a float graph on the full vector; ``flat`` — the exact scan;
* ``scann`` — a k-means tree, anisotropic 4-bit hashing of the full vector, exact reordering;
* ``svs vamana`` — Intel SVS's float Vamana graph; ``svs leanvec-style`` — SVS's LeanVec
  projection (learned, to 128-d) searched on a float Vamana graph, then reranked exactly (SVS's
  own LVQ/LeanVec storage is tried first and reported where the CPU refuses it);
* ``usearch`` — USearch's HNSW on float32; ``hnswlib`` — hnswlib's HNSW.
"""
from __future__ import annotations

import importlib
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from ..backends.faiss import default_nlist
from .measure import Search, hit_ids

HNSW_M, HNSW_EF_CONSTRUCTION = 32, 80
EF_SWEEP = (16, 32, 64, 128, 256, 512, 768, 1024, 1536)
PROBES = (1, 2, 4, 8, 16, 32, 64, 96, 128, 256)
K_FACTORS = (2, 4, 8, 16, 32)
REORDER = (20, 40, 60, 100, 150, 250, 400)
#: recall targets the funnels are also tuned to, so that their curves in the plot have a shape
CURVE_TARGETS = (0.9, 0.95, 0.98)


class Unavailable(RuntimeError):
    """A rival whose library is not installed (the message says how to install it)."""


@dataclass
class Data:
    base: np.ndarray        # (n, d) unit-length original vectors (may be memory-mapped)
    tune: np.ndarray
    test: np.ndarray
    tune_truth: np.ndarray
    test_truth: np.ndarray
    k: int
    targets: tuple[float, ...] = (0.99, 0.995)


@dataclass
class Method:
    name: str
    build_seconds: float
    bytes_per_vector: float
    settings: list[tuple[str, Search]]
    note: str = ""
    keep: list[Any] = field(default_factory=list, repr=False)  # objects the search functions need alive


def _library(module: str, package: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise Unavailable(f"{package} is not installed (pip install {package})") from None


def _timed(build: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    built = build()
    return built, time.perf_counter() - t0


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# --- the funnel ------------------------------------------------------------------------------
def funnel(data: Data, threads: int, adaptor=None, name: str = "funnel") -> Method:
    """The index as ``MatryoshkaIndex(dim, adaptor=adaptor)`` builds it, one tuned plan per target."""
    from ..index import MatryoshkaIndex
    n, dim = data.base.shape
    faiss.omp_set_num_threads(threads)

    def build():
        index = MatryoshkaIndex(dim, adaptor=adaptor)
        index.add(np.arange(n), data.base)
        index.optimize()
        return index
    index, seconds = _timed(build)
    held = sum(index.backend.memory_bytes().values()) / n

    def search_with(plan) -> Search:
        return lambda q: hit_ids(index.search(q, k=data.k, plan=plan), data.k)
    settings = []
    for target in sorted(set(data.targets) | set(CURVE_TARGETS)):
        plan = index.tune(data.tune, target_recall=target, k=data.k, apply=False)
        settings.append((f"{plan.describe()} (tuned to {target})", search_with(plan)))
    layout = f"levels {index.levels}, {index.backend.coarse.code.name}"
    return Method(name, seconds, held, list(dict(settings).items()), note=layout, keep=[index])


# --- FAISS rivals ----------------------------------------------------------------------------
def _faiss_search(index: faiss.Index, k: int, params: faiss.SearchParameters | None = None) -> Search:
    return lambda q: index.search(np.ascontiguousarray(q, np.float32), k, params=params)[1]


def _ivf_params(index: faiss.Index, nprobe: int) -> faiss.SearchParametersIVF:
    params = faiss.SearchParametersIVF(nprobe=nprobe)
    ivf = faiss.extract_index_ivf(index)
    if isinstance(faiss.downcast_index(ivf.quantizer), faiss.IndexHNSW):
        params.quantizer_params = faiss.SearchParametersHNSW(efSearch=max(16, 2 * nprobe))
    return params


def _trained(spec: str, data: Data, metric: int, threads: int) -> tuple[faiss.Index, float]:
    n, dim = data.base.shape
    nlist = default_nlist(n)
    faiss.omp_set_num_threads(threads)

    def build():
        index = faiss.index_factory(dim, spec.format(nlist=nlist, q="_HNSW32" if nlist * 128 > 1 << 20 else ""), metric)
        sample = np.sort(np.random.default_rng(0).permutation(n)[:256 * nlist])
        index.train(np.ascontiguousarray(data.base[sample]))
        for s in range(0, n, 100_000):
            index.add(np.ascontiguousarray(data.base[s:s + 100_000]))
        return index
    return _timed(build)


def faiss_factory(data: Data, threads: int, spec: str = "PCAR128,IVF{nlist}{q},SQ8,RFlat",
                  metric: int = faiss.METRIC_L2, k_factors: tuple[int, ...] = K_FACTORS) -> Method:
    """An ``index_factory`` string ending in ``RFlat`` (``IndexRefineFlat``), nprobe × k_factor
    swept; ``{nlist}`` and ``{q}`` (an HNSW quantizer where scanning the centroids would cost
    over a million multiply-adds) are filled in. The default is the expert's one-liner
    ``PCAR128,IVF,SQ8`` + refine, under L2 on unit vectors (FAISS's PCA centres the data; under
    inner product the centring would change the ranking)."""
    index, seconds = _trained(spec, data, metric, threads)
    ivf = faiss.extract_index_ivf(index)
    pretransformed = spec.startswith(("PCA", "OPQ"))

    def setting(nprobe: int, k_factor: int) -> tuple[str, Search]:
        inner_ivf = _ivf_params(index, nprobe)
        inner = faiss.SearchParametersPreTransform(index_params=inner_ivf) if pretransformed else inner_ivf
        params = faiss.IndexRefineSearchParameters(k_factor=k_factor, base_index_params=inner)
        params.refs = (inner_ivf, inner)  # the C++ structs point at each other: keep them alive together
        return f"nprobe={nprobe},k_factor={k_factor}", _faiss_search(index, data.k, params)
    settings = [setting(p, kf) for p in PROBES if p <= ivf.nlist for kf in k_factors]
    name = spec.replace(",RFlat", "").replace("{q}", "").replace("{nlist}", str(ivf.nlist))
    return Method(f"faiss {name} + refine", seconds, len(faiss.serialize_index(index)) / len(data.base), settings)


def faiss_binary(data: Data, threads: int) -> Method:
    """Sign bits of the full vector in ``IndexBinaryHNSW`` (the sentence-transformers
    quantisation recipe), the top C rescored with the float vectors; ef and C swept."""
    n, dim = data.base.shape
    faiss.omp_set_num_threads(threads)

    def build():
        floats = np.array(data.base, np.float32)
        index = faiss.IndexBinaryHNSW(dim, HNSW_M)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        for s in range(0, n, 100_000):
            index.add(np.packbits(floats[s:s + 100_000] > 0, axis=1))
        return index, floats
    (index, floats), seconds = _timed(build)

    def setting(ef: int, c: int) -> tuple[str, Search]:
        params = faiss.SearchParametersHNSW(efSearch=ef)

        def search(q: np.ndarray) -> np.ndarray:
            _, cand = index.search(np.packbits(q > 0, axis=1), c, params=params)
            safe = np.maximum(cand, 0)
            scores = np.einsum("qcd,qd->qc", floats[safe], q)
            scores[cand < 0] = -np.inf
            top = np.argpartition(-scores, data.k - 1, axis=1)[:, :data.k]
            order = np.argsort(-np.take_along_axis(scores, top, 1), axis=1)
            return np.take_along_axis(np.take_along_axis(cand, top, 1), order, 1)
        return f"ef={ef},C={c}", search
    settings = [setting(max(ef, c), c) for c in (50, 100, 200, 400, 800) for ef in (c, 2 * c)]
    held = (len(faiss.serialize_index_binary(index)) + floats.nbytes) / n
    return Method("binary hnsw + rescore", seconds, held, settings, keep=[floats])


def faiss_rabitq(data: Data, threads: int, bits: int = 1) -> Method:
    """``IVF<nlist>,RaBitQfs[4]`` + ``IndexRefineFlat``: RaBitQ codes scanned with fast-scan."""
    code = "RaBitQfs" if bits == 1 else f"RaBitQfs{bits}"
    index, seconds = _trained(f"IVF{{nlist}}{{q}},{code},RFlat", data, faiss.METRIC_INNER_PRODUCT, threads)
    ivf = faiss.extract_index_ivf(index)

    def setting(nprobe: int, k_factor: int) -> tuple[str, Search]:
        inner = _ivf_params(index, nprobe)
        params = faiss.IndexRefineSearchParameters(k_factor=k_factor, base_index_params=inner)
        params.refs = (inner,)
        return f"nprobe={nprobe},k_factor={k_factor}", _faiss_search(index, data.k, params)
    settings = [setting(p, kf) for p in PROBES if p <= ivf.nlist for kf in K_FACTORS + (64,)]
    return Method(f"faiss IVF{ivf.nlist},{code} + refine", seconds,
                  len(faiss.serialize_index(index)) / len(data.base), settings)


def faiss_hnsw(data: Data, threads: int) -> Method:
    faiss.omp_set_num_threads(threads)

    def build():
        index = faiss.IndexHNSWFlat(data.base.shape[1], HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        for s in range(0, len(data.base), 100_000):
            index.add(np.ascontiguousarray(data.base[s:s + 100_000]))
        return index
    index, seconds = _timed(build)
    settings = [(f"ef={ef}", _faiss_search(index, data.k, faiss.SearchParametersHNSW(efSearch=ef)))
                for ef in EF_SWEEP]
    return Method("faiss HNSW", seconds, len(faiss.serialize_index(index)) / len(data.base), settings)


def flat(data: Data, threads: int) -> Method:
    index = faiss.IndexFlatIP(data.base.shape[1])
    for s in range(0, len(data.base), 100_000):
        index.add(np.ascontiguousarray(data.base[s:s + 100_000]))
    return Method("flat", 0.0, 4.0 * data.base.shape[1], [("exact", _faiss_search(index, data.k))])


# --- other libraries -------------------------------------------------------------------------
def _one_or_batch(single: Callable[[np.ndarray], np.ndarray], batch: Callable[[np.ndarray], np.ndarray]) -> Search:
    """A search function that takes the library's single-query path for one query."""
    return lambda q: single(q[0])[None, :] if len(q) == 1 else batch(q)


def scann(data: Data, threads: int) -> Method:
    """ScaNN: k-means tree (~2·√n leaves), anisotropic hashing (2 dims per 4-bit code), reorder."""
    lib = _library("scann", "scann")
    n = len(data.base)
    leaves = max(16, int(2 * math.sqrt(n)))

    def build():
        base = np.ascontiguousarray(data.base, np.float32)
        return (lib.scann_ops_pybind.builder(base, data.k, "dot_product")
                .tree(num_leaves=leaves, num_leaves_to_search=max(1, leaves // 20), training_sample_size=min(n, 250_000))
                .score_ah(2, anisotropic_quantization_threshold=0.2).reorder(max(REORDER)).build())
    searcher, seconds = _timed(build)
    with tempfile.TemporaryDirectory() as tmp:
        searcher.serialize(tmp)
        held = _dir_bytes(Path(tmp)) / n

    def setting(search_leaves: int, reorder: int) -> tuple[str, Search]:
        def single(q):
            return searcher.search(q, data.k, leaves_to_search=search_leaves, pre_reorder_num_neighbors=reorder)[0]

        def batch(q):
            return searcher.search_batched_parallel(np.ascontiguousarray(q), data.k, leaves_to_search=search_leaves,
                                                    pre_reorder_num_neighbors=reorder)[0]
        return f"leaves={search_leaves},reorder={reorder}", _one_or_batch(single, batch)
    # on a small set hard queries need half the leaves; at a million, 12 % of them is already slow
    fractions = (0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.06, 0.08, 0.12) + ((0.25, 0.5, 1.0) if n < 100_000 else ())
    settings = [setting(max(1, round(f * leaves)), r) for f in fractions for r in REORDER]
    return Method(f"scann ({leaves} leaves, AH 4-bit)", seconds, held, settings, keep=[searcher])


def _svs_distance(svs, base: np.ndarray):
    """L2 where every vector is unit length (the same ranking as inner product, and the metric
    Vamana's pruning was designed for: its graphs under MIP reached recall 0.974 at window 160
    on the peers set), MIP otherwise."""
    sample = np.linalg.norm(base[:: max(1, len(base) // 10_000)], axis=1)
    return svs.DistanceType.L2 if np.allclose(sample, 1.0, atol=1e-3) else svs.DistanceType.MIP


def svs_vamana(data: Data, threads: int) -> Method:
    """Intel SVS: a float32 Vamana graph (max degree 64) on the full vector."""
    svs = _library("svs", "scalable-vs")
    params = svs.VamanaBuildParameters(graph_max_degree=64, window_size=128)
    distance = _svs_distance(svs, data.base)
    index, seconds = _timed(lambda: svs.Vamana.build(params, np.ascontiguousarray(data.base, np.float32),
                                                     distance, num_threads=threads))
    held = (64 * 4 + 4 * data.base.shape[1])  # the graph's neighbour lists and the float vectors

    def setting(window: int) -> tuple[str, Search]:
        def search(q):
            index.num_threads = 1 if len(q) == 1 else threads
            index.search_window_size = window
            return index.search(np.ascontiguousarray(q, np.float32), data.k)[0].astype(np.int64)
        return f"window={window}", search
    return Method("svs vamana", seconds, held, [setting(w) for w in (10, 15, 20, 30, 40, 60, 80, 120, 160, 240, 320, 480)],
                  keep=[index])


def svs_leanvec(data: Data, threads: int, dims: int = 128) -> Method:
    """SVS's LeanVec (out-of-distribution) projection to ``dims``, a float Vamana graph on the
    projected vectors, the top candidates reranked exactly on the full vectors — what a LeanVec
    index does, assembled from SVS's parts where its LeanVec storage cannot run."""
    svs = _library("svs", "scalable-vs")
    note = _svs_native_leanvec_note(svs, data)
    sample = np.ascontiguousarray(data.base[:: max(1, len(data.base) // 100_000)], np.float32)
    base = np.array(data.base, np.float32)  # its own copy: what it reranks with is part of its memory

    def build():
        data_m, query_m = svs.compute_leanvec_matrices(sample, np.ascontiguousarray(data.tune[: len(data.tune) // 2]), dims)
        projected = np.ascontiguousarray(base @ data_m, np.float32)
        params = svs.VamanaBuildParameters(graph_max_degree=64, window_size=128)
        return svs.Vamana.build(params, projected, _svs_distance(svs, projected), num_threads=threads), query_m
    (index, query_m), seconds = _timed(build)
    held = 64 * 4 + 4 * dims + 4 * base.shape[1]

    def setting(window: int, rerank: int) -> tuple[str, Search]:
        def search(q):
            index.num_threads = 1 if len(q) == 1 else threads
            index.search_window_size = max(window, rerank)
            cand = index.search(np.ascontiguousarray(q @ query_m, np.float32), rerank)[0].astype(np.int64)
            scores = np.einsum("qcd,qd->qc", base[cand], q)
            top = np.argsort(-scores, axis=1)[:, :data.k]
            return np.take_along_axis(cand, top, 1)
        return f"window={window},rerank={rerank}", search
    settings = [setting(w, r) for w in (20, 40, 80, 160, 320) for r in (20, 40, 80, 160, 320, 640)]
    return Method(f"svs leanvec-style ({dims}-d + rerank)", seconds, held, settings, note=note, keep=[index])


def _svs_native_leanvec_note(svs, data: Data) -> str:
    """Whether SVS's own LeanVec storage runs on this CPU (a sentence for the report)."""
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "data.svs")
            svs.write_vecs(np.ascontiguousarray(data.base[:2000], np.float32), path)
            loader = svs.LeanVecLoader(svs.VectorDataLoader(path, svs.DataType.float32), 64)
            svs.Vamana.build(svs.VamanaBuildParameters(graph_max_degree=16, window_size=32), loader,
                             svs.DistanceType.MIP, num_threads=1)
        return "SVS's own LeanVec storage runs here too; this row uses the projection on float vectors"
    except Exception as exc:  # noqa: BLE001 - SVS refuses with various errors
        return f"SVS's own LeanVec/LVQ storage refused this CPU ({type(exc).__name__}: {str(exc)[:80]})"


def usearch(data: Data, threads: int) -> Method:
    """USearch: HNSW over float32 (connectivity 32, expansion_add 128)."""
    lib = _library("usearch.index", "usearch")
    n, dim = data.base.shape

    def build():
        index = lib.Index(ndim=dim, metric="ip", dtype="f32", connectivity=HNSW_M, expansion_add=128)
        index.add(np.arange(n), np.ascontiguousarray(data.base, np.float32), threads=threads)
        return index
    index, seconds = _timed(build)

    def setting(ef: int) -> tuple[str, Search]:
        def search(q):
            index.expansion_search = ef
            found = index.search(np.ascontiguousarray(q, np.float32), data.k, threads=1 if len(q) == 1 else threads)
            return np.asarray(found.keys, np.int64).reshape(len(q), -1)
        return f"ef={ef}", search
    return Method("usearch hnsw", seconds, index.memory_usage / n, [setting(ef) for ef in EF_SWEEP], keep=[index])


def hnswlib(data: Data, threads: int) -> Method:
    """hnswlib: HNSW (M 32, ef_construction 200) on float32."""
    lib = _library("hnswlib", "hnswlib")
    n, dim = data.base.shape

    def build():
        index = lib.Index(space="ip", dim=dim)
        index.init_index(max_elements=n, ef_construction=200, M=HNSW_M)
        for s in range(0, n, 100_000):
            index.add_items(np.ascontiguousarray(data.base[s:s + 100_000], np.float32), np.arange(s, min(n, s + 100_000)),
                            num_threads=threads)
        return index
    index, seconds = _timed(build)

    def setting(ef: int) -> tuple[str, Search]:
        def search(q):
            index.set_ef(max(ef, data.k))
            return index.knn_query(np.ascontiguousarray(q, np.float32), k=data.k,
                                   num_threads=1 if len(q) == 1 else threads)[0].astype(np.int64)
        return f"ef={ef}", search
    held = index.index_file_size() / n
    return Method("hnswlib", seconds, held, [setting(ef) for ef in EF_SWEEP], keep=[index])


#: every method by the name a benchmark asks for it by (the funnels take their adaptor apart)
RIVALS: dict[str, Callable[[Data, int], Method]] = {
    "faiss PCAR128,IVF,SQ8 + refine": faiss_factory,
    "faiss PCAR64,IVF,SQ8 + refine": lambda data, threads: faiss_factory(data, threads, "PCAR64,IVF{nlist}{q},SQ8,RFlat"),
    "faiss IVF,SQ8 + refine": lambda data, threads: faiss_factory(data, threads, "IVF{nlist}{q},SQ8,RFlat",
                                                                 faiss.METRIC_INNER_PRODUCT),
    "faiss OPQ32,IVF,PQ32 + refine": lambda data, threads: faiss_factory(
        data, threads, "OPQ32,IVF{nlist}{q},PQ32,RFlat", k_factors=K_FACTORS + (64, 128)),
    "binary hnsw + rescore": faiss_binary,
    "faiss IVF,RaBitQfs + refine": faiss_rabitq,
    "faiss IVF,RaBitQfs4 + refine": lambda data, threads: faiss_rabitq(data, threads, bits=4),
    "faiss HNSW": faiss_hnsw, "flat": flat, "scann": scann, "svs vamana": svs_vamana,
    "svs leanvec-style": svs_leanvec, "usearch": usearch, "hnswlib": hnswlib,
}
