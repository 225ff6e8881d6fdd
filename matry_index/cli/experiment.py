"""The adaptor experiment from the shell: ``quickstart``, ``train``, ``evaluate``."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from .._validation import clip_levels
from ..adaptor.config import OBJECTIVES
from ..errors import InvalidInput
from ..outputs import output_folder
from .args import data_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quickstart", help="adaptors + evaluation + a tuned index, end to end")
    data_args(p)
    p.add_argument("--out", default="matry_index_run", help="folder for results, plot, adaptor and index")
    p.add_argument("--unsupervised-only", action="store_true", help="skip the supervised adaptor")
    p.set_defaults(func=quickstart)

    p = sub.add_parser("train", help="fit an adaptor and save it")
    data_args(p)
    p.add_argument("--out", required=True, help="folder to save the adaptor to")
    p.add_argument("--supervised", action="store_true", help="also use the train qrels")
    p.add_argument("--objective", choices=sorted(OBJECTIVES), default=None,
                   help="funnel: a rotation whose coarse prefixes keep the full-dimension top-10 among few "
                        "candidates, for indexes; prefix: best nDCG@10 of each prefix searched alone "
                        "(default: funnel, or prefix with --supervised)")
    p.set_defaults(func=train)

    p = sub.add_parser("evaluate", help="score a saved adaptor against truncation and PCA")
    data_args(p)
    p.add_argument("--adaptor", required=True, help="saved adaptor folder")
    p.add_argument("--split", default="test", help="qrels split to score on")
    p.set_defaults(func=evaluate)


class StageClock:
    """Seconds per named stage of a long command, announced as each one ends."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._clock = time.perf_counter()

    def done(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name], self._clock = now - self._clock, now
        print(f"[{name}: {self.seconds[name]:.0f}s]", flush=True)


def results_tables(results: dict, title: str) -> str:
    """The nDCG@10 and recall@100 tables of single-run ``{method: {level: {metric: mean}}}``."""
    from ..evaluation.report import markdown_table
    wrapped = {m: {lv: {k: [v] for k, v in met.items()} for lv, met in per.items()} for m, per in results.items()}
    return "\n\n".join(markdown_table(wrapped, metric, f"{title}: {metric}") for metric in ("ndcg@10", "recall@100"))


def quickstart(args: argparse.Namespace) -> int:
    """Fit adaptors, compare with baselines, then build, tune and query a FAISS index (and a
    compact one); write one report of it all."""
    from ..experiment import load_experiment
    from ..reporting import Report, run_info
    clock = StageClock()
    out = Path(args.out)
    name = Path(args.data).name
    with output_folder(out, "quickstart") as tmp:  # refused at once if --out holds someone else's files
        print(f"loading {args.data} ...")
        exp = load_experiment(args.data, args.embeddings, args.model)
        levels = clip_levels(args.levels, exp.corpus.vectors.shape[1])
        clock.done("load")
        report = Report(f"matry_index quickstart: {name}, {args.model.split('/')[-1]}")
        report.heading("What was run").facts(run_info(args.command_line, model=args.model, data=args.data, seed=args.seed,
                                                      levels=",".join(map(str, levels))))
        adaptors, results = _quickstart_adaptors(args, exp, levels, tmp, clock, report)
        summary = _quickstart_index(exp, adaptors["funnel-aware adaptor"], levels, tmp, clock, report)
        if "supervised adaptor" in adaptors:
            summary["compact"] = _quickstart_compact(exp, adaptors["supervised adaptor"], summary, clock, report)
        _quickstart_caveats(args, exp, clock, report)
        summary = {"data": str(args.data), "model": args.model, "seed": args.seed, "levels": list(levels), **summary,
                   "stage_seconds": clock.seconds, "methods": results}
        (tmp / "results.json").write_text(json.dumps(summary, indent=2, default=str))
        report.write(tmp)
    print("time per stage: " + ", ".join(f"{stage} {sec:.0f}s" for stage, sec in clock.seconds.items()))
    print(f"wrote {out}/: report.md and report.html (everything above, with the plot), results.json, "
          "ndcg_vs_dim.png, adaptor/, index/")
    return 0


