"""The two ways to fit an adaptor: the public entry points (numpy in, an adaptor out).

Inputs and settings are checked here, with numpy only, so mistakes are reported at once and
``import matry_index`` never needs torch; the optimisation itself is
:mod:`matry_index.adaptor.training`, imported on the first fit (``pip install
'matry_index[train]'`` provides torch).
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from .._extras import require
from .._validation import as_matrix, normalize_rows
from ..errors import InvalidInput
from .config import OBJECTIVES, TrainConfig, TrainResult
from .model import MatryoshkaAdaptor


def _training() -> ModuleType:
    """The torch half of training, or an error that names the extra providing it."""
    require("torch", "fitting an adaptor (searching with a saved one does not)")
    from . import training
    return training


def _settings(config: TrainConfig | None, overrides: dict[str, Any]) -> TrainConfig:
    if config is not None and not isinstance(config, TrainConfig):
        raise InvalidInput(f"config must be a TrainConfig; got {type(config).__name__}")
    return (config or TrainConfig()).with_overrides(**overrides)


def fit_unsupervised(corpus: Any, *, queries: Any = None, config: TrainConfig | None = None,
                     objective: str = "prefix", **overrides: Any) -> TrainResult:
    """Train an adaptor on corpus embeddings (plus optional unlabelled query embeddings).

    ``corpus`` is (n, d) float; ``queries`` (q, d) are extra anchors whose nearest documents
    the prefixes must rank as the full embedding does — no relevance labels are read.
    Settings come from ``config`` (a :class:`TrainConfig`) with keyword ``overrides``, on top
    of the recipe of ``objective``: ``"prefix"`` (best nDCG@10 of each prefix searched alone)
    or ``"funnel"`` (for an index: a rotation whose coarse prefixes hold the full-dimension
    top-10 among the fewest candidates, :data:`~matry_index.adaptor.config.FUNNEL_RECIPE`).

    Each anchor's nearest documents are mined once over the whole corpus in the original
    space; the adaptor learns to make every prefix reproduce their ranking (listwise KL) and,
    optionally, the full-dimension similarities themselves (top-k and pairwise L1 terms),
    while staying close to the input (reconstruction loss). It stops early on how well each
    prefix reproduces the full-dimension top-10 of held-out anchors.
    """
    if objective not in OBJECTIVES:
        raise InvalidInput(f"objective must be one of {', '.join(sorted(OBJECTIVES))}; got {objective!r}")
    cfg = _settings(config, {**OBJECTIVES[objective], **overrides})
    corpus = normalize_rows(as_matrix(corpus, name="corpus"))
    if len(corpus) < 2:
        raise InvalidInput("need at least 2 corpus embeddings to train an adaptor")
    extra = None if queries is None else normalize_rows(as_matrix(queries, dim=corpus.shape[1], name="queries"))
    return _training().run_unsupervised(corpus, extra, cfg)


def _checked_relevance(relevance: Sequence[tuple[int, int, float]], n_queries: int,
                       n_docs: int) -> list[tuple[int, int, float]]:
    try:
        triples = [(int(q), int(d), float(r)) for q, d, r in relevance]
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"relevance must be (query row, corpus row, score) triples: {exc}") from None
    if not triples:
        raise InvalidInput("relevance is empty: supervised training needs (query, doc, score) triples")
    bad = [(q, d) for q, d, _ in triples if not (0 <= q < n_queries and 0 <= d < n_docs)]
    if bad:
        raise InvalidInput(f"relevance refers to rows outside queries/corpus, e.g. {bad[0]}")
    return triples


def fit_supervised(corpus: Any, queries: Any, relevance: Sequence[tuple[int, int, float]], *,
                   base: MatryoshkaAdaptor | None = None, config: TrainConfig | None = None,
                   **overrides: Any) -> TrainResult:
    """Two-stage supervised training: an unsupervised adaptor, then ranking-loss fine-tuning.

    ``relevance`` holds (query row, corpus row, relevance > 0) triples over ``queries`` and
    ``corpus``. Stage 1 is :func:`fit_unsupervised` with the queries as unlabelled anchors
    (skipped when ``base`` is given). Stage 2 adds the relevance-weighted ranking loss over
    each query's relevant documents and its hardest non-relevant ones (mined with the stage-1
    adaptor; with ``rank_loss="softmax-inbatch"`` a softmax over every candidate of the batch
    instead, and with ``w_inbatch`` > 0 that softmax added to the pairwise loss), keeps the
    unsupervised terms, and stops early on nDCG@10 of held-out queries that share no relevant
    document with the training queries.
    """
    cfg = _settings(config, overrides)
    corpus = normalize_rows(as_matrix(corpus, name="corpus"))
    if len(corpus) < 2:
        raise InvalidInput("need at least 2 corpus embeddings to train an adaptor")
    dim = corpus.shape[1]
    queries = normalize_rows(as_matrix(queries, dim=dim, name="queries"))
    triples = _checked_relevance(relevance, len(queries), len(corpus))
    if base is not None and base.dim != dim:
        raise InvalidInput(f"base adaptor is {base.dim}-d, embeddings are {dim}-d")
    training = _training()
    start = time.perf_counter()
    if base is None:
        base = training.run_unsupervised(corpus, queries, cfg).adaptor
    result = training.run_supervised(corpus, queries, triples, base, cfg)
    result.seconds = time.perf_counter() - start
    return result
