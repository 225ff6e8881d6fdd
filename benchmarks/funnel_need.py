"""How many candidates each coarse prefix needs, per representation, and what codes cost.

For SciFact and docstrings (all-MiniLM-L6-v2 embeddings; adaptors fitted on the corpus plus the
unlabelled *train* queries, selected on held-out anchors; the *test* queries are only measured):

* candidates a coarse stage needs (exact coarse search, so a property of the representation)
  for recall@10 >= 0.99 and 0.995 of each query's full-dimension top-10 under the *original*
  embeddings, at 32 / 64 / 128-d float prefixes, for truncation, PCA, the nDCG-oriented adaptor
  and the funnel-aware one (mean of the seeds);
* nDCG@10 of each prefix alone, and of a funnel's final ranking (coarse 64-d top-100, rescored
  by the original full-dimension cosine);
* quantised coarse codes (int8 and 4-bit per coordinate, sign bits scanned by Hamming distance
  or by the float query) against bytes per vector: recall@100 of the full-dimension top-10 and
  candidates needed for 0.99, next to sign bits of the original full vector (48 bytes at 384-d,
  the usual binary-quantisation recipe) and FAISS's ``OPQ32,PQ32`` product quantiser of the
  original vector (32 bytes; the strongest 32-byte code an expert would train);
* a ceiling: the funnel-aware recipe fitted on the *test* queries themselves (seed 0), the most
  a rotation trained this way can do for them; it is not a method, and nothing is selected on it.

    python benchmarks/funnel_need.py [--sets scifact docstrings] [--seeds 0 1 2] [--threads 2] [--merge]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import faiss
import numpy as np

from common import RESULTS, SHARED_DATA
from matry_index._validation import normalize_rows
from matry_index.adaptor import TrainConfig, fit_unsupervised
from matry_index.adaptor.config import FUNNEL_RECIPE
from matry_index.evaluation import PCARotation, evaluate_levels, ndcg_at_k
from matry_index.evaluation.funnel_need import (candidates_needed, coarse_ranks, full_dimension_top_k,
                                                funnel_need, recall_at)
from matry_index.experiment import load_experiment

COARSE = (32, 64, 128)
PREFIX_LEVELS = (32, 64, 128, 384)
RECALLS = (0.99, 0.995)
#: (code, prefix dimension) pairs of the quantised rows: 32, 48 and 64 bytes per vector
CODES = (("int8", 32), ("int4", 64), ("binary", 256), ("binary-asym", 256), ("binary", 384),
         ("binary-asym", 384), ("int8", 64))
#: the product quantiser rival: 32 sub-quantisers of 8 bits after a learned rotation (32 bytes)
PQ_RIVAL = "OPQ32,PQ32"
CEILING = "ceiling: funnel-aware fitted on the test queries"
FINAL_LEVEL, FINAL_CANDIDATES = 64, 100


def final_ndcg(task, queries: np.ndarray, docs: np.ndarray, level: int = FINAL_LEVEL,
               candidates: int = FINAL_CANDIDATES) -> float:
    """nDCG@10 of a funnel: coarse top-``candidates`` on the ``level`` prefix of the transformed
    ``queries`` / ``docs``, reranked by the original full-dimension cosine."""
    d, q = normalize_rows(docs[:, :level]), normalize_rows(queries[:, :level])
    full_d, full_q = normalize_rows(task.docs), normalize_rows(task.queries)
    run = {}
    for i, qid in enumerate(task.query_ids):
        cand = np.argpartition(-(d @ q[i]), candidates)[:candidates]
        order = cand[np.argsort(-(full_d[cand] @ full_q[i]), kind="stable")][:10]
        run[qid] = [task.doc_ids[j] for j in order]
    return float(ndcg_at_k(run, task.qrels, 10))


def measure(task, transform, targets) -> dict:
    """Every figure of one method; its transform is applied once to the queries and documents."""
    queries = transform(task.queries) if transform else task.queries
    docs = transform(task.docs) if transform else task.docs
    need = funnel_need(queries, docs, COARSE, recalls=RECALLS, targets=targets)
    ndcg = evaluate_levels(task, PREFIX_LEVELS, transform)
    codes = {}
    for code, dim in CODES:
        if dim <= docs.shape[1]:
            row = funnel_need(queries, docs, (dim,), None, code, recalls=(0.99,),
                              candidates=(100,), targets=targets)[dim]
            codes[f"{code}-{dim}"] = {"bytes": row["bytes"], "recall@100": row["recall_at"][100],
                                      "needed@0.99": row["needed"][0.99]}
    return {"needed": {m: {str(r): v["needed"][r] for r in RECALLS} for m, v in need.items()},
            "recall@100": {m: v["recall_at"][100] for m, v in need.items()},
            "ndcg@10": {m: ndcg[m]["ndcg@10"] for m in PREFIX_LEVELS}, "final_ndcg@10": final_ndcg(task, queries, docs),
            "codes": codes}


def product_quantiser_row(task, targets) -> dict:
    """Recall@100 and candidates needed of :data:`PQ_RIVAL` trained on the corpus: each query
    scored against the decoded codes, as FAISS's asymmetric distance computation does."""
    docs = normalize_rows(task.docs)
    index = faiss.index_factory(docs.shape[1], PQ_RIVAL, faiss.METRIC_INNER_PRODUCT)
    rotation = faiss.downcast_VectorTransform(index.chain.at(0))
    rotation_pq = rotation.pq = faiss.ProductQuantizer(docs.shape[1], rotation.M, 8)  # kept alive here
    for pq in (faiss.downcast_index(index.index).pq, rotation_pq):
        pq.cp.min_points_per_centroid = 16  # a few thousand documents train 256 centroids well enough
    index.train(docs)
    decoded = index.sa_decode(index.sa_encode(docs))
    ranks = coarse_ranks(normalize_rows(task.queries), decoded, targets, "float")
    return {"bytes": index.sa_code_size(), "recall@100": recall_at(ranks, 100),
            "needed@0.99": candidates_needed(ranks, 0.99)}


