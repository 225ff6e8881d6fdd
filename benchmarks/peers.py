"""The funnel against the strongest ANN libraries a user would pick, on the *original* embeddings.

One raw synthetic set (the generator of ``benchmarks/synthetic.py``, fitted to the original
SciFact MiniLM embeddings; ``--query-model`` says how its queries are drawn), every method
applying its own transform to the raw vectors and the raw queries. Recall@10 is against exact
full-dimension search on the original vectors: what a user compares with. Methods
(``--methods`` picks a subset):

* ``funnel adaptor`` — ``MatryoshkaIndex(384, adaptor=...)`` with no options (the default
  layout) and the funnel-aware adaptor (a rotation fitted on the real SciFact train data, so its
  final ranking is the original model's), tuned by ``MatryoshkaIndex.tune`` per target;
* ``funnel pca`` / ``funnel truncation`` — the same default index with a PCA rotation (fitted
  on a sample of the base) or with no adaptor;
* ``funnel adaptor, mmap`` — the memory tier: full vectors in a memory-mapped file (the saved
  index reopened with ``vector_storage="mmap"``), warm and with the vectors' pages evicted;
* every rival of :data:`matry_index.bench.methods.RIVALS` — FAISS strings (``PCAR128,IVF,SQ8``,
  ``PCAR64``, ``IVF,SQ8``, ``OPQ32,IVF,PQ32``, RaBitQ fast-scan 1- and 4-bit, each + refine),
  binary codes + rescoring, FAISS HNSW, ScaNN, Intel SVS (float Vamana; LeanVec-style), USearch,
  hnswlib, and the exact scan.

Every method picks its setting the same way (:func:`harness.pick_and_measure`: the fastest, on
separate tuning queries, among the settings that promise the target by the funnel tuner's own
rule), measured then on the test queries. Each method runs in its own process, so that its
resident memory is its own: anonymous memory (the index) and file-backed pages (a mapped
file's) are reported apart, as growth over the process before the build, per vector. Latency
is single-thread, one query per call through each method's public search (numpy in, ids out),
p50/p95 of each query's median over ``--repeats`` runs; QPS is one batch call with every core.

Also reported: generator fidelity where it matters for a funnel — candidates a coarse prefix
needs for recall@10 0.99 (exact coarse search) on the real SciFact set and on a generated set of
the same size, for truncation, PCA and the adaptor.

    python benchmarks/peers.py                    # 1M x 384 (hours on 2 cores with every rival)
    python benchmarks/peers.py --n 200000 --query-model centroid
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import faiss
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from common import K, draw_set, percentiles  # noqa: E402
from harness import (Search, earlier_rows, growth, load_set, memory, pick_and_measure, run_workers,  # noqa: E402
                     set_arguments, target_table, the_cache, warm_up)
from matry_index import MatryoshkaAdaptor, MatryoshkaIndex  # noqa: E402
from matry_index.bench.measure import hit_ids  # noqa: E402
from matry_index.bench.methods import RIVALS, Data, Unavailable  # noqa: E402
from matry_index.evaluation.baselines import PCARotation  # noqa: E402
from matry_index.evaluation.funnel_need import funnel_need  # noqa: E402
from synthetic import EmbeddingGenerator  # noqa: E402

TARGETS = (0.99, 0.995)
FUNNELS = ("funnel adaptor", "funnel pca", "funnel truncation", "funnel adaptor, mmap")
METHODS = FUNNELS + tuple(RIVALS)
DEFAULT_METHODS = ("funnel adaptor", "funnel pca", "funnel adaptor, mmap", "faiss PCAR128,IVF,SQ8 + refine",
                   "faiss IVF,RaBitQfs + refine", "scann", "svs vamana", "svs leanvec-style", "usearch", "hnswlib",
                   "flat")
#: the methods whose rows the report compares the adaptor funnel with
RIVAL_PREFIXES = ("faiss", "binary", "scann", "svs", "usearch", "hnswlib")


# --- our funnel ------------------------------------------------------------------------------
def _ids(index: MatryoshkaIndex) -> Search:
    return lambda q: hit_ids(index.search(q, k=K), K)


def funnel_adaptor(kind: str, data: dict, cache: Path) -> MatryoshkaAdaptor | None:
    if kind == "adaptor":
        return MatryoshkaAdaptor.load(cache / "adaptor")
    if kind == "pca":
        sample = data["base"][:: max(1, len(data["base"]) // 100_000)]
        return MatryoshkaAdaptor(384, (32, 64, 128, 192, 256), rotation=PCARotation.fit(sample).components)
    return None


def _default_index(data: dict, adaptor: MatryoshkaAdaptor | None, **options) -> MatryoshkaIndex:
    """The index as ``MatryoshkaIndex(384, adaptor=adaptor)`` builds it (``options``: only where it
    is to live: the memory tier's scratch folder), the base added in one call."""
    index = MatryoshkaIndex(384, adaptor=adaptor, **options)
    index.add(np.arange(len(data["base"])), np.asarray(data["base"]))
    index.optimize()
    return index


def run_funnel(name: str, data: dict, args, cache: Path) -> list[dict]:
    kind = name.split()[1].rstrip(",")
    mapped = name.endswith("mmap")
    n = len(data["base"])
    adaptor = funnel_adaptor(kind, data, cache)
    before = memory()
    t0 = time.perf_counter()
    if mapped:  # build to a scratch file, save, then reopen mapping the saved vectors
        index = _default_index(data, adaptor, vector_storage="mmap", scratch_dir=str(cache))
        index.save(cache / "mmap-ix")
        index.close()
        del index
        build = time.perf_counter() - t0
        data.pop("base")  # the raw set's pages are the benchmark's, not the index's
        before = memory()
        index = MatryoshkaIndex.load(cache / "mmap-ix", vector_storage="mmap", scratch_dir=str(cache))
    else:
        index = _default_index(data, adaptor)
        build = time.perf_counter() - t0
    extra = {"build_seconds": build, "levels": list(index.levels), "coarse_code": index.backend.coarse.code.name}
    rows = []
    for target in args.targets:
        plan = index.tune(data["tune"], target_recall=target, k=K)
        held = sum(index.backend.memory_bytes().values()) / n  # what the index accounts for, part by part
        extra_now = {**extra, **growth(before, n, data), "accounted_bytes_per_vector": held}
        row = pick_and_measure(name, [(str(plan), _ids(index))], data, target, args, extra_now)
        if row and mapped:
            row.update(cold_latency(index, cache / "mmap-ix", data["queries"][:args.cold_queries]))
            print("ROW " + json.dumps(row), flush=True)
        if row:
            rows.append(row)
    return rows


def cold_latency(index: MatryoshkaIndex, saved: Path, queries: np.ndarray) -> dict:
    """Single-query latency with the full vectors' pages evicted before every query: with
    ``posix_fadvise(DONTNEED)`` on the mapped file (only those pages), and, where allowed,
    with the whole page cache dropped (``/proc/sys/vm/drop_caches``, as root)."""
    vectors = next(saved.rglob("vectors.npy"))
    index.backend.rows.vectors.flush() if hasattr(index.backend.rows.vectors, "flush") else None
    faiss.omp_set_num_threads(1)

    def evict_vectors():
        fd = os.open(vectors, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)

    def drop_all():
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("1\n")

    out = {}
    for label, evict in (("vectors_evicted", evict_vectors), ("page_cache_dropped", drop_all)):
        times = []
        try:
            for q in queries:
                evict()
                t0 = time.perf_counter()
                index.search(q[None, :], k=K)
                times.append(time.perf_counter() - t0)
        except OSError as exc:
            out[f"cold_{label}"] = f"not measured: {exc}"
            continue
        out[f"cold_{label}"] = percentiles(times)
    return out


# --- the rivals ------------------------------------------------------------------------------
def run_rival(name: str, data: dict, args) -> list[dict]:
    """A rival of :data:`matry_index.bench.methods.RIVALS`, built on the raw set, swept."""
    n = len(data["base"])
    before = memory()
    bench_data = Data(data["base"], data["tune"], data["queries"], data["tune_truth"], data["truth"], K,
                      tuple(args.targets))
    faiss.omp_set_num_threads(args.threads)
    try:
        method = RIVALS[name](bench_data, args.threads)
    except Unavailable as exc:
        print(f"{name}: not run ({exc})", flush=True)
        return []
    del bench_data  # the raw set's pages are the benchmark's input: unmapped before memory is read
    extra = {"build_seconds": method.build_seconds, "label": method.name, "note": method.note,
             **growth(before, n, data), "accounted_bytes_per_vector": method.bytes_per_vector}
    if name == "flat":  # one exact setting, slow and steady: a few queries, once each, say enough
        args = argparse.Namespace(**{**vars(args), "latency_queries": 20, "repeats": 1})
    return [r for t in args.targets if (r := pick_and_measure(name, method.settings, data, t, args, extra))]


def worker(name: str, args) -> None:
    cache = Path(args.cache)
    warm_up()
    data = load_set(cache)
    if name.startswith("funnel"):
        run_funnel(name, data, args, cache)
    else:
        run_rival(name, data, args)


# --- the set, the adaptor, the fidelity check (main process) -----------------------------------
def prepare(args, cache: Path, fidelity: bool = True) -> dict:
    """Fit the generator to the original SciFact vectors, draw the set, its ground truth and the
    tuning queries' into ``cache``; fit the funnel-aware adaptor on the real train data; measure
    the generator's fidelity (unless ``fidelity`` is False: an empty dict then)."""
    from matry_index.experiment import load_experiment
    exp = load_experiment(Path(args.data), Path(args.data) / "embeddings" / "all-MiniLM-L6-v2")
    corpus, train_q = exp.corpus.vectors, exp.relevance("train")[0]
    gen = EmbeddingGenerator.fit(corpus, exp.queries.vectors, query_model=args.query_model)
    if not (cache / "adaptor").exists():
        if args.adaptor:
            MatryoshkaAdaptor.load(args.adaptor).save(cache / "adaptor")
        else:
            from matry_index.adaptor import TrainConfig, fit_unsupervised
            t0 = time.perf_counter()
            fit = fit_unsupervised(corpus, queries=train_q, objective="funnel",
                                   config=TrainConfig(seed=0, threads=args.threads))
            fit.adaptor.save(cache / "adaptor")
            print(f"adaptor fitted in {time.perf_counter() - t0:.0f} s", flush=True)
    if not (cache / "truth.npy").exists():
        base, queries, tune = draw_set(gen, args.n, args.queries, args.tune_queries)
        faiss.omp_set_num_threads(args.threads)
        flat = faiss.IndexFlatIP(base.shape[1])
        flat.add(base)
        for key, value in (("base", base), ("queries", queries), ("tune", tune),
                           ("truth", flat.search(queries, K)[1]), ("tune_truth", flat.search(tune, K)[1])):
            np.save(cache / f"{key}.npy", value)
    if not fidelity:
        return {}
    if (cache / "fidelity.json").exists():  # a rerun on the same drawn set
        return json.loads((cache / "fidelity.json").read_text())
    adaptor = MatryoshkaAdaptor.load(cache / "adaptor")
    found = {"scifact": generator_fidelity(Path(args.data), adaptor),
             "docstrings": generator_fidelity(Path(args.data).parent / "docstrings", None)}
    (cache / "fidelity.json").write_text(json.dumps(found))
    return found


def generator_fidelity(data: Path, adaptor: MatryoshkaAdaptor | None) -> dict:
    """Candidates needed for recall@10 0.99 at 32/64/128-d on a real set's test queries and on
    generated sets of the same size (both query models), for truncation, PCA (fitted on each
    set's own documents) and, where given, the adaptor."""
    from matry_index.experiment import load_experiment
    exp = load_experiment(data, data / "embeddings" / "all-MiniLM-L6-v2")
    corpus, real_queries = exp.corpus.vectors, exp.task("test").queries
    sets = {"real": (corpus, real_queries)}
    for model in ("document", "centroid"):
        gen = EmbeddingGenerator.fit(corpus, exp.queries.vectors, query_model=model)
        fake = gen.sample(len(corpus), seed=11)
        sets[f"generated ({model} queries)"] = (fake, gen.sample_queries(len(real_queries), seed=12, base=fake))
    out: dict = {}
    for label, (docs, queries) in sets.items():
        methods = {"truncation": None, "pca": PCARotation.fit(docs).transform}
        if adaptor is not None:
            methods["adaptor"] = adaptor.transform
        for method, transform in methods.items():
            need = funnel_need(queries, docs, (32, 64, 128), transform, recalls=(0.99,))
            out.setdefault(method, {})[label] = {m: v["needed"][0.99] for m, v in need.items()}
    return out


# --- report ----------------------------------------------------------------------------------
def report(rows: list[dict], fidelity: dict, args, path: Path, commands: list[str],
           unreached: list[list]) -> str:
    lines = [f"# Peers: the funnel against the strongest ANN libraries ({args.n:,} x 384, {args.query_model} "
             f"queries, {platform.platform()})", "",
             "Generated from the *original* SciFact MiniLM embeddings (benchmarks/synthetic.py; queries drawn "
             f"with the \"{args.query_model}\" model); every method transforms the raw vectors itself; recall@10 "
             "against exact search on the original vectors. A setting qualifies for a target when its recall on "
             "separate tuning queries promises the target on new queries by the funnel tuner's own rule (the "
             "target plus a margin from the queries' spread, on each half of them); the fastest qualifying "
             "setting is measured on the test queries, and rows whose test recall still falls short are "
             f"marked *. p50/p95: one thread, one query per call; QPS: one batch call, {args.threads} threads. "
             "Memory: growth of the method's own process per vector after its build (anonymous and "
             "file-backed apart; it includes what the allocator keeps from training), and what the "
             "structures account for (FAISS's serialised size; the funnel's `memory_bytes()`; the other "
             "libraries' own serialised or reported sizes).", "",
             "Commands (a later one replaces the rows of the methods it reruns):", ""]
    lines += [f"    {c}" for c in commands] + [""]
    for target in args.targets:
        at = sorted((r for r in rows if r["target"] == target), key=lambda r: r["p50_ms"])
        lines += target_table(at, target, unreached, ["batch QPS", "build s", "RSS anon B/vec", "RSS file B/vec",
                                                      "accounted B/vec"], lambda r: [
            f"{r['batch_qps']:.0f}", f"{r['build_seconds']:.0f}", f"{r['anon_bytes_per_vector']:.0f}",
            f"{r['file_bytes_per_vector']:.0f}", f"{r.get('accounted_bytes_per_vector', float('nan')):.0f}"])
        lines.append("")
        ours = [r for r in at if r["method"] == "funnel adaptor"]
        experts = [r for r in at if r["method"].startswith(RIVAL_PREFIXES)]
        pca = [r for r in at if r["method"].startswith("funnel pca")]
        if ours and experts:
            best, rival = ours[0], experts[0]
            lines.append(f"The default index with the adaptor: {best['p50_ms']:.3f} ms; the fastest rival: "
                         f"{rival['method']} {rival['p50_ms']:.3f} ms "
                         f"(ratio {rival['p50_ms'] / best['p50_ms']:.2f}x)"
                         + (f"; fastest PCA funnel {pca[0]['method']} {pca[0]['p50_ms']:.3f} ms "
                            f"(ratio {pca[0]['p50_ms'] / best['p50_ms']:.2f}x)." if pca else "."))
            lines.append("")
        for r in at:
            if r.get("note"):
                lines.append(f"- {r['method']}: {r['note']}")
            for key in ("cold_vectors_evicted", "cold_page_cache_dropped"):
                if key in r:
                    v = r[key]
                    text = v if isinstance(v, str) else f"p50 {v['p50_ms']:.2f} ms, p95 {v['p95_ms']:.2f} ms"
                    lines.append(f"- {r['method']}, {key.replace('_', ' ')}: {text}")
        lines.append("")
    lines += ["## Generator fidelity: candidates needed for recall@10 0.99 (exact coarse search)", "",
              "On each real set's test queries, and on generated sets of the same size (the base above "
              "is drawn with the \"document\" query model). The adaptor is the SciFact one.", "",
              "| data | method | set | 32-d | 64-d | 128-d |", "|---|---|---|---|---|---|"]
    for data, methods in fidelity.items():
        for method, sets in methods.items():
            for label, need in sets.items():
                counts = [need.get(m, need.get(str(m))) for m in (32, 64, 128)]  # int keys, or str from JSON
                lines.append(f"| {data} | {method} | {label} | " + " | ".join(map(str, counts)) + " |")
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    set_arguments(ap, METHODS, DEFAULT_METHODS, TARGETS, cold_queries=100, results="peers")
    ap.add_argument("--m", type=int, default=32, help="HNSW M of the graph rivals")
    ap.add_argument("--ef-construction", type=int, default=80, help="HNSW efConstruction of the graph rivals")
    args = ap.parse_args()
    cache = the_cache(args)
    if args.worker:
        worker(args.worker, args)
        return
    fidelity = prepare(args, cache)
    print(json.dumps({"generator_fidelity": fidelity}), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.n == 1_000_000 else f"-{args.n}"
    command = "python benchmarks/peers.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    rows, unreached, commands = earlier_rows(args, command)  # unreached: [method, target] pairs
    for _, found, missed in run_workers(__file__, args.methods, sys.argv[1:]):
        rows += found
        unreached += missed
        # written after every method, so that an interrupted run keeps what it measured
        (out / f"peers{suffix}.json").write_text(json.dumps(
            {"n": args.n, "commands": commands, "rows": rows, "unreached": unreached,
             "generator_fidelity": fidelity, "platform": platform.platform()}, indent=1))
        text = report(rows, fidelity, args, out / f"peers{suffix}.md", commands, unreached)
    print(text)


if __name__ == "__main__":
    main()
