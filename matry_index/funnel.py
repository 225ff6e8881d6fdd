"""The coarse-to-fine plan: how many candidates each prefix level passes on.

A plan for levels (64, 128, 256, 384) with ``candidates=(400, 100, 40)`` means: approximate
search on the 64-d prefix keeps 400 candidates; exact rescoring on the 128-d prefix keeps
100; on the 256-d prefix, 40; exact full-dimension scores pick the final k. A level whose
count is 0 is skipped. ``ef`` (HNSW's search breadth) is never below the first count — FAISS
does not raise it on its own, and a smaller ef silently returns poorer candidates.

:func:`tune` picks the cheapest plan that reaches a target recall@k against exact
full-dimension search on sample queries, under a cost model of distance computations.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ._validation import MatryIndexError


@dataclass(frozen=True)
class FunnelPlan:
    """Candidates kept after each level but the last; see the module docstring."""

    candidates: tuple[int, ...]
    ef: int | None = None
    tuned: dict = field(default_factory=dict, compare=False)

    def stages(self, levels: Sequence[int], k: int, n: int) -> list[tuple[int, int]]:
        """(level, kept) pairs actually run for a top-``k`` search over ``n`` records.

        The first pair is the approximate stage; every count is clipped to [k, n] and made
        non-increasing; the last pair is (full dimension, k).
        """
        if len(self.candidates) != len(levels) - 1:
            raise MatryIndexError(
                f"plan has {len(self.candidates)} candidate counts for levels {tuple(levels)}; "
                f"expected {len(levels) - 1} (one per level below full)")
        out: list[tuple[int, int]] = []
        cap = n
        for level, count in zip(levels[:-1], self.candidates):
            if count <= 0:
                continue
            kept = max(min(int(count), cap), min(k, n))
            out.append((int(level), kept))
            cap = kept
        out.append((int(levels[-1]), min(k, n)))
        return out

    def ef_for(self, first_count: int) -> int:
        return max(int(self.ef or 0), first_count)

    @classmethod
    def default(cls, levels: Sequence[int], k: int = 10) -> "FunnelPlan":
        """A safe untuned plan: 40·k coarse candidates, halving (at least k) per later level."""
        counts, c = [], 40 * k
        for _ in levels[:-1]:
            counts.append(c)
            c = max(k, c // 4)
        return cls(tuple(counts))

    def to_dict(self) -> dict:
        return {"candidates": list(self.candidates), "ef": self.ef, "tuned": self.tuned}

    @classmethod
    def from_dict(cls, d: dict) -> "FunnelPlan":
        return cls(tuple(int(c) for c in d["candidates"]), d.get("ef"), d.get("tuned") or {})


def plan_cost(plan: FunnelPlan, levels: Sequence[int], k: int, n: int, hnsw_m: int = 32) -> float:
    """Distance-computation cost in float multiply-adds per query.

    The approximate stage visits about ``ef · M`` nodes of the graph (or all ``n`` for a
    flat coarse index, when ``hnsw_m`` is 0); each later stage scores the previous stage's
    survivors on its own prefix.
    """
    stages = plan.stages(levels, k, n)
    first_level, first_kept = stages[0]
    visited = n if hnsw_m == 0 else min(n, plan.ef_for(first_kept) * hnsw_m)
    cost = float(visited * first_level)
    prev = first_kept
    for level, kept in stages[1:]:
        cost += prev * level
        prev = kept
    return cost


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of each row of ``truth`` (exact top-k keys) present in ``found``."""
    k = truth.shape[1]
    hits = [len(np.intersect1d(f[f >= 0], t[t >= 0])) / max(1, min(k, int((t >= 0).sum())))
            for f, t in zip(found, truth)]
    return float(np.mean(hits))


def candidate_grid(levels: Sequence[int], k: int, n: int) -> list[FunnelPlan]:
    """Plans to try: coarse counts k·{1 … 500} × shrink ratios for the middle levels."""
    multipliers = [1, 1.5, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 100, 150, 200, 300, 500]
    plans = []
    for mult in multipliers:
        first = min(n, int(round(k * mult)))
        for ratio in (0, 2, 4, 8):  # 0: skip middle levels, rescore at full dimension directly
            counts, c = [first], first
            for _ in levels[1:-1]:
                if ratio == 0:
                    counts.append(0)
                else:
                    c = max(k, c // ratio)
                    counts.append(c)
            plans.append(FunnelPlan(tuple(counts)))
    return list(dict.fromkeys(plans))


def tune(run: Callable[[FunnelPlan], np.ndarray], truth: np.ndarray, levels: Sequence[int],
         k: int, n: int, target_recall: float = 0.99, hnsw_m: int = 32) -> FunnelPlan:
    """The cheapest plan (by :func:`plan_cost`) whose recall@k reaches ``target_recall``.

    ``run(plan)`` returns the keys found for the sample queries, ``truth`` their exact
    full-dimension top-k keys. Plans are tried cheapest first, so the first one that reaches
    the target wins; if none does, the plan with the highest recall is returned and its
    ``tuned`` record says the target was missed.
    """
    if not 0 < target_recall <= 1:
        raise MatryIndexError(f"target_recall must be in (0, 1]; got {target_recall}")
    if len(levels) < 2:
        return FunnelPlan((), tuned={"recall": 1.0, "target": target_recall, "reached": True})
    plans = sorted(candidate_grid(levels, k, n), key=lambda p: plan_cost(p, levels, k, n, hnsw_m))
    best, best_recall = plans[-1], -1.0
    for plan in plans:
        r = recall_at_k(run(plan), truth)
        if r >= target_recall:
            return FunnelPlan(plan.candidates, plan.ef, {
                "recall": r, "target": target_recall, "reached": True, "k": k,
                "cost": plan_cost(plan, levels, k, n, hnsw_m), "queries": len(truth)})
        if r > best_recall:
            best, best_recall = plan, r
    return FunnelPlan(best.candidates, best.ef, {"recall": best_recall, "target": target_recall,
                                                  "reached": False, "k": k, "queries": len(truth)})
