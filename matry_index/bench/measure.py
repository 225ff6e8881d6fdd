"""How every setting of every method is measured, the same way: recall, latency, throughput.

Recall@k is against exact full-dimension search on the original vectors, on the tuning queries
(where a setting qualifies) and on separate test queries (what is reported). A setting
qualifies for a target by the rule the funnel's own tuner applies to its plans
(:class:`matry_index.tuning.Promise`: the target plus a margin from the queries' spread, on
each half of the tuning queries), so no method is chosen on the queries it is scored on, nor
by a looser rule than the funnel. Latency: one query per call on one thread, each query's
median over ``repeats`` runs, p50 / p95 / mean over queries. Throughput: one batch call with
every thread.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import faiss
import numpy as np

from ..tuning import Promise, per_query_recall, recall_at_k

#: queries (unit-length original vectors) -> (nq, k) row ids; one query per call runs on one
#: thread, a batch on the threads the method was built for
Search = Callable[[np.ndarray], np.ndarray]


def hit_ids(hit_lists, k: int) -> np.ndarray:
    """(queries, ``k``) int ids of ``MatryoshkaIndex.search`` results, -1 where a query has
    fewer hits: the id matrix every method's search returns here (int ids only)."""
    out = np.full((len(hit_lists), k), -1, np.int64)
    for i, hits in enumerate(hit_lists):
        out[i, :min(len(hits), k)] = [h.id for h in hits[:k]]
    return out


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
    tune_recall: float        # recall@k on the tuning queries
    tune_bound: float         # the recall it promises on new queries (Promise.bound, worse half)
    recall: float             # recall@k on the test queries
    p50_ms: float
    p95_ms: float
    mean_ms: float
    batch_qps: float

    def qualifies(self, target: float) -> bool:
        return self.tune_bound >= target


@dataclass
class MethodResult:
    method: str
    build_seconds: float
    bytes_per_vector: float
    points: list[Point] = field(default_factory=list)
    note: str = ""

    def chosen(self, target: float) -> Point | None:
        """The fastest setting that qualifies for ``target`` (see the module docstring)."""
        ok = [p for p in self.points if p.qualifies(target)]
        return min(ok, key=lambda p: p.p50_ms) if ok else None


#: a setting whose test recall is below this is not timed: no target lives there, and the plot
#: shows recall from 0.8 up
TIMED_FROM = 0.8


def measure_setting(label: str, fn: Search, tune: np.ndarray, tune_truth: np.ndarray, test: np.ndarray,
                    test_truth: np.ndarray, threads: int, latency_queries: int, repeats: int) -> Point | None:
    """One setting measured: its promise on the tuning queries, recall on the test queries,
    single-query latency and batch throughput (None for a setting too poor to time)."""
    faiss.omp_set_num_threads(threads)
    record = Promise(1.0, len(tune)).record(per_query_recall(fn(tune), tune_truth))
    recall = recall_at_k(fn(test), test_truth)
    if recall < TIMED_FROM:
        return None
    timing = latency(fn, test[:latency_queries], repeats)
    return Point(label, record["recall"], record["bound"], recall, **timing, batch_qps=batch_qps(fn, test, threads))
