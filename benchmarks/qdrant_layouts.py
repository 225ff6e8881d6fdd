"""The funnel inside Qdrant Edge against Qdrant's own search and memory savers, at equal recall.

The set, queries, ground truth and funnel-aware adaptor of ``peers.py`` (the generator fitted to
the original SciFact MiniLM embeddings; recall@10 against exact search on the original vectors).
Every method runs in its own process and picks its setting the way ``peers.py`` does (the
fastest setting that promises the target on separate tuning queries by the funnel tuner's own
rule, then measured on the test queries). Methods (``--methods`` picks a subset):

* ``edge funnel adaptor @128`` — ``MatryoshkaIndex(backend="qdrant-edge")`` with its default
  layout: named vectors ``d128`` (HNSW over int8 codes in RAM, originals on disk) and ``full``
  (no graph, on disk), tuned by ``MatryoshkaIndex.tune``;
* ``... , in RAM`` — the same vectors, no codes, everything in RAM;
* ``... @64,128,256, in RAM`` — the layout the backend had before: four named vectors in RAM,
  HNSW on ``d64``;
* ``... @64`` / ``... @128,256`` — the default layout with another coarse level / a middle level;
* ``edge funnel pca @128`` — the default layout with a PCA rotation in the adaptor's place;
* ``... , m16`` — the default layout with Qdrant's own graph settings (m 16, ef_construct 100)
  instead of the backend's (m 32, ef_construct 200);
* ``edge hnsw-384`` — one Edge shard with only the full vector under HNSW, ef swept;
* ``edge hnsw-384 on disk`` — the same with the vectors memory-mapped from disk;
* ``edge hnsw-384 int8`` / ``edge hnsw-384 binary`` — Qdrant's quantization of the full vector
  (codes in RAM, originals on disk), ef x oversampling swept, rescoring on; ``..., m32``: a
  rival on the funnel's denser graph (m 32, ef_construct 200);
* ``funnel adaptor`` — the FAISS funnel of ``peers.py`` (the default index) (or, with ``--faiss-from``, its
  row from a ``peers.json`` on the same set).

Memory, per vector: the shard is built, closed, and reopened in the same process; RSS growth
(anonymous and file-backed apart) over the process before the reopen, once loaded and again
after every query was run; bytes on disk. Latency: single query, p50/p95 of each query's median
over ``--repeats`` runs (warm), and with the page cache dropped before every query (as root;
the report says when that was not allowed). Edge searches with its own thread pool.

    python benchmarks/qdrant_layouts.py --n 100000
    python benchmarks/qdrant_layouts.py            # 1M (about an hour on 2 cores)
"""
from __future__ import annotations

import argparse
import json
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import qdrant_edge as qe

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from common import EF_SWEEP, K, bulk_load, dir_bytes, percentiles  # noqa: E402
from matry_index import MatryoshkaIndex  # noqa: E402
from matry_index.backends.qdrant.schema import INT8_QUANTILE  # noqa: E402
import peers  # noqa: E402
import harness  # noqa: E402
from harness import Search, growth, memory, pick_and_measure, warm_up  # noqa: E402
from peers import funnel_adaptor  # noqa: E402

FUNNELS = {  # name: (levels, layout options)
    "edge funnel adaptor @128": ((128,), {}),
    "edge funnel adaptor @128, m16": ((128,), {"hnsw_m": 16, "ef_construct": 100}),
    "edge funnel adaptor @128, in RAM": ((128,), {"quantization": None, "on_disk": False}),
    "edge funnel adaptor @64,128,256, in RAM": ((64, 128, 256), {"quantization": None, "on_disk": False}),
    "edge funnel adaptor @64": ((64,), {}),
    "edge funnel adaptor @128,256": ((128, 256), {}),
    "edge funnel pca @128": ((128,), {}),
}
RIVALS = ("edge hnsw-384", "edge hnsw-384 on disk", "edge hnsw-384 int8", "edge hnsw-384 binary",
          "edge hnsw-384 int8, m32", "edge hnsw-384, m32")
