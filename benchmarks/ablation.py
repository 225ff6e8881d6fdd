"""Ablation of the adaptor recipe, scored on a development split of the *train* queries.

A quarter of each set's train queries (with every train query that shares a relevant document
with them removed from the rest) is held out as the development set; the remaining train
queries are the unlabelled query anchors. No test query or test label is read. Each row
changes one choice of the default recipe.

    python benchmarks/ablation.py --sets scifact
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from matry_index.adaptor.training import TrainConfig, fit_unsupervised  # noqa: E402
from matry_index.evaluation import PCARotation, evaluate_levels  # noqa: E402
from matry_index.evaluation.report import markdown_table  # noqa: E402
from matry_index.experiment import load_experiment  # noqa: E402

LEVELS = (32, 64, 128, 192, 256, 384)
VARIANTS = {
    "default (listwise KL + reconstruction, learned rotation from PCA, MLP 256, query anchors)": {},
    "no query anchors (corpus only)": {"_no_queries": True},
    "paper losses (top-k + pairwise L1 + reconstruction), identity start": {
        "w_topk": 1.0, "w_pair": 1.0, "w_listwise": 0.0, "rotation": "none"},
    "paper losses, after a fixed PCA rotation": {"w_topk": 1.0, "w_pair": 1.0, "w_listwise": 0.0, "rotation": "pca"},
    "fixed PCA rotation (MLP only)": {"rotation": "pca"},
    "rotation only (no MLP)": {"hidden": 0},
}


def dev_split(exp, seed: int = 123):
    qrels = exp.dataset.split("train")
    qids = sorted(exp.train_queries())
    rng = np.random.default_rng(seed)
    rng.shuffle(qids)
    dev = qids[: len(qids) // 4]
    dev_docs = {d for q in dev for d in qrels[q]}
    anchors = [q for q in qids[len(qids) // 4:] if not set(qrels[q]) & dev_docs]
    return dev, anchors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sets", nargs="+", default=["scifact", "docstrings"])
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = parser.parse_args()
    report, md = {}, ["# Adaptor ablation (development split of the train queries, nDCG@10, seed 0)", ""]
    for name in args.sets:
        exp = load_experiment(REPO.parent / "shared" / "data" / name)
        dev, anchors = dev_split(exp)
        task = exp.task("train").subset(dev)
        rows = {"truncation": evaluate_levels(task, LEVELS),
                "PCA": evaluate_levels(task, LEVELS, PCARotation.fit(exp.corpus.vectors).transform)}
        seconds = {}
        for label, overrides in VARIANTS.items():
            overrides = dict(overrides)
            queries = None if overrides.pop("_no_queries", False) else exp.queries.take(anchors)
            t0 = time.perf_counter()
            fit = fit_unsupervised(exp.corpus.vectors, queries=queries, config=TrainConfig(**overrides))
            seconds[label] = time.perf_counter() - t0
            rows[label] = evaluate_levels(task, LEVELS, fit.adaptor.transform)
            print(name, label, {m: round(v["ndcg@10"], 3) for m, v in rows[label].items()}, flush=True)
        report[name] = {"dev_queries": len(dev), "anchor_queries": len(anchors), "rows": rows, "seconds": seconds}
        wrapped = {k: {m: {"ndcg@10": [v["ndcg@10"]]} for m, v in per.items()} for k, per in rows.items()}
        md += [markdown_table(wrapped, "ndcg@10", f"{name}: {len(dev)} dev queries, {len(anchors)} anchor queries"), ""]
        out = Path(args.out)
        (out / "ablation.json").write_text(json.dumps(report, indent=2))
        (out / "ablation.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
