"""Measurements on the user's own embeddings: ``advise`` (how many dimensions an index needs)
and ``bench`` (the funnel against its rivals)."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from .._extras import MissingExtraError
from ..errors import InvalidInput
from ..inputs import load_matrix
from ..outputs import output_folder, write_json_output
from ..bench.methods import RIVALS
from .args import DEFAULT_MODEL, levels, positive_int, recall

DEFAULT_RIVALS = ("faiss PCAR128,IVF,SQ8 + refine", "faiss IVF,RaBitQfs + refine", "faiss HNSW", "scann",
                  "svs vamana", "usearch", "hnswlib", "flat")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("advise", help="how many dimensions an index needs, measured on your embeddings")
    p.add_argument("--embeddings", help=".npy (n, d) document embeddings, any float dtype (memory-mapped)")
    p.add_argument("--queries", help=".npy query embeddings, (q, d) or one (d,) vector (default: held-out documents)")
    p.add_argument("--data", help="a BEIR folder instead of --embeddings: its corpus and test queries, and "
                                  "nDCG@10 per level from its labels")
    p.add_argument("--model", default=DEFAULT_MODEL, help="with --data: the model whose cached embeddings are read")
    p.add_argument("--adaptor", help="saved adaptor folder to measure beside truncation and PCA")
    p.add_argument("--target", type=recall, default=0.99, help="recall@k of the full-dimension top-k to plan for")
    p.add_argument("-k", type=positive_int, default=10, help="results per query")
    p.add_argument("--levels", type=levels, default=None, help="prefix levels to measure (default 32,64,128,256)")
    p.add_argument("--sample", type=positive_int, default=20_000, help="documents measured (the rest are scaled)")
    p.add_argument("--query-sample", type=positive_int, default=500, help="queries measured")
    p.add_argument("--seed", type=int, default=0, help="seed of the samples")
    p.add_argument("--save-pca", help="folder to save the sample's PCA rotation to, as an adaptor")
    p.add_argument("--json", help="file to write the full advice to")
    p.add_argument("--out", default="matry_index_advice", help="folder for report.md, report.html and advice.json")
    p.set_defaults(func=advise)

    p = sub.add_parser("bench", help="latency, memory and recall of the funnel and its rivals on your embeddings")
    p.add_argument("--embeddings", required=True, help=".npy (n, d) document embeddings (memory-mapped)")
    p.add_argument("--queries", help=".npy query embeddings, split into tuning and test halves "
                                     "(default: held-out documents stand in)")
    p.add_argument("--adaptor", help="a saved funnel-aware (rotation) adaptor for the funnel row")
    p.add_argument("--fit", action="store_true", help="fit a funnel-aware adaptor on the sample first (train extra)")
    p.add_argument("--sample", type=positive_int, default=100_000, help="vectors indexed (a random sample)")
    p.add_argument("--query-sample", type=positive_int, default=300, help="tuning queries, and as many test queries")
    p.add_argument("--targets", type=recall, nargs="+", default=[0.99, 0.995], help="recall@k targets")
    p.add_argument("-k", type=positive_int, default=10, help="results per query")
    p.add_argument("--rivals", nargs="+", default=list(DEFAULT_RIVALS), choices=sorted(RIVALS), metavar="RIVAL",
                   help="rival methods to measure beside the funnels (one whose library is not installed is "
                        f"skipped with a note); any of: {'; '.join(sorted(RIVALS))}")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="threads for builds and batches (default: the cores not already busy)")
    p.add_argument("--repeats", type=positive_int, default=3, help="runs of each timed query (its median is kept)")
    p.add_argument("--seed", type=int, default=0, help="seed of the samples")
    p.add_argument("--out", default="matry_index_bench", help="folder for bench.md, bench.json and bench.png")
    p.set_defaults(func=bench)


def _advise_inputs(args: argparse.Namespace, adaptor):
    """(embeddings, queries, nDCG@10 per method and level or None) from --embeddings or --data."""
    if args.embeddings:
        embeddings = load_matrix(args.embeddings, "embeddings", mmap=True)
        return embeddings, load_matrix(args.queries, "queries") if args.queries else None, None
    if not args.data:
        raise InvalidInput("give --embeddings X.npy (and --queries Q.npy if you have a query log) or --data BEIR_DIR")
    from ..experiment import compare, load_experiment
    exp = load_experiment(args.data, None, args.model)
    embeddings = exp.corpus.vectors
    queries = load_matrix(args.queries, "queries") if args.queries else exp.task("test").queries
    # the full dimension too: a compact index is recommended by the share of its nDCG a prefix keeps
    measured = tuple(m for m in (args.levels or (32, 64, 128, 256)) if m < embeddings.shape[1]) + (embeddings.shape[1],)
    scores = compare(exp, {"adaptor": adaptor} if adaptor else {}, measured)
    return embeddings, queries, {name.lower(): {m: v["ndcg@10"] for m, v in per.items()} for name, per in scores.items()}


def _bench_report(found, args: argparse.Namespace, folder: Path, plotted: bool):
    """bench's report: what was run, the tables and verdicts, the plot, the stages, how to rerun."""
    from ..reporting import Report, run_info
    report = Report(f"matry_index bench: {found.sample:,} vectors x {found.dim}")
    report.heading("What was run").facts(run_info(args.command_line, embeddings=args.embeddings, queries=args.queries,
                                                  adaptor=args.adaptor, seed=args.seed, threads=found.threads,
                                                  rivals=", ".join(args.rivals)))
    report.heading("Results")
    for block in found.table().split("\n\n"):
        if block.lstrip().startswith("|"):
            report.table(block)
        elif block.strip():
            report.paragraph(block.replace("### ", "").strip())
    if plotted:
        report.image(folder / "bench.png", "test recall against single-thread queries per second: each method's "
                                           "Pareto front, the targets dashed")
    report.heading("Stages").timings(found.stage_seconds)
    report.heading("Reproduce").code(args.command_line)
    return report


