"""Head to head: the tuned FAISS funnel against full-dimension HNSW at equal recall, interleaved.

``scale.py`` measures each method once, one after another, minutes apart; at 0.1-0.2 ms per
query the background load of a shared machine moves a single p50 by ±10 % between such
measurements, which is as large as the difference being claimed. This script keeps both
indexes in memory and alternates them round by round on the same queries (which one goes
first alternates too), so every ratio compares two measurements taken seconds apart. It
reports both p50s of every round and the median, min and max of the per-round ratios.

Same data as ``scale.py`` (same generator and seeds): ``--n`` synthetic adapted vectors, test
queries kept out of the base, separate tuning queries. The funnel (``--funnel``, default the IVF-SQ8
one) is tuned to ``--target`` recall@10 on the tuning queries; its recall is then measured on
the test queries, and HNSW-384 (same M) gets the smallest ef from ``--efs`` whose recall on the
test queries is at least the funnel's. Results:
``head_to_head-TARGET.json`` and ``.md`` in ``--out``.

    python benchmarks/head_to_head.py --adaptor ADAPTOR_DIR                  # 1M: ~8 minutes on 2 cores
    python benchmarks/head_to_head.py --adaptor ADAPTOR_DIR --target 0.995
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (FUNNELS, K, build_hnsw, bulk_load, draw_set, ground_truth, recall,  # noqa: E402
                    saved_or_fitted_adaptor, synthetic_set_arguments, timed_single)
from synthetic import EmbeddingGenerator  # noqa: E402

from matry_index import FunnelPlan  # noqa: E402
from matry_index.experiment import load_experiment  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    synthetic_set_arguments(parser)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--target", type=float, default=0.99)
    parser.add_argument("--funnel", default="funnel ivf-sq8@128", choices=list(FUNNELS))
    parser.add_argument("--efs", type=int, nargs="+", default=[16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 256, 384, 512, 768])
    args = parser.parse_args()
    threads = len(os.sched_getaffinity(0))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    exp = load_experiment(args.data)
    adaptor = saved_or_fitted_adaptor(exp, args.adaptor)
    train_q, _ = exp.relevance("train")
    gen = EmbeddingGenerator.fit(adaptor.transform(exp.corpus.vectors), adaptor.transform(train_q))
    base, queries, tune_q = draw_set(gen, args.n, args.queries)
    truth, flat = ground_truth(base, queries, threads)
    flat.reset()

    levels, options = FUNNELS[args.funnel]
    faiss.omp_set_num_threads(threads)
    index, _, _ = bulk_load(base, levels, hnsw_m=args.m, ef_construction=args.ef_construction,
                            deferred_build=True, **options)
    plan = index.tune(tune_q, target_recall=args.target, k=K)
    funnel_recall = recall(np.array([[h.id for h in hits] for hits in index.search(queries, k=K)]), truth)

    hnsw, _ = build_hnsw(base, args.m, args.ef_construction)
    del base
    sweep = {}
    for ef in args.efs:
        _, found = hnsw.search(queries, K, params=faiss.SearchParametersHNSW(efSearch=ef))
        sweep[ef] = recall(found, truth)
    matching = [ef for ef in args.efs if sweep[ef] >= funnel_recall]
    report = {"n": args.n, "k": K, "machine": platform.platform(), "faiss": faiss.__version__,
              "funnel": args.funnel, "levels": list(levels), "target": args.target, "plan": plan.to_dict(),
              "funnel_recall@10": funnel_recall, "hnsw_m": args.m, "ef_construction": args.ef_construction,
              "hnsw_recall_by_ef": sweep, "rounds": []}
    if matching:
        ef = matching[0]
        params = faiss.SearchParametersHNSW(efSearch=ef)
        report.update(hnsw_ef=ef, hnsw_recall=sweep[ef])
        lat_q = queries[:args.latency_queries]
        contenders = {"funnel": lambda q: index.search(q, k=K),
                      "hnsw": lambda q: hnsw.search(q, K, params=params)}
        for r in range(args.rounds):
            order = ["funnel", "hnsw"] if r % 2 == 0 else ["hnsw", "funnel"]
            p50 = {name: timed_single(contenders[name], lat_q, args.repeats)["p50_ms"] for name in order}
            report["rounds"].append({**p50, "ratio": p50["hnsw"] / p50["funnel"]})
            print(json.dumps(report["rounds"][-1]), flush=True)
        ratios = [r["ratio"] for r in report["rounds"]]
        report["ratio_median"], report["ratio_min"], report["ratio_max"] = (
            float(np.median(ratios)), float(min(ratios)), float(max(ratios)))
        for name in ("funnel", "hnsw"):
            report[f"{name}_p50_median_ms"] = float(np.median([r[name] for r in report["rounds"]]))
    index.close()
    (out / f"head_to_head-{args.target}.json").write_text(json.dumps(report, indent=2))
    (out / f"head_to_head-{args.target}.md").write_text(render(report))
    print(render(report))


def render(report: dict) -> str:
    lines = [f"# Head to head: {report['funnel']} vs HNSW-384 at equal recall ({report['n']:,} vectors, "
             f"{report['machine']})", "",
             f"Funnel tuned to recall@10 ≥ {report['target']} on separate tuning queries: plan "
             f"{FunnelPlan.from_dict(report['plan']).describe()}, recall@10 {report['funnel_recall@10']:.4f} "
             "on the test queries.",
             "HNSW-384 (M={hnsw_m}, efConstruction={ef_construction}) recall@10 by ef: ".format(**report)
             + ", ".join(f"{ef}: {r:.4f}" for ef, r in report["hnsw_recall_by_ef"].items()) + "."]
    if "hnsw_ef" not in report:
        return "\n".join(lines + ["", "No ef in the sweep reached the funnel's recall."]) + "\n"
    lines += [f"Compared with ef={report['hnsw_ef']} (recall@10 {report['hnsw_recall']:.4f}), the smallest "
              "ef whose recall is at least the funnel's.", "",
              "Single-query p50 (ms, one thread, each query run 3 times and its median kept), "
              "the two alternating round by round:", "",
              "| round | funnel | hnsw-384 | hnsw / funnel |", "|---|---|---|---|"]
    for i, r in enumerate(report["rounds"], 1):
        lines.append(f"| {i} | {r['funnel']:.4f} | {r['hnsw']:.4f} | {r['ratio']:.2f}x |")
    lines += ["", f"Median of the per-round ratios: **{report['ratio_median']:.2f}x** (min "
                  f"{report['ratio_min']:.2f}x, max {report['ratio_max']:.2f}x); median p50 funnel "
                  f"{report['funnel_p50_median_ms']:.4f} ms, HNSW {report['hnsw_p50_median_ms']:.4f} ms."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
