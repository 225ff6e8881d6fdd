"""Quality per byte: nDCG@10 against the bytes each stored vector costs, for a compact index and
for every way a user could shrink the original embeddings instead.

For each BEIR set (train split for every fit, test split for every score):

* **compact index** — ``MatryoshkaIndex(384, adaptor=..., levels=(m,), full=False, codes=...)``,
  searched exhaustively (its own exact ranking), with the supervised and the unsupervised
  adaptor (3 seeds), PCA and plain truncation, at m = 32…256, in float32 / float16 / int8; and
  the adaptor's prefix in 4-bit codes (FAISS ``QT_4bit``: not an index mode, measured to see
  whether it would pay);
* **the original embeddings, shrunk** — float32 (the reference), int8 and binary codes
  (sentence-transformers' ``quantize_embeddings``, ranges from the corpus), binary with
  rescoring (the float query against the ±1 document bits over the top 40, as
  sentence-transformers' guide does, and against int8 documents — those cost their bytes too),
  FAISS PQ and OPQ of the full vector at 16…192 bytes, and RaBitQ at 1, 2 and 4 bits.

Every score is nDCG@10 of a ranking of the whole corpus by that representation alone. Bytes per
vector are those of the stored representation (what differs between the methods); what an
index adds to it (ids, norms, its coarse structure) is measured separately for the compact
index the issue asks about: ``stats()`` in RAM and a save's size on disk of a
``levels=(64, 128), full=False, codes="int8"`` index with the supervised adaptor.

    python benchmarks/compact.py                       # SciFact + docstrings, 3 seeds (~65 min on 2 cores)
    python benchmarks/compact.py --report-only --refresh-footprint   # redraw; measure the index bytes again
    python benchmarks/compact.py --sets scifact --seeds 0

Writes ``benchmarks/results/compact.json``, ``compact.md`` and ``compact_<set>.png``.
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from matry_index import FunnelPlan, MatryoshkaAdaptor, MatryoshkaIndex  # noqa: E402
from matry_index._fs import atomic_write_text  # noqa: E402
from matry_index._validation import normalize_rows  # noqa: E402
from matry_index.evaluation.baselines import PCARotation  # noqa: E402
from matry_index.evaluation.metrics import ndcg_at_k  # noqa: E402
from matry_index.evaluation.report import save_figure, summarize  # noqa: E402
from matry_index.experiment import fit_adaptors, load_experiment  # noqa: E402
from matry_index.kernels import exact_top_k, unit_prefix  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
PREFIXES = (32, 64, 128, 256)
INDEX_CODES = ("float32", "float16", "int8")
CODE_BYTES = {"float32": 4, "float16": 2, "int8": 1}
PQ_BYTES = (16, 32, 48, 64, 96, 128, 192)
RABITQ_BITS = (1, 2, 4)
OPQ_ITERATIONS = 20  # of the rotation (FAISS default 50): the codes are what is compared, not the fit time
K = 10
RESCORE_POOL = 40  # binary rescoring looks again at 4 × k candidates
Ranker = Callable[[], np.ndarray]  # -> (queries, K) doc rows, best first


# --- rankings ------------------------------------------------------------------------------
def compact_index(adaptor: MatryoshkaAdaptor | None, m: int, codes: str, docs: np.ndarray,
                  queries: np.ndarray) -> np.ndarray:
    """Top rows by a compact index's own exhaustive ranking (codes trained on the corpus)."""
    index = MatryoshkaIndex(docs.shape[1], adaptor=adaptor, levels=(m,), full=False, codes=codes)
    index.add(list(range(len(docs))), docs)
    hits = index.search(queries, k=K, plan=FunnelPlan.exhaustive(index.levels, len(index)))
    index.close()
    return np.array([[h.id for h in row] for row in hits])


def faiss_codes(index: faiss.Index, docs: np.ndarray, queries: np.ndarray) -> np.ndarray:
    index.train(docs)
    index.add(docs)
    return index.search(queries, K)[1]