METHODS = tuple(FUNNELS) + RIVALS + ("funnel adaptor",)
DEFAULT_METHODS = ("edge funnel adaptor @128", "edge funnel adaptor @128, in RAM", "edge funnel pca @128",
                   "edge hnsw-384", "edge hnsw-384 int8", "edge hnsw-384 binary", "edge hnsw-384 on disk",
                   "funnel adaptor")
OVERSAMPLING = {"int8": (1.5, 2.0, 3.0), "binary": (2.0, 4.0, 8.0, 16.0, 32.0)}
EDGE_M, EDGE_EF_CONSTRUCT = 16, 100  # Qdrant's defaults, for every rival graph unless ", m32"
WIDE = {"hnsw_m": 32, "ef_construct": 200}  # the ", m32" graphs: the funnel backend's defaults
#: Edge's own HNSW at 1M needs walks far wider than FAISS's sweep (its funnel took ef 4,000)
EDGE_EF_SWEEP = EF_SWEEP + (1536, 2048, 3072, 4096)
INGEST_BATCH = 2_000


# --- cold latency ----------------------------------------------------------------------------
def dropped_cache_latency(search: Search, queries: np.ndarray) -> dict | str:
    """Single-query latency with the whole page cache dropped before every query (root only):
    what a query costs when nothing on disk is cached. A string says why it was not measured."""
    times = []
    try:
        for q in queries:
            subprocess.run(["sync"], check=True)
            Path("/proc/sys/vm/drop_caches").write_text("1\n")
            t0 = time.perf_counter()
            search(q[None, :])
            times.append(time.perf_counter() - t0)
    except OSError as exc:
        return f"not measured: {exc}"
    return percentiles(times)


def finish(rows: list[dict], search_of: dict, before: dict, n: int, data: dict, args) -> None:
    """Add memory after the queries and cold latency to each row, and print it again whole."""
    after = growth(before, n, data)
    for row in rows:
        row.update({f"{k}_after_queries": v for k, v in after.items()})
        row["cold_page_cache_dropped"] = dropped_cache_latency(search_of[row["target"]],
                                                               data["queries"][:args.cold_queries])
        print("ROW " + json.dumps(row), flush=True)


# --- the funnel through MatryoshkaIndex ---------------------------------------------------------
def run_edge_funnel(name: str, data: dict, args, cache: Path) -> None:
    levels, layout = FUNNELS[name]
    n = len(data["base"])
    shard, saved = cache / "edge" / "shard", cache / "edge" / "index"
    shutil.rmtree(cache / "edge", ignore_errors=True)
    kind = name.split()[2]
    index, ingest, build = bulk_load(data["base"], levels, backend="qdrant-edge", path=str(shard),
                                     adaptor=funnel_adaptor(kind, data, cache), **layout)
    index.save(saved)
    index.close()
    del index
    disk = dir_bytes(shard) / n
    data.pop("base")  # the raw set's pages are the benchmark's input, not the shard's
    before = memory()
    index = MatryoshkaIndex.load(saved)
    used = {key: index.backend.options[key] for key in ("quantization", "on_disk", "hnsw_m", "ef_construct")}
    extra = {"ingest_seconds": ingest, "build_seconds": build, "levels": list(index.levels), "layout": used,
             "disk_bytes_per_vector": disk,
             **{f"{k}_at_load": v for k, v in growth(before, n, data).items()}}
    rows, search_of = [], {}
    for target in args.targets:
        t0 = time.perf_counter()
        plan = index.tune(data["tune"], target_recall=target, k=K)
        search = peers._ids(index)
        label = plan.describe() + ("" if plan.ef or plan.exact else f", ef {plan.ef_for(plan.candidates[0])}")
        row = pick_and_measure(name, [(label, search)],
                               data, target, args, {**extra, "tune_seconds": time.perf_counter() - t0})
        if row:
            rows.append(row)
            search_of[target] = search
    finish(rows, search_of, before, n, data, args)
    index.close()
    shutil.rmtree(cache / "edge", ignore_errors=True)


