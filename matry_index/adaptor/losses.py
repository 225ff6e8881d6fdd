"""Training losses of the Matryoshka-Adaptor (torch). One function per loss.

Reference ("the paper" below, equation numbers as there): J. Yoon, R. Sinha, S. O. Arik and
T. Pfister, "Matryoshka-Adaptor: Unsupervised and Supervised Tuning for Smaller Embedding
Dimensions", EMNLP 2024 (https://aclanthology.org/2024.emnlp-main.576/, arXiv:2407.20243).

Notation: ``target`` holds full-dimension cosines of the *original* embeddings, ``pred`` the
cosines of re-normalised prefixes of the *adapted* embeddings, both shaped (anchors, others).
The paper's top-k loss (Eq. 2) and pairwise loss (Eq. 1) are the same L1 formula applied to
two different pair sets — an anchor's mined neighbours, and random in-batch pairs — so both
are :func:`similarity_preservation_loss` called on different inputs.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def prefix_cosines_multi(anchors: torch.Tensor, others: torch.Tensor,
                         levels: Sequence[int]) -> torch.Tensor:
    """Cosines between the first m coordinates of ``anchors`` (B, d) and ``others``, for
    every m in ``levels`` at once; returns (len(levels), B, n).

    ``others`` is (B, n, d) — a separate set per anchor — or (n, d), shared by all anchors.
    Dot products and squared norms are computed once per segment between consecutive levels
    and accumulated, so all prefixes cost one pass over the coordinates (and one backward).
    """
    dots, a_sq, o_sq, lo = [], [], [], 0
    for hi in levels:
        a, o = anchors[:, lo:hi], others[..., lo:hi]
        dots.append(a @ o.T if o.dim() == 2 else torch.einsum("bd,bnd->bn", a, o))
        a_sq.append(a.square().sum(-1))
        o_sq.append(o.square().sum(-1))
        lo = hi
    dots, a_sq, o_sq = (torch.stack(t).cumsum(0) for t in (dots, a_sq, o_sq))
    if others.dim() == 2:
        o_sq = o_sq.unsqueeze(1)  # (L, 1, n): shared by every anchor
    return dots / (a_sq.unsqueeze(-1) * o_sq).clamp_min(1e-12).sqrt()


def prefix_cosines(anchors: torch.Tensor, others: torch.Tensor, m: int) -> torch.Tensor:
    """Cosines of the re-normalised first ``m`` coordinates; (B, n). See :func:`prefix_cosines_multi`."""
    return prefix_cosines_multi(anchors, others, (m,))[0]


def similarity_preservation_loss(target: torch.Tensor, pred: torch.Tensor,
                                 mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean |target − pred| (the paper's Eq. 1 / Eq. 2 for one prefix), over unmasked pairs."""
    diff = (target - pred).abs()
    if mask is None:
        return diff.mean()
    return (diff * mask).sum() / mask.sum().clamp_min(1)