def prefix_4bit(adaptor: MatryoshkaAdaptor, m: int, docs: np.ndarray, queries: np.ndarray) -> np.ndarray:
    z, q = unit_prefix(adaptor.apply(docs), m), unit_prefix(adaptor.apply(queries), m)
    return faiss_codes(faiss.IndexScalarQuantizer(m, faiss.ScalarQuantizer.QT_4bit, faiss.METRIC_INNER_PRODUCT),
                       np.ascontiguousarray(z), np.ascontiguousarray(q))


def original_int8(docs: np.ndarray, queries: np.ndarray) -> np.ndarray:
    from sentence_transformers.util.quantization import quantize_embeddings
    codes = quantize_embeddings(docs, "int8", calibration_embeddings=docs).astype(np.float32)
    return exact_top_k(queries, codes, K)[0]  # the float query against the int8 documents


def original_binary(docs: np.ndarray, queries: np.ndarray, rescore: str | None) -> np.ndarray:
    """Hamming ranking of sign bits; with ``rescore`` the top 40 are ranked again by the float
    query against the ±1 bits ("bits") or against int8 documents ("int8")."""
    from sentence_transformers.util.quantization import quantize_embeddings
    packed = quantize_embeddings(docs, "ubinary")
    index = faiss.IndexBinaryFlat(docs.shape[1])
    index.add(packed)
    pool = index.search(quantize_embeddings(queries, "ubinary"), RESCORE_POOL if rescore else K)[1]
    if rescore is None:
        return pool
    if rescore == "bits":
        stored = np.unpackbits(packed, axis=1)[:, :docs.shape[1]].astype(np.float32) * 2 - 1
    else:
        stored = quantize_embeddings(docs, "int8", calibration_embeddings=docs).astype(np.float32)
    scores = np.einsum("qcd,qd->qc", stored[pool], queries)
    return np.take_along_axis(pool, np.argsort(-scores, axis=1)[:, :K], 1)


def rankings(exp, adaptors: dict[str, MatryoshkaAdaptor], docs: np.ndarray, queries: np.ndarray,
             with_baselines: bool) -> dict[tuple[str, float], np.ndarray]:
    """{(method, bytes per vector): top rows}: the adaptors' (every seed), and with
    ``with_baselines`` those that do not depend on a seed (run once)."""
    out: dict[tuple[str, float], np.ndarray] = {}
    dim = docs.shape[1]
    prefix_methods = dict(adaptors)
    if with_baselines:
        prefix_methods.update({"PCA": MatryoshkaAdaptor(dim, (dim,), rotation=PCARotation.fit(docs).components),
                               "truncation": None})
    for name, adaptor in prefix_methods.items():
        for m in PREFIXES:
            for codes in INDEX_CODES:
                out[(f"compact {name}, {codes}", float(m * CODE_BYTES[codes]))] = \
                    compact_index(adaptor, m, codes, docs, queries)
            if adaptor is not None and name in adaptors:
                out[(f"{name} prefix, 4-bit", m / 2)] = prefix_4bit(adaptor, m, docs, queries)
    if with_baselines:
        out.update(_original_baselines(docs, queries))
    return out


def _original_baselines(docs: np.ndarray, queries: np.ndarray) -> dict[tuple[str, float], np.ndarray]:
    dim, ip = docs.shape[1], faiss.METRIC_INNER_PRODUCT
    out = {("original, float32", dim * 4.0): exact_top_k(queries, docs, K)[0],
           ("original, int8 (quantize_embeddings)", float(dim)): original_int8(docs, queries),
           ("original, binary", dim / 8): original_binary(docs, queries, None),
           ("original, binary + rescore with the bits", dim / 8): original_binary(docs, queries, "bits"),
           ("original, binary + int8 rescore", dim / 8 + dim): original_binary(docs, queries, "int8")}
    for m in PQ_BYTES:
        if dim % m == 0:
            out[("original, PQ", float(m))] = faiss_codes(faiss.IndexPQ(dim, m, 8, ip), docs, queries)
            rotation = faiss.OPQMatrix(dim, m)
            rotation.niter = OPQ_ITERATIONS
            opq = faiss.IndexPreTransform(rotation, faiss.IndexPQ(dim, m, 8, ip))
            out[("original, OPQ", float(m))] = faiss_codes(opq, docs, queries)
    for bits in RABITQ_BITS:
        rabitq = faiss.IndexRaBitQ(dim, ip, bits)
        out[("original, RaBitQ", float(rabitq.code_size))] = faiss_codes(rabitq, docs, queries)
    return out