def _known_paths(args: argparse.Namespace) -> dict[str, str | None]:
    """The real paths behind the placeholders of advise's commands, where this run knows them:
    the files it was given, the ids beside an embeddings file (``X.npy`` → ``X.ids``), and a BEIR
    folder's cached corpus embeddings (its queries.npy holds every split's queries: tuning on it
    would tune on the test queries too, so Q.npy stays for the user to fill)."""
    embeddings, queries = args.embeddings, args.queries
    if args.data and not embeddings:
        cached = Path(args.data) / "embeddings" / args.model.split("/")[-1]
        if (cached / "corpus.npy").exists():
            embeddings = str(cached / "corpus.npy")
    ids = None
    if embeddings:
        beside = Path(embeddings).with_suffix(".ids")
        ids = str(beside) if beside.exists() else None
    return {"ADAPTOR": args.adaptor, "PCA_ROTATION": args.save_pca, "X.npy": embeddings, "X.ids": ids,
            "Q.npy": queries}


def advise(args: argparse.Namespace) -> int:
    """Label-free dimension advice on the user's embeddings (nDCG@10 too with a BEIR folder),
    printed and written as one report."""
    from ..adaptor import MatryoshkaAdaptor
    from ..advise import advise as measure
    from ..reporting import Report, run_info
    adaptor = MatryoshkaAdaptor.load(args.adaptor) if args.adaptor else None
    embeddings, queries, ndcg = _advise_inputs(args, adaptor)
    with output_folder(Path(args.out), "advise") as tmp:  # refused before any work if --out holds other files
        t0 = time.perf_counter()
        advice = measure(embeddings, queries, adaptor=adaptor, target=args.target, k=args.k, levels=args.levels,
                         sample=args.sample, n_queries=args.query_sample, seed=args.seed, ndcg=ndcg)
        head = (f"{advice.n:,} vectors x {advice.dim} dims; measured on {advice.sample:,} of them with "
                f"{advice.queries_source} ({time.perf_counter() - t0:.1f}s)")
        print(head)
        print(advice.table())
        findings = _advice_findings(advice, args)
        print("\n" + "\n".join(findings))
        if args.save_pca:
            advice.pca_adaptor().save(args.save_pca)
            print(f"saved the sample's PCA rotation as an adaptor to {args.save_pca}")
        commands = _advice_commands(advice, args)
        print("build it:\n  " + "\n  ".join(commands))
        report = Report(f"matry_index advise: {advice.n:,} x {advice.dim}")
        report.heading("What was run").facts(run_info(args.command_line, embeddings=args.embeddings or args.data, queries=args.queries,
                                                      adaptor=args.adaptor, target=args.target, k=args.k,
                                                      seed=args.seed))
        report.paragraph(head).heading("Measured per method and prefix length").table(advice.table())
        report.heading("Advice").bullets(findings).heading("Build it").code("\n".join(commands))
        (tmp / "advice.json").write_text(json.dumps(advice.to_dict(), indent=2, default=str))
        report.write(tmp)
    print(f"wrote {args.out}/: report.md, report.html, advice.json")
    if args.json:
        print(f"wrote {write_json_output(args.json, advice.to_dict(), 'matry-index-advice')}")
    return 0


