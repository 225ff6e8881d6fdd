"""Scale benchmark: the FAISS funnel against flat and HNSW full-dimension search.

One run, one machine, side by side at ``--n`` vectors (default 1M) of 384 dims:

* ``flat-384``     exact ``IndexFlatIP`` on the full vectors (also the ground truth);
* ``hnsw-384``     ``IndexHNSWFlat`` on the full vectors, same M as the funnel, ef swept;
* ``funnel hnsw@64``      ``MatryoshkaIndex`` over adapted vectors: HNSW on the 64-d prefix,
                          exact rescoring at 128 / 256 / 384;
* ``funnel ivf-sq8@128``  the same with an IVF coarse stage (8-bit codes of the 128-d prefix,
                          centroids found through a small HNSW graph), rescoring at 256 / 384;
  each funnel is tuned on separate tuning queries to recall@10 ≥ 0.99, 0.995 and 0.999
  (``--targets``), one row per target;
* ``... no adaptor``      the IVF funnel over *un*-adapted vectors, tuned to 0.99.

The vectors come from :mod:`synthetic`, fitted to real SciFact MiniLM embeddings (adapted by an
unsupervised adaptor fitted here, or raw). Latency is single-query, one thread, through the
public ``MatryoshkaIndex.search`` (numpy in, hits out); QPS is one batch call with every core.
Recall@10 is against exact full-dimension search. The report compares, at each recall level,
the fastest funnel row with the fastest full-dimension row that reaches it. Results:
``benchmarks/results/scale.json`` and ``scale.md``. Rows are measured minutes apart; for the
funnel-to-HNSW ratio at equal recall ``head_to_head.py`` times the two alternately.

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
from pathlib import Path

import faiss
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from common import (EF_SWEEP, FUNNELS, K, RECALL_POINTS, adaptor_latency, build_hnsw, draw_set,  # noqa: E402
                    ground_truth, measure_index, recall, saved_or_fitted_adaptor, synthetic_set_arguments,
                    timed_batch, timed_single)
from matry_index import FunnelPlan  # noqa: E402
from matry_index.experiment import load_experiment  # noqa: E402
from synthetic import EmbeddingGenerator  # noqa: E402




def flat_row(flat: faiss.Index, queries: np.ndarray, latency_queries: int, threads: int) -> dict:
    """The exact full-dimension scan as a row of the report."""
    def flat_search(q):
        return flat.search(q, K)
    row = {"method": "flat-384", "recall@10": 1.0, **timed_single(flat_search, queries[:latency_queries], 1),
           "batch_qps": timed_batch(flat_search, queries, threads, 1), "bytes_per_vector_on_disk": 384 * 4}
    print(json.dumps(row), flush=True)
    return row


def hnsw_sweep(base: np.ndarray, queries: np.ndarray, truth: np.ndarray, args, threads: int) -> list[dict]:
    """FAISS HNSW on the full vectors (same M as the funnels), one row per ef of EF_SWEEP."""
    faiss.omp_set_num_threads(threads)
    hnsw, build = build_hnsw(base, args.m, args.ef_construction)
    size = faiss.serialize_index(hnsw).nbytes / len(base)
    rows = []
    for ef in EF_SWEEP:
        params = faiss.SearchParametersHNSW(efSearch=ef)

        def hnsw_search(q, params=params):
            return hnsw.search(q, K, params=params)
        faiss.omp_set_num_threads(threads)
        found = hnsw_search(queries)[1]
        rows.append({"method": f"hnsw-384 ef={ef}", "recall@10": recall(found, truth),
                     **timed_single(hnsw_search, queries[: args.latency_queries], args.repeats),
                     "batch_qps": timed_batch(hnsw_search, queries, threads),
                     "build_seconds": build, "bytes_per_vector_on_disk": size})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    synthetic_set_arguments(parser)
    parser.add_argument("--flat-latency-queries", type=int, default=30)
    parser.add_argument("--targets", type=float, nargs="+", default=list(RECALL_POINTS))
    parser.add_argument("--funnels", nargs="+", default=list(FUNNELS), choices=list(FUNNELS))
    parser.add_argument("--raw-funnel", default="funnel ivf-sq8@128", choices=list(FUNNELS),
                        help="the funnel also run on un-adapted vectors")
    parser.add_argument("--skip-hnsw-full", action="store_true")
    parser.add_argument("--tmp", default=None)
    args = parser.parse_args()
    threads = len(os.sched_getaffinity(0))  # the cores this process may use (taskset)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    exp = load_experiment(args.data)
    adaptor = saved_or_fitted_adaptor(exp, args.adaptor)
    train_q, _ = exp.relevance("train")
    report = {"n": args.n, "dim": 384, "k": K, "threads_batch": threads, "hnsw_m": args.m,
              "ef_construction": args.ef_construction, "machine": platform.platform(),
              "faiss": faiss.__version__, "methods": [], "generator": {},
              "adaptor_per_query": adaptor_latency(adaptor, train_q[:300])}
    graph = {"hnsw_m": args.m, "ef_construction": args.ef_construction, "deferred_build": True}
    spaces = {"adapted": (adaptor.transform(exp.corpus.vectors), adaptor.transform(train_q)),
              "raw": (exp.corpus.vectors, train_q)}
    for space, (real_docs, real_q) in spaces.items():
        gen = EmbeddingGenerator.fit(real_docs, real_q)
        base, queries, tune_q = draw_set(gen, args.n, args.queries)
        report["generator"][space] = EmbeddingGenerator.fidelity(
            real_docs / np.linalg.norm(real_docs, axis=1, keepdims=True), base,
            real_q / np.linalg.norm(real_q, axis=1, keepdims=True), queries)
        truth, flat = ground_truth(base, queries, threads)
        if space == "adapted":
            report["methods"].append(flat_row(flat, queries, args.flat_latency_queries, threads))
        flat.reset()
        gc.collect()
        names = args.funnels if space == "adapted" else [args.raw_funnel]
        targets = tuple(args.targets) if space == "adapted" else (args.targets[0],)
        for name in names:
            levels, options = FUNNELS[name]
            faiss.omp_set_num_threads(threads)
            if args.tmp:
                Path(args.tmp).mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
                report["methods"] += measure_index(
                    name if space == "adapted" else f"{name}, no adaptor", base, tune_q, queries, truth,
                    levels=levels, targets=targets, latency_queries=args.latency_queries,
                    repeats=args.repeats, tmp=Path(tmp), batch_threads=threads, **options, **graph)
            gc.collect()
        if space == "adapted" and not args.skip_hnsw_full:
            report["methods"] += hnsw_sweep(base, queries, truth, args, threads)
            gc.collect()
        del base
        gc.collect()
        (out / "scale.json").write_text(json.dumps(report, indent=2))
    (out / "scale.md").write_text(render(report))
    print(render(report))


def fastest(rows: list[dict], prefix: str, at_least: float) -> dict | None:
    ok = [m for m in rows if m["method"].startswith(prefix) and m["recall@10"] >= at_least]
    return min(ok, key=lambda m: m["p50_ms"]) if ok else None


def render(report: dict) -> str:
    rows = ["| method | recall@10 | p50 ms (1 thread) | p95 ms | batch QPS | build s | ingest vec/s | bytes/vector | plan |",
            "|---|---|---|---|---|---|---|---|---|"]
    for m in report["methods"]:
        plan_txt = FunnelPlan.from_dict(m["plan"]).describe() if m.get("plan") else ""
        rows.append(f"| {m['method']} | {m['recall@10']:.4f} | {m['p50_ms']:.3f} | {m['p95_ms']:.3f} | "
                    f"{m.get('batch_qps', float('nan')):.0f} | {m.get('build_seconds', 0):.1f} | "
                    f"{m.get('ingest_vectors_per_s', float('nan')):.0f} | {m['bytes_per_vector_on_disk']:.0f} | "
                    f"{plan_txt} |")
    lines = [f"# Scale: {report['n']:,} x {report['dim']} (HNSW M={report['hnsw_m']}, "
             f"efConstruction={report['ef_construction']}), {report['machine']}", "", *rows, "",
             "Speed-up of the fastest funnel row over the fastest full-dimension row reaching each recall "
             "(p50, one thread; rows measured on the test queries, funnels tuned on separate ones):", "",
             "| recall@10 ≥ | funnel (p50 ms) | vs flat-384 | hnsw-384 (p50 ms) | vs hnsw-384 |",
             "|---|---|---|---|---|"]
    by = {m["method"]: m for m in report["methods"]}
    flat = by.get("flat-384")
    adapted = [m for m in report["methods"] if "no adaptor" not in m["method"]]
    for r in RECALL_POINTS:
        funnel, hnsw = fastest(adapted, "funnel", r), fastest(adapted, "hnsw-384", r)
        if funnel is None:
            lines.append(f"| {r} | none reached it | | | |")
            continue
        vs_flat = f"{flat['p50_ms'] / funnel['p50_ms']:.0f}x" if flat else ""
        vs_hnsw = f"{hnsw['p50_ms'] / funnel['p50_ms']:.2f}x" if hnsw else "no ef reached it"
        lines.append(f"| {r} | {funnel['method']}: {funnel['p50_ms']:.3f} | {vs_flat} | "
                     f"{hnsw['method'] + ': ' + format(hnsw['p50_ms'], '.3f') if hnsw else '-'} | {vs_hnsw} |")
    ad = report.get("adaptor_per_query")
    if ad:
        lines += ["", f"The funnel rows index vectors that are already adapted; applying the adaptor to a "
                      f"raw query costs a further {ad['p50_ms'] * 1e3:.0f} µs (p50) per query."]
    lines += ["", "Generator fidelity: " + json.dumps(report["generator"])]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
