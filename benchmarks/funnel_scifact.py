"""The funnel on real data: SciFact corpus with the unsupervised adaptor.

nDCG@10 on the 300 test queries for exact full-dimension search over the adapted vectors and
for the funnel (plan tuned to recall@10 ≥ 0.99 on the *train* queries), plus the cost of each:
single-query latency (median of several runs per query, one thread) and the plan's distance
computations per query. Also the same without an adaptor, for reference.

    python benchmarks/funnel_scifact.py [--adaptor DIR]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from common import timed_single  # noqa: E402

from matry_index import MatryoshkaAdaptor, MatryoshkaIndex  # noqa: E402
from matry_index.evaluation.metrics import ndcg_at_k  # noqa: E402
from matry_index.experiment import fit_adaptors, load_experiment  # noqa: E402
from matry_index.funnel import FunnelPlan, plan_cost  # noqa: E402


def latency(fn, queries: np.ndarray, repeats: int = 5) -> float:
    """p50 single-query milliseconds of ``fn`` (one 1-d query per call), as every benchmark times it."""
    return timed_single(lambda q: fn(q[0]), queries, repeats)["p50_ms"]


def main() -> None:
    import argparse
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--adaptor", default=None, help="a saved adaptor (default: fit one, seed 0)")
    args = parser.parse_args()
    exp = load_experiment(REPO.parent / "shared" / "data" / "scifact")
    adaptor = (MatryoshkaAdaptor.load(args.adaptor) if args.adaptor
               else fit_adaptors(exp, seed=0, supervised=False)["unsupervised adaptor"].adaptor)
    train_q, _ = exp.relevance("train")
    task = exp.task("test")
    rows = []
    for name, a in (("adaptor", adaptor), ("no adaptor", None)):
        index = MatryoshkaIndex(384, adaptor=a, levels=(64, 128, 256), coarse="hnsw")
        index.add(exp.corpus.ids, exp.corpus.vectors)
        plan = index.tune(train_q, target_recall=0.99, k=10)
        runs = {}
        for mode, exact in (("funnel", False), ("exact", True)):
            hits = index.search(task.queries, k=10, exact=exact)
            runs[mode] = ndcg_at_k({q: [h.id for h in hs] for q, hs in zip(task.query_ids, hits)}, task.qrels)
        lat_f = latency(lambda q: index.search(q, k=10), task.queries[:100])
        lat_e = latency(lambda q: index.search(q, k=10, exact=True), task.queries[:100])
        n = len(index)
        rows.append({"index": name, "plan": plan.to_dict(), "ndcg@10 funnel": runs["funnel"],
                     "ndcg@10 exact": runs["exact"], "p50 ms funnel": lat_f, "p50 ms exact": lat_e,
                     "cost funnel (MACs/query)": plan_cost(plan, index.levels, 10, n,
                                                           index.backend.coarse_cost()),
                     "cost exact (MACs/query)": float(n * 384)})
        print(json.dumps(rows[-1]), flush=True)
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "funnel_scifact.json").write_text(json.dumps(rows, indent=2))
    md = ["# Funnel on SciFact (5,183 docs, 300 test queries, MiniLM 384-d)", "",
          "| index | plan (candidates per level) | nDCG@10 funnel | nDCG@10 exact | Δ | p50 ms funnel | p50 ms exact | cost ratio |",
          "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['index']} | {FunnelPlan.from_dict(r['plan']).describe()} | {r['ndcg@10 funnel']:.4f} | {r['ndcg@10 exact']:.4f} | "
                  f"{r['ndcg@10 funnel'] - r['ndcg@10 exact']:+.4f} | {r['p50 ms funnel']:.3f} | {r['p50 ms exact']:.3f} | "
                  f"{r['cost funnel (MACs/query)'] / r['cost exact (MACs/query)']:.3f} |")
    (out / "funnel_scifact.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
