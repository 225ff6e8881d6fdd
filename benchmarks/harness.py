"""What every benchmark on the drawn synthetic set shares: one process per method, one rule.

``peers.py`` (the funnel against the strongest ANN libraries) and ``qdrant_layouts.py`` (the
funnel inside Qdrant against Qdrant's own layouts) run each method in a process of its own
(:func:`run_workers`), so that its resident memory is its own (:func:`memory`, :func:`growth`),
and pick each method's setting by one rule (:func:`pick_and_measure`): the fastest setting, on
the tuning queries, among those that promise the target by the funnel tuner's own rule
(:class:`matry_index.tuning.Promise`), then measured on the test queries.
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import faiss
import numpy as np

from common import RESULTS, SHARED_DATA, recall, timed_batch, timed_single
from matry_index.adaptor.linear import Affine
from matry_index.tuning import Promise, per_query_recall

Search = Callable[[np.ndarray], np.ndarray]  # queries (raw) -> (nq, K) ids


def pick_and_measure(name: str, settings: Iterable[tuple[str, Search]], data: dict, target: float,
                     args, extra: dict) -> dict | None:
    """Among ``settings`` that promise ``target`` on new queries by the funnel tuner's own rule
    (:class:`~matry_index.tuning.Promise`: the target plus a margin from the tuning queries'
    spread, on each half of them), the fastest on the tuning queries; its test recall, p50/p95
    and batch QPS. None when no setting qualifies."""
    tune_q, tune_truth = data["tune"], data["tune_truth"]
    promise = Promise(target, len(tune_q))
    faiss.omp_set_num_threads(args.threads)
    qualifying = [(label, fn) for label, fn in settings
                  if promise.record(per_query_recall(fn(tune_q), tune_truth))["passes"]]
    if not qualifying:
        print(f"{name}: no setting reaches {target}", flush=True)
        return None
    if len(qualifying) > 1:
        speed = [timed_single(lambda q, fn=fn: fn(q), tune_q[:100], 1)["p50_ms"] for _, fn in qualifying]
        label, fn = qualifying[int(np.argmin(speed))]
    else:
        label, fn = qualifying[0]
    faiss.omp_set_num_threads(args.threads)
    queries, truth = data["queries"], data["truth"]
    row = {"method": name, "target": target, "setting": label, "recall@10": recall(fn(queries), truth),
           **timed_single(fn, queries[:args.latency_queries], args.repeats),
           "batch_qps": timed_batch(fn, queries, args.threads), **extra}
    print("ROW " + json.dumps(row), flush=True)
    return row


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


def warm_up(rows: int = 100_000) -> None:
    """Run the array operations a build makes once on throw-away data of one chunk's size, so
    that the fixed buffers BLAS threads and heap arenas keep afterwards (tens of MB per process,
    whatever the index's size) are in the baseline and not counted per vector — both BLAS
    libraries': numpy's, and FAISS's own, which the adaptor's products and FAISS's transforms use
    (about 80 MB of buffers on this machine)."""
    x = np.random.default_rng(0).random((rows, 384), dtype=np.float32)
    y = x @ np.eye(384, dtype=np.float32)
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    y = Affine(np.eye(384, dtype=np.float32))(x)
    del x, y


def load_set(cache: Path) -> dict:
    """The drawn set of ``cache``: the base memory-mapped, queries and ground truths in memory."""
    return {key: np.load(cache / f"{key}.npy", mmap_mode="r" if key == "base" else None)
            for key in ("base", "queries", "truth", "tune", "tune_truth")}


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
        lines.append(f"\nNo swept setting promised it on the tuning queries: {', '.join(missed)}.")
    return lines


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
    ap.add_argument("--cache", default=None, help="folder for the drawn set (default: /tmp/matry-peers-N[-MODEL])")
    ap.add_argument("--query-model", default="document", choices=("document", "centroid"),
                    help="how the generator draws queries (benchmarks/synthetic.py): near a document, or around "
                         "a cluster centre like a document")
    ap.add_argument("--out", default=str(RESULTS), help=f"folder for {results}.json and .md")
    ap.add_argument("--merge", default=None, help=f"an earlier {results}.json on the same set: keep its rows of the "
                                                   "methods not run now")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)


def the_cache(args) -> Path:
    """The folder of the drawn set (``--cache``, default /tmp/matry-peers-N, with the query model
    appended when it is not the default), made and recorded in ``args`` for the worker processes."""
    model = "" if getattr(args, "query_model", "document") == "document" else f"-{args.query_model}"
    cache = Path(args.cache or f"/tmp/matry-peers-{args.n}{model}")
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

