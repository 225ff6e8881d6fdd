"""How many dimensions does an index need? Label-free advice on the user's own embeddings.

For plain truncation, a PCA rotation fitted on the documents and (if given) an adaptor, and for
each prefix level, two measures against the full-dimension top-``k`` of each query:

* **agreement@k** — the share of the full-dimension top-k that the prefix's own top-k keeps
  (what searching the prefix alone would give);
* **candidates needed** — how many prefix candidates an exact coarse stage must pass on so
  that rescoring them at full dimension finds ``target`` of the full top-k (what a funnel's
  coarse stage needs; :mod:`matry_index.evaluation.funnel_need`). Measured on a sample of the
  documents and scaled to the whole set: the rank of a target among n documents grows about
  in proportion to n.

Then the layout a FAISS funnel would need: the (method, level) whose coarse stage is cheapest
under the tuner's cost model (:func:`matry_index.funnel.plan_cost`, an IVF-SQ8 coarse index on
the prefix), the memory per vector it would take (in RAM, and with the full vectors
memory-mapped) and the commands that build it. No relevance labels are needed; where a BEIR
folder gives some, ``nDCG@10`` per level is reported too.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ._validation import unit_vectors
from .errors import InvalidInput
from .backends.faiss import default_nlist
from .backends.faiss.coarse import CODED_AUTO_CODE, min_per_list
from .bench.report import FUNNEL_PAYS_FROM
from .codes import COARSE_CODES
from .evaluation.funnel_need import full_dimension_top_k, funnel_need
from .funnel import CoarseCost, FunnelPlan, plan_cost

DEFAULT_LEVELS = (32, 64, 128, 256)
#: the coarse code a recommended FAISS layout uses (inverted lists of 8-bit prefix codes)
RECOMMENDED_CODE = "ivf-int8"
#: vectors an IVF-SQ8 coarse stage scans per candidate it must return at recall 0.99, as tuned
#: on the 1M benchmark (128-d prefix: 100 candidates from 12 of 4,000 lists of ~250 vectors)
SCANNED_PER_CANDIDATE = 30
#: bytes per record besides the vectors and the coarse codes: an int64 key, two flags and the
#: key map's int64 key and int32 row (string ids and metadata add their own size)
ROW_BYTES = 8 + 2 + 12
#: the share of the full dimension's quality (nDCG@10 with labels, else agreement@k) a level must
#: keep for advise to recommend a compact index at it (the bar benchmarks/results/compact.md holds
#: the unsupervised adaptor to)
COMPACT_KEEP = 0.97
#: vectors per block of FAISS's fast-scan inverted lists
FAST_SCAN_BLOCK = 32


@dataclass(frozen=True)
class LevelReport:
    method: str
    level: int
    agreement: float          # share of the full top-k kept by the prefix's own top-k
    needed_in_sample: int     # candidates an exact coarse stage needs, at the sample's size
    needed: int               # the same scaled to the whole set
    ndcg: float | None = None


@dataclass
class Advice:
    n: int
    dim: int
    sample: int
    queries: int
    queries_source: str
    target: float
    k: int
    reports: list[LevelReport]
    full_ndcg: float | None = None  # nDCG@10 of the full vectors, where labels were given
    pca_components: np.ndarray | None = field(default=None, repr=False)
    recommended: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        plain = {key: getattr(self, key) for key in ("n", "dim", "sample", "queries", "queries_source",
                                                     "target", "k", "recommended")}
        return {**plain, "levels": [asdict(r) for r in self.reports]}

    def pca_adaptor(self):
        """The PCA rotation fitted on the sample, as an adaptor an index can apply."""
        from .adaptor import MatryoshkaAdaptor
        return MatryoshkaAdaptor(self.dim, tuple(self.recommended.get("levels", (self.dim,))),
                                 rotation=self.pca_components)

    def table(self) -> str:
        """The per-level measures as a Markdown table."""
        ndcg = any(r.ndcg is not None for r in self.reports)
        head = ["method", "level", f"agreement@{self.k}", f"candidates for {self.target} (sample)",
                f"candidates at {self.n:,}"] + (["nDCG@10"] if ndcg else [])
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in self.reports:
            cells = [r.method, str(r.level), f"{r.agreement:.3f}", str(r.needed_in_sample), str(r.needed)]
            lines.append("| " + " | ".join(cells + ([f"{r.ndcg:.4f}" if r.ndcg is not None else ""] if ndcg else [])) + " |")
        return "\n".join(lines)


def coarse_cost(level: int, needed: int, n: int, dim: int) -> float:
    """Per-query cost, in multiply-add equivalents, of a funnel whose IVF-SQ8 coarse stage on
    the ``level``-d prefix returns ``needed`` candidates that are rescored at ``dim``."""
    nlist = default_nlist(n)
    lists = max(1, math.ceil(SCANNED_PER_CANDIDATE * needed * nlist / max(n, 1)))
    plan = FunnelPlan((min(needed, n),), nprobe=min(lists, nlist))
    return plan_cost(plan, (level, dim), 10, n, CoarseCost(RECOMMENDED_CODE, nlist=nlist))


def memory_per_vector(dim: int, levels: tuple[int, ...], n: int, vector_storage: str = "memory") -> dict[str, float]:
    """Resident bytes per record of a FAISS funnel of ``n`` records with an IVF-SQ8 coarse
    stage on ``levels[0]`` (int ids, no metadata): the vectors (anonymous memory, or
    file-backed pages with "mmap"), the coarse codes, their list ids and the lists' float
    centroids, one float per level, and the row bookkeeping."""
    coarse = levels[0] + 8 + 4 * levels[0] * default_nlist(n) / max(n, 1)
    rows = 4 * (len(levels) - 1) + ROW_BYTES  # one norm per prefix level
    vectors = 4 * dim
    anonymous = coarse + rows + (vectors if vector_storage == "memory" else 0)
    return {"anonymous": float(anonymous), "file_backed_at_most": float(vectors if vector_storage == "mmap" else 0),
            "disk": float(vectors + coarse + 4 * len(levels))}


def _sample_rows(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(n, size, replace=False)) if size < n else np.arange(n)


def advise(embeddings: np.ndarray, queries: np.ndarray | None = None, *,
           adaptor: Any | None = None, target: float = 0.99, k: int = 10,
           levels: tuple[int, ...] | None = None, sample: int = 20_000, n_queries: int = 500,
           seed: int = 0, ndcg: dict[str, dict[int, float]] | None = None) -> Advice:
    """Measure every method and level on a sample of ``embeddings`` and recommend a layout.

    ``embeddings`` may be any float dtype, unnormalised, memory-mapped; ``queries`` (q, d) or one
    (d,) vector, or None: then ``n_queries`` documents outside the sample stand in (said so in
    :attr:`Advice.queries_source`). ``ndcg``: nDCG@10 per method and level where relevance
    labels exist (the CLI computes it from a BEIR folder), shown beside the label-free measures.
    The PCA rotation fitted on the sample is kept as ``Advice.pca`` (to save as an adaptor).
    """
    if not 0 < target <= 1:
        raise InvalidInput(f"target must be a recall in (0, 1]; got {target}")
    if embeddings.ndim != 2 or len(embeddings) < 2 * k:
        raise InvalidInput(f"embeddings must be a 2-d array with at least {2 * k} rows; got shape {embeddings.shape}")
    n, dim = embeddings.shape
    rng = np.random.default_rng(seed)
    if queries is None:
        held = min(n_queries, max(1, n // 5))
        order = rng.permutation(n)
        query_rows, doc_pool = np.sort(order[:held]), order[held:]
        doc_rows = np.sort(doc_pool[_sample_rows(len(doc_pool), min(sample, len(doc_pool)), rng)])
        q = unit_vectors(embeddings[query_rows], "held-out documents")
        source = f"{held} held-out documents (no queries given)"
    else:
        q = unit_vectors(queries[None, :] if queries.ndim == 1 else queries, "queries")
        if q.shape[1] != dim:
            raise InvalidInput(f"queries have dimension {q.shape[1]}, the embeddings {dim}")
        q = q[_sample_rows(len(q), min(n_queries, len(q)), rng)]
        doc_rows = _sample_rows(n, min(sample, n), rng)
        source = f"{len(q)} given queries"
    docs = unit_vectors(embeddings[doc_rows], "embeddings")
    levels = tuple(m for m in (levels or DEFAULT_LEVELS) if 0 < m < dim)
    if not levels:
        raise InvalidInput(f"no prefix level below the dimension {dim}")
    if adaptor is not None and adaptor.dim != dim:
        raise InvalidInput(f"the adaptor is for {adaptor.dim}-d embeddings, these are {dim}-d")

    from .evaluation.baselines import PCARotation
    pca = PCARotation.fit(docs)
    methods: dict[str, Callable | None] = {"truncation": None, "pca": pca.transform}
    if adaptor is not None:
        methods["adaptor"] = adaptor.transform
    targets = full_dimension_top_k(q, docs, k)
    ndcg = ndcg or {}
    scale = n / len(docs)
    reports = []
    for method, transform in methods.items():
        need = funnel_need(q, docs, levels, transform, recalls=(target,), k=k, candidates=(k,), targets=targets)
        for m in levels:
            in_sample = need[m]["needed"][float(target)]
            reports.append(LevelReport(method, m, need[m]["recall_at"][k], in_sample,
                                       int(min(n, math.ceil(in_sample * scale))), ndcg.get(method, {}).get(m)))
    full_ndcg = ndcg.get("truncation", {}).get(dim)
    advice = Advice(n, dim, len(docs), len(q), source, target, k, reports, full_ndcg, pca_components=pca.components)
    advice.recommended = _recommend(advice)
    advice.recommended["compact"] = _recommend_compact(advice)
    return advice


def compact_coarse_level(level: int, n: int) -> int:
    """The coarse level of a compact index of ``n`` records stored at ``level``: half of it on
    a small corpus (the fewest bytes), seven eighths of it, even (the 4-bit codes pair
    coordinates), from :data:`FUNNEL_PAYS_FROM` records on: a much shorter prefix is too weak a
    guide to the stored ranking at scale — at 1M vectors (64, 128) found no funnel for recall
    0.99 where (112, 128) did (``benchmarks/results/compact_scale.md``)."""
    if level <= 2:
        return level
    return max(2, level // 2 if n < FUNNEL_PAYS_FROM else (level - level // 8) // 2 * 2)


def compact_memory_per_vector(level: int, n: int) -> float:
    """Resident bytes per record of a compact FAISS index of levels (:func:`compact_coarse_level`,
    ``level``) storing the ``level``-d prefix as 8-bit codes, with a 4-bit IVF coarse stage on
    the coarse prefix (int ids, no metadata): the codes, the coarse codes with their list ids
    and centroids, the rows (no norms: both prefixes are normalised where they are scored)."""
    coarse_level, code = compact_coarse_level(level, n), COARSE_CODES[CODED_AUTO_CODE]
    nlist = default_nlist(n, min_per_list(code))
    per_list = max(n, 1) / nlist
    padding = math.ceil(per_list / FAST_SCAN_BLOCK) * FAST_SCAN_BLOCK / per_list  # whole blocks per list
    coarse = code.bytes_per_vector(coarse_level) * padding + 8 + 4 * coarse_level * nlist / max(n, 1)
    return float(level + coarse + ROW_BYTES)


def _recommend_compact(advice: Advice, keep: float = COMPACT_KEEP) -> dict[str, Any]:
    """The shortest prefix of the best method (the adaptor where there is one) that keeps
    ``keep`` of the full vectors' quality — nDCG@10 where labels were given, agreement@k
    otherwise — as a compact index, or why there is none."""
    method = "adaptor" if any(r.method == "adaptor" for r in advice.reports) else "pca"
    rows = sorted((r for r in advice.reports if r.method == method), key=lambda r: r.level)
    labelled = advice.full_ndcg is not None and all(r.ndcg is not None for r in rows)
    basis = "nDCG@10" if labelled else f"agreement@{advice.k}"

    def kept(r: LevelReport) -> float:
        return r.ndcg / advice.full_ndcg if labelled else r.agreement
    chosen = next((r for r in rows if kept(r) >= keep), None)
    if chosen is None:
        best = max(rows, key=kept)
        return {"method": method, "basis": basis, "keep": keep,
                "note": f"no {method} prefix keeps {keep:.0%} of the full vectors' {basis} (best: {kept(best):.1%} "
                        f"at {best.level}-d): a compact index would lose quality here; use the funnel"
                        + ("" if labelled else ", or measure nDCG@10 with --data BEIR_DIR (agreement is stricter)")}
    level = chosen.level
    pair = sorted({compact_coarse_level(level, advice.n), level})
    levels = ",".join(map(str, pair))
    adaptor_arg = {"adaptor": " --adaptor ADAPTOR", "pca": " --adaptor PCA_ROTATION"}[method]
    return {"method": method, "level": level, "levels": pair, "codes": "int8",
            "basis": basis, "kept": kept(chosen), "keep": keep,
            "memory_per_vector": compact_memory_per_vector(level, advice.n),
            "command": f"matry-index build --embeddings X.npy --ids X.ids{adaptor_arg} --compact --levels {levels} "
                       f"--codes int8 --out INDEX"}


def _recommend(advice: Advice) -> dict[str, Any]:
    """The cheapest (method, level) under the cost model, with its layout, memory and commands."""
    n, dim = advice.n, advice.dim
    scan = float(n) * dim
    best = min(advice.reports, key=lambda r: coarse_cost(r.level, r.needed, n, dim))
    cost = coarse_cost(best.level, best.needed, n, dim)
    levels = tuple(sorted({best.level, dim}))
    storage = "mmap" if n >= 1_000_000 else "memory"
    out = {"method": best.method, "coarse_level": best.level, "levels": list(levels),
           "coarse": RECOMMENDED_CODE, "nlist": default_nlist(n), "candidates": best.needed,
           "cost_per_query": cost, "cost_vs_exact_scan": cost / scan, "vector_storage": storage,
           "memory_per_vector": {s: memory_per_vector(dim, levels, n, s) for s in ("memory", "mmap")}}
    if cost >= scan:
        out["note"] = "an exact scan costs no more than this funnel: the set is too small or its prefixes too weak"
    # the tuner plans for the target itself, with a margin from the tuning queries' own spread
    # and a confirmation on half of them (matry_index.tuning): no adjusted target to pass here
    out["target_recall"] = advice.target
    out["tuning_note"] = (f"tune on at least {max(200, math.ceil(2 / (1 - advice.target))) if advice.target < 1 else 200} "
                          "queries like your traffic: the plan then promises the target on new queries of the same "
                          "kind (with 95% confidence), and says so in plan.explain()")
    levels_arg = ",".join(map(str, levels))
    adaptor_arg = {"adaptor": " --adaptor ADAPTOR", "pca": " --adaptor PCA_ROTATION", "truncation": ""}[best.method]
    out["commands"] = [
        f"matry-index build --embeddings X.npy --ids X.ids{adaptor_arg} --levels {levels_arg} --coarse {RECOMMENDED_CODE} "
        f"--vector-storage {storage} --tune-queries Q.npy --target-recall {advice.target} "
        f"-k {advice.k} --out INDEX",
        f"matry-index qdrant-setup --url URL{adaptor_arg} --levels {levels_arg} --embeddings X.npy --ids X.ids",
    ]
    if best.method == "pca":
        out["pca_note"] = ("PCA_ROTATION: the PCA rotation of the sample as an adaptor folder "
                           "(matry-index advise --save-pca DIR, or Advice.pca_adaptor().save(DIR))")
    return out


__all__ = ["Advice", "LevelReport", "advise", "coarse_cost", "compact_memory_per_vector", "memory_per_vector"]