# --- one set -------------------------------------------------------------------------------
def index_footprint(adaptor: MatryoshkaAdaptor, docs: np.ndarray) -> dict:
    """RAM (``stats()``) and disk (a save) per vector of the compact index the issue sizes."""
    index = MatryoshkaIndex(docs.shape[1], adaptor=adaptor, levels=(64, 128), full=False, codes="int8")
    index.add([f"doc-{i}" for i in range(len(docs))], docs)
    stats = index.stats()
    folder = Path(tempfile.mkdtemp(prefix="matry-compact-"))
    try:
        index.save(folder / "ix")
        files = {str(p.relative_to(folder / "ix")): p.stat().st_size for p in (folder / "ix").rglob("*") if p.is_file()}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    per_record = sum(size for name, size in files.items() if name.startswith("backend"))
    return {"ram_bytes_per_vector": stats.ram_per_vector, "ram": stats.ram,
            "disk_bytes_per_vector": per_record / len(docs), "disk_fixed_bytes": sum(files.values()) - per_record,
            "disk_files": files, "describe": stats.describe()}


def score(rows: np.ndarray, doc_ids: list[str], query_ids: list[str], qrels: dict) -> dict[str, float]:
    run = {q: [doc_ids[r] for r in row if r >= 0] for q, row in zip(query_ids, rows)}
    return ndcg_at_k(run, qrels, K, per_query=True)


def run_set(name: str, seeds: list[int], out: Path) -> dict:
    exp = load_experiment(SHARED / name, SHARED / name / "embeddings" / "all-MiniLM-L6-v2")
    task = exp.task("test")
    docs, queries = normalize_rows(task.docs), normalize_rows(task.queries)
    subsets = {"all": task.query_ids}
    if name == "scifact":
        subsets["fresh"] = exp.fresh_test_queries()
    per_seed, footprint, fit_seconds = [], None, []
    for seed in seeds:
        torch.manual_seed(seed)
        t0 = time.perf_counter()
        fits = fit_adaptors(exp, seed=seed)
        fit_seconds.append(time.perf_counter() - t0)
        adaptors = {method: fit.adaptor for method, fit in fits.items()}
        keep = out / "runs" / "compact" / name / str(seed)
        for method, adaptor in adaptors.items():
            adaptor.save(keep / method.replace(" ", "-"))
        if footprint is None:
            footprint = index_footprint(adaptors["supervised adaptor"], task.docs)
        found = rankings(exp, adaptors, docs, queries, with_baselines=seed == seeds[0])
        per_seed.append({f"{method}@{nbytes:g}": score(rows, task.doc_ids, task.query_ids, task.qrels)
                         for (method, nbytes), rows in found.items()})
        print(f"{name} seed {seed}: {len(found)} representations scored", flush=True)
    return {"subsets": {s: list(q) for s, q in subsets.items()}, "per_seed": per_seed,
            "footprint": footprint, "fit_seconds": fit_seconds}


# --- report --------------------------------------------------------------------------------
def table_rows(result: dict, subset: str) -> dict[str, dict[float, tuple[float, float]]]:
    """{method: {bytes: (mean, sd over the seeds that scored it)}} on one query subset."""
    qids = set(result["subsets"][subset])
    values: dict[str, dict[float, list[float]]] = {}
    for seed_scores in result["per_seed"]:
        for key, per_query in seed_scores.items():
            method, nbytes = key.rsplit("@", 1)
            chosen = [v for q, v in per_query.items() if q in qids]
            values.setdefault(method, {}).setdefault(float(nbytes), []).append(float(np.mean(chosen)))
    return {m: {b: summarize(v) for b, v in sorted(by.items())} for m, by in values.items()}


