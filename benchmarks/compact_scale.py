"""A compact index beside the funnel at scale: latency, recall and memory on the drawn set.

On the set of ``peers.py`` (generated from the original SciFact MiniLM vectors; ``--n`` records,
1M by default, drawn into the same cache), two indexes of the same raw vectors:

* **the funnel** — ``MatryoshkaIndex(384, adaptor=funnel-aware)``, the default layout (IVF with
  8-bit codes on the 128-d prefix, exact rescoring with the full vectors), tuned to recall@10
  0.99 against its exact full-dimension ranking;
* **the compact index** — ``MatryoshkaIndex(384, adaptor=nDCG-oriented, levels=(64, 128),
  full=False, codes=...)``: only the 128-d prefix, as 8-bit codes (and float16 with
  ``--codes``), its coarse stage the default 4-bit fast-scan codes of the 64-d prefix and,
  for comparison, 8-bit codes (``--compact-coarse``), tuned to recall@10 0.99 against *its own* exhaustive ranking (what it can
  promise: its rankings are the prefix's).

Each is tuned on the tuning queries with ``MatryoshkaIndex.tune`` and measured on the test
queries: recall@10 against its own exact ranking, single-thread p50/p95 (one query per call, the
median of ``--repeats`` runs each), batch QPS (2 threads), build and tune seconds, bytes per
vector in RAM by part (``stats()``) and the process's resident growth per vector.

    python benchmarks/compact_scale.py                 # 1M x 384 (~25 min on 2 cores)
    python benchmarks/compact_scale.py --n 200000

Writes ``benchmarks/results/compact_scale[-N].json`` and ``.md``.
"""
from __future__ import annotations

import argparse
import gc
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from common import RESULTS, SHARED_DATA, K, recall, timed_batch, timed_single
from harness import memory, the_cache, warm_up
from matry_index import FunnelPlan, MatryoshkaAdaptor, MatryoshkaIndex
from matry_index._fs import atomic_write_text
from matry_index.bench.measure import hit_ids

TARGET = 0.99
CHUNK = 100_000


def prefix_adaptor(cache: Path, data: Path, threads: int, saved: str | None) -> MatryoshkaAdaptor:
    """The nDCG-oriented (prefix) unsupervised adaptor a compact index is meant for: ``saved``,
    or one fitted on the real SciFact corpus and train queries (seed 0), kept in the cache."""
    path = Path(saved) if saved else cache / "prefix-adaptor"
    if not path.exists():
        from matry_index.adaptor import TrainConfig, fit_unsupervised
        from matry_index.experiment import load_experiment
        exp = load_experiment(data, data / "embeddings" / "all-MiniLM-L6-v2")
        fit = fit_unsupervised(exp.corpus.vectors, queries=exp.relevance("train")[0],
                               config=TrainConfig(seed=0, threads=threads))
        fit.adaptor.save(path)
    return MatryoshkaAdaptor.load(path)


def measure(name: str, make, base: np.ndarray, tune: np.ndarray, queries: np.ndarray, args) -> dict:
    """Build (in chunks), tune to :data:`TARGET`, and measure one index against its own exact
    ranking."""
    gc.collect()
    before = memory()
    t0 = time.perf_counter()
    index: MatryoshkaIndex = make()
    for s in range(0, len(base), CHUNK):
        index.add(np.arange(s, min(len(base), s + CHUNK)), np.ascontiguousarray(base[s:s + CHUNK]))
    index.optimize()
    build = time.perf_counter() - t0
    grown = memory()
    t0 = time.perf_counter()
    plan = index.tune(tune, target_recall=TARGET, k=K)
    tuned = time.perf_counter() - t0
    exact_plan = {"exact": True} if index.full else {"plan": FunnelPlan.exhaustive(index.levels, len(index))}
    truth = hit_ids(index.search(queries, k=K, **exact_plan), K)

    def search(q: np.ndarray) -> np.ndarray:
        return hit_ids(index.search(q, k=K), K)
    stats = index.stats()
    row = {"method": name, "plan": plan.describe(), "explain": index.explain(),
           "recall@10 (own exact ranking)": recall(search(queries), truth),
           **timed_single(search, queries[:args.latency_queries], args.repeats),
           "batch_qps": timed_batch(search, queries, args.threads),
           "build_seconds": build, "tune_seconds": tuned,
           "ram_bytes_per_vector": stats.ram_per_vector, "ram_parts_per_vector":
               {part: nbytes / len(index) for part, nbytes in stats.ram.items()},
           "rss_anon_growth_per_vector": (grown["anon"] - before["anon"]) / len(index)}
    print("ROW " + json.dumps(row), flush=True)
    index.close()
    return row


