"""Qdrant Edge benchmark: the Edge funnel against Edge full-dimension HNSW and the FAISS funnel.

At each ``--sizes`` (default 100k and 1M) vectors of 384 dims drawn from the generator of
:mod:`synthetic` (fitted to adapted SciFact MiniLM embeddings; see ``scale.py``):

* ``edge-funnel``   ``MatryoshkaIndex(backend="qdrant-edge")``: HNSW on ``d64``, nested
                    prefetch rescoring on ``d128`` / ``d256`` / ``full``, plan tuned to
                    recall@10 ≥ 0.99 on separate tuning queries;
* ``edge-full``     one Edge shard with only the full vector under HNSW (same M), ef swept;
* ``faiss-funnel``  ``MatryoshkaIndex(backend="faiss")``, tuned the same way.

Reported: recall@10 against exact search, p50/p95 single-query latency (one query at a
time; Edge uses its own search threads), ingest and build (optimize) time, bytes on disk and
resident memory per vector. Never use qdrant-client's local mode for such numbers: it is a
numpy scan.

    python benchmarks/edge_funnel.py --sizes 100000
"""
from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
import qdrant_edge as qe

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from matry_index.experiment import load_experiment  # noqa: E402
from common import (EF_SWEEP, K, LEVELS, dir_bytes, draw_set, ground_truth, measure_index, recall,  # noqa: E402
                    rss_bytes, saved_or_fitted_adaptor, timed_single)
from synthetic import EmbeddingGenerator  # noqa: E402

def edge_full_run(base, queries, truth, args, tmp: Path) -> list[dict]:
    rss0 = rss_bytes()
    cfg = qe.EdgeConfig(vectors={"full": qe.EdgeVectorParams(size=384, distance=qe.Distance.Dot)},
                        hnsw_config=qe.HnswIndexConfig(m=args.m, ef_construct=args.ef_construction,
                                                       full_scan_threshold=10_000))
    shard = qe.EdgeShard.create(str(tmp / "edge-full"), cfg)
    t0 = time.perf_counter()
    for s in range(0, len(base), 2_000):
        shard.update(qe.UpdateOperation.upsert_points(
            [qe.Point(int(i), {"full": base[i]}) for i in range(s, min(len(base), s + 2_000))]))
    ingest = time.perf_counter() - t0
    t0 = time.perf_counter()
    shard.optimize()
    build = time.perf_counter() - t0
    shard.flush()
    rss = (rss_bytes() - rss0) / len(base)
    disk = dir_bytes(tmp / "edge-full") / len(base)
    rows = []
    for ef in EF_SWEEP[:6]:  # up to 512, as in the committed report
        def search(q, ef=ef):
            return shard.query_batch(qe.QueryBatchRequest([
                qe.QueryRequest(limit=K, query=qe.Query.Nearest(v.tolist(), using="full"),
                                params=qe.SearchParams(hnsw_ef=ef)) for v in q]))
        found = np.array([[p.id for p in pts] for pts in search(queries)])
        rows.append({"method": f"edge-full ef={ef}", "n": len(base), "recall@10": recall(found, truth),
                     **timed_single(search, queries[: args.latency_queries], args.repeats),
                     "ingest_seconds": ingest, "build_seconds": build,
                     "bytes_per_vector_on_disk": disk, "rss_bytes_per_vector": rss})
        print(json.dumps(rows[-1]), flush=True)
    shard.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--latency-queries", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--m", type=int, default=16)
    parser.add_argument("--ef-construction", "--ef-construct", dest="ef_construction", type=int, default=100,
                        help="HNSW build beam (FAISS efConstruction, Qdrant ef_construct)")
    parser.add_argument("--target", type=float, default=0.99)
    parser.add_argument("--adaptor", default=None, help="a saved adaptor (default: fit one, seed 0)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = parser.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    exp = load_experiment(REPO.parent / "shared" / "data" / "scifact")
    adaptor = saved_or_fitted_adaptor(exp, args.adaptor)
    train_q, _ = exp.relevance("train")
    gen = EmbeddingGenerator.fit(adaptor.transform(exp.corpus.vectors), adaptor.transform(train_q))
    report = {"machine": platform.platform(), "faiss": faiss.__version__, "hnsw_m": args.m,
              "ef_construct": args.ef_construction, "rows": []}
    for n in args.sizes:
        base, queries, tune_q = draw_set(gen, n, args.queries)
        truth, flat = ground_truth(base, queries, threads=2)
        del flat
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            common = {"levels": LEVELS, "targets": (args.target,), "latency_queries": args.latency_queries,
                      "repeats": args.repeats, "tmp": tmp, "chunk": 50_000}
            report["rows"] += measure_index("edge-funnel", base, tune_q, queries, truth, **common,
                                            backend="qdrant-edge", path=str(tmp / "edge-funnel"),
                                            hnsw_m=args.m, ef_construct=args.ef_construction)
            gc.collect()
            report["rows"] += edge_full_run(base, queries, truth, args, tmp)
            gc.collect()
            faiss.omp_set_num_threads(2)
            report["rows"] += measure_index("faiss-funnel", base, tune_q, queries, truth, **common,
                                            coarse="hnsw", hnsw_m=args.m, ef_construction=args.ef_construction,
                                            deferred_build=True)
        del base
        gc.collect()
        (Path(args.out) / "edge_funnel.json").write_text(json.dumps(report, indent=2))
    md = ["# Qdrant Edge vs FAISS, funnel vs full-dimension HNSW", "",
          f"{report['machine']}; HNSW M={args.m}, ef_construct={args.ef_construction}; latency = one query at a time", "",
          "| n | method | recall@10 | p50 ms | p95 ms | ingest s | build s | disk B/vec | RSS B/vec |",
          "|---|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        md.append(f"| {r['n']:,} | {r['method']} | {r['recall@10']:.4f} | {r['p50_ms']:.3f} | {r['p95_ms']:.3f} | "
                  f"{r['ingest_seconds']:.1f} | {r['build_seconds']:.1f} | {r['bytes_per_vector_on_disk']:.0f} | "
                  f"{r['rss_bytes_per_vector']:.0f} |")
    (Path(args.out) / "edge_funnel.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
