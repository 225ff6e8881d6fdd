"""``matry-index``: train adaptors, evaluate them, build and query indexes from the shell.

    matry-index quickstart [--data DIR]          # the whole pipeline on one BEIR set
    matry-index train --data DIR --out ADAPTOR   # fit an adaptor (add --supervised)
    matry-index evaluate --data DIR --adaptor A  # nDCG@10 / recall@100 per level vs baselines
    matry-index build --embeddings X.npy --ids X.ids --out INDEX [--adaptor A] [--payload P.jsonl]
    matry-index search --index INDEX --queries Q.npy [-k 10]
    matry-index qdrant-setup --url URL --adaptor A --embeddings X.npy --ids X.ids
    matry-index advise --embeddings X.npy [--queries Q.npy] [--adaptor A]   # dimensions needed
    matry-index bench --embeddings X.npy [--queries Q.npy] [--adaptor A | --fit] [--sample N]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


from . import __version__
from .adaptor.config import OBJECTIVES
from ._extras import MissingExtraError
from ._validation import clip_levels
from .errors import MISSING_EXTRA_EXIT, InvalidInput, MatryIndexError, exit_code
from .backends.qdrant_common import PAYLOAD_INDEX_KINDS, QUANTIZATIONS
from .inputs import load_matrix, parse_json_object, read_jsonl, read_lines
from .outputs import output_folder, write_json_output

DEFAULT_DATA = Path("../shared/data/scifact")
DEFAULT_LEVELS = "32,64,128,192,256"


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Descriptions kept as written, and each option's default shown in ``--help`` (unless
    it is None or False: "not set" says nothing)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False):
            return action.help or ""
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """argparse with every usage error as one line on stderr and exit code 2, and defaults
    shown in every command's help (subcommands inherit the class)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def _payload_index(text: str) -> tuple[str, str]:
    """``--payload-index year:float`` → ("year", "float"); an argparse type."""
    field, _, kind = text.rpartition(":")
    if not field or kind not in PAYLOAD_INDEX_KINDS:
        raise argparse.ArgumentTypeError(f"expected FIELD:KIND with KIND one of {PAYLOAD_INDEX_KINDS}; got {text!r}")
    return field, kind


def _levels(text: str) -> tuple[int, ...]:
    """``--levels 64,128,256`` → (64, 128, 256); an argparse type, so bad input is a usage error."""
    try:
        levels = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"levels must be comma-separated integers, e.g. 64,128,256; "
                                         f"got {text!r}") from None
    if not levels or any(m <= 0 for m in levels):
        raise argparse.ArgumentTypeError(f"levels must be positive integers; got {text!r}")
    return levels


def _bounded(convert, accept, expected: str):
    """An argparse type: ``convert`` the text, then require ``accept(value)``."""
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}; got {text!r}")
        return value
    return parse


_positive_int = _bounded(int, lambda v: v > 0, "a positive integer")
_recall = _bounded(float, lambda v: 0 < v <= 1, "a recall between 0 and 1")


def _read_filter(text: str | None) -> dict | None:
    return parse_json_object(text, "--filter") if text else None


def _print_tables(results: dict, title: str) -> str:
    from .evaluation.report import markdown_table
    wrapped = {m: {lv: {k: [v] for k, v in met.items()} for lv, met in per.items()} for m, per in results.items()}
    text = "\n\n".join(markdown_table(wrapped, metric, f"{title}: {metric}") for metric in ("ndcg@10", "recall@100"))
    print(text)
    return text


