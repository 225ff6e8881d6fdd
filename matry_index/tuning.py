"""Choosing a funnel plan that keeps its promise on queries it has not seen.

A plan tuned to reach a recall on a sample of queries is, among the many plans tried, mostly
one that was lucky on those queries: tuned to 0.99 on a few hundred queries, plans landed at
0.978–0.988 on the next ones. So :func:`tune` asks more of a plan than the target:

* **a margin from the sample's own uncertainty.** Each query's recall@k is one draw; a plan's
  recall on a fresh sample of as many queries scatters around its true recall by the standard
  error of a mean. A plan passes only if, on the sample, its mean recall is at least the target
  plus ``z · sd · √(1/n + 1/m)`` — ``n`` the queries it is measured on, ``m`` those of a fresh
  sample (as many as the whole tuning sample), ``z`` the normal quantile of ``confidence``
  corrected for choosing among several passing plans — so that a fresh sample reaches the
  target with that probability;
* **a held-out half to confirm it.** The sample is split in two (alternate queries); a plan
  must pass on each half, so it is confirmed on queries its choice did not rest on alone;
* **measured speed among the contenders.** The cost model (:func:`matry_index.funnel.plan_cost`)
  orders the plans; the first few that pass are then timed on this machine and the fastest
  is kept — a model's price of a probed list against a rescored candidate is only roughly
  right, and the order of near-equal plans is the machine's to say.

What a plan promises, and on how many queries it was tuned, goes into its ``tuned`` record and
:meth:`matry_index.FunnelPlan.explain`. With too few queries to promise the target (fewer than
``2 / (1 − target)``), :func:`tune` warns.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from .errors import InvalidInput
from .funnel import CoarseCost, FunnelPlan, candidate_grid, plan_cost

#: how many passing plans, in cost order, are timed before the fastest is kept
CONTENDERS = 6
#: a contender costs at most this many times the first passing plan (by the model)
CONTENDER_SPAN = 3.0
CONFIDENCE = 0.95
#: a plan whose recall on the screening quarter of the sample is this far below the target is
#: not run on the rest (no plan that misses by so much on a quarter passes on the whole)
SCREEN_SLACK = 0.005
SCREEN_FROM = 200  # queries: below this every plan runs on the whole sample


def per_query_recall(found: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Each query's share of its exact top-k (``truth``, -1 pads) present in ``found``."""
    k = truth.shape[1]
    return np.array([len(np.intersect1d(f[f >= 0], t[t >= 0])) / max(1, min(k, int((t >= 0).sum())))
                     for f, t in zip(found, truth)], dtype=np.float64)


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of each row of ``truth`` (exact top-k keys) present in ``found``."""
    return float(per_query_recall(found, truth).mean())


def worst_half_recall(found: np.ndarray, truth: np.ndarray) -> float:
    """The lower of the recalls@k on the two halves of the queries (alternate rows)."""
    if len(truth) < 2:
        return recall_at_k(found, truth)
    return min(recall_at_k(found[h], truth[h]) for h in (slice(0, None, 2), slice(1, None, 2)))


@dataclass(frozen=True)
class Promise:
    """Whether a plan's measured recalls promise ``target`` on a fresh sample of ``fresh`` queries."""

    target: float
    fresh: int
    confidence: float = CONFIDENCE

    def margin(self, recalls: np.ndarray) -> float:
        """How far above the target a sample with these per-query recalls must be.

        The normal quantile is taken at half the allowed miss rate: the plan kept is the
        fastest of several that pass, and the fastest of them is the likeliest to have passed
        by luck, so each is held to twice the confidence margin's strictness (a Bonferroni-
        style correction; without it, 18 of 20 fresh draws held where 19 were promised)."""
        z = NormalDist().inv_cdf(1 - (1 - self.confidence) / 2)
        sd = float(recalls.std(ddof=1)) if len(recalls) > 1 else 0.0
        return z * sd * math.sqrt(1 / max(1, len(recalls)) + 1 / self.fresh)

    def bound(self, recalls: np.ndarray) -> float:
        """The recall a fresh sample is expected to reach with ``confidence``, from these."""
        return float(recalls.mean()) - self.margin(recalls)

    def record(self, recalls: np.ndarray) -> dict:
        """What a plan measured: recall, each half's and their lower bounds, and whether it passes."""
        halves = (recalls[0::2], recalls[1::2]) if len(recalls) > 1 else (recalls, recalls)
        bounds = [self.bound(h) for h in halves]
        return {"recall": float(recalls.mean()), "halves": [float(h.mean()) for h in halves],
                "worst_half": float(min(h.mean() for h in halves)), "bound": float(min(bounds)),
                "passes": bool(min(bounds) >= self.target)}


