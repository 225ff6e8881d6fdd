"""How faithfully each prefix copies the original model's ranking (label-free), next to nDCG@10.

On the development split of the train queries (the one ``ablation.py`` uses; no test query is
read), for plain truncation, PCA and the default unsupervised adaptor: the share of each
query's full-dimension top-1 and top-10 (original embeddings) that the top-1 / top-10 of each
prefix keeps, and nDCG@10. An unsupervised adaptor is trained only to copy the full ranking, so this says
whether its prefixes win by copying it better than PCA's, and how much room is left below
the full dimension.

    python benchmarks/fidelity.py [--sets scifact docstrings] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from ablation import LEVELS, dev_split  # noqa: E402
from matry_index.adaptor import TrainConfig, fit_unsupervised  # noqa: E402
from matry_index.evaluation import PCARotation, agreement_with_full, evaluate_levels  # noqa: E402
from matry_index.experiment import load_experiment  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", default=["scifact", "docstrings"])
    parser.add_argument("--threads", type=int, default=None, help="torch threads for the fit")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = parser.parse_args()
    out = Path(args.out)
    report: dict = {}
    md = ["# Prefix fidelity: top-1 and top-10 agreement with full-dimension search, and nDCG@10",
          "", "Development split of the train queries (as in `ablation.md`), seed 0. "
          "Agreement@k = mean share of a query's full-dimension top-k (original embeddings) "
          "that the prefix's top-k keeps (@1: the same first document).", ""]
    for name in args.sets:
        exp = load_experiment(REPO.parent / "shared" / "data" / name)
        dev, anchors = dev_split(exp)
        task = exp.task("train").subset(dev)
        fit = fit_unsupervised(exp.corpus.vectors, queries=exp.queries.take(anchors),
                               config=TrainConfig(threads=args.threads))
        methods = {"truncation": None, "PCA": PCARotation.fit(exp.corpus.vectors).transform,
                   "unsupervised adaptor (default)": fit.adaptor.transform}
        rows = {}
        for label, transform in methods.items():
            agreement = agreement_with_full(task, LEVELS, transform, ks=(1, 10))
            ndcg = evaluate_levels(task, LEVELS, transform)
            rows[label] = {m: {"agreement@1": agreement[m][1], "agreement@10": agreement[m][10],
                               "ndcg@10": ndcg[m]["ndcg@10"]} for m in LEVELS}
            print(name, label, {m: round(v["agreement@10"], 3) for m, v in rows[label].items()}, flush=True)
        report[name] = {"dev_queries": len(dev), "anchor_queries": len(anchors), "rows": rows,
                        "fit_seconds": fit.seconds}
        md += [f"**{name}** ({len(dev)} dev queries): agreement@1 / agreement@10 / nDCG@10", "",
               "| method | " + " | ".join(str(m) for m in LEVELS) + " |", "|---|" + "---|" * len(LEVELS)]
        md += [f"| {label} | " + " | ".join(
            f"{r[m]['agreement@1']:.3f} / {r[m]['agreement@10']:.3f} / {r[m]['ndcg@10']:.3f}" for m in LEVELS) + " |"
               for label, r in rows.items()]
        md.append("")
        (out / "fidelity.json").write_text(json.dumps(report, indent=2))
        (out / "fidelity.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