def verdicts(rows: dict, footprint: dict) -> list[str]:
    """The issue's bars, each stated with its measurement."""
    reference = rows["original, float32"][1536.0][0]
    lines = []
    for method, keep in (("supervised adaptor", None), ("unsupervised adaptor", 0.97)):
        found = rows.get(f"compact {method}, int8", {}).get(128.0)
        if found is None:
            continue
        mean, sd = found
        if keep is None:
            ok = mean >= reference
            lines.append(f"compact {method} at 128-d int8: nDCG@10 {mean:.3f} ± {sd:.3f} against the full float "
                         f"original's {reference:.3f}: {'at or above it' if ok else 'below it'}")
        else:
            ratio = mean / reference
            lines.append(f"compact {method} at 128-d int8 keeps {ratio:.1%} of the original's nDCG@10 "
                         f"({'meets' if ratio >= keep else 'misses'} the {keep:.0%} bar)")
    lines.append(f"the compact index (levels 64,128, int8, supervised adaptor): {footprint['ram_bytes_per_vector']:.0f} "
                 f"B/vector in RAM, {footprint['disk_bytes_per_vector']:.0f} B/vector saved on disk (its backend files), "
                 f"plus {footprint.get('disk_fixed_bytes', 0) / 1e3:.0f} kB per index for the adaptor and the manifest")
    return lines


def best_rival_below(rows: dict, nbytes: float, ours: str) -> tuple[str, float] | None:
    """The best nDCG@10 any non-adaptor method reaches with at most ``nbytes`` per vector."""
    best = None
    for method, by in rows.items():
        if "adaptor" in method:
            continue
        for b, (mean, _) in by.items():
            if b <= nbytes and (best is None or mean > best[1]):
                best = (f"{method} @{b:g} B", mean)
    return best


def markdown(results: dict, meta: dict) -> str:
    md = [f"# Quality per byte: compact indexes against shrunk originals ({meta['model']}, {meta['machine']})", "",
          "nDCG@10 of each representation's own exhaustive ranking on the test queries, against the bytes a "
          "stored vector costs (mean ± sd over the adaptor seeds; methods without a seed ran once). "
          f"Command: `{meta['command']}`.", ""]
    for name, result in results.items():
        for subset in result["subsets"]:
            rows = table_rows(result, subset)
            sizes = sorted({b for by in rows.values() for b in by})
            md += [f"## {name}, {subset} test queries ({len(result['subsets'][subset])})", "",
                   "| method | " + " | ".join(f"{b:g} B" for b in sizes) + " |",
                   "|---|" + "---|" * len(sizes)]
            for method, by in rows.items():
                cells = [f"{by[b][0]:.3f}" + (f" ± {by[b][1]:.3f}" if by[b][1] else "") if b in by else ""
                         for b in sizes]
                md.append(f"| {method} | " + " | ".join(cells) + " |")
            md += ["", *[f"- {line}" for line in verdicts(rows, result["footprint"])]]
            for nbytes in (32.0, 64.0, 128.0, 256.0):
                ours = rows.get("compact supervised adaptor, int8", {}).get(nbytes)
                rival = best_rival_below(rows, nbytes, "supervised")
                if ours and rival:
                    side = "above" if ours[0] > rival[1] else "not above"
                    md.append(f"- at {nbytes:g} B/vector the supervised compact index ({ours[0]:.3f}) is {side} the "
                              f"best rival within that budget ({rival[0]}: {rival[1]:.3f})")
            md.append(f"\n![{name} {subset}](compact_{name}_{subset}.png)\n")
    return "\n".join(md)


#: each method family's colour (looked up in this order: "unsupervised" before "supervised",
#: "OPQ" before "PQ")
PLOT_COLOURS = {"unsupervised adaptor": "tab:orange", "supervised adaptor": "tab:red", "PCA": "tab:blue",
                "truncation": "tab:gray", "OPQ": "tab:olive", "PQ": "tab:green", "RaBitQ": "tab:purple",
                "int8": "tab:brown", "binary": "tab:pink"}


