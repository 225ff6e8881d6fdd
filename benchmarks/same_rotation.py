"""The funnel against FAISS's own refine pipeline given the same rotation, on every set we have.

The default ``MatryoshkaIndex(384, adaptor=R)`` (IVF with 8-bit codes on the 128-d prefix,
exact rescoring on the full vectors, one ``IndexRefine`` call: the native funnel) is compared
with the pipeline an expert writes in FAISS around the same rotation ``R`` —
``IndexRefineFlat(IndexPreTransform(LinearTransform(R[:, :128]), IVF{nlist},SQ8))``, inner
product, the same list count — so that the only differences are the two engines' own choices
(code, probing, candidate handling, the Python around the call). Rotations: PCA of each set's
documents, and on the drawn set also the funnel-aware adaptor (``--adaptor``).

Sets: SciFact and docstrings (the real MiniLM vectors; train queries tune, test queries
measure) and the drawn set of ``peers.py`` (``--n``, its tuning and test queries). Each setting
is chosen by the rule of ``harness.pick_and_measure`` (the tuner's promise on the tuning
queries, then the fastest), recall@10 against exact search on the original vectors, p50 one
thread, one query per call, batch QPS with every core.

    python benchmarks/same_rotation.py --adaptor /tmp/matry-peers-200000/adaptor

Writes ``benchmarks/results/same_rotation.json`` and ``.md``.
"""
from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
from pathlib import Path

import faiss
import numpy as np

from common import RESULTS, SHARED_DATA, K
from harness import load_set, pick_and_measure
from matry_index import MatryoshkaAdaptor, MatryoshkaIndex
from matry_index._fs import atomic_write_text
from matry_index._validation import normalize_rows
from matry_index.backends.faiss.coarse import default_nlist
from matry_index.bench.measure import hit_ids
from matry_index.evaluation.baselines import PCARotation
from matry_index.evaluation.funnel_need import full_dimension_top_k
from matry_index.experiment import load_experiment

TARGETS = (0.99, 0.995)
PROBES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)
CANDIDATES = (20, 30, 40, 60, 80, 100, 140, 200, 300, 400, 600)
LEVELS = (32, 64, 128, 192, 256)


def real_set(name: str) -> dict:
    """A shared BEIR set: its documents, train queries to tune on, test queries to measure."""
    folder = SHARED_DATA / name
    exp = load_experiment(folder, folder / "embeddings" / "all-MiniLM-L6-v2")
    base = normalize_rows(exp.corpus.vectors)
    tune, queries = normalize_rows(exp.relevance("train")[0]), normalize_rows(exp.relevance("test")[0])
    return {"base": base, "tune": tune, "queries": queries, "tune_truth": full_dimension_top_k(tune, base, K),
            "truth": full_dimension_top_k(queries, base, K)}


def drawn_set(n: int) -> dict:
    cache = Path(f"/tmp/matry-peers-{n}")
    if not (cache / "truth.npy").exists():
        sys.exit(f"{cache} has no drawn set: `python benchmarks/peers.py --n {n}` draws it")
    return load_set(cache)


def ours(data: dict, adaptor: MatryoshkaAdaptor, target: float, args) -> dict | None:
    index = MatryoshkaIndex(data["base"].shape[1], adaptor=adaptor)
    index.add(np.arange(len(data["base"])), data["base"])
    plan = index.tune(data["tune"], target_recall=target, k=K, apply=False)
    search = lambda q: hit_ids(index.search(q, k=K, plan=plan), K)  # noqa: E731
    extra = {"layout": f"levels {index.levels}, {index.backend.coarse.code.name}"}
    return pick_and_measure("matry_index", [(plan.describe(), search)], data, target, args, extra)


