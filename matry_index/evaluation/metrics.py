"""Ranking metrics computed the way BEIR (pytrec_eval) computes them.

nDCG uses linear gain (``rel / log2(rank + 1)``) over the graded qrels; queries without any
relevant document are skipped, as in BEIR.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def _per_query(run: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]]):
    for qid, rels in qrels.items():
        if any(r > 0 for r in rels.values()):
            yield qid, list(run.get(qid, ())), rels


def ndcg_at_k(run: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]],
              k: int = 10, per_query: bool = False):
    """Mean nDCG@k of ranked doc-id lists ``run`` against graded ``qrels``."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    scores = {}
    for qid, ranked, rels in _per_query(run, qrels):
        gains = np.array([max(rels.get(d, 0), 0) for d in ranked[:k]], dtype=float)
        dcg = float((gains * discounts[: len(gains)]).sum())
        ideal = np.sort(np.array([r for r in rels.values() if r > 0], dtype=float))[::-1][:k]
        scores[qid] = dcg / float((ideal * discounts[: len(ideal)]).sum())
    return scores if per_query else float(np.mean(list(scores.values()))) if scores else 0.0


def recall_at_k(run: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]],
                k: int = 100, per_query: bool = False):
    """Mean fraction of relevant docs found in the top ``k``."""
    scores = {}
    for qid, ranked, rels in _per_query(run, qrels):
        relevant = {d for d, r in rels.items() if r > 0}
        scores[qid] = len(relevant.intersection(ranked[:k])) / len(relevant)
    return scores if per_query else float(np.mean(list(scores.values()))) if scores else 0.0