def mean_rows(rows: list[dict]):
    """Element-wise mean of nested dicts of numbers (the seeds of one method)."""
    first = rows[0]
    if isinstance(first, dict):
        return {k: mean_rows([r[k] for r in rows]) for k in first}
    return float(np.mean(rows))


def run_set(name: str, seeds, threads: int | None) -> dict:
    exp = load_experiment(SHARED_DATA / name)
    task = exp.task("test")
    anchors, _ = exp.relevance("train")
    targets = full_dimension_top_k(task.queries, task.docs)
    out = {"queries": len(task.query_ids), "docs": len(task.doc_ids), "methods": {}, "fit_seconds": {}}
    out["methods"]["truncation"] = measure(task, None, targets)
    out["methods"]["PCA"] = measure(task, PCARotation.fit(exp.corpus.vectors).transform, targets)
    recipes = {"adaptor (nDCG-oriented)": {}, "adaptor (funnel-aware)": FUNNEL_RECIPE}
    for label, recipe in recipes.items():
        per_seed, seconds = [], []
        for seed in seeds:
            t0 = time.perf_counter()
            fit = fit_unsupervised(exp.corpus.vectors, queries=anchors,
                                   config=TrainConfig(seed=seed, threads=threads, **recipe))
            seconds.append(time.perf_counter() - t0)
            per_seed.append(measure(task, fit.adaptor.transform, targets))
            print(name, label, seed, per_seed[-1]["needed"], flush=True)
        out["methods"][label] = mean_rows(per_seed)
        out["methods"][label]["seeds"] = len(seeds)
        out["fit_seconds"][label] = float(np.mean(seconds))
    oracle = fit_unsupervised(exp.corpus.vectors, queries=task.queries,
                              config=TrainConfig(seed=0, threads=threads, **FUNNEL_RECIPE))
    out["methods"][CEILING] = {**measure(task, oracle.adaptor.transform, targets), "seeds": 1}
    out["rivals"] = {PQ_RIVAL: product_quantiser_row(task, targets)}
    return out


def markdown(report: dict, seeds) -> str:
    md = ["# Candidates a coarse stage needs, per representation", "",
          "Test queries; adaptors fitted on the corpus and unlabelled train queries only (mean of "
          f"seeds {', '.join(map(str, seeds))}). *needed* = candidates the exact coarse search of a prefix "
          "must keep for recall@10 of the original full-dimension top-10 to reach 0.99 / 0.995. "
          f"*final* = nDCG@10 of a funnel (coarse {FINAL_LEVEL}-d top-{FINAL_CANDIDATES}, rescored "
          "by the original full-dimension cosine). `python benchmarks/funnel_need.py`", ""]
    for name, res in report.items():
        methods = res["methods"]
        md += [f"## {name} ({res['docs']} documents, {res['queries']} test queries)", "",
               "| method | needed 32-d | needed 64-d | needed 128-d | nDCG@10 32 / 64 / 128 / 384 | final |",
               "|---|---|---|---|---|---|"]
        for label, row in methods.items():
            need = " | ".join(f"{row['needed'][str(m)]['0.99']:.0f} / {row['needed'][str(m)]['0.995']:.0f}"
                             for m in COARSE)
            nd = " / ".join(f"{row['ndcg@10'][str(m)]:.3f}" for m in PREFIX_LEVELS)
            md.append(f"| {label} | {need} | {nd} | {row['final_ndcg@10']:.3f} |")
        md += ["", "Quantised coarse codes: recall@100 of the full-dimension top-10 / candidates needed for 0.99",
               "", "| method | " + " | ".join(f"{c} ({methods['PCA']['codes'][c]['bytes']} B)"
                                             for c in methods["PCA"]["codes"]) + " |",
               "|---|" + "---|" * len(methods["PCA"]["codes"])]
        for label, row in methods.items():
            md.append(f"| {label} | " + " | ".join(f"{v['recall@100']:.3f} / {v['needed@0.99']:.0f}"
                                                   for v in row["codes"].values()) + " |")
        for label, v in res.get("rivals", {}).items():
            md += ["", f"Rival: FAISS `{label}` of the original vector ({v['bytes']} B): recall@100 "
                   f"{v['recall@100']:.3f}, candidates needed for 0.99: {v['needed@0.99']:.0f}"]
        md += ["", "Fit seconds (mean per seed): " + ", ".join(
            f"{k} {v:.0f}" for k, v in res["fit_seconds"].items()), ""]
    return "\n".join(md)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", default=["scifact", "docstrings"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=None, help="torch threads per fit")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--merge", action="store_true",
                        help="keep the other sets of an earlier funnel_need.json (runs of one set each)")
    args = parser.parse_args()
    out = Path(args.out)
    report = {name: run_set(name, args.seeds, args.threads) for name in args.sets}
    report = json.loads(json.dumps(report))  # the keys as the JSON file has them, merged or not
    earlier = out / "funnel_need.json"
    if args.merge and earlier.is_file():
        report = {**json.loads(earlier.read_text()), **report}
    (out / "funnel_need.json").write_text(json.dumps(report, indent=2))
    text = markdown(report, args.seeds)
    (out / "funnel_need.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