# --- Qdrant's own search on the full vector -----------------------------------------------------
def rival_config(name: str) -> "qe.EdgeConfig":
    """One named vector ``full`` under HNSW: float in RAM, float on disk, or codes in RAM with
    the originals on disk."""
    base, _, graph = name.partition(", ")
    codes = {"edge hnsw-384 int8": qe.ScalarQuantizationConfig(type=qe.ScalarType.Int8, quantile=INT8_QUANTILE,
                                                                memory=qe.Memory.Pinned),
             "edge hnsw-384 binary": qe.BinaryQuantizationConfig(memory=qe.Memory.Pinned)}.get(base)
    cold = codes is not None or base.endswith("on disk")
    vector = qe.EdgeVectorParams(size=384, distance=qe.Distance.Dot, quantization_config=codes,
                                 memory=qe.Memory.Cold if cold else qe.Memory.Cached)
    m, ef_construct = (WIDE["hnsw_m"], WIDE["ef_construct"]) if graph == "m32" else (EDGE_M, EDGE_EF_CONSTRUCT)
    return qe.EdgeConfig(vectors={"full": vector}, hnsw_config=qe.HnswIndexConfig(
        m=m, ef_construct=ef_construct, full_scan_threshold=10_000))


def edge_search(shard: "qe.EdgeShard", params: "qe.SearchParams") -> Search:
    """Top-K ids (and payloads, as the funnel returns them) for a batch of raw queries."""
    def search(q: np.ndarray) -> np.ndarray:
        unit = q / np.linalg.norm(q, axis=1, keepdims=True)
        results = shard.query_batch(qe.QueryBatchRequest([
            qe.QueryRequest(limit=K, query=qe.Query.Nearest(v, using="full"), params=params, with_payload=True)
            for v in unit]))
        out = np.full((len(q), K), -1, np.int64)
        for i, points in enumerate(results):
            out[i, :len(points)] = [p.id for p in points]
        return out
    return search


def rival_settings(name: str, shard: "qe.EdgeShard") -> list[tuple[str, Search]]:
    codes = name.partition(", ")[0].split()[-1]
    if codes not in OVERSAMPLING:
        return [(f"ef={ef}", edge_search(shard, qe.SearchParams(hnsw_ef=ef))) for ef in EDGE_EF_SWEEP]
    return [(f"ef={ef},oversampling={o}", edge_search(shard, qe.SearchParams(
        hnsw_ef=ef, quantization=qe.QuantizationSearchParams(rescore=True, oversampling=o))))
        for ef in EDGE_EF_SWEEP for o in OVERSAMPLING[codes]]


def run_edge_rival(name: str, data: dict, args, cache: Path) -> None:
    base, n = data["base"], len(data["base"])
    path = cache / "edge-rival"
    shutil.rmtree(path, ignore_errors=True)
    shard = qe.EdgeShard.create(str(path), rival_config(name))
    t0 = time.perf_counter()
    for s in range(0, n, INGEST_BATCH):
        chunk = np.asarray(base[s:s + INGEST_BATCH], np.float32)
        chunk = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
        shard.update(qe.UpdateOperation.upsert_points(
            [qe.Point(s + r, {"full": v}, {"_matry_id": s + r}) for r, v in enumerate(chunk)]))
    ingest = time.perf_counter() - t0
    t0 = time.perf_counter()
    shard.optimize()
    build = time.perf_counter() - t0
    shard.flush()
    shard.close()
    del base, shard
    disk = dir_bytes(path) / n
    data.pop("base")  # the raw set's pages are the benchmark's input, not the shard's
    before = memory()
    shard = qe.EdgeShard.load(str(path))
    extra = {"ingest_seconds": ingest, "build_seconds": build, "levels": [384], "disk_bytes_per_vector": disk,
             **{f"{k}_at_load": v for k, v in growth(before, n, data).items()}}
    settings = rival_settings(name, shard)
    rows, search_of = [], {}
    for target in args.targets:
        row = pick_and_measure(name, settings, data, target, args, extra)
        if row:
            rows.append(row)
            search_of[target] = dict(settings)[row["setting"]]
    finish(rows, search_of, before, n, data, args)
    shard.close()
    shutil.rmtree(path, ignore_errors=True)


