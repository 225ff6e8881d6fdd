"""Scale benchmark: the FAISS funnel against flat and HNSW full-dimension search.

One run, one machine, side by side at ``--n`` vectors (default 1M) of 384 dims:

* ``flat-384``     exact ``IndexFlatIP`` on the full vectors (also the ground truth);
* ``hnsw-384``     ``IndexHNSWFlat`` on the full vectors, same M as the funnel, ef swept;
* ``funnel``       ``MatryoshkaIndex`` over adapted vectors (HNSW on the 64-d prefix, exact
                   rescoring at 128 / 256 / 384), plan tuned to recall@10 ≥ 0.99 on separate
                   tuning queries;
* ``funnel-raw``   the same index over *un*-adapted vectors (no adaptor), tuned the same way.

The vectors come from :mod:`synthetic`, fitted to real SciFact MiniLM embeddings (adapted by an
unsupervised adaptor fitted here, or raw). Latency is single-query, one thread, through the
public ``MatryoshkaIndex.search`` (numpy in, hits out); QPS is one batch call with every core.
Recall@10 is against exact full-dimension search. Results: ``benchmarks/results/scale.json``
and ``scale.md``.

    python benchmarks/scale.py                 # 1M (about 30-40 minutes on 2 cores)
    python benchmarks/scale.py --n 100000      # quick look
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from matry_index import MatryoshkaAdaptor, MatryoshkaIndex  # noqa: E402
from matry_index.experiment import fit_adaptors, load_experiment  # noqa: E402
from synthetic import EmbeddingGenerator  # noqa: E402

K = 10
LEVELS = (64, 128, 256, 384)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(np.intersect1d(f, t)) / len(t) for f, t in zip(found, truth)]))


def percentiles(times: list[float]) -> dict:
    ms = np.asarray(times) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "mean_ms": float(ms.mean())}


def timed_single(fn, queries: np.ndarray, repeats: int) -> dict:
    """Per-query latency; each query is run ``repeats`` times and its median kept."""
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


def timed_batch(fn, queries: np.ndarray, threads: int, repeats: int = 3) -> float:
    faiss.omp_set_num_threads(threads)
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(queries)
        runs.append(time.perf_counter() - t0)
    return len(queries) / float(np.median(runs))


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def ground_truth(base: np.ndarray, queries: np.ndarray, threads: int) -> tuple[np.ndarray, faiss.Index]:
    faiss.omp_set_num_threads(threads)
    flat = faiss.IndexFlatIP(base.shape[1])
    flat.add(base)
    _, truth = flat.search(queries, K)
    return truth, flat


def run_funnel(name: str, base: np.ndarray, tune_q: np.ndarray, queries: np.ndarray, truth: np.ndarray,
               args, threads: int) -> dict:
    ids = np.arange(len(base))
    faiss.omp_set_num_threads(threads)
    index = MatryoshkaIndex(base.shape[1], levels=LEVELS, coarse="hnsw", hnsw_m=args.m,
                            ef_construction=args.ef_construction, deferred_build=True)
    t0 = time.perf_counter()
    for s in range(0, len(base), 100_000):
        index.add(ids[s:s + 100_000], base[s:s + 100_000])
    ingest = time.perf_counter() - t0
    t0 = time.perf_counter()
    index.optimize()
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    plan = index.tune(tune_q, target_recall=args.target, k=K)
    tune_s = time.perf_counter() - t0

    def search_keys(q: np.ndarray) -> np.ndarray:
        return np.array([[h.id for h in hits] for hits in index.search(q, k=K)])
    found = search_keys(queries)
    lat = timed_single(lambda q: index.search(q, k=K), queries[: args.latency_queries], args.repeats)
    qps = timed_batch(lambda q: index.search(q, k=K), queries, threads)
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        index.save(Path(tmp) / "ix")
        disk = dir_bytes(Path(tmp) / "ix")
    out = {"method": name, "recall@10": recall(found, truth), **lat, "batch_qps": qps,
           "ingest_seconds": ingest, "ingest_vectors_per_s": len(base) / ingest,
           "build_seconds": build, "tune_seconds": tune_s, "plan": plan.to_dict(),
           "bytes_per_vector_on_disk": disk / len(base)}
    print(json.dumps(out), flush=True)
    index.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--latency-queries", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--flat-latency-queries", type=int, default=30)
    parser.add_argument("--m", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, default=80)
    parser.add_argument("--target", type=float, default=0.99)
    parser.add_argument("--skip-hnsw-full", action="store_true")
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "scifact"))
    parser.add_argument("--tmp", default=None)
    parser.add_argument("--adaptor", default=None, help="a saved adaptor (default: fit one, seed 0)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = parser.parse_args()
    threads = os.cpu_count() or 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    exp = load_experiment(args.data)
    adaptor = (MatryoshkaAdaptor.load(args.adaptor) if args.adaptor
               else fit_adaptors(exp, seed=0, supervised=False)["unsupervised adaptor"].adaptor)
    train_q, _ = exp.relevance("train")
    report = {"n": args.n, "dim": 384, "k": K, "threads_batch": threads, "hnsw_m": args.m,
              "ef_construction": args.ef_construction, "machine": platform.platform(),
              "faiss": faiss.__version__, "methods": [], "generator": {}}
    spaces = {"adapted": (adaptor.transform(exp.corpus.vectors), adaptor.transform(train_q)),
              "raw": (exp.corpus.vectors, train_q)}
    for space, (real_docs, real_q) in spaces.items():
        gen = EmbeddingGenerator.fit(real_docs, real_q)
        base = gen.sample(args.n, seed=1)
        queries = gen.sample_queries(args.queries, seed=2)
        tune_q = gen.sample_queries(300, seed=3)
        report["generator"][space] = EmbeddingGenerator.fidelity(
            real_docs / np.linalg.norm(real_docs, axis=1, keepdims=True), base,
            real_q / np.linalg.norm(real_q, axis=1, keepdims=True), queries)
        truth, flat = ground_truth(base, queries, threads)
        if space == "adapted":
            def flat_search(q):
                return flat.search(q, K)
            lat = timed_single(flat_search, queries[: args.flat_latency_queries], 1)
            report["methods"].append({"method": "flat-384", "recall@10": 1.0, **lat,
                                      "batch_qps": timed_batch(flat_search, queries, threads, 1),
                                      "bytes_per_vector_on_disk": 384 * 4})
            print(json.dumps(report["methods"][-1]), flush=True)
        flat.reset()
        gc.collect()
        report["methods"].append(run_funnel("funnel" if space == "adapted" else "funnel-raw (no adaptor)",
                                            base, tune_q, queries, truth, args, threads))
        if space == "adapted" and not args.skip_hnsw_full:
            faiss.omp_set_num_threads(threads)
            hnsw = faiss.IndexHNSWFlat(384, args.m, faiss.METRIC_INNER_PRODUCT)
            hnsw.hnsw.efConstruction = args.ef_construction
            t0 = time.perf_counter()
            hnsw.add(base)
            build = time.perf_counter() - t0
            size = faiss.serialize_index(hnsw).nbytes / args.n
            for ef in (16, 32, 64, 128, 256, 512):
                params = faiss.SearchParametersHNSW(efSearch=ef)

                def hnsw_search(q, params=params):
                    return hnsw.search(q, K, params=params)
                faiss.omp_set_num_threads(threads)
                found = hnsw_search(queries)[1]
                entry = {"method": f"hnsw-384 ef={ef}", "recall@10": recall(found, truth),
                         **timed_single(hnsw_search, queries[: args.latency_queries], args.repeats),
                         "batch_qps": timed_batch(hnsw_search, queries, threads),
                         "build_seconds": build, "bytes_per_vector_on_disk": size}
                report["methods"].append(entry)
                print(json.dumps(entry), flush=True)
            del hnsw
            gc.collect()
        del base
        gc.collect()
    (out / "scale.json").write_text(json.dumps(report, indent=2))
    (out / "scale.md").write_text(render(report))
    print(render(report))


def render(report: dict) -> str:
    rows = ["| method | recall@10 | p50 ms (1 thread) | p95 ms | batch QPS | build s | ingest vec/s | bytes/vector |",
            "|---|---|---|---|---|---|---|---|"]
    for m in report["methods"]:
        rows.append(f"| {m['method']} | {m['recall@10']:.4f} | {m['p50_ms']:.3f} | {m['p95_ms']:.3f} | "
                    f"{m['batch_qps']:.0f} | {m.get('build_seconds', 0):.1f} | "
                    f"{m.get('ingest_vectors_per_s', float('nan')):.0f} | {m['bytes_per_vector_on_disk']:.0f} |")
    by = {m["method"]: m for m in report["methods"]}
    lines = [f"# Scale: {report['n']:,} x {report['dim']} (HNSW M={report['hnsw_m']}, "
             f"efConstruction={report['ef_construction']}), {report['machine']}", "", *rows, ""]
    funnel = by.get("funnel")
    if funnel and "flat-384" in by:
        lines.append(f"funnel vs flat-384: {by['flat-384']['p50_ms'] / funnel['p50_ms']:.0f}x faster (p50, 1 thread)")
        hnsw_ok = [m for m in report["methods"] if m["method"].startswith("hnsw") and m["recall@10"] >= funnel["recall@10"]]
        if hnsw_ok:
            best = min(hnsw_ok, key=lambda m: m["p50_ms"])
            lines.append(f"funnel vs the fastest hnsw-384 at equal or better recall ({best['method']}, "
                         f"recall {best['recall@10']:.4f}): {best['p50_ms'] / funnel['p50_ms']:.1f}x faster")
        else:
            lines.append("no hnsw-384 setting reached the funnel's recall")
    lines += ["", "Generator fidelity: " + json.dumps(report["generator"])]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
