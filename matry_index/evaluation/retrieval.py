"""Exact search at each prefix level and the metrics of the resulting rankings."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .._validation import normalize_rows
from ..errors import InvalidInput
from ..kernels import exact_top_k
from ..data import BeirDataset, EmbeddingSet
from .baselines import truncate
from .metrics import ndcg_at_k, recall_at_k


@dataclass
class RetrievalTask:
    """Everything needed to score a retrieval method on one split: vectors, ids and qrels."""

    doc_ids: list[str]
    docs: np.ndarray
    query_ids: list[str]
    queries: np.ndarray
    qrels: Mapping[str, Mapping[str, int]]

    def subset(self, query_ids: Sequence[str]) -> "RetrievalTask":
        """The same corpus with only ``query_ids`` (e.g. SciFact's 'fresh' test queries)."""
        keep = set(query_ids)
        rows = [r for r, q in enumerate(self.query_ids) if q in keep]
        return RetrievalTask(self.doc_ids, self.docs, [self.query_ids[r] for r in rows],
                             self.queries[rows], {q: self.qrels[q] for q in query_ids if q in self.qrels})


def task_from_beir(dataset: BeirDataset, corpus: EmbeddingSet, queries: EmbeddingSet,
                   split: str) -> RetrievalTask:
    """A task over the whole corpus and the queries judged in ``split``."""
    qrels = dataset.split(split)
    qids = [q for q in qrels if q in queries._row]
    if not qids:
        raise InvalidInput(f"none of the {split} queries has an embedding")
    return RetrievalTask(list(corpus.ids), corpus.vectors, qids, queries.take(qids),
                         {q: qrels[q] for q in qids})


def exact_search(queries: np.ndarray, docs: np.ndarray, k: int, batch: int = 1024) -> np.ndarray:
    """Row indices of the top-``k`` docs by inner product for each query, best first (the
    same kernel as the index's exact search, :func:`matry_index.kernels.exact_top_k`)."""
    return exact_top_k(queries, docs, k, batch)[0]


def evaluate_levels(task: RetrievalTask, levels: Sequence[int],
                    transform: Callable[[np.ndarray], np.ndarray] | None = None,
                    ndcg_k: int = 10, recall_k: int = 100) -> dict[int, dict[str, float]]:
    """nDCG@ndcg_k and recall@recall_k of exact search on each prefix of ``transform(x)``,
    averaged over the task's queries (see :func:`evaluate_levels_per_query`)."""
    return average_over_queries(evaluate_levels_per_query(task, levels, transform, ndcg_k, recall_k))


def average_over_queries(per_query: Mapping[int, Mapping[str, Mapping[str, float]]],
                         query_ids: Sequence[str] | None = None) -> dict[int, dict[str, float]]:
    """``{level: {metric: {query id: score}}}`` → ``{level: {metric: mean score}}``, over every
    query or over ``query_ids`` only (e.g. SciFact's "fresh" test queries)."""
    keep = None if query_ids is None else set(query_ids)

    def mean(scores: Mapping[str, float]) -> float:
        chosen = [v for q, v in scores.items() if keep is None or q in keep]
        return float(np.mean(chosen)) if chosen else 0.0
    return {m: {metric: mean(scores) for metric, scores in metrics.items()} for m, metrics in per_query.items()}


def evaluate_levels_per_query(task: RetrievalTask, levels: Sequence[int],
                              transform: Callable[[np.ndarray], np.ndarray] | None = None,
                              ndcg_k: int = 10, recall_k: int = 100) -> dict[int, dict[str, dict[str, float]]]:
    """``{level: {metric: {query id: score}}}`` of exact search on each prefix of ``transform(x)``.

    ``transform`` (an adaptor's or a rotation's) is applied to docs and queries alike; each
    prefix is re-normalised, so the search is cosine at every level. Per-query scores are what
    a paired comparison of two methods needs (:mod:`.significance`).
    """
    docs = transform(task.docs) if transform else task.docs
    queries = transform(task.queries) if transform else task.queries
    depth = max(ndcg_k, recall_k)
    results = {}
    for m in levels:
        top = exact_search(truncate(queries, m), truncate(docs, m), depth)
        run = {q: [task.doc_ids[j] for j in row] for q, row in zip(task.query_ids, top)}
        results[int(m)] = {f"ndcg@{ndcg_k}": ndcg_at_k(run, task.qrels, ndcg_k, per_query=True),
                           f"recall@{recall_k}": recall_at_k(run, task.qrels, recall_k, per_query=True)}
    return results


def agreement_with_full(task: RetrievalTask, levels: Sequence[int],
                        transform: Callable[[np.ndarray], np.ndarray] | None = None,
                        ks: Sequence[int] = (10,)) -> dict[int, dict[int, float]]:
    """For each level m and each k in ``ks``: the mean share of a query's full-dimension
    top-k (original vectors) that the top-k of the m-prefix of ``transform(x)`` keeps.

    Label-free: it measures how faithfully a prefix copies the original model's ranking,
    which is all an unsupervised adaptor is trained to do, on as many queries as there are
    (no relevance judgements needed), so it separates methods more reliably than nDCG on a
    few hundred judged queries. One search per level serves every k (results come sorted).
    """
    depth = max(ks)
    reference = exact_search(normalize_rows(task.queries), normalize_rows(task.docs), depth)
    docs = transform(task.docs) if transform else task.docs
    queries = transform(task.queries) if transform else task.queries
    out: dict[int, dict[int, float]] = {}
    for m in levels:
        top = exact_search(truncate(queries, m), truncate(docs, m), depth)
        out[int(m)] = {}
        for k in ks:
            shared = [len(np.intersect1d(a[:k], b[:k], assume_unique=True)) for a, b in zip(top, reference)]
            out[int(m)][int(k)] = float(np.mean(shared)) / min(k, reference.shape[1])
    return out
