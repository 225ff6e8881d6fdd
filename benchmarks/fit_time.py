"""How long the funnel-aware adaptor takes to fit on 20,000 x 384 real embeddings.

The corpus is every real all-MiniLM-L6-v2 document on this machine (docstrings' 12,887 and
SciFact's 5,183) plus docstrings train queries as further documents up to ``--docs``; the
remaining docstrings train queries are the unlabelled query anchors. The fit is the index
default (``objective="funnel"``) with one torch thread; ``--beside`` runs the same fit with
another seed in a second process at the same time, as on a 2-core machine that is doing
something else. Nothing here touches a test split.

    python benchmarks/fit_time.py [--docs 20000] [--seeds 0 1 2] [--beside]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import time

import numpy as np

from common import RESULTS, SHARED_DATA
from matry_index.adaptor import fit_unsupervised
from matry_index.experiment import load_experiment


def fit_set(docs: int) -> tuple[np.ndarray, np.ndarray]:
    """(corpus, query anchors): real MiniLM rows, ``docs`` documents, train queries only."""
    docstrings, scifact = load_experiment(SHARED_DATA / "docstrings"), load_experiment(SHARED_DATA / "scifact")
    queries, _ = docstrings.relevance("train")
    real_docs = np.concatenate([docstrings.corpus.vectors, scifact.corpus.vectors])
    borrowed = max(docs - len(real_docs), 0)
    if borrowed >= len(queries):
        raise SystemExit(f"--docs {docs} needs more rows than the {len(real_docs) + len(queries)} on this machine")
    return np.concatenate([real_docs, queries[:borrowed]])[:docs], queries[borrowed:]


def timed_fit(docs: int, seed: int) -> dict:
    corpus, anchors = fit_set(docs)
    start = time.perf_counter()
    fit = fit_unsupervised(corpus, queries=anchors, objective="funnel", seed=seed, threads=1)
    return {"seed": seed, "seconds": time.perf_counter() - start, "best_step": fit.best_step,
            "steps": fit.history[-1]["step"], "docs": len(corpus), "query_anchors": len(anchors)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--beside", action="store_true", help="a second fit runs at the same time")
    args = parser.parse_args()
    runs = []
    for seed in args.seeds:
        if args.beside:
            with multiprocessing.get_context("spawn").Pool(2) as pool:
                pair = pool.starmap(timed_fit, [(args.docs, seed), (args.docs, seed + 100)])
            runs.append({**pair[0], "beside": pair[1]["seconds"]})
        else:
            runs.append(timed_fit(args.docs, seed))
        print(runs[-1], flush=True)
    seconds = [r["seconds"] for r in runs]
    report = {"machine": platform.platform(), "cores": multiprocessing.cpu_count(), "beside": args.beside,
              "runs": runs, "median_seconds": float(np.median(seconds)), "max_seconds": float(max(seconds))}
    name = "fit_time" + ("-beside" if args.beside else "")
    (RESULTS / f"{name}.json").write_text(json.dumps(report, indent=2))
    lines = [f"# Fit time of the funnel-aware adaptor, {runs[0]['docs']:,} x 384 ({report['cores']} cores)", "",
             f"`python benchmarks/fit_time.py{' --beside' if args.beside else ''}`: the index default recipe "
             "(`objective=\"funnel\"`), one torch thread, real all-MiniLM-L6-v2 rows "
             f"({runs[0]['docs']:,} documents, {runs[0]['query_anchors']:,} unlabelled query anchors)"
             + ("; each fit ran while a second one (seed + 100) ran in another process." if args.beside else "."),
             "", "| seed | seconds | steps run | best step |" + (" other fit's seconds |" if args.beside else ""),
             "|---|---|---|---|" + ("---|" if args.beside else "")]
    for r in runs:
        lines.append(f"| {r['seed']} | {r['seconds']:.0f} | {r['steps']} | {r['best_step']} |"
                     + (f" {r['beside']:.0f} |" if args.beside else ""))
    lines += ["", f"Median {report['median_seconds']:.0f} s, slowest {report['max_seconds']:.0f} s."]
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
