"""What the benchmarks share: paths, the synthetic set, timers, memory, recall and the HNSW sweep.

Every script under ``benchmarks/`` measures the same way through these helpers: single-query
latency is the median of ``repeats`` runs of each query (then p50 / p95 over queries, one
thread), batch throughput the median of whole-batch runs, memory the growth of the process's
resident set per vector, recall@10 against exact full-dimension inner-product search.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import faiss
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from matry_index import MatryoshkaAdaptor, MatryoshkaIndex  # noqa: E402
from matry_index.bench import batch_qps, latency, percentiles  # noqa: E402,F401
from matry_index.tuning import recall_at_k  # noqa: E402
from matry_index.experiment import fit_adaptors  # noqa: E402
from synthetic import EmbeddingGenerator  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
SHARED_DATA = REPO.parent / "shared" / "data"
K = 10
LEVELS = (64, 128, 256, 384)
#: efSearch values every HNSW rival is swept over (the report picks the smallest that reaches a target)
EF_SWEEP = (16, 32, 64, 128, 256, 512, 768, 1024)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean recall@k of result ids ``found`` against exact top-k ids ``truth`` (-1 = none)."""
    return recall_at_k(np.asarray(found), np.asarray(truth))


# the package's own timers (``matry-index bench`` measures with the same ones)
timed_single, timed_batch = latency, batch_qps


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def ground_truth(base: np.ndarray, queries: np.ndarray, threads: int) -> tuple[np.ndarray, faiss.Index]:
    faiss.omp_set_num_threads(threads)
    flat = faiss.IndexFlatIP(base.shape[1])
    flat.add(base)
    _, truth = flat.search(queries, K)
    return truth, flat


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def draw_set(gen: EmbeddingGenerator, n: int, n_queries: int,
             n_tune: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The synthetic base, test queries and ``n_tune`` tuning queries, with the seeds every
    benchmark on this set uses, so that their numbers are about the same vectors."""
    base = gen.sample(n, seed=1)
    return base, gen.sample_queries(n_queries, seed=2, base=base), gen.sample_queries(n_tune, seed=3, base=base)


def saved_or_fitted_adaptor(exp, path: str | None) -> MatryoshkaAdaptor:
    """The adaptor saved at ``path``, or (no path) an unsupervised one fitted here, seed 0."""
    if path:
        return MatryoshkaAdaptor.load(path)
    return fit_adaptors(exp, seed=0, supervised=False)["unsupervised adaptor"].adaptor


def synthetic_set_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by the benchmarks on the synthetic 1M set: its size, the query counts,
    the HNSW graph, the data the generator is fitted to, the adaptor, the output folder."""
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--latency-queries", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--m", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, default=80)
    parser.add_argument("--data", default=str(SHARED_DATA / "scifact"))
    parser.add_argument("--adaptor", default=None, help="a saved adaptor (default: fit one, seed 0)")
    parser.add_argument("--out", default=str(RESULTS))


def bulk_load(base: np.ndarray, levels: tuple[int, ...], chunk: int = 100_000,
              **options) -> tuple[MatryoshkaIndex, float, float]:
    """A MatryoshkaIndex holding ``base`` (ids 0..n-1), added in chunks, then built; with the
    seconds the adds took and the seconds the build took."""
    ids = np.arange(len(base))
    index = MatryoshkaIndex(base.shape[1], levels=levels, **options)
    t0 = time.perf_counter()
    for s in range(0, len(base), chunk):
        index.add(ids[s:s + chunk], base[s:s + chunk])
    ingest = time.perf_counter() - t0
    t0 = time.perf_counter()
    index.optimize()
    return index, ingest, time.perf_counter() - t0


def build_hnsw(base: np.ndarray, m: int, ef_construction: int) -> tuple[faiss.Index, float]:
    """FAISS HNSW over the full vectors (inner product) and its build seconds."""
    hnsw = faiss.IndexHNSWFlat(base.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = ef_construction
    t0 = time.perf_counter()
    hnsw.add(base)
    return hnsw, time.perf_counter() - t0


def measure_index(name: str, base: np.ndarray, tune_q: np.ndarray, queries: np.ndarray, truth: np.ndarray,
                  *, levels: tuple[int, ...], targets: tuple[float, ...], latency_queries: int, repeats: int,
                  tmp: Path, batch_threads: int = 0, chunk: int = 100_000, **options) -> list[dict]:
    """Bulk-load ``base`` into a MatryoshkaIndex, build, then per recall target: tune on
    ``tune_q``, measure recall on ``queries`` and single-query latency; one row per target.

    ``batch_threads`` > 0 adds batch QPS.
    """
    rss0 = rss_bytes()
    index, ingest, build = bulk_load(base, levels, chunk, **options)
    index.save(tmp / f"{name}-ix")
    disk = dir_bytes(tmp / f"{name}-ix") + (dir_bytes(Path(options["path"])) if "path" in options else 0)
    common = {"n": len(base), "levels": list(levels), "ingest_seconds": ingest,
              "ingest_vectors_per_s": len(base) / ingest, "build_seconds": build,
              "bytes_per_vector_on_disk": disk / len(base), "rss_bytes_per_vector": (rss_bytes() - rss0) / len(base)}
    rows = []
    for target in targets:
        t0 = time.perf_counter()
        plan = index.tune(tune_q, target_recall=target, k=K)
        tune_s = time.perf_counter() - t0
        found = np.array([[h.id for h in hits] for hits in index.search(queries, k=K)])
        row = {"method": f"{name} (tuned to {target})", "recall@10": recall(found, truth),
               **timed_single(lambda q: index.search(q, k=K), queries[:latency_queries], repeats),
               "tune_seconds": tune_s, "plan": plan.to_dict(), **common}
        if batch_threads:
            row["batch_qps"] = timed_batch(lambda q: index.search(q, k=K), queries, batch_threads)
        print(json.dumps(row), flush=True)
        rows.append(row)
    index.close()
    return rows


def adaptor_latency(adaptor: MatryoshkaAdaptor, raw_queries: np.ndarray) -> dict:
    """Per-query cost of applying the adaptor (the funnel rows index pre-adapted vectors)."""
    times = []
    for q in raw_queries:
        t0 = time.perf_counter()
        adaptor.transform(q[None, :])
        times.append(time.perf_counter() - t0)
    return percentiles(times)


FUNNELS = {
    # name: (levels, index options); hnsw_m / ef_construction come from the command line
    "funnel hnsw@64": ((64, 128, 256, 384), {"coarse": "hnsw"}),
    "funnel ivf-sq8@128": ((128, 256, 384), {"coarse": "ivf", "ivf_encoding": "sq8"}),
}
RECALL_POINTS = (0.99, 0.995, 0.999)