def plotted(method: str) -> bool:
    """The lines the plot keeps: the adaptors in every code, PCA and truncation in int8 (their
    best per byte), every shrunk original; float16 lies between float32 and int8 everywhere."""
    if method.endswith("float16"):
        return False
    if method.startswith(("compact PCA", "compact truncation")):
        return method.endswith("int8")
    return True


def _colour(method: str) -> str:
    for family, colour in PLOT_COLOURS.items():
        if family in method:
            return colour
    return "black"


def plot(rows: dict, title: str, path: Path) -> Path:
    """nDCG@10 against bytes per vector (log axis), one line per method, the original float32
    as a labelled horizontal line; error bars only where there are seeds."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(10, 6))
    for method, by in sorted(rows.items()):
        if not plotted(method) or method == "original, float32":
            continue
        sizes = sorted(by)
        means, sds = [by[b][0] for b in sizes], [by[b][1] for b in sizes]
        ours = "adaptor" in method
        style = "-" if ours else "--" if method.startswith("original") else ":"
        marker = "o" if ours else "s"
        if ours and method.endswith("float32"):
            style = "-."
        if method.endswith("4-bit"):
            style, marker = (0, (1, 1)), "^"
        ax.plot(sizes, means, linestyle=style, color=_colour(method), marker=marker, markersize=4,
                label=method, linewidth=2.4 if ours else 1.3)
        if any(sds):
            ax.errorbar(sizes, means, yerr=sds, fmt="none", ecolor=_colour(method), capsize=2, linewidth=1)
    reference = rows["original, float32"][1536.0][0]
    ax.axhline(reference, color="black", linewidth=1)
    ax.annotate(f"original float32, 1536 B ({reference:.3f})", (0.01, reference), xycoords=("axes fraction", "data"),
                va="bottom", fontsize=9)
    ax.axvspan(32, 256, color="tab:red", alpha=0.04)
    ax.set_xscale("log", base=2)
    ax.set_xlim(12, 2048)
    low = min(by[b][0] for m, by in rows.items() if plotted(m) for b in by if 32 <= b <= 256)
    ax.set_ylim(max(0.0, low - 0.05), reference + 0.08)
    ax.set_xlabel("bytes per stored vector (log scale; shaded: 32–256 B, the range the compact index targets)")
    ax.set_ylabel("nDCG@10 (test queries)")
    ax.set_title(title)
    ax.legend(fontsize=8, ncol=2, loc="lower right")
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def write_report(results: dict, meta: dict, out: Path) -> str:
    for name, result in results.items():
        for subset in result["subsets"]:
            plot(table_rows(result, subset), f"{name}, {subset} test queries: quality per byte",
                 out / f"compact_{name}_{subset}.png")
    text = markdown(results, meta)
    atomic_write_text(out / "compact.md", text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", default=["scifact", "docstrings"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--report-only", action="store_true", help="redraw the report from compact.json")
    parser.add_argument("--refresh-footprint", action="store_true",
                        help="with --report-only: measure the compact index's bytes again (the saved adaptors)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        saved = json.loads((out / "compact.json").read_text())
        if args.refresh_footprint:  # measure the index's bytes again with the saved seed's adaptor
            for name, result in saved["results"].items():
                task = load_experiment(SHARED / name, SHARED / name / "embeddings" / "all-MiniLM-L6-v2").task("test")
                adaptor = MatryoshkaAdaptor.load(out / "runs" / "compact" / name / str(args.seeds[0]) / "supervised-adaptor")
                result["footprint"] = index_footprint(adaptor, task.docs)
            atomic_write_text(out / "compact.json", json.dumps(saved, default=float))
        print(write_report(saved["results"], saved["meta"], out))
        return
    torch.set_num_threads(2)
    meta = {"model": "all-MiniLM-L6-v2", "machine": platform.platform(),
            "command": "python benchmarks/compact.py " + " ".join(sys.argv[1:])}
    results = {name: run_set(name, args.seeds, out) for name in args.sets}
    atomic_write_text(out / "compact.json", json.dumps({"meta": meta, "results": results}, default=float))
    print(write_report(results, meta, out))


if __name__ == "__main__":
    main()
