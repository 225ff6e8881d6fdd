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
    measured = tuple(m for m in (args.levels or (32, 64, 128, 256)) if m < embeddings.shape[1])
    scores = compare(exp, {"adaptor": adaptor} if adaptor else {}, measured)
    return embeddings, queries, {name.lower(): {m: v["ndcg@10"] for m, v in per.items()} for name, per in scores.items()}


def advise(args: argparse.Namespace) -> int:
    """Label-free dimension advice on the user's embeddings (nDCG@10 too with a BEIR folder)."""
    from ..adaptor import MatryoshkaAdaptor
    from ..advise import advise as measure
    adaptor = MatryoshkaAdaptor.load(args.adaptor) if args.adaptor else None
    embeddings, queries, ndcg = _advise_inputs(args, adaptor)
    t0 = time.perf_counter()
    advice = measure(embeddings, queries, adaptor=adaptor, target=args.target, k=args.k, levels=args.levels,
                     sample=args.sample, n_queries=args.query_sample, seed=args.seed, ndcg=ndcg)
    rec = advice.recommended
    print(f"{advice.n:,} vectors x {advice.dim} dims; measured on {advice.sample:,} of them with "
          f"{advice.queries_source} ({time.perf_counter() - t0:.1f}s)")
    if queries is None:
        print("note: held-out documents are easier to serve than real queries (on SciFact PCA's 64-d prefix "
              "needs 56 candidates for them, 148 for real queries): pass --queries from a query log if you can")
    print(advice.table())
    mem = rec["memory_per_vector"]
    print(f"\nrecommended: {rec['method']} with a {rec['coarse_level']}-d coarse prefix, levels {rec['levels']}, "
          f"{rec['coarse']} ({rec['nlist']} lists), about {rec['candidates']} candidates for recall@{advice.k} "
          f"{advice.target}; cost {rec['cost_vs_exact_scan']:.1%} of an exact scan")
    print(f"memory per vector: {mem['memory']['anonymous']:.0f} B in RAM, or {mem['mmap']['anonymous']:.0f} B "
          f"with --vector-storage mmap (the {4 * advice.dim} B vectors then read from disk for the candidates)")
    if "note" in rec:
        print(f"note: {rec['note']}")
    if args.save_pca:
        advice.pca_adaptor().save(args.save_pca)
        print(f"saved the sample's PCA rotation as an adaptor to {args.save_pca}")
    fill = {"ADAPTOR": args.adaptor, "PCA_ROTATION": args.save_pca, "X.npy": args.embeddings, "Q.npy": args.queries}
    commands = rec["commands"]
    for placeholder, value in fill.items():
        commands = [c.replace(placeholder, value) if value else c for c in commands]
    print("build it:\n  " + "\n  ".join(commands))
    if args.json:
        print(f"wrote {write_json_output(args.json, advice.to_dict(), 'matry-index-advice')}")
    return 0


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
    print(f"wrote {out}/: bench.md, bench.json{plotted}")
    return 0
