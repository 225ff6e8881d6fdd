"""Latency, throughput, memory and recall on the user's own embeddings (``matry-index bench``).

A user deciding whether to adopt matry_index has vectors and a recall they need. This runs, on
(a sample of) those vectors and in one process:

* the funnel (``MatryoshkaIndex``, IVF-SQ8 on a coarse prefix, exact rescoring) with the given
  or fitted adaptor, tuned per recall target;
* the same funnel with a PCA rotation in the adaptor's place (the free alternative);
* FAISS's ``PCAR<m>,IVF<nlist>,SQ8`` + ``IndexRefineFlat`` (the expert's one-line rival),
  nprobe × k_factor swept;
* FAISS HNSW on the full vector (M=32), efSearch swept; and the exact flat scan.

Every setting of every method is measured the same way: recall@k against exact full-dimension
search on the *original* vectors (on tuning queries and on separate test queries), single-query
latency with one thread (p50/p95 of each query's median over ``repeats`` runs), batch QPS with
``threads`` threads, build seconds, and bytes held per vector. Per target, each method's row is
its fastest setting whose *tuning* recall reaches the target (so no method is tuned on the
queries it is scored on). The report is a table, JSON, and a recall-vs-QPS plot in the
ann-benchmarks style (log QPS, one line per method through its Pareto front).

Memory here is what each structure holds (FAISS's own serialised size; the funnel's
:meth:`~matry_index.backends.faiss.FaissBackend.memory_bytes`), not the process's resident set:
one process measuring several methods cannot attribute its RSS (``benchmarks/peers.py`` runs
each method in its own process for that).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from ._validation import unit_vectors
from .errors import InvalidInput
from .backends.faiss import default_nlist
from .tuning import recall_at_k, worst_half_recall

Search = Callable[[np.ndarray], np.ndarray]  # queries (original vectors) -> (nq, k) row ids
HNSW_M, HNSW_EF_CONSTRUCTION = 32, 80
EF_SWEEP = (16, 32, 64, 128, 256, 512)
PROBES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
K_FACTORS = (2, 4, 8, 16)
#: recall targets the funnels are also tuned to, so that their curves in the plot have a shape
CURVE_TARGETS = (0.9, 0.95, 0.98)


# --- measurement -------------------------------------------------------------------------------
def latency(fn: Search, queries: np.ndarray, repeats: int) -> dict[str, float]:
    """Single-query latency on one thread: each query run ``repeats`` times, its median kept;
    p50 / p95 / mean over queries, in milliseconds."""
    faiss.omp_set_num_threads(1)
    fn(queries[:5])  # warm-up
    per_query = []
    for q in queries:
        runs = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn(q[None, :])
            runs.append(time.perf_counter() - t0)
        per_query.append(float(np.median(runs)))
    return percentiles(per_query)


def percentiles(seconds: list[float]) -> dict[str, float]:
    """p50 / p95 / mean of per-query times, in milliseconds."""
    ms = np.asarray(seconds) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)), "mean_ms": float(ms.mean())}


def batch_qps(fn: Search, queries: np.ndarray, threads: int, repeats: int = 3) -> float:
    """Queries per second of one batch call with ``threads`` threads (median of ``repeats``)."""
    faiss.omp_set_num_threads(threads)
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(queries)
        runs.append(time.perf_counter() - t0)
    return len(queries) / float(np.median(runs))


@dataclass
class Point:
    """One setting of one method, measured."""

    setting: str
    tune_recall: float        # the worse of the two halves of the tuning queries
    recall: float
    p50_ms: float
    p95_ms: float
    mean_ms: float
    batch_qps: float


@dataclass
class MethodResult:
    method: str
    build_seconds: float
    bytes_per_vector: float
    points: list[Point] = field(default_factory=list)

    def chosen(self, target: float) -> Point | None:
        """The fastest setting whose tuning recall reaches ``target`` on each half of the tuning
        queries (the rule :func:`matry_index.funnel.tune` applies to the funnel's own plans)."""
        ok = [p for p in self.points if p.tune_recall >= target]
        return min(ok, key=lambda p: p.p50_ms) if ok else None


@dataclass
class BenchReport:
    n: int
    sample: int
    dim: int
    queries_source: str
    targets: tuple[float, ...]
    k: int
    threads: int
    methods: list[MethodResult]
    stage_seconds: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def rows(self, target: float) -> list[tuple[MethodResult, Point]]:
        """Each method's chosen setting at ``target``, fastest first."""
        found = [(m, p) for m in self.methods if (p := m.chosen(target)) is not None]
        return sorted(found, key=lambda mp: mp[1].p50_ms)

    def table(self) -> str:
        lines = [f"{self.sample:,} of {self.n:,} vectors x {self.dim}; {self.queries_source}; "
                 f"recall@{self.k} against exact full-dimension search; p50/p95 one thread; "
                 f"QPS one batch, {self.threads} threads"]
        for target in self.targets:
            lines += ["", f"recall@{self.k} >= {target} on the tuning queries:", "",
                      "| method | setting | test recall | p50 ms | p95 ms | batch QPS | build s | bytes/vector |",
                      "|---|---|---|---|---|---|---|---|"]
            for m, p in self.rows(target):
                lines.append(f"| {m.method} | {p.setting} | {p.recall:.4f} | {p.p50_ms:.3f} | {p.p95_ms:.3f} | "
                             f"{p.batch_qps:.0f} | {m.build_seconds:.1f} | {m.bytes_per_vector:.0f} |")
            missing = [m.method for m in self.methods if m.chosen(target) is None]
            if missing:
                lines.append(f"\nno setting reached it: {', '.join(missing)}")
        return "\n".join(lines)

    def plot(self, path: str | Path) -> Path:
        """Recall vs single-thread QPS (log), one line per method through its Pareto front."""
        from ._extras import require
        require("matplotlib", "plotting the benchmark").use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
        for m in self.methods:
            pts = sorted(((p.recall, 1e3 / p.mean_ms) for p in m.points), key=lambda t: (-t[0], -t[1]))
            front, best = [], 0.0
            for r, qps in pts:  # highest recall first: a point is on the front if faster than all above it
                if qps > best:
                    front.append((r, qps))
                    best = qps
            line, = ax.plot([r for r, _ in front], [q for _, q in front], marker="o", label=m.method)
            ax.scatter([r for r, _ in pts], [q for _, q in pts], s=10, alpha=0.3, color=line.get_color())
        ax.set_yscale("log")
        ax.set_xlabel(f"recall@{self.k} (test queries)")
        ax.set_ylabel("queries per second, one thread (log)")
        ax.set_title(f"{self.sample:,} x {self.dim}")
        for t in self.targets:
            ax.axvline(t, color="grey", lw=0.7, ls="--")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
        from .evaluation.report import save_figure
        return save_figure(fig, path)


# --- the methods -----------------------------------------------------------------------------
@dataclass
class _Data:
    base: np.ndarray       # (n, d) normalised original vectors
    tune: np.ndarray
    test: np.ndarray
    tune_truth: np.ndarray
    test_truth: np.ndarray
    k: int


def _faiss_search(index: faiss.Index, k: int, params: faiss.SearchParameters | None = None) -> Search:
    return lambda q: index.search(np.ascontiguousarray(q, np.float32), k, params=params)[1]


def _faiss_bytes(index: faiss.Index) -> int:
    return len(faiss.serialize_index(index))


def _funnel(data: _Data, rotation: np.ndarray | None, level: int, targets: tuple[float, ...]):
    """Build a funnel index (rotation ``rotation`` or none), one setting per tuned target."""
    from .adaptor import MatryoshkaAdaptor
    from .index import MatryoshkaIndex
    n, dim = data.base.shape
    adaptor = None if rotation is None else MatryoshkaAdaptor(dim, (level, dim), rotation=rotation)
    nlist = default_nlist(n)  # at least 39 vectors per list
    t0 = time.perf_counter()
    index = MatryoshkaIndex(dim, adaptor=adaptor, levels=(level, dim), coarse="ivf-int8",
                            nlist=nlist, deferred_build=True)
    index.add(np.arange(n), data.base)
    index.optimize()
    build = time.perf_counter() - t0
    memory = sum(index.backend.memory_bytes().values()) / n

    def search_with(plan) -> Search:
        def search(q: np.ndarray) -> np.ndarray:
            out = np.full((len(q), data.k), -1, np.int64)
            for i, hits in enumerate(index.search(q, k=data.k, plan=plan)):
                out[i, :len(hits)] = [h.id for h in hits]
            return out
        return search
    settings = []
    for target in sorted(set(targets) | set(CURVE_TARGETS)):
        plan = index.tune(data.tune, target_recall=target, k=data.k, apply=False)
        settings.append((plan.describe(), search_with(plan)))
    return build, memory, settings


def _expert(data: _Data, level: int):
    """``PCAR<level>,IVF<nlist>[_HNSW32],SQ8`` + ``IndexRefineFlat``, under L2 on unit vectors
    (FAISS's PCA centres the data; under inner product that would change the ranking)."""
    n, dim = data.base.shape
    nlist = default_nlist(n)  # at least 39 vectors per list
    quantizer = "_HNSW32" if nlist >= 1024 else ""
    spec = f"PCAR{level},IVF{nlist}{quantizer},SQ8,RFlat"
    t0 = time.perf_counter()
    index = faiss.index_factory(dim, spec, faiss.METRIC_L2)
    index.train(data.base[np.random.default_rng(0).permutation(n)[:256 * nlist]])
    index.add(data.base)
    build = time.perf_counter() - t0

    def setting(nprobe: int, k_factor: int):
        ivf = faiss.SearchParametersIVF(nprobe=nprobe)
        if quantizer:
            ivf.quantizer_params = faiss.SearchParametersHNSW(efSearch=max(16, 2 * nprobe))
        inner = faiss.SearchParametersPreTransform(index_params=ivf)
        params = faiss.IndexRefineSearchParameters(k_factor=k_factor, base_index_params=inner)
        params.refs = (ivf, inner)  # the C++ structs point at each other: keep them alive together
        return f"nprobe={nprobe},k_factor={k_factor}", _faiss_search(index, data.k, params)
    settings = [setting(p, kf) for p in PROBES if p <= nlist for kf in K_FACTORS]
    return build, _faiss_bytes(index) / n, settings, spec


def _hnsw(data: _Data):
    t0 = time.perf_counter()
    index = faiss.IndexHNSWFlat(data.base.shape[1], HNSW_M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    index.add(data.base)
    build = time.perf_counter() - t0
    settings = [(f"ef={ef}", _faiss_search(index, data.k, faiss.SearchParametersHNSW(efSearch=ef)))
                for ef in EF_SWEEP]
    return build, _faiss_bytes(index) / len(data.base), settings


def _flat(data: _Data):
    index = faiss.IndexFlatIP(data.base.shape[1])
    index.add(data.base)
    return 0.0, 4.0 * data.base.shape[1], [("exact", _faiss_search(index, data.k))]


# --- the run ---------------------------------------------------------------------------------
@contextmanager
def _stage(seconds: dict[str, float], name: str, progress: bool) -> Iterator[None]:
    if progress:
        print(f"[bench] {name} ...", flush=True)
    t0 = time.perf_counter()
    yield
    seconds[name] = time.perf_counter() - t0


def _split_queries(embeddings: np.ndarray, queries: np.ndarray | None, sample: int, n_queries: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """(base, tune, test, where the queries came from): queries split in halves, or documents
    outside the base standing in for them."""
    n = len(embeddings)
    if queries is None:
        held = min(2 * n_queries, n // 5)
        if held < 20:
            raise InvalidInput(f"{n} vectors are too few to hold out queries from; pass --queries")
        order = rng.permutation(n)
        q_rows, pool = order[:held], order[held:]
        base_rows = np.sort(pool[:sample]) if sample < len(pool) else np.sort(pool)
        q = embeddings[np.sort(q_rows)][rng.permutation(held)]
        source = f"{held // 2} + {held - held // 2} held-out documents as tuning + test queries (no queries given)"
    else:
        q = queries[None, :] if queries.ndim == 1 else queries
        if q.shape[1] != embeddings.shape[1]:
            raise InvalidInput(f"queries have dimension {q.shape[1]}, the embeddings {embeddings.shape[1]}")
        if len(q) < 20:
            raise InvalidInput(f"{len(q)} queries are too few to tune on and test with (at least 20)")
        q = q[rng.permutation(len(q))[:2 * n_queries]]
        base_rows = np.sort(rng.choice(n, sample, replace=False)) if sample < n else np.arange(n)
        source = f"{len(q) // 2} + {len(q) - len(q) // 2} given queries as tuning + test queries"
    half = len(q) // 2
    return embeddings[base_rows], q[:half], q[half:], source


def bench(embeddings: np.ndarray, queries: np.ndarray | None = None, *, adaptor: Any | None = None,
          fit: bool = False, fit_docs: int = 20_000, sample: int = 100_000, n_queries: int = 300, targets: tuple[float, ...] = (0.99, 0.995), k: int = 10,
          level: int | None = None, threads: int | None = None, latency_queries: int = 200, repeats: int = 3,
          seed: int = 0, progress: bool = True) -> BenchReport:
    """Measure the funnel and its rivals on ``embeddings`` (see the module's docstring).

    ``adaptor``: a rotation-only (funnel-aware) adaptor for the funnel row; or ``fit``: fit one
    here (``objective="funnel"``, on ``fit_docs`` documents of the sample with the tuning queries
    as unlabelled anchors; needs the ``train`` extra); neither: no adaptor row.
    ``level``: the coarse prefix (default 128, or half the dimension below 256).
    """
    from .adaptor.config import default_threads
    if embeddings.ndim != 2:
        raise InvalidInput(f"embeddings must be a 2-d array (n, d); got shape {embeddings.shape}")
    n, dim = embeddings.shape
    if adaptor is not None and (adaptor.dim != dim or not adaptor.preserves_full_cosines):
        raise InvalidInput("bench needs a rotation-only adaptor of the embeddings' dimension "
                              "(train one with --objective funnel)")
    threads = threads or default_threads()
    level = level or (128 if dim >= 256 else max(8, dim // 2))
    rng = np.random.default_rng(seed)
    seconds: dict[str, float] = {}
    with _stage(seconds, "sample and ground truth", progress):
        base, tune, test, source = _split_queries(embeddings, queries, sample, n_queries, rng)
        base, tune, test = unit_vectors(base, "embeddings"), unit_vectors(tune, "queries"), unit_vectors(test, "queries")
        faiss.omp_set_num_threads(threads)
        flat = faiss.IndexFlatIP(dim)
        flat.add(base)
        data = _Data(base, tune, test, flat.search(tune, k)[1], flat.search(test, k)[1], k)
        del flat
    if fit:
        from .adaptor import TrainConfig, fit_unsupervised
        with _stage(seconds, "fit the funnel-aware adaptor", progress):
            adaptor = fit_unsupervised(base[:fit_docs], queries=tune, objective="funnel",
                                       config=TrainConfig(seed=seed, threads=threads)).adaptor
    builders: dict[str, Callable[[], tuple]] = {}
    if adaptor is not None:
        builders["funnel, adaptor"] = lambda: _funnel(data, adaptor.rotation, level, targets)
    from .evaluation.baselines import PCARotation
    builders["funnel, PCA"] = lambda: _funnel(data, PCARotation.fit(base).components, level, targets)
    builders["faiss PCAR+IVF-SQ8+refine"] = lambda: _expert(data, level)
    builders["faiss HNSW"] = lambda: _hnsw(data)
    builders["flat"] = lambda: _flat(data)
    results = []
    for name, build in builders.items():
        with _stage(seconds, name, progress):
            faiss.omp_set_num_threads(threads)
            built = build()
            build_s, memory, settings = built[:3]
            if len(built) > 3:
                name = f"faiss {built[3]}"
            result = MethodResult(name, build_s, memory)
            few = latency_queries if name != "flat" else min(latency_queries, 30)
            for label, fn in settings:
                faiss.omp_set_num_threads(threads)
                tune_recall = worst_half_recall(fn(tune), data.tune_truth)
                recall = recall_at_k(fn(test), data.test_truth)
                timing = latency(fn, test[:few], repeats if name != "flat" else 1)
                result.points.append(Point(label, tune_recall, recall, **timing,
                                           batch_qps=batch_qps(fn, test, threads)))
            results.append(result)
    return BenchReport(n, len(base), dim, source, tuple(targets), k, threads, results, seconds)
