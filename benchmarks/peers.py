"""The FAISS funnel against what a FAISS expert would build instead, on the *original* embeddings.

One raw synthetic set (the generator fitted to the original SciFact MiniLM embeddings, not to
adapted ones), every method applying its own transform to the raw vectors and the raw queries,
all in one run. Recall@10 is against exact full-dimension search on the original vectors: what a
user compares with. Methods (``--methods`` picks a subset):

* ``funnel adaptor @64 / @128`` — ``MatryoshkaIndex`` with the funnel-aware adaptor (a rotation
  fitted on the real SciFact train data, so its final ranking is the original model's), IVF-SQ8
  on the 64- or 128-d prefix, exact rescoring; tuned by ``MatryoshkaIndex.tune`` per target;
* ``funnel pca @64 / @128`` and ``funnel truncation @128`` — the same funnel with a PCA rotation
  (fitted on a sample of the base) or with no transform in the adaptor's place;
* ``funnel adaptor @128, mmap`` — the memory tier: full vectors in a memory-mapped file (the
  saved index reopened with ``vector_storage="mmap"``), warm and with the vectors' pages evicted;
* ``faiss PCAR128,IVF,SQ8 + refine`` / ``faiss PCAR64,...`` — ``index_factory`` with a PCA
  rotation, IVF (HNSW-searched centroids), 8-bit codes and ``IndexRefineFlat``; nprobe and
  k_factor swept;
* ``faiss IVF,SQ8 + refine`` — the same on the full 384-d vector;
* ``faiss OPQ32,IVF,PQ32 + refine`` — the memory-lean classic: a learned rotation, IVF and a
  32-byte product-quantiser code of the full vector (the strongest 32-byte code of
  ``funnel_need.md``), then ``IndexRefineFlat``;
* ``binary hnsw + rescore`` — sign bits of the full vector (the sentence-transformers
  quantisation recipe) in ``IndexBinaryHNSW``, the top C rescored with the float vectors;
  ef and C swept;
* ``hnsw-384`` — ``IndexHNSWFlat`` on the full vector (same M), ef swept; ``flat-384``.

Every method picks its setting the same way: among its settings whose recall@10 on separate
*tuning* queries reaches the target, the fastest (timed on those tuning queries); the chosen
setting is then measured on the test queries. Each method runs in its own process, so that its
resident memory is its own: anonymous memory (the index) and file-backed pages (a mapped
file's) are reported apart, as growth over the process before the build, per vector. Latency
is single-thread, one query per call through each method's public search (numpy in, ids out),
p50/p95 of each query's median over ``--repeats`` runs; QPS is one batch call with every core.

Also reported: generator fidelity where it matters for a funnel — candidates a coarse prefix
needs for recall@10 0.99 (exact coarse search) on the real SciFact set and on a generated set of
the same size, for truncation, PCA and the adaptor.

    python benchmarks/peers.py                    # 1M x 384 (about 45 minutes on 2 cores)
    python benchmarks/peers.py --n 100000         # quick look
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import faiss
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from common import (EF_SWEEP, K, RESULTS, SHARED_DATA, bulk_load, draw_set, percentiles,  # noqa: E402
                    recall, timed_batch, timed_single)
from matry_index import MatryoshkaAdaptor, MatryoshkaIndex  # noqa: E402
from matry_index.tuning import worst_half_recall  # noqa: E402
from matry_index.evaluation.baselines import PCARotation  # noqa: E402
from matry_index.evaluation.funnel_need import funnel_need  # noqa: E402
from synthetic import EmbeddingGenerator  # noqa: E402

LEVELS = {64: (64, 128, 384), 128: (128, 256, 384)}
TARGETS = (0.99, 0.995)
NLIST = 4096            # what an expert picks at 1M (about 4 * sqrt(n)); scaled down for smaller sets
PROBES = (1, 2, 4, 8, 16, 32, 64, 96, 128, 192, 256)
K_FACTORS = (2, 4, 8, 16, 32)
BINARY_CANDIDATES = (50, 100, 200, 400, 800)
METHODS = ("funnel adaptor @64", "funnel adaptor @128", "funnel pca @64", "funnel pca @128",
           "funnel truncation @128", "funnel adaptor @128, mmap", "faiss PCAR128,IVF,SQ8 + refine",
           "faiss IVF,SQ8 + refine", "binary hnsw + rescore", "hnsw-384", "flat-384",
           "faiss OPQ32,IVF,PQ32 + refine", "faiss PCAR64,IVF,SQ8 + refine")
DEFAULT_METHODS = METHODS[:-1]  # PCAR64 on request: at 1M the 128-d rotation is the faster expert string


# --- memory --------------------------------------------------------------------------------
def memory() -> dict[str, int]:
    """Resident anonymous and file-backed bytes of this process, after returning freed heap."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile"):
            fields[key] = int(value.split()[0]) * 1024
    return {"anon": fields.get("RssAnon", 0), "file": fields.get("RssFile", 0)}