def faiss_same_rotation(data: dict, rotation: np.ndarray, target: float, args) -> dict | None:
    """``IndexRefineFlat`` over an IVF-SQ8 index of the rotation's 128-d prefix, nprobe ×
    candidates swept."""
    base = data["base"]
    n, dim = base.shape
    nlist = default_nlist(n)
    transform = faiss.LinearTransform(dim, 128, False)
    faiss.copy_array_to_vector(np.ascontiguousarray(rotation[:, :128].T).ravel(), transform.A)
    transform.is_trained = True
    ivf = faiss.index_factory(128, f"IVF{nlist},SQ8", faiss.METRIC_INNER_PRODUCT)
    coarse = faiss.IndexPreTransform(transform, ivf)
    refine = faiss.IndexRefineFlat(coarse)
    sample = np.sort(np.random.default_rng(0).permutation(n)[:256 * nlist])
    refine.train(np.ascontiguousarray(base[sample]))
    refine.add(base)

    def setting(nprobe: int, count: int):
        inner = faiss.SearchParametersIVF(nprobe=nprobe)
        params = faiss.IndexRefineSearchParameters(k_factor=count / K, base_index_params=inner)
        params.refs = inner
        return (f"nprobe={nprobe},candidates={count}",
                lambda q: refine.search(np.ascontiguousarray(q, np.float32), K, params=params)[1])
    settings = [setting(p, c) for p in PROBES if p <= nlist for c in CANDIDATES]
    return pick_and_measure("faiss, same rotation", settings, data, target, args, {"nlist": nlist})


def report(rows: list[dict], command: str) -> str:
    lines = [f"# The funnel against FAISS's refine pipeline with the same rotation ({platform.platform()})", "",
             __doc__.split("\n\n")[1].replace("\n", " "), "", f"Command: `{command}`", "",
             "| set | rotation | target | matry_index p50 ms | QPS | recall | plan | FAISS p50 ms | QPS | recall | setting "
             "| ratio |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        a, b = r["ours"], r["faiss"]
        cells = [r["set"], r["rotation"], str(r["target"])]
        for row, none in ((a, "no plan"), (b, "no setting")):
            cells += ([f"{row['p50_ms']:.3f}", f"{row['batch_qps']:.0f}", f"{row['recall@10']:.4f}", row["setting"]]
                      if row else [none, "", "", ""])
        cells.append(f"{b['p50_ms'] / a['p50_ms']:.2f}x" if a and b else "")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "p50: one thread, one query per call (the median of each query's repeats); QPS: one batch call "
              "with every core; ratio: FAISS's p50 over ours (above 1: the funnel is faster)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200_000, help="the drawn set's size (its cache must exist)")
    ap.add_argument("--adaptor", default=None, help="a funnel-aware adaptor for the drawn set")
    ap.add_argument("--sets", nargs="+", default=["scifact", "docstrings", "drawn"])
    ap.add_argument("--latency-queries", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="threads of the batch call (latency: one)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    faiss.omp_set_num_threads(1)
    rows = []
    for name in args.sets:
        data = drawn_set(args.n) if name == "drawn" else real_set(name)
        label = f"drawn {args.n:,}" if name == "drawn" else name
        sample = data["base"][:: max(1, len(data["base"]) // 100_000)]
        rotations = {"PCA": PCARotation.fit(sample).components}
        if name == "drawn" and args.adaptor:
            rotations["funnel-aware adaptor"] = MatryoshkaAdaptor.load(args.adaptor).rotation
        for rot_name, rotation in rotations.items():
            adaptor = MatryoshkaAdaptor(data["base"].shape[1], LEVELS, rotation=rotation)
            for target in TARGETS:
                rows.append({"set": label, "rotation": rot_name, "target": target,
                             "ours": ours(data, adaptor, target, args),
                             "faiss": faiss_same_rotation(data, rotation, target, args)})
                print(json.dumps(rows[-1]), flush=True)
    out = Path(args.out)
    command = "python benchmarks/same_rotation.py " + shlex.join(sys.argv[1:])
    atomic_write_text(out / "same_rotation.json", json.dumps(rows, indent=1))
    atomic_write_text(out / "same_rotation.md", report(rows, command))


if __name__ == "__main__":
    main()
