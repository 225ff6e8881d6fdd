"""What a funnel's coarse stage needs from the adaptor: each anchor's full-dimension top-k
inside the top few documents of every coarse prefix (torch-free helpers of the trainer).

:class:`HardNegatives` keeps, per anchor and coarse level, the documents the *current* prefix
ranks highest that are not among the anchor's full-dimension top-k — the ones that push a
true neighbour out of the candidate list. They are re-mined every few steps, since they move
as the adaptor learns. :func:`candidates_score` is the label-free selection criterion: how
many candidates each coarse prefix needs to hold a recall target on held-out anchors.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import faiss
import numpy as np

from .._validation import normalize_rows
from ..evaluation.funnel_need import funnel_need


class HardNegatives:
    """(anchors, levels, n) document rows that each coarse prefix wrongly ranks high."""

    def __init__(self, excluded: np.ndarray, levels: Sequence[int], n: int):
        """``excluded`` (anchors, e): rows never mined for an anchor: its full-dimension top-k
        (wanted among the candidates) and, for a document anchor, itself (-1 pads)."""
        self.excluded, self.levels, self.n = excluded, tuple(levels), int(n)
        self.rows: np.ndarray | None = None

    def refresh(self, adapted_anchors: np.ndarray, adapted_docs: np.ndarray) -> None:
        """Re-mine every anchor's negatives from the adapted anchors and documents.

        FAISS's exact search (BLAS products and a heap per anchor) finds each prefix's top
        documents: mining is the costliest part of a fit, and which of two exactly tied
        documents becomes a negative does not matter to the loss."""
        depth = min(self.n + self.excluded.shape[1], len(adapted_docs))
        if self.rows is None:
            self.rows = np.zeros((len(self.excluded), len(self.levels), self.n), np.int64)
        for li, m in enumerate(self.levels):
            _, found = faiss.knn(normalize_rows(adapted_anchors[:, :m]), normalize_rows(adapted_docs[:, :m]),
                                 depth, faiss.METRIC_INNER_PRODUCT)
            self.rows[:, li] = first_not_excluded(found, self.excluded, self.n)


def first_not_excluded(found: np.ndarray, excluded: np.ndarray, n: int) -> np.ndarray:
    """Per row, the first ``n`` entries of ``found`` (ranked rows) that are not in the same row
    of ``excluded``, in order; a row with fewer repeats its last one (row 0 if it has none)."""
    banned = (found[:, :, None] == excluded[:, None, :]).any(-1) | (found < 0)
    order = np.argsort(banned, axis=1, kind="stable")[:, :n]  # allowed entries first, in rank order
    picked = np.take_along_axis(found, order, 1)
    allowed = (~banned).sum(1)
    fill = np.take_along_axis(picked, np.clip(allowed - 1, 0, picked.shape[1] - 1)[:, None], 1)
    fill[allowed == 0] = 0
    short = np.arange(picked.shape[1])[None, :] >= allowed[:, None]
    return np.where(short, fill, picked)


def candidates_score(transform: Callable[[np.ndarray], np.ndarray], anchors: np.ndarray, docs: np.ndarray,
                     targets: np.ndarray, levels: Sequence[int], recall: float) -> float:
    """Minus the mean over ``levels`` of log(candidates needed for ``recall`` of ``targets``)
    (higher is better), exact coarse search of the adapted prefixes of ``anchors`` over ``docs``."""
    need = funnel_need(anchors, docs, levels, transform, recalls=(recall,), candidates=(), targets=targets)
    return -float(np.mean([np.log(need[m]["needed"][recall]) for m in levels]))