def _screening_rows(queries: int) -> np.ndarray | None:
    """Every fourth query of a large sample (None for a small one)."""
    return np.arange(0, queries, 4) if queries >= SCREEN_FROM else None


def too_few(queries: int, target: float) -> bool:
    """Whether ``queries`` are too few to promise ``target`` on new ones (fewer than 2 / (1 − target))."""
    return target < 1 and queries < 2 / (1 - target)


Timer = Callable[[FunnelPlan], float]


def tune(run: Callable[..., np.ndarray], truth: np.ndarray, levels: Sequence[int], k: int, n: int,
         target_recall: float = 0.99, coarse: CoarseCost | None = None, timer: Timer | None = None,
         confidence: float = CONFIDENCE) -> FunnelPlan:
    """The fastest plan whose recall@k promises ``target_recall`` on new queries (module docstring).

    ``run(plan, rows=None)`` returns the keys found for the sample queries (those of ``rows``
    only, when given: plans are screened on a quarter of a large sample first), ``truth``
    their exact full-dimension top-k keys; ``timer(plan)`` (optional) the seconds one query takes under
    ``plan`` on this machine. Once the plans left cost as much as scanning all ``n`` vectors at
    full dimension, that exact scan is a contender too (``exact=True``, recall 1 by definition);
    where no plan passes, it is the answer (its ``tuned`` record names the best funnel tried).
    """
    if not 0 < target_recall <= 1:
        raise InvalidInput(f"target_recall must be in (0, 1]; got {target_recall}")
    if not 0.5 <= confidence < 1:
        raise InvalidInput(f"confidence must be in [0.5, 1); got {confidence}")
    promise = Promise(target_recall, len(truth), confidence)
    common = {"target": target_recall, "k": k, "queries": len(truth), "confidence": confidence}
    if too_few(len(truth), target_recall):
        warnings.warn(f"{len(truth)} tuning queries are too few to promise recall {target_recall} on new queries "
                      f"(at least {math.ceil(2 / (1 - target_recall))} are needed); the plan may fall short",
                      RuntimeWarning, stacklevel=3)
    if len(levels) < 2:
        return FunnelPlan((), tuned={**common, "recall": 1.0, "bound": 1.0, "reached": True})

    def cost(plan: FunnelPlan) -> float:
        return plan_cost(plan, levels, k, n, coarse)
    scan = FunnelPlan.exhaustive(levels, n)
    grid = [plan for plan in candidate_grid(levels, k, n, coarse) if cost(plan) < cost(scan)]
    search = _Search(run, truth, promise)
    contenders = search.contenders(grid, cost)
    if not contenders:  # no funnel promises the target: the exact scan always does
        if search.best is not None:
            common["best_funnel"] = {"plan": search.best[0].describe(), **search.best[1]}
        return scan.with_tuning({**common, **_EXACT, "reached": True, "cost": cost(scan)})
    if cost(scan) <= CONTENDER_SPAN * cost(contenders[0][0]):
        contenders.append((scan, _EXACT))
    return _fastest(contenders, timer, cost, common)


_EXACT = {"recall": 1.0, "halves": [1.0, 1.0], "worst_half": 1.0, "bound": 1.0, "passes": True}