def worker(name: str, args) -> None:
    cache = Path(args.cache)
    warm_up()
    data = harness.load_set(cache)
    if name in FUNNELS:
        run_edge_funnel(name, data, args, cache)
    elif name in RIVALS:
        run_edge_rival(name, data, args, cache)
    else:
        peers.run_funnel(name, data, args, cache)


# --- report ----------------------------------------------------------------------------------
def proactive_reclaim() -> str:
    """A sentence on the kernel's proactive reclaim where it runs (DAMON paging out memory a
    process has not touched for a while): it decides whether memory-mapped vectors stay
    resident, so a report measured under it says so."""
    for scheme in Path("/sys/kernel/mm/damon/admin/kdamonds").glob("*/contexts/*/schemes/*"):
        try:
            state = (scheme.parents[3] / "state").read_text().strip()
            action = (scheme / "action").read_text().strip()
            min_age = int((scheme / "access_pattern/age/min").read_text())
            interval_us = int((scheme.parents[1] / "monitoring_attrs/intervals/aggr_us").read_text())
        except (OSError, ValueError):
            continue
        if state == "on" and action == "pageout":
            return (f"This machine runs DAMON proactive reclaim: memory not touched for about "
                    f"{min_age * interval_us / 1e6:.0f} s is paged out, so memory-mapped vectors (Qdrant's "
                    "`Cached` and `Cold` alike) are read back from disk more often than on a server without it; "
                    "pinned codes and anonymous memory are not affected.")
    return ""



def _mb(row: dict, key: str) -> str:
    value = row.get(key, row.get(key.replace("_at_load", "")))
    return "–" if value is None else f"{value:.0f}"


def _cold(row: dict) -> str:
    value = row.get("cold_page_cache_dropped")
    if value is None:
        return "–"
    return value if isinstance(value, str) else f"{value['p50_ms']:.2f} / {value['p95_ms']:.2f}"


def report(rows: list[dict], args, path: Path, commands: list[str], unreached: list[list],
           notes: list[str] = ()) -> str:
    lines = [f"# Qdrant layouts: the funnel in Qdrant Edge against Qdrant's own search ({args.n:,} x 384, "
             f"{platform.platform()})", "",
             "The set, queries and adaptor of `peers.py`; recall@10 against exact search on the original vectors. "
             "Each method's setting is the fastest reaching the target on each half of separate tuning queries, "
             "measured on the test queries. p50/p95: one query per call (Edge uses its own search threads), each "
             "query's median of several runs; cold: the page cache dropped before every query. Memory: growth of "
             "the process per vector once the shard is reopened (RAM = anonymous, map = file-backed pages, "
             "i.e. memory-mapped files the OS may drop and read again), and again after all queries ran; "
             "disk: the shard's files.", "", "Commands (a later one replaces the rows of the methods it reruns):", ""]
    lines += [f"    {c}" for c in commands] + [""] + [f"{note}\n" for note in [*notes, proactive_reclaim()] if note]
    for target in args.targets:
        at = sorted((r for r in rows if r["target"] == target), key=lambda r: r["p50_ms"])
        lines += harness.target_table(at, target, unreached, [
            "cold p50 / p95 ms", "build s", "RAM B/vec at load", "map B/vec at load",
            "RAM + map B/vec after queries", "disk B/vec"], lambda r: [
            _cold(r), f"{r['build_seconds']:.0f}", _mb(r, "anon_bytes_per_vector_at_load"),
            _mb(r, "file_bytes_per_vector_at_load"), f"{after_queries(r):.0f}", _mb(r, "disk_bytes_per_vector")])
        lines += [""] + verdict(at, target, [m for m, t in unreached if t == target]) + [""]
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    return text


def after_queries(row: dict) -> float:
    """RAM and mapped pages once every query ran (the FAISS row: its one measurement)."""
    return (row.get("anon_bytes_per_vector_after_queries", row.get("anon_bytes_per_vector", 0))
            + row.get("file_bytes_per_vector_after_queries", row.get("file_bytes_per_vector", 0)))