def _levels(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(","))


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [f"# A compact index beside the funnel ({meta['n']:,} x 384, {meta['machine']})", "",
             "The drawn set of `peers.py` (document queries). Each index is tuned by `MatryoshkaIndex.tune` to "
             f"recall@10 {TARGET} against its own exact ranking (the funnel: full-dimension; the compact index: "
             "its stored prefix's exhaustive ranking) on the tuning queries, then measured on the test queries. "
             "p50/p95: one thread, one query per call; QPS: one batch call, 2 threads. Memory: `stats()` per vector "
             "(what the index holds, by part) and the process's resident anonymous growth over the build.",
             "", f"Command: `{meta['command']}`", "",
             "| index | plan | recall@10 (own exact) | p50 ms | p95 ms | batch QPS | build s | tune s | "
             "RAM B/vec (stats) | RSS growth B/vec | parts (B/vec) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        parts = ", ".join(f"{k} {v:.0f}" for k, v in r["ram_parts_per_vector"].items() if v)
        lines.append(f"| {r['method']} | {r['plan']} | {r['recall@10 (own exact ranking)']:.4f} | {r['p50_ms']:.3f} | "
                     f"{r['p95_ms']:.3f} | {r['batch_qps']:.0f} | {r['build_seconds']:.0f} | {r['tune_seconds']:.0f} | "
                     f"{r['ram_bytes_per_vector']:.0f} | {r['rss_anon_growth_per_vector']:.0f} | {parts} |")
    funnel = next((r for r in rows if r["method"].startswith("funnel")), None)
    for r in rows:
        if funnel and r is not funnel:
            lines.append(f"\n- {r['method']}: {r['p50_ms'] / funnel['p50_ms']:.2f}x the funnel's p50 latency, "
                         f"{r['ram_bytes_per_vector']:.0f} B/vector in RAM against {funnel['ram_bytes_per_vector']:.0f} "
                         f"({'meets' if r['ram_bytes_per_vector'] <= 200 else 'misses'} the 200 B/vector bar; "
                         f"{'meets' if r['p50_ms'] <= funnel['p50_ms'] else 'misses'} the funnel's latency).")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--tune-queries", type=int, default=1000)
    ap.add_argument("--latency-queries", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--codes", nargs="+", default=["int8"], choices=("float32", "float16", "int8"))
    ap.add_argument("--compact-levels", nargs="+", type=_levels, default=[(64, 128), (128,)],
                    help="levels of the compact indexes, e.g. 64,128 128")
    ap.add_argument("--rows-from", nargs="*", default=[],
                    help="logs of an earlier run on the same set: their ROW lines are kept, those indexes not rebuilt")
    ap.add_argument("--compact-coarse", nargs="+", default=["auto"],
                    help="coarse codes of the compact index (auto: 4-bit fast-scan codes on the 64-d prefix)")
    ap.add_argument("--data", default=str(SHARED_DATA / "scifact"))
    ap.add_argument("--adaptor", default=None, help="a saved funnel-aware adaptor (default: fit one)")
    ap.add_argument("--compact-adaptor", default=None, help="a saved prefix adaptor (default: fit one)")
    ap.add_argument("--cache", default=None)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    args.query_model = "document"
    cache = the_cache(args)
    from peers import prepare
    prepare(args, cache, fidelity=False)
    funnel_adaptor = MatryoshkaAdaptor.load(cache / "adaptor")
    compact_adaptor = prefix_adaptor(cache, Path(args.data), args.threads, args.compact_adaptor)
    base = np.load(cache / "base.npy", mmap_mode="r")
    tune, queries = np.load(cache / "tune.npy"), np.load(cache / "queries.npy")
    warm_up()
    makers = {"funnel, full vectors (default layout, funnel-aware adaptor)":
              lambda: MatryoshkaIndex(384, adaptor=funnel_adaptor)}
    for levels in args.compact_levels:
        for codes in args.codes:
            for coarse in args.compact_coarse:
                label = "" if coarse == "auto" else f", {coarse} coarse"
                makers[f"compact, levels {levels}, {codes}{label} (prefix adaptor)"] = \
                    lambda levels=levels, codes=codes, coarse=coarse: MatryoshkaIndex(
                        384, adaptor=compact_adaptor, levels=levels, full=False, codes=codes, coarse=coarse)
    earlier = [json.loads(line[4:]) for path in args.rows_from for line in Path(path).read_text().splitlines()
               if line.startswith("ROW ")]
    makers = {name: make for name, make in makers.items() if name not in {r["method"] for r in earlier}}
    rows = earlier + [measure(name, make, base, tune, queries, args) for name, make in makers.items()]
    meta = {"n": args.n, "machine": platform.platform(),
            "command": "python benchmarks/compact_scale.py " + shlex.join(sys.argv[1:])}
    out = Path(args.out)
    suffix = "" if args.n == 1_000_000 else f"-{args.n}"
    atomic_write_text(out / f"compact_scale{suffix}.json", json.dumps({"meta": meta, "rows": rows}, indent=1))
    text = markdown(rows, meta)
    atomic_write_text(out / f"compact_scale{suffix}.md", text)
    print(text)


if __name__ == "__main__":
    main()
