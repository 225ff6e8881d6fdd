"""Adaptor quality benchmark: nDCG@10 and recall@100 per prefix level, mean ± sd over seeds.

For each BEIR set: plain truncation, PCA (fitted on the corpus), the unsupervised adaptor
(corpus + unlabelled train queries) and the supervised adaptor (train qrels), all scored on the
test split; for SciFact also on its "fresh" test queries (no relevant doc shared with a train
query), where memorising popular documents cannot help. Fit times are recorded per seed.

Beside the means, each adaptor's nDCG@10 is compared with PCA at the same level and with the
original embeddings at full dimension, query by query (per-query scores averaged over the
seeds): the mean difference and its 95 % paired-bootstrap interval over queries, which says
whether a gap of a few thousandths is a property of the method or of the queries sampled.

    python benchmarks/quality.py                       # SciFact + docstrings, 3 seeds
    python benchmarks/quality.py --sets scifact --seeds 1
    python benchmarks/quality.py --model all-mpnet-base-v2 --embeddings-root benchmarks/results/embeddings --resume

Writes ``benchmarks/results/quality.json``, ``quality.md`` and one PNG per set and query subset.
Each finished seed (scores and fitted adaptors) is also kept under ``<out>/runs/`` (ignored by
git); ``--resume`` reuses a kept seed when it was fitted with the same training settings, so a
long run (768-d models take ~15 min per seed and set on 2 cores) that was interrupted continues
where it stopped.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from matry_index._fs import atomic_write_text  # noqa: E402
from matry_index.adaptor import TrainConfig  # noqa: E402
from matry_index.evaluation import average_over_queries, mean_over_runs, paired_difference  # noqa: E402
from matry_index.evaluation.report import difference_table, markdown_table, plot, summarize  # noqa: E402
from matry_index.experiment import compare, fit_adaptors, load_experiment  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
COMPARED_METRIC = "ndcg@10"
BASELINES = ("truncation", "PCA")


def fit_and_score_seed(exp, seed: int, levels: tuple[int, ...], subsets: dict, keep: Path) -> dict:
    """One seed: fit both adaptors, score every method on every query subset (per query, and
    the means the tables show). The adaptors are saved under ``keep/<method>/``
    (``MatryoshkaAdaptor.load``), so a new measure can be taken later without refitting."""
    fits = fit_adaptors(exp, seed=seed, levels=levels)
    for method, fit in fits.items():
        fit.adaptor.save(keep / method.replace(" ", "-"))
    every_query = compare(exp, {m: f.adaptor for m, f in fits.items()}, levels, per_query=True)
    per_query = {subset: every_query if qids is None else restrict(every_query, qids)
                 for subset, qids in subsets.items()}
    scores = {subset: {method: average_over_queries(per_level) for method, per_level in result.items()}
              for subset, result in per_query.items()}
    return {"scores": scores, "per_query": per_query, "fit_seconds": {m: f.seconds for m, f in fits.items()},
            "settings": fits["supervised adaptor"].adaptor.settings}


def restrict(per_query: dict, query_ids) -> dict:
    """``{method: {level: {metric: {query id: score}}}}`` cut down to ``query_ids``: a query's
    score does not depend on which other queries are scored, so a subset needs no search of
    its own."""
    keep = set(query_ids)
    return {method: {m: {metric: {q: v for q, v in scores.items() if q in keep} for metric, scores in metrics.items()}
                     for m, metrics in per_level.items()} for method, per_level in per_query.items()}


def differences(per_query: dict, dim: int) -> dict:
    """``{row: {level: Difference}}``: each adaptor against PCA at the same level and against the
    original embeddings at full dimension, nDCG@10 per query averaged over the seeds.

    ``per_query``: ``{method: {level: {metric: [per-query scores of each seed]}}}``.
    """
    mean = {method: {m: mean_over_runs(metrics[COMPARED_METRIC]) for m, metrics in per_level.items()}
            for method, per_level in per_query.items()}
    original = mean["truncation"][dim]
    rows: dict = {}
    for method in (m for m in mean if m not in BASELINES):
        rows[f"{method} − PCA"] = {m: paired_difference(scores, mean["PCA"][m])
                                   for m, scores in mean[method].items() if m < dim}
        rows[f"{method} − original at {dim}-d"] = {m: paired_difference(scores, original)
                                                  for m, scores in mean[method].items()}
    return rows


def stack_runs(runs: list[dict], depth: int) -> dict:
    """Nested results of several seeds (the same keys) as one nested dict whose entries at
    ``depth`` are the list over seeds; numeric keys (levels, strings after a JSON round trip)
    become ints."""
    if depth == 0:
        return list(runs)
    return {int(k) if str(k).isdigit() else k: stack_runs([run[k] for run in runs], depth - 1) for k in runs[0]}


def kept_seed(path: Path, config: dict) -> dict | None:
    """A seed saved by an earlier run, if it was fitted with exactly ``config``. A setting added
    since the seed was kept counts at its default: options are added with defaults that keep
    the recipe they extend."""
    if not path.exists():
        return None
    kept = json.loads(path.read_text())
    return kept if {**config, **kept.get("config", {})} == config else None


def run_set(name: str, data: Path, embeddings: Path | None, seeds: list[int], levels: tuple[int, ...],
            fresh: bool, runs_dir: Path, resume: bool, kept_only: bool = False) -> dict:
    exp = load_experiment(data, embeddings)
    dim = exp.corpus.vectors.shape[1]
    levels = tuple(m for m in levels if m < dim) + (dim,)
    subsets = {"all test queries": None}
    if fresh:
        subsets["fresh test queries"] = exp.fresh_test_queries()
    runs = []
    for seed in seeds:
        config = json.loads(json.dumps(asdict(TrainConfig(seed=seed, levels=levels))))
        path = runs_dir / name / f"seed{seed}.json"
        run = kept_seed(path, config) if resume or kept_only else None
        if run is None and kept_only:
            continue
        if run is None:
            print(f"[{name}] seed {seed}: fitting ...", flush=True)
            run = {"config": config, **fit_and_score_seed(exp, seed, levels, subsets, path.with_suffix(""))}
            atomic_write_text(path, json.dumps(run, default=str))
            run = json.loads(path.read_text())  # the same form as a kept seed (string keys)
        else:
            print(f"[{name}] seed {seed}: reusing {path}", flush=True)
        runs.append(run)
        print(f"[{name}] seed {seed}: " + ", ".join(f"{m} {t:.0f}s" for m, t in run["fit_seconds"].items()), flush=True)
    if not runs:
        raise SystemExit(f"[{name}] no kept seed was fitted with the current settings")
    settings = runs[-1]["settings"]
    # {subset: {method: {level: {metric: [one value per seed]}}}}
    scores = stack_runs([run["scores"] for run in runs], depth=4)
    times = stack_runs([run["fit_seconds"] for run in runs], depth=1)
    # kept seeds from a version of this script that did not record per-query scores: no intervals
    per_query = (stack_runs([run["per_query"] for run in runs], depth=4)
                 if all("per_query" in run for run in runs) else None)
    diffs = {s: differences(per_query[s], dim) for s in subsets} if per_query is not None else None
    return {"levels": list(levels), "seeds": [run["config"]["seed"] for run in runs],
            "n_docs": len(exp.corpus.ids), "dim": dim,
            "subsets": {s: len(q) if q is not None else len(exp.task().query_ids) for s, q in subsets.items()},
            "scores": scores, "differences": diffs, "fit_seconds": times, "settings": settings}


def _as_json(value):
    """JSON form of what the report holds besides plain numbers (Differences)."""
    return asdict(value) if is_dataclass(value) else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", default=["scifact", "docstrings"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--levels", default="32,64,128,192,256")
    parser.add_argument("--model", default="all-MiniLM-L6-v2", help="embedding folder name under <set>/embeddings")
    parser.add_argument("--embeddings-root", default=None,
                        help="folder with <set>/<model>/ embedding caches (default: the data's own embeddings/)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--resume", action="store_true",
                        help="reuse seeds kept under <out>/runs/ that were fitted with the same settings")
    parser.add_argument("--kept-only", action="store_true",
                        help="fit nothing: report the kept seeds of each set (a partial run's results so far)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    levels = tuple(int(x) for x in args.levels.split(","))
    report = {"machine": {"python": platform.python_version(), "torch": torch.__version__,
                          "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine()},
              "model": args.model, "sets": {}}
    tag = "" if args.model == "all-MiniLM-L6-v2" else f"_{args.model}"
    md = [f"# Adaptor quality ({args.model}, mean ± sd over seeds)", ""]
    for name in args.sets:
        data = SHARED / name
        t0 = time.perf_counter()
        emb_root = Path(args.embeddings_root) / name if args.embeddings_root else data / "embeddings"
        res = run_set(name, data, emb_root / args.model, list(range(args.seeds)), levels,
                      fresh=name == "scifact", runs_dir=out / "runs" / args.model, resume=args.resume,
                      kept_only=args.kept_only)
        res["wall_seconds"] = time.perf_counter() - t0
        report["sets"][name] = res
        for subset, table in res["scores"].items():
            for metric in ("ndcg@10", "recall@100"):
                md += [markdown_table(table, metric, f"{name}, {subset} ({res['subsets'][subset]}), seeds {res['seeds']}: {metric}"), ""]
            if res["differences"] is not None:
                md += [difference_table(res["differences"][subset],
                                        f"{name}, {subset}: {COMPARED_METRIC} difference, mean over seeds, "
                                        "95 % paired bootstrap interval over queries (bold: excludes 0)"), ""]
            plot(table, out / f"quality_{name}{tag}_{subset.split()[0]}.png",
                 title=f"{name} ({subset}), {args.model}")
        md.append("Fit seconds (2-core machine): " + ", ".join(
            f"{m} {summarize(t)[0]:.0f} ± {summarize(t)[1]:.0f}" for m, t in res["fit_seconds"].items()))
        md.append("")
        (out / f"quality{tag}.json").write_text(json.dumps(report, indent=2, default=_as_json))
        (out / f"quality{tag}.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
