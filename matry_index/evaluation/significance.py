"""How sure a difference between two methods is, given the queries a test set happens to have.

Two methods scored on the same few hundred queries differ by a few thousandths of nDCG all the
time for no reason but which queries were sampled. A paired bootstrap over queries (resample
queries with replacement, recompute the mean per-query difference) gives a confidence interval
for the difference a larger sample of the same kind of queries would show; a gap whose interval
contains zero is not evidence that one method is better.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .._extras import require

from ..errors import InvalidInput


@dataclass(frozen=True)
class Difference:
    """Mean of per-query ``a - b`` and its bootstrap confidence interval."""

    mean: float
    low: float
    high: float
    queries: int
    confidence: float

    @property
    def resolved(self) -> bool:
        """True when the interval excludes zero: the sign of the difference is supported."""
        return self.low > 0 or self.high < 0

    def __str__(self) -> str:
        return f"{self.mean:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"


def paired_difference(a: Mapping[str, float], b: Mapping[str, float], confidence: float = 0.95,
                      resamples: int = 9999, seed: int = 0) -> Difference:
    """Per-query scores of two methods on the same queries → mean difference ``a - b`` with a
    bootstrap interval over queries (``scipy.stats.bootstrap``)."""
    if set(a) != set(b):
        raise InvalidInput(f"the two methods were scored on different queries "
                              f"({len(set(a) ^ set(b))} not in both)")
    if len(a) < 2:
        raise InvalidInput("a paired bootstrap needs at least two queries")
    diffs = np.array([a[q] - b[q] for q in sorted(a)], dtype=float)
    mean = float(diffs.mean())
    if np.ptp(diffs) <= 1e-12 * max(1.0, abs(mean)):  # every query moved alike: nothing to resample
        return Difference(mean, mean, mean, len(diffs), confidence)
    low, high = _bootstrap_interval(diffs, confidence, resamples, seed)
    return Difference(mean, float(low), float(high), len(diffs), confidence)


def _bootstrap_interval(diffs: np.ndarray, confidence: float, resamples: int, seed: int) -> tuple[float, float]:
    """BCa interval of the mean (corrects for skew, e.g. many ties at zero); the plain
    percentile interval where BCa's acceleration is undefined."""
    bootstrap = require("scipy.stats", "bootstrap confidence intervals").bootstrap

    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # BCa's own degenerate-data warning: handled below
            res = bootstrap((diffs,), np.mean, confidence_level=confidence, n_resamples=resamples,
                            method=method, rng=np.random.default_rng(seed))
        low, high = res.confidence_interval
        if np.isfinite(low) and np.isfinite(high):
            break
    return float(low), float(high)


def mean_over_runs(runs: list[Mapping[str, float]]) -> dict[str, float]:
    """Per-query mean of several runs (seeds) of one method, so that the interval is about the
    method's expected score and not one seed's luck."""
    if not runs:
        raise InvalidInput("no runs to average")
    queries = set(runs[0])
    if any(set(r) != queries for r in runs):
        raise InvalidInput("the runs were scored on different queries")
    return {q: float(np.mean([r[q] for r in runs])) for q in queries}
