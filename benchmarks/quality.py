"""Adaptor quality benchmark: nDCG@10 and recall@100 per prefix level, mean ± sd over seeds.

For each BEIR set: plain truncation, PCA (fitted on the corpus), the unsupervised adaptor
(corpus + unlabelled train queries) and the supervised adaptor (train qrels), all scored on the
test split; for SciFact also on its "fresh" test queries (no relevant doc shared with a train
query), where memorising popular documents cannot help. Fit times are recorded per seed.

    python benchmarks/quality.py                       # SciFact + docstrings, 3 seeds
    python benchmarks/quality.py --sets scifact --seeds 1
    python benchmarks/quality.py --model all-mpnet-base-v2 --embeddings-root benchmarks/results/embeddings --resume

Writes ``benchmarks/results/quality.json``, ``quality.md`` and one PNG per set and query subset.
Each finished seed is also kept under ``<out>/runs/`` (ignored by git); ``--resume`` reuses a
kept seed when it was fitted with the same training settings, so a long run (768-d models take
~15 min per seed and set on 2 cores) that was interrupted continues where it stopped.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from matry_index._fs import atomic_write_text  # noqa: E402
from matry_index.adaptor.training import TrainConfig  # noqa: E402
from matry_index.evaluation.report import markdown_table, plot, summarize  # noqa: E402
from matry_index.experiment import compare, fit_adaptors, load_experiment  # noqa: E402

SHARED = REPO.parent / "shared" / "data"


def fit_and_score_seed(exp, seed: int, levels: tuple[int, ...], subsets: dict) -> dict:
    """One seed: fit both adaptors, score every method on every query subset."""
    fits = fit_adaptors(exp, seed=seed, levels=levels)
    scores = {subset: compare(exp, {m: f.adaptor for m, f in fits.items()}, levels, query_ids=qids)
              for subset, qids in subsets.items()}
    return {"scores": scores, "fit_seconds": {m: f.seconds for m, f in fits.items()},
            "settings": fits["supervised adaptor"].adaptor.settings}


def kept_seed(path: Path, config: dict) -> dict | None:
    """A seed saved by an earlier run, if it was fitted with exactly ``config``."""
    if not path.exists():
        return None
    kept = json.loads(path.read_text())
    return kept if kept.get("config") == config else None


def run_set(name: str, data: Path, embeddings: Path | None, seeds: list[int], levels: tuple[int, ...],
            fresh: bool, runs_dir: Path, resume: bool, kept_only: bool = False) -> dict:
    exp = load_experiment(data, embeddings)
    dim = exp.corpus.vectors.shape[1]
    levels = tuple(m for m in levels if m < dim) + (dim,)
    subsets = {"all test queries": None}
    if fresh:
        subsets["fresh test queries"] = exp.fresh_test_queries()
    scores: dict = {s: {} for s in subsets}
    times: dict = {}
    done = []
    for seed in seeds:
        config = json.loads(json.dumps(asdict(TrainConfig(seed=seed, levels=levels))))
        path = runs_dir / name / f"seed{seed}.json"
        run = kept_seed(path, config) if resume or kept_only else None
        if run is None and kept_only:
            continue
        if run is None:
            print(f"[{name}] seed {seed}: fitting ...", flush=True)
            run = {"config": config, **fit_and_score_seed(exp, seed, levels, subsets)}
            atomic_write_text(path, json.dumps(run, default=str))
        else:
            print(f"[{name}] seed {seed}: reusing {path}", flush=True)
        done.append(seed)
        settings = run["settings"]
        for method, seconds in run["fit_seconds"].items():
            times.setdefault(method, []).append(seconds)
        for subset, result in run["scores"].items():
            for method, per_level in result.items():
                for level, metrics in per_level.items():
                    for metric, value in metrics.items():
                        scores[subset].setdefault(method, {}).setdefault(int(level), {}).setdefault(metric, []).append(value)
        print(f"[{name}] seed {seed}: " + ", ".join(f"{m} {t[-1]:.0f}s" for m, t in times.items()), flush=True)
    if not done:
        raise SystemExit(f"[{name}] no kept seed was fitted with the current settings")
    return {"levels": list(levels), "seeds": done, "n_docs": len(exp.corpus.ids), "dim": dim,
            "subsets": {s: len(q) if q is not None else len(exp.task().query_ids) for s, q in subsets.items()},
            "scores": scores, "fit_seconds": times, "settings": settings}


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
            plot(table, out / f"quality_{name}{tag}_{subset.split()[0]}.png",
                 title=f"{name} ({subset}), {args.model}")
        md.append("Fit seconds (2-core machine): " + ", ".join(
            f"{m} {summarize(t)[0]:.0f} ± {summarize(t)[1]:.0f}" for m, t in res["fit_seconds"].items()))
        md.append("")
        (out / f"quality{tag}.json").write_text(json.dumps(report, indent=2, default=str))
        (out / f"quality{tag}.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