def _advice_findings(advice, args: argparse.Namespace) -> list[str]:
    """The recommendation in sentences: the funnel layout, its memory, how it compares with the
    index's default coarse level, and the compact index."""
    from ..backends.base import COARSE_LEVEL
    rec, k = advice.recommended, advice.k
    mem = rec["memory_per_vector"]
    out = []
    if args.queries is None and not args.data:
        out.append("held-out documents stood in for queries: they are easier to serve than real queries (on SciFact "
                   "PCA's 64-d prefix needs 56 candidates for them, 148 for real queries); pass --queries from a "
                   "query log if you can")
    out.append(f"recommended: {rec['method']} with a {rec['coarse_level']}-d coarse prefix, levels {rec['levels']}, "
               f"{rec['coarse']} ({rec['nlist']} lists), about {rec['candidates']} candidates for recall@{k} "
               f"{advice.target}; cost {rec['cost_vs_exact_scan']:.1%} of an exact scan")
    if rec["coarse_level"] != COARSE_LEVEL and advice.dim > COARSE_LEVEL:
        out.append(f"MatryoshkaIndex's default starts its funnel at the {COARSE_LEVEL}-d prefix (the level that won at "
                   f"a million vectors); on this data the {rec['coarse_level']}-d prefix measured cheaper, so the "
                   "command below names its levels; `tune` then picks the candidate counts on either")
    out.append(f"memory per vector: {mem['memory']['anonymous']:.0f} B in RAM, or {mem['mmap']['anonymous']:.0f} B with "
               f"--vector-storage mmap (the {4 * advice.dim} B vectors then read from disk for the candidates)")
    out.append(f"target: tune with --target-recall {rec['target_recall']} itself: {rec['tuning_note']}")
    if "note" in rec:
        out.append(f"note: {rec['note']}")
    compact = rec["compact"]
    if "level" in compact:
        whose = {"adaptor": "the adaptor's", "pca": "a PCA rotation's"}.get(compact["method"], compact["method"])
        out.append(f"compact: {whose} {compact['level']}-d prefix keeps {compact['kept']:.1%} of the "
                   f"full vectors' {compact['basis']} (the bar: {compact['keep']:.0%}); stored as 8-bit codes with no "
                   f"full vector, about {compact['memory_per_vector']:.0f} B per vector in RAM with int ids (string ids "
                   "add their length and 5 B) (the last command below)")
    else:
        out.append(f"compact: {compact['note']}")
    return out


def _advice_commands(advice, args: argparse.Namespace) -> list[str]:
    """The build commands with every path this run knows filled in, and a word on the rest."""
    compact = advice.recommended["compact"]
    commands = advice.recommended["commands"] + ([compact["command"]] if "command" in compact else [])
    for placeholder, value in _known_paths(args).items():
        commands = [c.replace(placeholder, value) if value else c for c in commands]
    missing = [p for p in ("X.npy", "X.ids", "Q.npy", "ADAPTOR", "PCA_ROTATION", "URL") if any(p in c for c in commands)]
    if missing:
        commands.append(f"# fill in {', '.join(missing)}: the files or address this run was not given")
    return commands


def bench(args: argparse.Namespace) -> int:
    """The funnel and its rivals on the user's embeddings: table, JSON and a recall-vs-QPS plot."""
    from ..adaptor import MatryoshkaAdaptor
    from ..bench import bench as measure
    if args.adaptor and args.fit:
        raise InvalidInput("give --adaptor or --fit, not both")
    embeddings = load_matrix(args.embeddings, "embeddings", mmap=True)
    queries = load_matrix(args.queries, "queries") if args.queries else None
    adaptor = MatryoshkaAdaptor.load(args.adaptor) if args.adaptor else None
    t0 = time.perf_counter()
    out = Path(args.out)
    with output_folder(out, "bench") as tmp:  # refused before any work if --out holds someone else's files
        report = measure(embeddings, queries, adaptor=adaptor, fit=args.fit, sample=args.sample,
                         n_queries=args.query_sample, targets=tuple(args.targets), k=args.k, rivals=tuple(args.rivals),
                         threads=args.threads, repeats=args.repeats, seed=args.seed)
        print(report.table())
        print("\nstages: " + ", ".join(f"{name} {s:.0f}s" for name, s in report.stage_seconds.items())
              + f"; total {time.perf_counter() - t0:.0f}s")
        (tmp / "bench.md").write_text(report.table() + "\n")
        (tmp / "bench.json").write_text(json.dumps(report.to_dict(), indent=1))
        try:
            report.plot(tmp / "bench.png")
            plotted = ", bench.png"
        except MissingExtraError as exc:
            plotted = f" (no plot: {exc})"
        _bench_report(report, args, tmp, plotted == ", bench.png").write(tmp)
    print(f"wrote {out}/: report.md, report.html, bench.md, bench.json{plotted}")
    return 0
