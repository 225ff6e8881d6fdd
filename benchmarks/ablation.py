"""Ablation of the adaptor recipe, scored on a development split of the *train* queries.

A quarter of each set's train queries (with every train query that shares a relevant document
with them removed from the rest) is held out as the development set; the remaining train
queries are the unlabelled query anchors. No test query or test label is read. Each row
changes one choice of the default recipe; the supervised rows start from the default
unsupervised adaptor and use the anchor queries' train judgements (never the dev ones). One
row is a ceiling, not a recipe: the dev queries themselves (unlabelled) as the anchors, which
shows how much of a prefix's gap to the full dimension is generalisation to unseen queries.

    python benchmarks/ablation.py --threads 1 --sets scifact [--parts supervised] [--only "temperature"]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from matry_index.adaptor import TrainConfig, fit_supervised, fit_unsupervised  # noqa: E402
from matry_index.evaluation import PCARotation, evaluate_levels  # noqa: E402
from matry_index.evaluation.report import markdown_table  # noqa: E402
from matry_index.experiment import load_experiment  # noqa: E402

LEVELS = (32, 64, 128, 192, 256, 384)
VARIANTS = {
    "default (listwise KL + reconstruction, learned rotation from PCA, MLP 256, query anchors)": {},
    "no query anchors (corpus only)": {"_anchors": "none"},
    "ceiling, not a recipe: the dev queries themselves as anchors": {"_anchors": "dev"},
    "a quarter of the query anchors": {"_anchor_fraction": 0.25},
    "half of the query anchors": {"_anchor_fraction": 0.5},
    "paper losses (top-k + pairwise L1 + reconstruction), identity start": {
        "w_topk": 1.0, "w_pair": 1.0, "w_listwise": 0.0, "rotation": "none"},
    "paper losses, after a fixed PCA rotation": {"w_topk": 1.0, "w_pair": 1.0, "w_listwise": 0.0, "rotation": "pca"},
    "fixed PCA rotation (MLP only)": {"rotation": "pca"},
    "rotation only (no MLP)": {"hidden": 0},
    "loss weight of each level ∝ its size": {"level_weight_power": 1.0},
    "half of each batch from the query anchors": {"query_anchor_share": 0.5},
    "listwise temperature 0.02": {"temperature": 0.02},
    "listwise temperature 0.1": {"temperature": 0.1},
    "64 mined neighbours per anchor": {"neighbours": 64},
    "16 mined neighbours, twice the steps": {"neighbours": 16, "max_steps": 1400},
    "half the batch, twice the steps": {"batch_size": 128, "max_steps": 1400},
    "learning rate 2e-3": {"lr": 2e-3},
    "cosine learning-rate decay": {"lr_schedule": "cosine"},
    "MLP width 512": {"hidden": 512},
    "MLP width 1024": {"hidden": 1024},
    "reconstruction weight 0.3": {"w_rec": 0.3},
    "reconstruction weight 3": {"w_rec": 3.0},
}
DEFAULT_ROW = next(iter(VARIANTS))  # the default recipe, also the stage-1 base of the supervised rows


def dev_split(exp, seed: int = 123):
    qrels = exp.dataset.split("train")
    qids = sorted(exp.train_queries())
    rng = np.random.default_rng(seed)
    rng.shuffle(qids)
    dev = qids[: len(qids) // 4]
    dev_docs = {d for q in dev for d in qrels[q]}
    anchors = [q for q in qids[len(qids) // 4:] if not set(qrels[q]) & dev_docs]
    return dev, anchors


def variant_anchors(exp, overrides: dict, queries: np.ndarray, dev: list[str]) -> np.ndarray | None:
    """The unlabelled query anchors of an unsupervised row, taking its ``_anchors`` choice out
    of ``overrides``: the anchor queries' vectors ``queries`` ("train", default), none, or the
    dev queries themselves (the ceiling row); ``_anchor_fraction`` keeps that share of the
    anchor queries (a random sample, as :func:`dev_split` shuffled them)."""
    kind = overrides.pop("_anchors", "train")
    fraction = overrides.pop("_anchor_fraction", 1.0)
    if kind == "none":
        return None
    if kind == "dev":
        return exp.queries.take(dev)
    return queries[: round(len(queries) * fraction)]


SUPERVISED_VARIANTS = {
    "supervised default (32 hard negatives, lr 3e-4)": {},
    "16 hard negatives": {"hard_negatives": 16},
    "16 hard negatives, lr 1e-3": {"hard_negatives": 16, "supervised_lr": 1e-3},
    "64 hard negatives": {"hard_negatives": 64},
    "ranking loss weight 2": {"w_rank": 2.0},
    "ranking scale 40": {"rank_scale": 40.0},
    "in-batch softmax ranking (every batch candidate a negative)": {"rank_loss": "softmax-inbatch"},
    "in-batch softmax ranking, lr 1e-4": {"rank_loss": "softmax-inbatch", "supervised_lr": 1e-4},
    "pairwise ranking + 0.3 × in-batch softmax": {"w_inbatch": 0.3},
}


def anchor_triples(exp, anchors: list[str]) -> list[tuple[int, int, float]]:
    """(anchor row, corpus row, relevance) for the anchor queries' train judgements."""
    qrels, doc_row = exp.dataset.split("train"), exp.corpus._row
    return [(i, doc_row[d], float(s)) for i, q in enumerate(anchors)
            for d, s in qrels[q].items() if d in doc_row and s > 0]


def arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sets", nargs="+", default=["scifact", "docstrings"])
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per fit; fits agree to the digit only at the same count and CPU")
    parser.add_argument("--parts", nargs="+", default=["unsupervised", "supervised"],
                        choices=["unsupervised", "supervised"])
    parser.add_argument("--only", nargs="+", default=None, metavar="TEXT",
                        help="run only the variants whose label contains one of these texts; "
                             "the other rows are kept from the previous report")
    return parser


def main() -> None:
    parser = arguments()
    args = parser.parse_args()
    out = Path(args.out)
    # rows (and whole sets) not run this time are kept from the previous report
    previous = json.loads((out / "ablation.json").read_text()) if (out / "ablation.json").exists() else {}
    report = dict(previous)
    for name in args.sets:  # refused before any set is loaded or fitted
        old = previous.get(name, {})
        if args.only and old and old.get("threads") != args.threads:
            parser.error(f"{name}: the kept rows were fitted with --threads {old.get('threads')}; "
                         "pass the same count, or rerun every row (no --only)")

    def wanted(label: str) -> bool:
        return not args.only or any(text in label for text in args.only)
    for name in args.sets:
        exp = load_experiment(REPO.parent / "shared" / "data" / name)
        dev, anchors = dev_split(exp)
        task = exp.task("train").subset(dev)
        queries = exp.queries.take(anchors)
        old = previous.get(name, {})
        rows = {label: {int(m): v for m, v in per.items()} for label, per in old.get("rows", {}).items()}
        seconds = dict(old.get("seconds", {}))
        rows.update({"truncation": evaluate_levels(task, LEVELS),
                     "PCA": evaluate_levels(task, LEVELS, PCARotation.fit(exp.corpus.vectors).transform)})

        def record(label: str, fit) -> None:
            seconds[label] = fit.seconds
            rows[label] = evaluate_levels(task, LEVELS, fit.adaptor.transform)
            print(name, label, {m: round(v["ndcg@10"], 3) for m, v in rows[label].items()}, flush=True)
        base = None
        if "unsupervised" in args.parts:
            for label, overrides in VARIANTS.items():
                if not wanted(label):
                    continue
                overrides = dict(overrides)
                anchor_q = variant_anchors(exp, overrides, queries, dev)
                fit = fit_unsupervised(exp.corpus.vectors, queries=anchor_q,
                                       config=TrainConfig(threads=args.threads, **overrides))
                record(label, fit)
                base = fit.adaptor if label == DEFAULT_ROW else base
        chosen = {label: overrides for label, overrides in SUPERVISED_VARIANTS.items() if wanted(label)}
        if "supervised" in args.parts and chosen:
            if base is None:
                fit = fit_unsupervised(exp.corpus.vectors, queries=queries, config=TrainConfig(threads=args.threads))
                record(DEFAULT_ROW, fit)
                base = fit.adaptor
            triples = anchor_triples(exp, anchors)
            for label, overrides in chosen.items():
                record(label, fit_supervised(exp.corpus.vectors, queries, triples, base=base,
                                             config=TrainConfig(threads=args.threads, **overrides)))
        order = ["truncation", "PCA", *VARIANTS, *SUPERVISED_VARIANTS]
        rank = {label: i for i, label in enumerate(order)}
        rows = {label: rows[label] for label in sorted(rows, key=lambda r: rank.get(r, len(order)))}
        report[name] = {"dev_queries": len(dev), "anchor_queries": len(anchors), "threads": args.threads,
                        "rows": rows, "seconds": seconds}
        (out / "ablation.json").write_text(json.dumps(report, indent=2))
        text = render(report)
        (out / "ablation.md").write_text(text)
    print(text)


def render(report: dict) -> str:
    """The Markdown report: one nDCG@10 table per set, then the fit seconds of each row."""
    md = ["# Adaptor ablation (development split of the train queries, nDCG@10, seed 0)", ""]
    for name, part in report.items():
        wrapped = {k: {int(m): {"ndcg@10": [v["ndcg@10"]]} for m, v in per.items()} for k, per in part["rows"].items()}
        n = part.get("threads")
        threads = "" if n is None else ", one torch thread per fit" if n == 1 else f", {n} torch threads per fit"
        title = f"{name}: {part['dev_queries']} dev queries, {part['anchor_queries']} anchor queries{threads}"
        md += [markdown_table(wrapped, "ndcg@10", title), "",
               "Fit seconds (supervised rows: the second stage only): "
               + ", ".join(f"{k} {v:.0f}" for k, v in part["seconds"].items()), ""]
    return "\n".join(md)


if __name__ == "__main__":
    main()