def resident(row: dict) -> float:
    """What the method keeps in memory once loaded: its RAM and the mapped pages it loads (for
    the FAISS row, whose process is measured once after its build, that growth)."""
    return (row.get("anon_bytes_per_vector_at_load", row.get("anon_bytes_per_vector", 0))
            + row.get("file_bytes_per_vector_at_load", row.get("file_bytes_per_vector", 0)))


def verdict(at: list[dict], target: float, unreached: list[str]) -> list[str]:
    """The bars, checked on this table: the default Edge funnel against Edge's own HNSW on the
    full vector (no slower, at most half the memory) and against each of Qdrant's savers."""
    ours = next((r for r in at if r["method"] == "edge funnel adaptor @128"), None)
    hnsw = next((r for r in at if r["method"] == "edge hnsw-384"), None)
    savers = [r for r in at if r["method"].startswith("edge hnsw-384 ")]
    if ours is None:
        return []
    out = []
    if hnsw is not None:
        met = ours["p50_ms"] <= hnsw["p50_ms"] and resident(ours) <= resident(hnsw) / 2
        out.append(f"- Default Edge funnel vs Edge HNSW-384 ({hnsw['setting']}): p50 {ours['p50_ms']:.3f} vs "
                   f"{hnsw['p50_ms']:.3f} ms ({hnsw['p50_ms'] / ours['p50_ms']:.2f}x); memory at load "
                   f"{resident(ours):.0f} vs {resident(hnsw):.0f} B/vector ({resident(ours) / resident(hnsw):.2f}); "
                   f"{'meets' if met else 'misses'} the bar (no slower, at most half).")
    for method in unreached:
        if method.startswith("edge hnsw-384"):
            out.append(f"- {method} reached recall {target} at none of its swept settings; the default Edge "
                       f"funnel did, at {ours['p50_ms']:.3f} ms and {resident(ours):.0f} B/vector.")
    for r in savers:
        out.append(f"- vs {r['method']} ({r['setting']}, test recall {r['recall@10']:.4f}): p50 {r['p50_ms']:.3f} ms "
                   f"({r['p50_ms'] / ours['p50_ms']:.2f}x ours), memory at load {resident(r):.0f} B/vector "
                   f"({resident(r) / resident(ours):.2f}x ours).")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    harness.set_arguments(ap, METHODS, DEFAULT_METHODS, (0.99,), cold_queries=50, results="qdrant_layouts")
    ap.add_argument("--faiss-from", default=None, help="a peers.json on the same set: take its FAISS funnel rows "
                                                       "(funnel adaptor @128) instead of measuring them again")
    args = ap.parse_args()
    args.m, args.ef_construction = EDGE_M, EDGE_EF_CONSTRUCT  # read by peers' helpers
    cache = harness.the_cache(args)
    if args.worker:
        worker(args.worker, args)
        return
    peers.prepare(args, cache, fidelity=False)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "qdrant_layouts" + ("" if args.n == 1_000_000 else f"-{args.n}")
    command = "python benchmarks/qdrant_layouts.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    rows, unreached, commands = harness.earlier_rows(args, command)
    notes = json.loads(Path(args.merge).read_text()).get("notes", []) if args.merge else []
    if args.faiss_from:
        taken = [{**r, "measured_in": args.faiss_from} for r in json.loads(Path(args.faiss_from).read_text())["rows"]
                 if r["method"] == "funnel adaptor" and r["target"] in args.targets]
        rows = [r for r in rows if r["method"] != "funnel adaptor"] + taken
    text = ""
    for _, found, missed in harness.run_workers(__file__, args.methods, sys.argv[1:]):
        rows += found
        unreached += missed
        (out / f"{stem}.json").write_text(json.dumps({"n": args.n, "commands": commands, "rows": rows,
                                                      "unreached": unreached, "notes": notes,
                                                      "platform": platform.platform()}, indent=1))
        text = report(rows, args, out / f"{stem}.md", commands, unreached, notes)
    print(text)


if __name__ == "__main__":
    main()