def growth(before: dict[str, int], n: int, data: dict) -> dict[str, float]:
    """Memory growth per vector since ``before``, once the raw set is unmapped (its pages are
    the benchmark's input, not the method's)."""
    data.pop("base", None)
    now = memory()
    return {"anon_bytes_per_vector": (now["anon"] - before["anon"]) / n,
            "file_bytes_per_vector": (now["file"] - before["file"]) / n}


# --- one way to pick and measure a setting, for every method ---------------------------------
Search = Callable[[np.ndarray], np.ndarray]  # queries (raw) -> (nq, K) ids


def pick_and_measure(name: str, settings: Iterable[tuple[str, Search]], data: dict, target: float,
                     args, extra: dict) -> dict | None:
    """Among ``settings`` whose tuning recall reaches ``target`` on each half of the tuning
    queries (the rule the funnel's tuner applies to its own plans), the fastest on the tuning
    queries; its test recall, p50/p95 and batch QPS. None when no setting reaches it."""
    tune_q, tune_truth = data["tune"], data["tune_truth"]
    faiss.omp_set_num_threads(args.threads)
    reaching = [(label, fn) for label, fn in settings if worst_half_recall(fn(tune_q), tune_truth) >= target]
    if not reaching:
        print(f"{name}: no setting reaches {target}", flush=True)
        return None
    if len(reaching) > 1:
        speed = [timed_single(lambda q, fn=fn: fn(q), tune_q[:100], 1)["p50_ms"] for _, fn in reaching]
        label, fn = reaching[int(np.argmin(speed))]
    else:
        label, fn = reaching[0]
    faiss.omp_set_num_threads(args.threads)
    queries, truth = data["queries"], data["truth"]
    row = {"method": name, "target": target, "setting": label, "recall@10": recall(fn(queries), truth),
           **timed_single(fn, queries[:args.latency_queries], args.repeats),
           "batch_qps": timed_batch(fn, queries, args.threads), **extra}
    print("ROW " + json.dumps(row), flush=True)
    return row


# --- our funnel ------------------------------------------------------------------------------
def _ids(index: MatryoshkaIndex) -> Search:
    def search(q: np.ndarray) -> np.ndarray:
        out = np.full((len(q), K), -1, np.int64)
        for i, hits in enumerate(index.search(q, k=K)):
            out[i, :len(hits)] = [h.id for h in hits]
        return out
    return search


