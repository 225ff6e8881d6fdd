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

import numpy as np

from .._validation import normalize_rows
from ..evaluation.funnel_need import funnel_need
from ..kernels import exact_top_k


class HardNegatives:
    """(anchors, levels, n) document rows that each coarse prefix wrongly ranks high."""

    def __init__(self, excluded: np.ndarray, levels: Sequence[int], n: int):
        """``excluded`` (anchors, e): rows never mined for an anchor: its full-dimension top-k
        (wanted among the candidates) and, for a document anchor, itself (-1 pads)."""
        self.excluded, self.levels, self.n = excluded, tuple(levels), int(n)
        self.rows: np.ndarray | None = None

    def refresh(self, adapted_anchors: np.ndarray, adapted_docs: np.ndarray) -> None:
        """Re-mine every anchor's negatives from the adapted anchors and documents."""
        depth = min(self.n + self.excluded.shape[1], len(adapted_docs))
        if self.rows is None:
            self.rows = np.zeros((len(self.excluded), len(self.levels), self.n), np.int64)
        for li, m in enumerate(self.levels):
            top, _ = exact_top_k(normalize_rows(adapted_anchors[:, :m]), normalize_rows(adapted_docs[:, :m]), depth)
            for row, found in enumerate(top):
                keep = found[~np.isin(found, self.excluded[row])][:self.n]
                self.rows[row, li, :len(keep)] = keep
                self.rows[row, li, len(keep):] = keep[-1] if len(keep) else 0


def candidates_score(transform: Callable[[np.ndarray], np.ndarray], anchors: np.ndarray, docs: np.ndarray,
                     targets: np.ndarray, levels: Sequence[int], recall: float) -> float:
    """Minus the mean over ``levels`` of log(candidates needed for ``recall`` of ``targets``)
    (higher is better), exact coarse search of the adapted prefixes of ``anchors`` over ``docs``."""
    need = funnel_need(anchors, docs, levels, transform, recalls=(recall,), candidates=(), targets=targets)
    return -float(np.mean([np.log(need[m]["needed"][recall]) for m in levels]))
