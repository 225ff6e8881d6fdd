"""Latency, throughput, memory and recall on the user's own embeddings (``matry-index bench``).

A user deciding whether to adopt matry_index has vectors and a recall they need. This runs, on
(a sample of) those vectors and in one process, the index as ``MatryoshkaIndex(dim,
adaptor=...)`` builds it by default (with the given or fitted adaptor, and with a PCA rotation
in its place) against the strongest rivals a user would try (:mod:`.methods`: FAISS's
``PCAR128,IVF,SQ8`` + refine one-liner, RaBitQ fast-scan + refine, FAISS HNSW, the exact scan,
and — where installed — ScaNN, Intel SVS, USearch and hnswlib).

Every setting of every method is measured the same way (:mod:`.measure`) and qualifies for a
target by the rule the funnel's own tuner applies; the report (:mod:`.report`) gives, per
target, each method's fastest qualifying setting, measured on separate test queries, a verdict
in a sentence, and a plot of each method's Pareto front.

Memory here is what each structure holds (FAISS's serialised size, the funnel's
:meth:`~matry_index.backends.faiss.FaissBackend.memory_bytes`, the other libraries' own
accounts), not the process's resident set: one process measuring several methods cannot
attribute its RSS (``benchmarks/peers.py`` runs each method in its own process for that).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import faiss
import numpy as np

from .._validation import unit_vectors
from ..errors import InvalidInput
from .measure import MethodResult, Point, batch_qps, latency, measure_setting, percentiles
from .methods import RIVALS, Data, Method, Unavailable, funnel
from .report import FUNNEL_PAYS_FROM, BenchReport

#: the rivals ``bench`` runs by default (the rest of :data:`.methods.RIVALS` on request)
DEFAULT_RIVALS = ("faiss PCAR128,IVF,SQ8 + refine", "faiss IVF,RaBitQfs + refine", "faiss HNSW", "scann",
                  "svs vamana", "usearch", "hnswlib", "flat")


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


def _data(embeddings: np.ndarray, queries: np.ndarray | None, sample: int, n_queries: int, k: int,
          targets: tuple[float, ...], threads: int, seed: int) -> tuple[Data, str]:
    base, tune, test, source = _split_queries(embeddings, queries, sample, n_queries, np.random.default_rng(seed))
    base, tune, test = unit_vectors(base, "embeddings"), unit_vectors(tune, "queries"), unit_vectors(test, "queries")
    faiss.omp_set_num_threads(threads)
    flat = faiss.IndexFlatIP(base.shape[1])
    flat.add(base)
    return Data(base, tune, test, flat.search(tune, k)[1], flat.search(test, k)[1], k, tuple(targets)), source


def _measure(method: Method, data: Data, threads: int, latency_queries: int, repeats: int) -> MethodResult:
    result = MethodResult(method.name, method.build_seconds, method.bytes_per_vector, note=method.note)
    exact = method.name == "flat"  # a scan is slow and steady: a few queries, once each, say enough
    for label, fn in method.settings:
        point = measure_setting(label, fn, data.tune, data.tune_truth, data.test, data.test_truth, threads,
                                min(latency_queries, 30) if exact else latency_queries, 1 if exact else repeats)
        if point is not None:
            result.points.append(point)
    return result


def bench(embeddings: np.ndarray, queries: np.ndarray | None = None, *, adaptor: Any | None = None,
          fit: bool = False, fit_docs: int = 20_000, sample: int = 100_000, n_queries: int = 300,
          targets: tuple[float, ...] = (0.99, 0.995), k: int = 10, rivals: tuple[str, ...] = DEFAULT_RIVALS,
          threads: int | None = None, latency_queries: int = 200, repeats: int = 3, seed: int = 0,
          progress: bool = True) -> BenchReport:
    """Measure the funnel and its rivals on ``embeddings`` (see the module's docstring).

    ``adaptor``: a rotation-only (funnel-aware) adaptor for the funnel row; or ``fit``: fit one
    here (``objective="funnel"``, on ``fit_docs`` documents of the sample with the tuning queries
    as unlabelled anchors; needs the ``train`` extra); neither: no adaptor row. ``rivals``: names
    from :data:`matry_index.bench.methods.RIVALS` (one that is not installed is skipped, and
    the report says how to install it).
    """
    from ..adaptor.config import default_threads
    if embeddings.ndim != 2:
        raise InvalidInput(f"embeddings must be a 2-d array (n, d); got shape {embeddings.shape}")
    n, dim = embeddings.shape
    if adaptor is not None and (adaptor.dim != dim or not adaptor.preserves_full_cosines):
        raise InvalidInput("bench needs a rotation-only adaptor of the embeddings' dimension "
                           "(train one with --objective funnel)")
    unknown = set(rivals) - set(RIVALS)
    if unknown:
        raise InvalidInput(f"unknown rivals {sorted(unknown)}; choose from {sorted(RIVALS)}")
    threads = threads or default_threads()
    seconds: dict[str, float] = {}
    with _stage(seconds, "sample and ground truth", progress):
        data, source = _data(embeddings, queries, sample, n_queries, k, targets, threads, seed)
    if fit:
        from ..adaptor import TrainConfig, fit_unsupervised
        with _stage(seconds, "fit the funnel-aware adaptor", progress):
            adaptor = fit_unsupervised(data.base[:fit_docs], queries=data.tune, objective="funnel",
                                       config=TrainConfig(seed=seed, threads=threads)).adaptor
    results, skipped = [], {}
    for name, build in _builders(data, adaptor, rivals).items():
        with _stage(seconds, name, progress):
            try:
                method = build(data, threads)
            except Unavailable as exc:
                skipped[name] = str(exc)
                continue
            results.append(_measure(method, data, threads, latency_queries, repeats))
    return BenchReport(n, len(data.base), dim, source, tuple(targets), k, threads, results, seconds, skipped)


def _builders(data: Data, adaptor: Any | None, rivals: tuple[str, ...]) -> dict[str, Callable[[Data, int], Method]]:
    """The funnels (with the adaptor, with a PCA rotation of the sample) and the rivals asked for."""
    from ..adaptor import MatryoshkaAdaptor
    from ..evaluation.baselines import PCARotation
    builders: dict[str, Callable[[Data, int], Method]] = {}
    dim = data.base.shape[1]
    if adaptor is not None:
        builders["funnel, adaptor"] = lambda d, t: funnel(d, t, adaptor, "funnel, adaptor")
    pca = MatryoshkaAdaptor(dim, adaptor.levels if adaptor is not None else (32, 64, 128, 192, 256),
                            rotation=PCARotation.fit(data.base[:100_000]).components) if len(data.base) >= dim else None
    if pca is not None:
        builders["funnel, PCA"] = lambda d, t: funnel(d, t, pca, "funnel, PCA")
    builders.update({name: RIVALS[name] for name in rivals})
    return builders


__all__ = ["BenchReport", "FUNNEL_PAYS_FROM", "MethodResult", "Point", "bench", "batch_qps", "latency", "percentiles"]