def funnel_adaptor(kind: str, data: dict, cache: Path) -> MatryoshkaAdaptor | None:
    if kind == "adaptor":
        return MatryoshkaAdaptor.load(cache / "adaptor")
    if kind == "pca":
        sample = data["base"][:: max(1, len(data["base"]) // 100_000)]
        return MatryoshkaAdaptor(384, (64, 128, 256, 384), rotation=PCARotation.fit(sample).components)
    return None


def run_funnel(name: str, data: dict, args, cache: Path) -> list[dict]:
    kind = name.split()[1]
    level = int(name.split("@")[1].split(",")[0])
    mapped = name.endswith("mmap")
    n = len(data["base"])
    before = memory()
    options = {"coarse": "ivf", "ivf_encoding": "sq8", "deferred_build": True, "nlist": nlist_for(n),
               "adaptor": funnel_adaptor(kind, data, cache)}
    t0 = time.perf_counter()
    if mapped:  # build to a scratch file, save, then reopen mapping the saved vectors
        index, _, _ = bulk_load(data["base"], LEVELS[level], vector_storage="mmap", scratch_dir=str(cache), **options)
        index.save(cache / "mmap-ix")
        index.close()
        del index
        build = time.perf_counter() - t0
        data.pop("base")  # the raw set's pages are the benchmark's, not the index's
        before = memory()
        index = MatryoshkaIndex.load(cache / "mmap-ix", vector_storage="mmap", scratch_dir=str(cache))
    else:
        index, _, _ = bulk_load(data["base"], LEVELS[level], **options)
        build = time.perf_counter() - t0
    extra = {"build_seconds": build, "levels": list(LEVELS[level])}
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


# --- the expert FAISS rivals -------------------------------------------------------------------
def nlist_for(n: int) -> int:
    return min(NLIST, max(64, int(4 * np.sqrt(n))))


def faiss_ids(index: faiss.Index, params: faiss.SearchParameters | None = None) -> Search:
    return lambda q: index.search(q, K, params=params)[1]


def run_factory(name: str, data: dict, args) -> list[dict]:
    """``index_factory`` + ``IndexRefineFlat``: nprobe x k_factor swept."""
    n = len(data["base"])
    nlist = nlist_for(n)
    pre, code = {"faiss PCAR128,IVF,SQ8 + refine": ("PCAR128,", "SQ8"), "faiss PCAR64,IVF,SQ8 + refine": ("PCAR64,", "SQ8"),
                 "faiss IVF,SQ8 + refine": ("", "SQ8"), "faiss OPQ32,IVF,PQ32 + refine": ("OPQ32,", "PQ32")}[name]
    spec = f"{pre}IVF{nlist}_HNSW32,{code},RFlat"
    faiss.omp_set_num_threads(args.threads)
    before = memory()
    t0 = time.perf_counter()
    # L2 on unit vectors ranks as cosine does, and FAISS's PCA centres the data: under inner
    # product the centring would subtract each document's projection on the mean (a different
    # ranking), under L2 it cancels out
    index = faiss.index_factory(384, spec, faiss.METRIC_L2)
    base = data["base"]
    sample = np.ascontiguousarray(base[np.sort(np.random.default_rng(0).choice(n, min(n, 256 * nlist), replace=False))])
    index.train(sample)
    del sample
    for s in range(0, n, 100_000):
        index.add(np.ascontiguousarray(base[s:s + 100_000]))
    build = time.perf_counter() - t0
    del base  # the raw set's pages are the benchmark's input: unmapped before memory is read
    extra = {"build_seconds": build, "factory": spec, **growth(before, n, data),
             "accounted_bytes_per_vector": len(faiss.serialize_index(index)) / n}

    def setting(nprobe: int, k_factor: int) -> tuple[str, Search]:
        ef = max(16, 2 * nprobe)
        ivf = faiss.SearchParametersIVF(nprobe=nprobe, quantizer_params=faiss.SearchParametersHNSW(efSearch=ef))
        inner = faiss.SearchParametersPreTransform(index_params=ivf) if pre else ivf
        params = faiss.IndexRefineSearchParameters(k_factor=k_factor, base_index_params=inner)
        params.refs = (ivf, inner)  # the C++ structs point at each other: keep the Python objects alive
        return f"nprobe={nprobe},quantizer_efSearch={ef},k_factor={k_factor}", faiss_ids(index, params)
    # a 32-byte product-quantiser code ranks more coarsely than 8-bit scalar codes: its refine
    # stage is swept wider
    k_factors = K_FACTORS + (64, 128) if code.startswith("PQ") else K_FACTORS
    settings = [setting(p, kf) for p in PROBES for kf in k_factors]
    return [r for t in args.targets if (r := pick_and_measure(name, settings, data, t, args, extra))]


def run_binary(name: str, data: dict, args) -> list[dict]:
    """Sign bits of the raw vector in ``IndexBinaryHNSW``; the top C rescored in float."""
    base, n = data["base"], len(data["base"])
    faiss.omp_set_num_threads(args.threads)
    before = memory()
    t0 = time.perf_counter()
    floats = np.empty((n, 384), np.float32)
    index = faiss.IndexBinaryHNSW(384, args.m)
    index.hnsw.efConstruction = args.ef_construction
    for s in range(0, n, 100_000):
        chunk = np.ascontiguousarray(base[s:s + 100_000])
        floats[s:s + len(chunk)] = chunk
        index.add(np.packbits(chunk > 0, axis=1))
    build = time.perf_counter() - t0
    del base, chunk  # the raw set's pages are the benchmark's input: unmapped before memory is read
    extra = {"build_seconds": build, **growth(before, n, data),
             "accounted_bytes_per_vector": (len(faiss.serialize_index_binary(index)) + floats.nbytes) / n}

    def setting(ef: int, c: int) -> tuple[str, Search]:
        params = faiss.SearchParametersHNSW(efSearch=ef)

        def search(q: np.ndarray) -> np.ndarray:
            _, cand = index.search(np.packbits(q > 0, axis=1), c, params=params)
            safe = np.maximum(cand, 0)
            scores = np.einsum("qcd,qd->qc", floats[safe], q)
            scores[cand < 0] = -np.inf
            top = np.argpartition(-scores, K - 1, axis=1)[:, :K]
            order = np.argsort(-np.take_along_axis(scores, top, 1), axis=1)
            return np.take_along_axis(np.take_along_axis(cand, top, 1), order, 1)
        return f"ef={ef},C={c}", search
    settings = [setting(max(ef, c), c) for c in BINARY_CANDIDATES for ef in (c, 2 * c)]
    return [r for t in args.targets if (r := pick_and_measure(name, settings, data, t, args, extra))]


def run_hnsw(name: str, data: dict, args) -> list[dict]:
    base, n = data["base"], len(data["base"])
    faiss.omp_set_num_threads(args.threads)
    before = memory()
    t0 = time.perf_counter()
    index = faiss.IndexHNSWFlat(384, args.m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = args.ef_construction
    for s in range(0, n, 100_000):
        index.add(np.ascontiguousarray(base[s:s + 100_000]))
    build = time.perf_counter() - t0
    del base  # the raw set's pages are the benchmark's input: unmapped before memory is read
    extra = {"build_seconds": build, **growth(before, n, data),
             "accounted_bytes_per_vector": len(faiss.serialize_index(index)) / n}
    settings = [(f"ef={ef}", faiss_ids(index, faiss.SearchParametersHNSW(efSearch=ef))) for ef in EF_SWEEP]
    return [r for t in args.targets if (r := pick_and_measure(name, settings, data, t, args, extra))]


def run_flat(name: str, data: dict, args) -> list[dict]:
    base, n = data["base"], len(data["base"])
    before = memory()
    index = faiss.IndexFlatIP(384)
    for s in range(0, n, 100_000):
        index.add(np.ascontiguousarray(base[s:s + 100_000]))
    del base
    extra = {"build_seconds": 0.0, **growth(before, n, data), "accounted_bytes_per_vector": 4.0 * index.d}
    fast = argparse.Namespace(**{**vars(args), "latency_queries": 20, "repeats": 1})
    row = pick_and_measure(name, [("exact", faiss_ids(index))], data, args.targets[0], fast, extra)
    return [row] if row else []


def warm_up(rows: int = 100_000) -> None:
    """Run the array operations a build makes once on throw-away data of one chunk's size, so
    that the fixed buffers BLAS threads and heap arenas keep afterwards (tens of MB per process,
    whatever the index's size) are in the baseline and not counted per vector."""
    x = np.random.default_rng(0).random((rows, 384), dtype=np.float32)
    y = x @ np.eye(384, dtype=np.float32)
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    del x, y


def load_set(cache: Path) -> dict:
    """The drawn set of ``cache``: the base memory-mapped, queries and ground truths in memory."""
    return {key: np.load(cache / f"{key}.npy", mmap_mode="r" if key == "base" else None)
            for key in ("base", "queries", "truth", "tune", "tune_truth")}


def worker(name: str, args) -> None:
    cache = Path(args.cache)
    warm_up()
    data = load_set(cache)
    if name.startswith("funnel"):
        run_funnel(name, data, args, cache)
    elif name.startswith("faiss"):
        run_factory(name, data, args)
    elif name.startswith("binary"):
        run_binary(name, data, args)
    elif name.startswith("hnsw"):
        run_hnsw(name, data, args)
    else:
        run_flat(name, data, args)


# --- the set, the adaptor, the fidelity check (main process) -----------------------------------
def prepare(args, cache: Path, fidelity: bool = True) -> dict:
    """Fit the generator to the original SciFact vectors, draw the set, its ground truth and the
    tuning queries' into ``cache``; fit the funnel-aware adaptor on the real train data; measure
    the generator's fidelity (unless ``fidelity`` is False: an empty dict then)."""
    from matry_index.experiment import load_experiment
    exp = load_experiment(Path(args.data), Path(args.data) / "embeddings" / "all-MiniLM-L6-v2")
    corpus, train_q = exp.corpus.vectors, exp.relevance("train")[0]
    gen = EmbeddingGenerator.fit(corpus, exp.queries.vectors)  # near-document queries
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


def run_workers(script: str, names: list[str], argv: list[str]) -> Iterable[tuple[str, list[dict], list[list]]]:
    """Run each method in its own process (``script --worker NAME argv...``): per method, its
    name, the rows it printed (``ROW {json}``; the last print of a row is the whole one) and the
    [method, target] pairs no setting of it reached."""
    for name in names:
        done = subprocess.run([sys.executable, script, "--worker", name] + argv, capture_output=True, text=True)
        print(done.stdout, done.stderr[-2000:] if done.returncode else "", flush=True)
        if done.returncode:
            raise SystemExit(f"{name} failed")
        found, unreached = {}, []
        for line in done.stdout.splitlines():
            if line.startswith("ROW "):
                row = json.loads(line[4:])
                found[(row["method"], row["target"])] = row
            elif ": no setting reaches " in line:
                method, target = line.rsplit(": no setting reaches ", 1)
                unreached.append([method, float(target)])
        yield name, list(found.values()), unreached


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
def short_setting(setting: str) -> str:
    """A funnel plan's repr cut to its candidate counts and nprobe; other settings as they are."""
    if not setting.startswith("FunnelPlan("):
        return setting
    counts = setting.split("candidates=")[1].split(")")[0] + ")"
    nprobe = setting.split("nprobe=")[1].split(",")[0] if "nprobe=" in setting else "None"
    return f"{counts}, nprobe {nprobe}"


def target_table(at: list[dict], target: float, unreached: list[list], columns: list[str],
                 cells: Callable[[dict], list[str]]) -> list[str]:
    """A report's section for one recall target: method, setting, test recall (* where it fell
    short), p50 / p95, then ``columns`` filled by ``cells``; and the methods that never got there."""
    lines = [f"## recall@10 ≥ {target}", "",
             "| " + " | ".join(["method", "setting", "test recall@10", "p50 ms", "p95 ms"] + columns) + " |",
             "|" + "---|" * (5 + len(columns))]
    for r in at:
        short = "*" if r["recall@10"] < target else ""
        lines.append(f"| {r['method']} | {short_setting(r['setting'])} | {r['recall@10']:.4f}{short} | "
                     f"{r['p50_ms']:.3f} | {r['p95_ms']:.3f} | " + " | ".join(cells(r)) + " |")
    missed = [m for m, t in unreached if t == target]
    if missed:
        lines.append(f"\nNo swept setting reached it on both halves of the tuning queries: {', '.join(missed)}.")
    return lines


def report(rows: list[dict], fidelity: dict, args, path: Path, commands: list[str],
           unreached: list[list]) -> str:
    lines = [f"# Peers: the funnel against expert FAISS configurations ({args.n:,} x 384, "
             f"{platform.platform()})", "",
             "Generated from the *original* SciFact MiniLM embeddings; every method transforms the raw "
             "vectors itself; recall@10 against exact search on the original vectors. Settings picked on "
             "separate tuning queries (the fastest reaching the target), measured on the test queries. "
             f"p50/p95: one thread, one query per call; QPS: one batch call, {args.threads} threads. "
             "A setting qualifies when it reaches the target on each half of the tuning queries (the rule "
             "the funnel's tuner applies to its plans); rows whose test recall falls short are marked *. "
             "Memory: growth of the method's own process per vector after its build (anonymous and "
             "file-backed apart; it includes what the allocator keeps from training), and what the "
             "structures account for (FAISS's serialised size; the funnel's `memory_bytes()`).", "",
             "Commands (a later one replaces the rows of the methods it reruns):", ""]
    lines += [f"    {c}" for c in commands] + [""]
    for target in args.targets:
        at = sorted((r for r in rows if r["target"] == target), key=lambda r: r["p50_ms"])
        lines += target_table(at, target, unreached, ["batch QPS", "build s", "RSS anon B/vec", "RSS file B/vec",
                                                      "accounted B/vec"], lambda r: [
            f"{r['batch_qps']:.0f}", f"{r['build_seconds']:.0f}", f"{r['anon_bytes_per_vector']:.0f}",
            f"{r['file_bytes_per_vector']:.0f}", f"{r.get('accounted_bytes_per_vector', float('nan')):.0f}"])
        lines.append("")
        ours = [r for r in at if r["method"] == "funnel adaptor @128" or r["method"] == "funnel adaptor @64"]
        experts = [r for r in at if r["method"].startswith(("faiss", "binary", "hnsw"))]
        pca = [r for r in at if r["method"].startswith("funnel pca")]
        if ours and experts:
            best, rival = ours[0], experts[0]
            lines.append(f"Fastest adaptor funnel: {best['method']} {best['p50_ms']:.3f} ms; fastest expert "
                         f"configuration: {rival['method']} {rival['p50_ms']:.3f} ms "
                         f"(ratio {rival['p50_ms'] / best['p50_ms']:.2f}x)"
                         + (f"; fastest PCA funnel {pca[0]['method']} {pca[0]['p50_ms']:.3f} ms "
                            f"(ratio {pca[0]['p50_ms'] / best['p50_ms']:.2f}x)." if pca else "."))
            lines.append("")
        for r in at:
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


def set_arguments(ap: argparse.ArgumentParser, methods: tuple[str, ...], default_methods: tuple[str, ...],
                  targets: tuple[float, ...], cold_queries: int, results: str) -> None:
    """The options every benchmark on the drawn set takes (``peers.py``, ``qdrant_layouts.py``)."""
    ap.add_argument("--n", type=int, default=1_000_000, help="vectors in the base set")
    ap.add_argument("--queries", type=int, default=500, help="test queries")
    ap.add_argument("--tune-queries", type=int, default=1000, help="tuning queries (settings are chosen on them)")
    ap.add_argument("--latency-queries", type=int, default=300, help="test queries timed one by one")
    ap.add_argument("--cold-queries", type=int, default=cold_queries, help="queries timed with evicted pages")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each timed query (its median is kept)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for builds and batches")
    ap.add_argument("--targets", type=float, nargs="+", default=list(targets), help="recall@10 targets")
    ap.add_argument("--methods", nargs="+", default=list(default_methods), choices=methods, metavar="METHOD",
                    help=f"a subset of: {'; '.join(methods)}")
    ap.add_argument("--data", default=str(SHARED_DATA / "scifact"), help="BEIR folder the generator is fitted to")
    ap.add_argument("--adaptor", default=None, help="a saved funnel-aware adaptor (default: fit one, seed 0)")
    ap.add_argument("--cache", default=None, help="folder for the drawn set (default: /tmp/matry-peers-N)")
    ap.add_argument("--out", default=str(RESULTS), help=f"folder for {results}.json and .md")
    ap.add_argument("--merge", default=None, help=f"an earlier {results}.json on the same set: keep its rows of the "
                                                   "methods not run now")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)


def the_cache(args) -> Path:
    """The folder of the drawn set (``--cache``, default /tmp/matry-peers-N), made and recorded
    in ``args`` for the worker processes."""
    cache = Path(args.cache or f"/tmp/matry-peers-{args.n}")
    args.cache = str(cache)
    cache.mkdir(parents=True, exist_ok=True)
    return cache


def earlier_rows(args, command: str) -> tuple[list[dict], list[list], list[str]]:
    """Rows, unreached [method, target] pairs and commands of ``--merge``'s run, less the methods
    run again now (empty, with this command alone, without ``--merge``)."""
    if not args.merge:
        return [], [], [command]
    earlier = json.loads(Path(args.merge).read_text())
    return ([r for r in earlier["rows"] if r["method"] not in args.methods],
            [u for u in earlier.get("unreached", []) if u[0] not in args.methods],
            earlier.get("commands", []) + [command])


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
