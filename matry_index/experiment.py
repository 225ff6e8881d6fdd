"""The adaptor experiment the CLI's ``quickstart`` and ``benchmarks/`` share.

Load a BEIR folder with embeddings (cached ``.npy`` or encoded now), fit unsupervised and
supervised adaptors on the *train* side only (corpus, train queries, train qrels), and score
every method on the *test* split at each prefix level.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InvalidInput
from .adaptor import MatryoshkaAdaptor
from .adaptor.config import TrainResult
from .data import BeirDataset, EmbeddingSet, load_beir, load_embeddings, save_embeddings
from .evaluation import PCARotation, RetrievalTask, evaluate_levels, evaluate_levels_per_query, task_from_beir

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass
class Experiment:
    """A BEIR set with its embeddings, split into what training may see and what it may not."""

    dataset: BeirDataset
    corpus: EmbeddingSet
    queries: EmbeddingSet

    def train_queries(self, split: str = "train") -> list[str]:
        return [q for q in self.dataset.split(split) if q in self.queries._row]

    def relevance(self, split: str = "train") -> tuple[np.ndarray, list[tuple[int, int, float]]]:
        """Query vectors of ``split`` and (query row, corpus row, score) triples over them."""
        qrels = self.dataset.split(split)
        qids = self.train_queries(split)
        doc_row = self.corpus._row
        triples = [(i, doc_row[d], float(s)) for i, q in enumerate(qids)
                   for d, s in qrels[q].items() if d in doc_row and s > 0]
        return self.queries.take(qids), triples

    def task(self, split: str = "test") -> RetrievalTask:
        return task_from_beir(self.dataset, self.corpus, self.queries, split)

    def fresh_test_queries(self, train_split: str = "train", test_split: str = "test") -> list[str]:
        """Test queries none of whose relevant docs is relevant to any training query."""
        seen = {d for rels in self.dataset.split(train_split).values() for d, s in rels.items() if s > 0}
        return [q for q, rels in self.dataset.split(test_split).items()
                if not any(d in seen for d, s in rels.items() if s > 0)]


def load_experiment(data_dir: str | Path, embeddings_dir: str | Path | None = None,
                    model: str = DEFAULT_MODEL, **encoder_kwargs) -> Experiment:
    """A BEIR folder plus embeddings: from ``embeddings_dir`` (default
    ``<data>/embeddings/<model name>``) when cached there, else encoded with ``model`` and
    cached in that folder."""
    dataset = load_beir(data_dir)
    folder = Path(embeddings_dir) if embeddings_dir else Path(data_dir) / "embeddings" / model.split("/")[-1]
    if (folder / "corpus.npy").is_file() and (folder / "queries.npy").is_file():
        return Experiment(dataset, load_embeddings(folder, "corpus"), load_embeddings(folder, "queries"))
    from .encoders import Encoder
    encoder = Encoder(model, **encoder_kwargs)
    doc_ids, q_ids = list(dataset.corpus), list(dataset.queries)
    docs = encoder.embed_documents([dataset.corpus[d] for d in doc_ids])
    queries = encoder.embed_queries([dataset.queries[q] for q in q_ids])
    try:
        save_embeddings(folder, "corpus", doc_ids, docs)
        save_embeddings(folder, "queries", q_ids, queries)
    except OSError:
        pass  # a read-only data folder: the embeddings are still used, just not cached
    return Experiment(dataset, EmbeddingSet(doc_ids, docs), EmbeddingSet(q_ids, queries))


def fit_adaptors(exp: Experiment, seed: int = 0, supervised: bool = True,
                 levels: Sequence[int] | None = None, funnel: bool = False, **overrides) -> dict[str, TrainResult]:
    """Unsupervised (corpus + unlabelled train queries) and supervised (train qrels) fits, and
    with ``funnel`` the funnel-aware one an index's coarse stage is best served by.

    Only the train split is read: its query vectors as anchors and, for the supervised
    stage, its relevance judgements.
    """
    from .adaptor import TrainConfig, fit_supervised, fit_unsupervised

    cfg = TrainConfig(seed=seed, **({"levels": tuple(levels)} if levels else {})).with_overrides(**overrides)
    train_q, triples = exp.relevance("train")
    unsup = fit_unsupervised(exp.corpus.vectors, queries=train_q, config=cfg)
    out = {"unsupervised adaptor": unsup}
    if funnel:
        out["funnel-aware adaptor"] = fit_unsupervised(exp.corpus.vectors, queries=train_q, config=cfg,
                                                       objective="funnel")
    if supervised:
        if not triples:
            raise InvalidInput("the train split has no usable relevance judgements")
        out["supervised adaptor"] = fit_supervised(exp.corpus.vectors, train_q, triples,
                                                   base=unsup.adaptor, config=cfg)
    return out


def compare(exp: Experiment, adaptors: dict[str, MatryoshkaAdaptor], levels: Sequence[int],
            split: str = "test", per_query: bool = False) -> dict:
    """nDCG@10 / recall@100 per level for truncation, PCA and each adaptor on ``split``:
    ``{method: {level: {metric: mean}}}``, or with ``per_query`` ``{method: {level: {metric:
    {query id: score}}}}`` (for confidence intervals of the differences between methods)."""
    task = exp.task(split)
    methods = {"truncation": None, "PCA": PCARotation.fit(exp.corpus.vectors).transform}
    methods.update({name: a.transform for name, a in adaptors.items()})
    evaluate = evaluate_levels_per_query if per_query else evaluate_levels
    return {name: evaluate(task, levels, fn) for name, fn in methods.items()}