class _Search:
    """Runs plans against the tuning sample, as few as it can.

    Within one line of plans — the same breadth (``nprobe``, or the walk's width over its
    count), no middle stage — recall only grows with the coarse count: the top ``c + 1`` of a
    coarse ranking hold its top ``c``. So on each line the smallest count that keeps the promise
    is found by bisection (first on a screening quarter of the sample, then on all of it), and
    only plans at or above it — that line's, and those with middle stages, which can only lose
    recall — are contenders.
    """

    def __init__(self, run: Callable[..., np.ndarray], truth: np.ndarray, promise: Promise):
        self.run, self.truth, self.promise = run, truth, promise
        self.screen = _screening_rows(len(truth))
        self.records: dict[FunnelPlan, dict] = {}        # plans run on the whole sample
        self.screened: tuple[float, FunnelPlan] | None = None  # the best recall seen on the screen

    @property
    def best(self) -> tuple[FunnelPlan, dict] | None:
        """The plan that came closest to the promise (by its bound, or by screened recall)."""
        if self.records:
            plan = max(self.records, key=lambda p: self.records[p]["bound"])
            return plan, self.records[plan]
        if self.screened is not None:
            return self.screened[1], {"recall": self.screened[0], "screened_on": len(self.screen)}
        return None

    def _screened(self, plan: FunnelPlan) -> bool:
        """Whether ``plan`` comes near the target on the screening quarter (always, for a small sample)."""
        if self.screen is None:
            return True
        recall = float(per_query_recall(self.run(plan, self.screen), self.truth[self.screen]).mean())
        if self.screened is None or recall > self.screened[0]:
            self.screened = (recall, plan)
        return recall >= self.promise.target - SCREEN_SLACK

    def passes(self, plan: FunnelPlan) -> bool:
        """Whether ``plan`` keeps the promise on the whole sample (screened first)."""
        if plan not in self.records:
            if not self._screened(plan):
                return False
            self.records[plan] = self.promise.record(per_query_recall(self.run(plan), self.truth))
        return self.records[plan]["passes"]

    def contenders(self, grid: list[FunnelPlan], cost) -> list[tuple[FunnelPlan, dict]]:
        """The first :data:`CONTENDERS` plans, by cost, that keep the promise (within
        :data:`CONTENDER_SPAN` of the first one's cost)."""
        least = self._least_counts(grid)
        found: list[tuple[FunnelPlan, dict]] = []
        for plan in sorted((p for p in grid if _line(p) in least and p.candidates[0] >= least[_line(p)]), key=cost):
            if found and (len(found) >= CONTENDERS or cost(plan) > CONTENDER_SPAN * cost(found[0][0])):
                break
            if self.passes(plan):
                found.append((plan, self.records[plan]))
        return found

    def _least_counts(self, grid: list[FunnelPlan]) -> dict[tuple, int]:
        """Per line, the smallest coarse count whose plan (no middle stage) keeps the promise."""
        lines: dict[tuple, list[FunnelPlan]] = {}
        for plan in grid:
            if not any(plan.candidates[1:]):
                lines.setdefault(_line(plan), []).append(plan)
        least = {}
        for key, plans in lines.items():
            plans.sort(key=lambda p: p.candidates[0])
            lo, hi = 0, len(plans)  # the first plan that passes lies in plans[lo:hi], or none does
            while lo < hi:
                mid = (lo + hi) // 2
                lo, hi = (lo, mid) if self.passes(plans[mid]) else (mid + 1, hi)
            if lo < len(plans):
                least[key] = plans[lo].candidates[0]
        return least


def _line(plan: FunnelPlan) -> tuple:
    """The line a plan's coarse stage belongs to: its probes and its walk's width per candidate."""
    return plan.nprobe or 0, round(plan.ef_for(plan.candidates[0]) / plan.candidates[0], 2)


def _fastest(contenders: list[tuple[FunnelPlan, dict]], timer: Timer | None, cost, common: dict) -> FunnelPlan:
    """The contender ``timer`` finds fastest (the cheapest by the model without a timer)."""
    if timer is None or len(contenders) == 1:
        plan, record = contenders[0]
        return plan.with_tuning({**common, **record, "reached": True, "cost": cost(plan)})
    timed = [(timer(plan), plan, record) for plan, record in contenders]
    seconds, plan, record = min(timed, key=lambda t: t[0])
    return plan.with_tuning({**common, **record, "reached": True, "cost": cost(plan),
                             "seconds_per_query": seconds, "contenders_timed": len(timed)})


__all__ = ["Promise", "per_query_recall", "recall_at_k", "too_few", "tune", "worst_half_recall"]