def _quickstart_adaptors(args: argparse.Namespace, exp, levels: tuple[int, ...], tmp: Path, clock: StageClock,
                         report):
    """Fit the adaptors on the train side and score them beside truncation and PCA on test (and,
    for SciFact, on the test queries whose relevant documents no train query shares)."""
    from ..evaluation.report import plot
    from ..evaluation.retrieval import average_over_queries
    from ..experiment import compare, fit_adaptors
    fits_wanted = 2 if args.unsupervised_only else 3
    print(f"{len(exp.corpus.ids)} docs x {exp.corpus.vectors.shape[1]} dims; {len(exp.train_queries())} train "
          f"queries. Fitting {fits_wanted} adaptors: on 2 idle cores about 2-5 minutes each for SciFact's size "
          "(longer on a busy machine); progress bars follow")
    fits = fit_adaptors(exp, seed=args.seed, supervised=not args.unsupervised_only, levels=levels, funnel=True)
    adaptors = {name: fit.adaptor for name, fit in fits.items()}
    print("fitted: " + ", ".join(f"{name} in {fit.seconds:.1f}s" for name, fit in fits.items()))
    clock.done("fit adaptors")
    per_query = compare(exp, adaptors, levels, per_query=True)
    subsets = {"all test queries": None}
    fresh = exp.fresh_test_queries()
    if 0 < len(fresh) < len(exp.task("test").query_ids):
        subsets["fresh test queries (no relevant document shared with a train query)"] = fresh
    tables = {label: {m: average_over_queries(per, ids) for m, per in per_query.items()}
              for label, ids in subsets.items()}
    clock.done("compare with truncation and PCA")
    name = Path(args.data).name
    report.heading("Adaptor quality: nDCG@10 and recall@100 by prefix length")
    report.paragraph("Each prefix searched exactly on its own (cosine), on the test queries; adaptors fitted on the "
                     f"train split only, seed {args.seed}. One seed: the README gives the mean and spread of three.")
    for label, results in tables.items():
        text = results_tables(results, f"{name}, {label}")
        print(text)
        for table in text.split("\n\n"):
            report.table(table)
    results = tables["all test queries"]
    plot({m: {lv: {k: [v] for k, v in met.items()} for lv, met in per.items()} for m, per in results.items()},
         tmp / "ndcg_vs_dim.png", title=f"{name} test, {args.model.split('/')[-1]}")
    report.image(tmp / "ndcg_vs_dim.png", f"nDCG@10 against the prefix length on {name}'s test queries")
    adaptors["funnel-aware adaptor"].save(tmp / "adaptor")  # a rotation: the final stage ranks as the model
    return adaptors, tables


def _quickstart_index(exp, adaptor, levels: tuple[int, ...], tmp: Path, clock: StageClock, report) -> dict:
    """The index: the adaptor and a FAISS funnel, tuned on train queries, scored on test queries."""
    from ..evaluation.metrics import ndcg_at_k
    from ..index import MatryoshkaIndex, index_levels
    index = MatryoshkaIndex(exp.corpus.vectors.shape[1], adaptor=adaptor, levels=index_levels(levels))
    index.add(exp.corpus.ids, exp.corpus.vectors)
    plan = index.tune(exp.relevance("train")[0], target_recall=0.99, k=10)
    task = exp.task("test")
    seconds, runs = {}, {}
    for name, exact in (("funnel", False), ("exact", True)):
        t0 = time.perf_counter()
        found = index.search(task.queries, k=10, exact=exact)
        seconds[name] = time.perf_counter() - t0
        runs[name] = {q: [h.id for h in hits] for q, hits in zip(task.query_ids, found)}
    nd = {name: ndcg_at_k(run, task.qrels) for name, run in runs.items()}
    index.save(tmp / "index")
    clock.done("build, tune and search the index")
    small = seconds["funnel"] >= 0.5 * seconds["exact"]
    stats = index.stats()
    lines = [f"{len(index)} docs, levels {index.levels}, built with the funnel-aware adaptor (a learned rotation: its "
             "final ranking is the original model's; the supervised adaptor ranks prefixes searched alone better, "
             "see the tables above)",
             f"tuned plan {plan.describe()}: {index.explain(plan)}",
             f"nDCG@10 on the test queries: funnel {nd['funnel']:.4f}, exact full-dimension search {nd['exact']:.4f}",
             f"{len(task.query_ids)} test queries in one batch: funnel {seconds['funnel'] * 1e3:.0f} ms, exact scan "
             f"{seconds['exact'] * 1e3:.0f} ms" + (" (on a few thousand documents an exact scan is as fast: a funnel "
                                                  "pays off from about 100,000 vectors; matry-index bench measures "
                                                  "it on yours)" if small else ""),
             f"size: {stats.describe()}"]
    print("\nindex: " + "\n".join(lines))
    report.heading("The index").bullets(lines)
    return {"index_adaptor": "funnel-aware adaptor", "plan": plan.to_dict(), "plan_explained": index.explain(plan),
            "index_ndcg@10": nd, "batch_seconds": seconds, "index_stats": stats.to_dict()}