def _exclude_from_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``logits`` with masked entries (mask == 0) so low that a softmax gives them no mass
    (a quarter of the dtype's minimum, leaving log_softmax room to subtract). Apply it to the
    final logits, after any temperature or scale: scaling the filled value overflows to −inf,
    and the loss becomes 0 · −inf = NaN."""
    return logits.masked_fill(mask == 0, torch.finfo(logits.dtype).min / 4)


def listwise_kl_loss(target: torch.Tensor, pred: torch.Tensor, temperature: float,
                     mask: torch.Tensor | None = None) -> torch.Tensor:
    """KL(softmax(target/T) ‖ softmax(pred/T)) per anchor row, averaged.

    A ranking-shaped target: errors among an anchor's nearest candidates cost far more than
    errors among distant ones, which is what retrieval at the top of the list needs.
    Masked entries (mask == 0) are left out of both distributions.
    """
    target, pred = target / temperature, pred / temperature
    if mask is not None:  # after scaling, which would overflow the excluded entries to -inf
        target, pred = _exclude_from_softmax(target, mask), _exclude_from_softmax(pred, mask)
    log_p = F.log_softmax(target, dim=-1)
    log_q = F.log_softmax(pred, dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(dim=-1).mean()


def reconstruction_loss(residual: torch.Tensor) -> torch.Tensor:
    """Mean absolute value of the MLP's residual ``f(e)`` (the paper's Eq. 3, as a mean)."""
    return residual.abs().mean()


def ranking_loss(scores: torch.Tensor, relevance: torch.Tensor, scale: float = 1.0,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
    """Relevance-weighted pairwise logistic loss (the paper's Eq. 5 for one prefix).

    For every ordered pair (j, k) of one query's candidates with ``y_j > y_k``:
    ``(y_j − y_k) · log(1 + exp(scale · (s_k − s_j)))``; averaged over such pairs.
    ``scores`` and ``relevance`` are (queries, candidates); ``scale`` sharpens cosines, whose
    range [-1, 1] is otherwise too narrow for the logistic to separate.
    """
    weight = (relevance.unsqueeze(2) - relevance.unsqueeze(1)).clamp_min(0)
    if mask is not None:
        weight = weight * mask.unsqueeze(2) * mask.unsqueeze(1)
    margin = scores.unsqueeze(1) - scores.unsqueeze(2)  # [b, j, k] = s_k - s_j
    pairs = (weight > 0).sum().clamp_min(1)
    return (weight * F.softplus(scale * margin)).sum() / pairs


def softmax_ranking_loss(scores: torch.Tensor, relevance: torch.Tensor, scale: float = 1.0,
                         mask: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy between the relevance distribution and softmax(scale · scores), per query.

    The target puts mass ∝ relevance on the judged documents; every other candidate competes
    for probability at once (a multi-positive InfoNCE), so one confusing negative cannot be
    ignored because the pairs against it are a small share of all pairs.
    Queries without a positive candidate are skipped.
    """
    rel, logits = relevance.clamp_min(0), scale * scores
    if mask is not None:  # after scaling, which would overflow the excluded entries to -inf
        rel = rel * mask
        logits = _exclude_from_softmax(logits, mask)
    total = rel.sum(-1, keepdim=True)
    has_pos = total.squeeze(-1) > 0
    target = rel / total.clamp_min(1e-12)
    per_query = -(target * F.log_softmax(logits, dim=-1)).sum(-1)
    return per_query[has_pos].mean() if has_pos.any() else scores.sum() * 0.0


def smooth_rank_loss(positive: torch.Tensor, hard: torch.Tensor, sampled: torch.Tensor,
                     sampled_weight: float, temperature: float, target: float = 10.0) -> torch.Tensor:
    """Mean log(1 + rank / target) of each positive, its rank among the negatives smoothed.

    A coarse stage of a funnel keeps C candidates; a positive (one of the anchor's
    full-dimension top-k) is found when fewer than C negatives outscore it. Its rank is
    estimated as sum sigmoid((s_neg - s_pos) / temperature) over the ``hard`` negatives (the
    ones the current prefix ranks highest, mined exactly) plus ``sampled_weight`` times the sum
    over ``sampled`` random documents (standing in for the rest of the corpus), as in smooth
    average-precision losses. The logarithm makes halving a rank worth the same anywhere, so
    the worst-placed positives, which decide the candidates needed for a high recall, keep
    their gradient. Shapes: ``positive`` (B, P), ``hard`` (B, H), ``sampled`` (B, R) or (R,).
    """
    def above(negatives: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid((negatives.unsqueeze(1) - positive.unsqueeze(2)) / temperature).sum(-1)
    sampled = sampled if sampled.dim() == 2 else sampled.expand(positive.shape[0], -1)
    rank = above(hard) + sampled_weight * above(sampled)
    return torch.log1p(rank / target).mean()