class _StageClock:
    """Seconds per named stage of a long command, announced as each one ends."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._clock = time.perf_counter()

    def done(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name], self._clock = now - self._clock, now
        print(f"[{name}: {self.seconds[name]:.0f}s]", flush=True)


def cmd_quickstart(args: argparse.Namespace) -> int:
    """Fit adaptors, compare with baselines, then build, tune and query a FAISS index."""
    from .experiment import load_experiment
    clock = _StageClock()
    out = Path(args.out)
    with output_folder(out, "quickstart") as tmp:  # refused at once if --out holds someone else's files
        print(f"loading {args.data} ...")
        exp = load_experiment(args.data, args.embeddings, args.model)
        levels = clip_levels(args.levels, exp.corpus.vectors.shape[1])
        clock.done("load")
        adaptors, results, report = _quickstart_adaptors(args, exp, levels, tmp, clock)
        summary = _quickstart_index(exp, adaptors["funnel-aware adaptor"], levels, tmp, clock)
        summary = {"data": str(args.data), "levels": list(levels), **summary, "stage_seconds": clock.seconds,
                   "methods": results}
        (tmp / "results.json").write_text(json.dumps(summary, indent=2, default=str))
        (tmp / "results.md").write_text(report + "\n")
    print("time per stage: " + ", ".join(f"{name} {sec:.0f}s" for name, sec in clock.seconds.items()))
    print(f"wrote {out}/: results.json, results.md, ndcg_vs_dim.png, adaptor/, index/")
    return 0


def _quickstart_adaptors(args: argparse.Namespace, exp, levels: tuple[int, ...], tmp: Path, clock: _StageClock):
    """Fit the adaptors on the train side and score them beside truncation and PCA on test."""
    from .evaluation.report import plot
    from .experiment import compare, fit_adaptors
    fits_wanted = 2 if args.unsupervised_only else 3
    print(f"{len(exp.corpus.ids)} docs x {exp.corpus.vectors.shape[1]} dims; {len(exp.train_queries())} train "
          f"queries. Fitting {fits_wanted} adaptors: on 2 idle cores about 2-5 minutes each for SciFact's size "
          "(longer on a busy machine); progress bars follow")
    fits = fit_adaptors(exp, seed=args.seed, supervised=not args.unsupervised_only, levels=levels, funnel=True)
    adaptors = {name: fit.adaptor for name, fit in fits.items()}
    print("fitted: " + ", ".join(f"{name} in {fit.seconds:.1f}s" for name, fit in fits.items()))
    clock.done("fit adaptors")
    results = compare(exp, adaptors, levels)
    clock.done("compare with truncation and PCA")
    report = _print_tables(results, f"{Path(args.data).name} test")
    plot({m: {lv: {k: [v] for k, v in met.items()} for lv, met in per.items()} for m, per in results.items()},
         tmp / "ndcg_vs_dim.png", title=f"{Path(args.data).name} test, {args.model.split('/')[-1]}")
    adaptors["funnel-aware adaptor"].save(tmp / "adaptor")  # a rotation: the final stage ranks as the model
    return adaptors, results, report


def _quickstart_index(exp, adaptor, levels: tuple[int, ...], tmp: Path, clock: _StageClock) -> dict:
    """The index: the adaptor and a FAISS funnel, tuned on train queries, scored on test queries."""
    from .evaluation.metrics import ndcg_at_k
    from .index import MatryoshkaIndex, index_levels
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
    print(f"\nindex: {len(index)} docs, levels {index.levels}, built with the funnel-aware adaptor (a learned "
          "rotation: its final ranking is the original model's; the supervised adaptor ranks prefixes "
          "searched alone better, see the tables above)")
    print(f"tuned plan {plan.describe()}: {plan.explain(index.levels)} "
          f"(recall@10 against exact search on the train queries {plan.tuned.get('recall', float('nan')):.3f})")
    print(f"index nDCG@10 on test: funnel {nd['funnel']:.4f} vs exact full-dim {nd['exact']:.4f}")
    print(f"{len(task.query_ids)} test queries in one batch: funnel {seconds['funnel'] * 1e3:.0f} ms, exact scan "
          f"{seconds['exact'] * 1e3:.0f} ms" + (" — on a few thousand documents an exact scan is as fast: a funnel "
                                                "pays off from about 100,000 vectors (matry-index bench measures it "
                                                "on yours)" if seconds["funnel"] >= 0.5 * seconds["exact"] else ""))
    return {"index_adaptor": "funnel-aware adaptor", "plan": plan.to_dict(), "plan_explained": plan.explain(index.levels),
            "index_ndcg@10": nd, "batch_seconds": seconds}


def cmd_train(args: argparse.Namespace) -> int:
    from .experiment import fit_adaptors, load_experiment
    exp = load_experiment(args.data, args.embeddings, args.model)
    dim = exp.corpus.vectors.shape[1]
    levels = clip_levels(args.levels, dim)
    objective = args.objective or ("prefix" if args.supervised else "funnel")
    if args.supervised and objective == "funnel":
        raise InvalidInput("--supervised trains for nDCG@10 of each prefix; it has no --objective funnel")
    fits = fit_adaptors(exp, seed=args.seed, supervised=args.supervised, levels=levels, **OBJECTIVES[objective])
    adaptor = fits["supervised adaptor" if args.supervised else "unsupervised adaptor"].adaptor
    adaptor.save(args.out)
    print(f"saved {adaptor} to {args.out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .adaptor import MatryoshkaAdaptor
    from .experiment import compare, load_experiment
    exp = load_experiment(args.data, args.embeddings, args.model)
    adaptor = MatryoshkaAdaptor.load(args.adaptor)
    levels = clip_levels(args.levels, adaptor.dim)
    results = compare(exp, {"adaptor": adaptor}, levels, split=args.split)
    _print_tables(results, f"{Path(args.data).name} {args.split}")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from .adaptor import MatryoshkaAdaptor
    from .index import MatryoshkaIndex, is_saved_index
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not is_saved_index(out))):
        raise InvalidInput(f"--out {out} exists and is not a saved index; give a new directory")
    vectors = load_matrix(args.embeddings, "embeddings")
    ids = read_lines(args.ids, "ids file")
    payload = read_jsonl(args.payload) if args.payload else None
    if vectors.ndim != 2:
        raise InvalidInput(f"embeddings {args.embeddings} must be a 2-d array (n, d); got shape {vectors.shape}")
    adaptor = MatryoshkaAdaptor.load(args.adaptor) if args.adaptor else None
    storage = {"vector_storage": args.vector_storage}
    if args.scratch_dir:
        storage["scratch_dir"] = args.scratch_dir
    index = MatryoshkaIndex(vectors.shape[1], adaptor=adaptor, levels=args.levels,
                            coarse=args.coarse, ivf_encoding=args.ivf_encoding, nlist=args.nlist, **storage)
    index.add(ids, vectors, payload)
    if args.tune_queries:
        plan = index.tune(load_matrix(args.tune_queries, "tune queries"), target_recall=args.target_recall, k=args.k)
        print(f"tuned plan {plan.to_dict()}")
    index.save(out)
    print(f"built {index} at {out}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from .index import MatryoshkaIndex
    filt = _read_filter(args.filter)
    queries = load_matrix(args.queries, "queries")
    if queries.ndim == 1:  # one query vector
        queries = queries[None, :]
    connection = {key: value for key, value in (("url", args.url), ("api_key", args.api_key),
                                                ("path", args.path)) if value}
    if args.trust_stored_url:
        connection["trust_stored_url"] = True
    with MatryoshkaIndex.load(args.index, **connection) as index:
        for i, hits in enumerate(index.search(queries, k=args.k, filter=filt)):
            print(json.dumps({"query": i, "hits": [{"id": h.id, "score": round(h.score, 6)} for h in hits]}))
    return 0


def cmd_qdrant_setup(args: argparse.Namespace) -> int:
    from .qdrant_setup import setup_collection
    layout = {"on_disk": args.on_disk, "quantization": None if args.quantization == "none" else args.quantization,
              "payload_indexes": dict(args.payload_index or [])}
    if args.edge_path:
        ignored = [flag for flag, given in (("--api-key", args.api_key), ("--shards", args.shards),
                                            ("--replicas", args.replicas),
                                            ("--collection", args.collection != "matry_index")) if given]
        if ignored:
            raise InvalidInput(f"{', '.join(ignored)} apply to a Qdrant server or local mode, not to an Edge shard "
                               "(--edge-path); leave them out")
        connection = {"path": args.edge_path, **layout}
        backend = "qdrant-edge"
    else:
        backend = "qdrant"
        connection = {"collection": args.collection, "url": args.url, "api_key": args.api_key,
                      "path": args.path, "shard_number": args.shards, "replication_factor": args.replicas, **layout}
    index, report = setup_collection(adaptor=args.adaptor, dim=args.dim,
                                     levels=args.levels, backend=backend,
                                     embeddings=args.embeddings, ids=args.ids, payload=args.payload,
                                     **connection)
    index.close()
    print(json.dumps(report, indent=2))
    return 0


def cmd_advise(args: argparse.Namespace) -> int:
    """Label-free dimension advice on the user's embeddings (nDCG@10 too with a BEIR folder)."""
    from .adaptor import MatryoshkaAdaptor
    from .advise import advise
    adaptor = MatryoshkaAdaptor.load(args.adaptor) if args.adaptor else None
    ndcg = None
    if args.embeddings:
        embeddings = load_matrix(args.embeddings, "embeddings", mmap=True)
        queries = load_matrix(args.queries, "queries") if args.queries else None
    elif args.data:
        from .experiment import compare, load_experiment
        exp = load_experiment(args.data, None, args.model)
        embeddings = exp.corpus.vectors
        queries = load_matrix(args.queries, "queries") if args.queries else exp.task("test").queries
        levels = tuple(m for m in (args.levels or (32, 64, 128, 256)) if m < embeddings.shape[1])
        scores = compare(exp, {"adaptor": adaptor} if adaptor else {}, levels)
        ndcg = {name.lower(): {m: v["ndcg@10"] for m, v in per.items()} for name, per in scores.items()}
    else:
        raise InvalidInput("give --embeddings X.npy (and --queries Q.npy if you have a query log) or --data BEIR_DIR")
    t0 = time.perf_counter()
    advice = advise(embeddings, queries, adaptor=adaptor, target=args.target, k=args.k, levels=args.levels,
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
          f"IVF-SQ8 ({rec['nlist']} lists), about {rec['candidates']} candidates for recall@{advice.k} "
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


def cmd_bench(args: argparse.Namespace) -> int:
    """The funnel and its rivals on the user's embeddings: table, JSON and a recall-vs-QPS plot."""
    from .adaptor import MatryoshkaAdaptor
    from .bench import bench
    if args.adaptor and args.fit:
        raise InvalidInput("give --adaptor or --fit, not both")
    embeddings = load_matrix(args.embeddings, "embeddings", mmap=True)
    queries = load_matrix(args.queries, "queries") if args.queries else None
    adaptor = MatryoshkaAdaptor.load(args.adaptor) if args.adaptor else None
    t0 = time.perf_counter()
    out = Path(args.out)
    with output_folder(out, "bench") as tmp:  # refused before any work if --out holds someone else's files
        report = bench(embeddings, queries, adaptor=adaptor, fit=args.fit, sample=args.sample,
                       n_queries=args.query_sample, targets=tuple(args.targets), k=args.k, level=args.level,
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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="matry-index", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def data_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data", default=os.environ.get("MATRY_INDEX_DATA", str(DEFAULT_DATA)),
                       help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/)")
        p.add_argument("--embeddings", default=None,
                       help="folder with corpus/queries .npy + .ids (default <data>/embeddings/<model>)")
        p.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2",
                       help="sentence-transformers model used when no embeddings are cached")
        p.add_argument("--levels", type=_levels, default=_levels(DEFAULT_LEVELS),
                       help="prefix sizes, comma-separated")
        p.add_argument("--seed", type=int, default=0, help="random seed of the fits")

    p = sub.add_parser("quickstart", help="adaptors + evaluation + a tuned index, end to end")
    data_args(p)
    p.add_argument("--out", default="matry_index_run", help="folder for results, plot, adaptor and index")
    p.add_argument("--unsupervised-only", action="store_true", help="skip the supervised adaptor")
    p.set_defaults(func=cmd_quickstart)

    p = sub.add_parser("train", help="fit an adaptor and save it")
    data_args(p)
    p.add_argument("--out", required=True, help="folder to save the adaptor to")
    p.add_argument("--supervised", action="store_true", help="also use the train qrels")
    p.add_argument("--objective", choices=sorted(OBJECTIVES), default=None,
                   help="funnel: a rotation whose coarse prefixes keep the full-dimension top-10 among few "
                        "candidates, for indexes; prefix: best nDCG@10 of each prefix searched alone "
                        "(default: funnel, or prefix with --supervised)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="score a saved adaptor against truncation and PCA")
    data_args(p)
    p.add_argument("--adaptor", required=True, help="saved adaptor folder")
    p.add_argument("--split", default="test", help="qrels split to score on")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("build", help="build a FAISS index from .npy embeddings")
    p.add_argument("--embeddings", required=True, help=".npy file (n, d)")
    p.add_argument("--ids", required=True, help="text file, one id per line")
    p.add_argument("--payload", help=".jsonl file, one metadata object per line")
    p.add_argument("--adaptor", help="saved adaptor folder (none: plain truncation)")
    p.add_argument("--levels", type=_levels, default=None, help="prefix levels; the first is the coarse one")
    p.add_argument("--coarse", choices=["auto", "flat", "hnsw", "ivf"], default="auto",
                   help="coarse index on the first level (auto: HNSW from 10,000 vectors, else flat)")
    p.add_argument("--ivf-encoding", choices=["flat", "sq8"], default="flat", help="IVF codes: float32 or 8-bit")
    p.add_argument("--nlist", type=_positive_int, default=None, help="IVF lists (default 4·sqrt(n))")
    p.add_argument("--vector-storage", choices=["memory", "mmap"], default="memory",
                   help="where the full vectors live: in RAM, or in a memory-mapped file read only for the "
                        "candidates (then only the coarse index, norms and ids are resident)")
    p.add_argument("--scratch-dir", help="with --vector-storage mmap: where the build writes its vector file "
                                         "(default: the system's temporary directory; use a real disk)")
    p.add_argument("--tune-queries", help=".npy of sample query embeddings to tune the funnel on")
    p.add_argument("--target-recall", type=_recall, default=0.99, help="recall@k the tuned plan must reach")
    p.add_argument("-k", type=_positive_int, default=10, help="the k the funnel is tuned for")
    p.add_argument("--out", required=True, help="folder to save the index to (a new one, or an earlier index save)")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("search", help="query a saved index with .npy query embeddings")
    p.add_argument("--index", required=True, help="saved index folder")
    p.add_argument("--queries", required=True, help=".npy query embeddings, (q, d) or one (d,) vector")
    p.add_argument("-k", type=_positive_int, default=10, help="hits per query")
    p.add_argument("--filter", help='metadata filter as JSON, e.g. \'{"lang": "en"}\'')
    p.add_argument("--url", help="the Qdrant server of a qdrant index (a saved file never chooses it)")
    p.add_argument("--api-key", default=None, help="API key for --url")
    p.add_argument("--path", help="new location of a moved Qdrant Edge shard or local-mode folder")
    p.add_argument("--trust-stored-url", action="store_true",
                   help="connect to the server URL written in the index (only for files you wrote)")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("advise", help="how many dimensions an index needs, measured on your embeddings")
    p.add_argument("--embeddings", help=".npy (n, d) document embeddings, any float dtype (memory-mapped)")
    p.add_argument("--queries", help=".npy query embeddings, (q, d) or one (d,) vector (default: held-out documents)")
    p.add_argument("--data", help="a BEIR folder instead of --embeddings: its corpus and test queries, and "
                                  "nDCG@10 per level from its labels")
    p.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2",
                   help="with --data: the model whose cached embeddings are read")
    p.add_argument("--adaptor", help="saved adaptor folder to measure beside truncation and PCA")
    p.add_argument("--target", type=_recall, default=0.99, help="recall@k of the full-dimension top-k to plan for")
    p.add_argument("-k", type=_positive_int, default=10, help="results per query")
    p.add_argument("--levels", type=_levels, default=None, help="prefix levels to measure (default 32,64,128,256)")
    p.add_argument("--sample", type=_positive_int, default=20_000, help="documents measured (the rest are scaled)")
    p.add_argument("--query-sample", type=_positive_int, default=500, help="queries measured")
    p.add_argument("--seed", type=int, default=0, help="seed of the samples")
    p.add_argument("--save-pca", help="folder to save the sample's PCA rotation to, as an adaptor")
    p.add_argument("--json", help="file to write the full advice to")
    p.set_defaults(func=cmd_advise)

    p = sub.add_parser("bench", help="latency, memory and recall of the funnel and its rivals on your embeddings")
    p.add_argument("--embeddings", required=True, help=".npy (n, d) document embeddings (memory-mapped)")
    p.add_argument("--queries", help=".npy query embeddings, split into tuning and test halves "
                                     "(default: held-out documents stand in)")
    p.add_argument("--adaptor", help="a saved funnel-aware (rotation) adaptor for the funnel row")
    p.add_argument("--fit", action="store_true", help="fit a funnel-aware adaptor on the sample first (train extra)")
    p.add_argument("--sample", type=_positive_int, default=100_000, help="vectors indexed (a random sample)")
    p.add_argument("--query-sample", type=_positive_int, default=300, help="tuning queries, and as many test queries")
    p.add_argument("--targets", type=_recall, nargs="+", default=[0.99, 0.995], help="recall@k targets")
    p.add_argument("-k", type=_positive_int, default=10, help="results per query")
    p.add_argument("--level", type=_positive_int, default=None,
                   help="coarse prefix of the funnels (default 128, or half the dimension below 256)")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="threads for builds and batches (default: the cores not already busy)")
    p.add_argument("--repeats", type=_positive_int, default=3, help="runs of each timed query (its median is kept)")
    p.add_argument("--seed", type=int, default=0, help="seed of the samples")
    p.add_argument("--out", default="matry_index_bench", help="folder for bench.md, bench.json and bench.png")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("qdrant-setup", help="create or validate a Qdrant collection and ingest vectors")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="Qdrant server or cluster URL")
    where.add_argument("--path", help="qdrant-client local mode storage folder (tests, small data)")
    where.add_argument("--edge-path", help="a Qdrant Edge shard folder (the engine in-process)")
    p.add_argument("--api-key", default=None, help="default: $QDRANT_API_KEY")
    p.add_argument("--collection", default="matry_index", help="collection name")
    p.add_argument("--adaptor", help="saved adaptor folder (its levels and hash go into the collection)")
    p.add_argument("--dim", type=_positive_int, help="embedding dimension when there is no adaptor")
    p.add_argument("--levels", type=_levels, default=None, help="prefix levels, e.g. 64,128,256")
    p.add_argument("--embeddings", help=".npy (n, d) raw embeddings to ingest")
    p.add_argument("--ids", help="one id per line, aligned with --embeddings")
    p.add_argument("--payload", help=".jsonl, one metadata object per line")
    p.add_argument("--shards", type=_positive_int, default=None, help="shard_number of a new collection")
    p.add_argument("--replicas", type=_positive_int, default=None, help="replication_factor of a new collection")
    p.add_argument("--in-ram", dest="on_disk", action="store_false",
                   help="keep every vector in RAM (default: only the coarse codes and graph; the vectors "
                        "read for candidates alone are memory-mapped from disk)")
    p.add_argument("--quantization", choices=[q or "none" for q in QUANTIZATIONS], default="int8",
                   help="codes of the coarse level kept in RAM for its graph walk")
    p.add_argument("--payload-index", type=_payload_index, action="append", metavar="FIELD:KIND",
                   help="index a payload field that filters use: KIND keyword (strings) or float (numbers); "
                        "repeat for several fields")
    p.set_defaults(func=cmd_qdrant_setup)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command. Every planned failure is one line on stderr and an exit code by its
    kind (:data:`matry_index.errors.EXIT_CODES`): 2 bad input (and usage errors), 3 a corrupt
    save, 4 a server out of reach, 5 the filesystem (a full disk included), 6 a store held by
    another process, 7 an extra not installed; 1 is a bug."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except MissingExtraError as exc:
        print(f"matry-index: error: {exc}", file=sys.stderr)
        return MISSING_EXTRA_EXIT
    except (MatryIndexError, OSError) as exc:
        print(f"matry-index: error: {exc}", file=sys.stderr)
        return exit_code(exc)


if __name__ == "__main__":
    sys.exit(main())