def _quickstart_compact(exp, adaptor, summary: dict, clock: StageClock, report) -> dict:
    """A compact index with the supervised adaptor: its 128-d prefix as 8-bit codes, no full
    vector — the adaptor paper's promise (fewer dimensions, the same quality) as storage."""
    from ..evaluation.metrics import ndcg_at_k
    from ..funnel import FunnelPlan
    from ..index import MatryoshkaIndex
    dim = exp.corpus.vectors.shape[1]
    if dim <= 128:
        return {}
    index = MatryoshkaIndex(dim, adaptor=adaptor, levels=(64, 128), full=False, codes="int8")
    index.add(exp.corpus.ids, exp.corpus.vectors)
    task = exp.task("test")
    found = index.search(task.queries, k=10, plan=FunnelPlan.exhaustive(index.levels, len(index)))
    compact = ndcg_at_k({q: [h.id for h in hits] for q, hits in zip(task.query_ids, found)}, task.qrels)
    stats = index.stats()
    clock.done("compact index")
    line = (f"compact index (supervised adaptor, 128-d prefix as 8-bit codes, no full vector): nDCG@10 {compact:.4f} "
            f"against {summary['index_ndcg@10']['exact']:.4f} for the full {dim}-d float vectors; "
            f"{stats.ram_per_vector:.0f} B/vector in RAM against {4 * dim} B for the full vectors alone")
    print(line)
    report.heading("A compact index").paragraph(line + ". On SciFact the supervised adaptor is fitted on train "
                                                "queries whose relevant documents overlap the test queries': see "
                                                "the fresh-query tables above for the figure that excludes that.")
    return {"ndcg@10": compact, "stats": stats.to_dict()}


def _quickstart_caveats(args: argparse.Namespace, exp, clock: StageClock, report) -> None:
    report.heading("Timings").timings(clock.seconds)
    report.heading("Caveats").bullets([
        f"one seed ({args.seed}): nDCG@10 moves by up to ±0.05 between seeds for the supervised adaptor on SciFact "
        "(benchmarks/results/quality.md has the mean and spread of three)",
        "SciFact's train and test queries share relevant documents, which flatters any supervised score on all "
        "test queries; the fresh-query tables leave those out",
        "timings are of this machine, with whatever else it was running"])
    report.heading("Reproduce").code(args.command_line)


def train(args: argparse.Namespace) -> int:
    from ..experiment import fit_adaptors, load_experiment
    exp = load_experiment(args.data, args.embeddings, args.model)
    levels = clip_levels(args.levels, exp.corpus.vectors.shape[1])
    objective = args.objective or ("prefix" if args.supervised else "funnel")
    if args.supervised and objective == "funnel":
        raise InvalidInput("--supervised trains for nDCG@10 of each prefix; it has no --objective funnel")
    fits = fit_adaptors(exp, seed=args.seed, supervised=args.supervised, levels=levels, **OBJECTIVES[objective])
    adaptor = fits["supervised adaptor" if args.supervised else "unsupervised adaptor"].adaptor
    adaptor.save(args.out)
    print(f"saved {adaptor} to {args.out}")
    return 0


def evaluate(args: argparse.Namespace) -> int:
    from ..adaptor import MatryoshkaAdaptor
    from ..experiment import compare, load_experiment
    exp = load_experiment(args.data, args.embeddings, args.model)
    adaptor = MatryoshkaAdaptor.load(args.adaptor)
    levels = clip_levels(args.levels, adaptor.dim)
    results = compare(exp, {"adaptor": adaptor}, levels, split=args.split)
    print(results_tables(results, f"{Path(args.data).name} {args.split}"))
    return 0
