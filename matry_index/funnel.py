"""The coarse-to-fine plan: how many candidates each prefix level passes on.

A plan for levels (64, 128, 256, 384) with ``candidates=(400, 100, 40)`` means: approximate
search on the 64-d prefix keeps 400 candidates; exact rescoring on the 128-d prefix keeps
100; on the 256-d prefix, 40; exact full-dimension scores pick the final k. A level whose
count is 0 is skipped. ``ef`` (HNSW's search breadth) is never below the first count — FAISS
does not raise it on its own, and a smaller ef silently returns poorer candidates. ``nprobe``
is the breadth of an IVF coarse index (how many of its lists are scanned). ``exact`` skips the
funnel: an exhaustive full-dimension scan, which :func:`tune` chooses when no cheaper plan
reaches the target (small collections, or embeddings whose prefixes carry little).

:func:`matry_index.tuning.tune` picks the plan to use, in the order of the cost model here
(:class:`CoarseCost`, :func:`plan_cost`) over the plans of :func:`candidate_grid`.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from .codes import COARSE_CODES, CoarseCode, coarse_code
from .errors import InvalidInput


@dataclass(frozen=True)
class FunnelPlan:
    """Candidates kept after each level but the last; see the module docstring."""

    candidates: tuple[int, ...]
    ef: int | None = None
    tuned: dict = field(default_factory=dict, compare=False)
    nprobe: int | None = None
    exact: bool = False

    def __post_init__(self) -> None:
        try:
            counts = tuple(self.candidates)
        except TypeError:
            raise InvalidInput(f"plan candidates must be a sequence of counts; got {self.candidates!r}") from None
        object.__setattr__(self, "candidates", tuple(_count(c, "a candidate count", 0, MAX_COUNT) for c in counts))
        for name in ("ef", "nprobe"):
            value = getattr(self, name)
            object.__setattr__(self, name, None if value is None else _count(value, name, 1, MAX_BREADTH))
        if not isinstance(self.exact, (bool, np.bool_)):
            raise InvalidInput(f"plan exact must be True or False; got {self.exact!r}")
        if not isinstance(self.tuned, dict):
            raise InvalidInput(f"plan tuned must be a dict; got {type(self.tuned).__name__}")

    def stages(self, levels: Sequence[int], k: int, n: int) -> list[tuple[int, int]]:
        """(level, kept) pairs actually run for a top-``k`` search over ``n`` records.

        The first pair is the approximate stage; every count is clipped to [k, n] and made
        non-increasing; the last pair is (full dimension, k).
        """
        return list(_stages(tuple(self.candidates), tuple(levels), k, n))

    def ef_for(self, first_count: int) -> int:
        return max(int(self.ef or 0), first_count)

    @classmethod
    def exhaustive(cls, levels: Sequence[int], n: int) -> "FunnelPlan":
        """The plan that skips the funnel and scans all ``n`` vectors at full dimension."""
        return cls((n,) + (0,) * (len(levels) - 2), exact=True)

    def describe(self) -> str:
        """Short text for reports and logs: the candidate counts (and nprobe or ef), or "exact scan"."""
        if self.exact:
            return "exact scan"
        return (f"{self.candidates}" + (f", nprobe {self.nprobe}" if self.nprobe else "")
                + (f", ef {self.ef}" if self.ef else ""))

    def explain(self, levels: Sequence[int], k: int = 10) -> str:
        """The plan in words, stage by stage, and what its tuning promises, for a person to read."""
        if self.exact:
            text = (f"an exact scan of every vector at {levels[-1]}-d"
                    + (" (no funnel promised the target: see tuned['best_funnel'])" if "best_funnel" in self.tuned
                       else " (as fast as any funnel that promises the target)" if self.tuned else ""))
        elif not self.candidates:  # one level: the approximate search is the whole search
            text = f"the {levels[0]}-d approximate search returns the top {k}" + self._breadth(k)
        else:
            first = (f"the {levels[0]}-d prefix's approximate search passes {self.candidates[0]} candidates"
                     + self._breadth(self.candidates[0]))
            steps = [first] + [f"the {m}-d prefix keeps {c}" for m, c in zip(levels[1:-1], self.candidates[1:]) if c]
            text = "; ".join(steps) + f"; all {levels[-1]} dimensions rank them and return the top {k}"
        return text + self._promise()

    def _breadth(self, passed: int) -> str:
        if self.nprobe:
            return f" (scanning {self.nprobe} IVF lists)"
        if self.ef and self.ef > passed:
            return f" (the best of the {self.ef} its graph walk keeps)"
        return ""

    def _promise(self) -> str:
        """What the tuning that chose this plan promises (nothing for a plan that was not tuned)."""
        t = self.tuned
        if "target" not in t or "queries" not in t:
            return ""
        measured = f"recall@{t.get('k', 10)} {t.get('recall', float('nan')):.4f} on {t['queries']} tuning queries"
        if not t.get("reached", False):
            return f". It misses the target {t['target']}: {measured}"
        confidence = t.get("confidence")
        if confidence is None:  # a plan tuned before plans promised a bound
            return f". Tuned to {t['target']}: {measured}"
        return (f". Promise: recall@{t.get('k', 10)} >= {t['target']} on a fresh sample of {t['queries']} queries "
                f"like the tuning ones, with {confidence:.0%} confidence ({measured}, lower bound "
                f"{t.get('bound', float('nan')):.4f} on the worse half)")

    @classmethod
    def default(cls, levels: Sequence[int], k: int = 10) -> "FunnelPlan":
        """A safe untuned plan: 40·k coarse candidates, a quarter of that (at least k) at each later level."""
        counts, c = [], 40 * k
        for _ in levels[:-1]:
            counts.append(c)
            c = max(k, c // 4)
        return cls(tuple(counts))

    def with_tuning(self, record: dict) -> "FunnelPlan":
        return replace(self, tuned=record)

    def to_dict(self) -> dict:
        return {"candidates": list(self.candidates), "ef": self.ef, "nprobe": self.nprobe,
                "exact": self.exact, "tuned": self.tuned}

    @classmethod
    def from_dict(cls, d: dict) -> "FunnelPlan":
        if not isinstance(d, dict):
            raise InvalidInput(f"a plan must be a dict; got {type(d).__name__}")
        return cls(d["candidates"], d.get("ef"), d.get("tuned") or {}, d.get("nprobe"), d.get("exact", False))


#: the largest candidate count a plan may hold (backends clip counts to their size)
MAX_COUNT = 1 << 32
#: the largest search breadth (HNSW ``ef``, IVF ``nprobe``): engines allocate per unit of it, so a
#: plan read from a file must not be able to ask for gigabytes
MAX_BREADTH = 1 << 16


def _count(value: object, name: str, low: int, high: int) -> int:
    """``value`` as an int in [low, high], or a clear error (a plan is often read from a file)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or not low <= int(value) <= high:
        raise InvalidInput(f"plan {name} must be an integer in [{low}, {high}]; got {value!r}")
    return int(value)


@functools.lru_cache(maxsize=1024)  # run on every search, nearly always with the same arguments
def _stages(candidates: tuple[int, ...], levels: tuple[int, ...], k: int, n: int) -> tuple[tuple[int, int], ...]:
    """:meth:`FunnelPlan.stages` for hashable arguments."""
    if len(candidates) != len(levels) - 1:
        raise InvalidInput(
            f"plan has {len(candidates)} candidate counts for levels {levels}; "
            f"expected {len(levels) - 1} (one per level below full)")
    out: list[tuple[int, int]] = []
    cap = n
    for level, count in zip(levels[:-1], candidates):
        if count <= 0:
            continue
        kept = max(min(int(count), cap), min(k, n))
        out.append((int(level), kept))
        cap = kept
    out.append((int(levels[-1]), min(k, n)))
    return tuple(out)


# A read from a random place in memory (an HNSW node, a candidate row) costs about as much as
# this many multiply-adds on this class of machine: at a million vectors the walk and the
# candidate gathers are bound by memory latency, not arithmetic.
RANDOM_READ_COST = 200.0


@dataclass(frozen=True)
class CoarseCost:
    """What the approximate stage costs: its :class:`~matry_index.codes.CoarseCode` (structure
    and encoding) and shape.

    A scan reads ``code.encoding.scan_factor`` of float32's bytes per coordinate (a quarter for
    8-bit codes); a graph walk pays a random read per visited node whatever its encoding.
    """

    code: CoarseCode | str = COARSE_CODES["hnsw"]
    hnsw_m: int = 32
    nlist: int = 0
    #: what handing one candidate to the next stage costs beyond its multiply-adds: a random
    #: read from memory in FAISS; in Qdrant, whose stages fetch each candidate's vector by id
    #: from its storage, about what one node of the graph walk costs (measured on Edge)
    candidate_read: float = RANDOM_READ_COST

    def __post_init__(self) -> None:
        if isinstance(self.code, str):  # a code may be given by its name
            object.__setattr__(self, "code", coarse_code(self.code))

    @property
    def structure(self) -> str:
        return self.code.structure

    def breadths(self) -> list[int | None]:
        """nprobe values worth trying (None where the structure has no such knob)."""
        if self.structure != "ivf" or self.nlist <= 1:
            return [None]
        grid = [1, 2, 3, 4, 5, 6, 8, 10, 12, 14, 16, 20, 24, 32, 48, 64, 96, 128]
        if self.nlist > grid[-1]:
            return list(grid)
        return [p for p in grid if p < self.nlist] + [self.nlist]

    def cost(self, plan: FunnelPlan, level: int, kept: int, n: int) -> float:
        scale = self.code.encoding.scan_factor
        if self.structure == "hnsw":
            visited = min(n, plan.ef_for(kept) * self.hnsw_m)
            return visited * (level + RANDOM_READ_COST)
        if self.structure == "ivf" and self.nlist > 1:
            probes = min(self.nlist, plan.nprobe or 1)
            scanned = min(n, probes * n / self.nlist)
            return self.nlist * level + scanned * level * scale + probes * RANDOM_READ_COST
        return n * level * scale


def plan_cost(plan: FunnelPlan, levels: Sequence[int], k: int, n: int,
              coarse: CoarseCost | None = None) -> float:
    """Estimated cost of one query in multiply-add equivalents.

    The approximate stage costs what :class:`CoarseCost` says; each later stage gathers the
    previous stage's survivors (a random read each) and scores them on its own prefix.
    """
    if plan.exact:
        return float(n) * levels[-1]
    coarse = coarse or CoarseCost()
    stages = plan.stages(levels, k, n)
    first_level, first_kept = stages[0]
    cost = coarse.cost(plan, first_level, first_kept, n)
    prev = first_kept
    for level, kept in stages[1:]:
        cost += prev * (level + coarse.candidate_read)
        prev = kept
    return cost


def candidate_grid(levels: Sequence[int], k: int, n: int,
                   coarse: CoarseCost | None = None) -> list[FunnelPlan]:
    """Plans to try: coarse counts k·{1 … 500} × shrink ratios for the middle levels
    (× nprobe values for an IVF coarse index; × a search breadth ``ef`` of 1, 1.5 or 2 times
    the count for an HNSW one — up to 4 times where candidates are dear to read: a wider walk
    finds the true neighbours of the prefix, and passing fewer of them on saves those reads)."""
    # steps of ~20-40 %: a coarser grid overshoots the target and pays for recall nobody asked for
    multipliers = [1, 1.5, 2, 3, 4, 5, 6, 8, 10, 12, 14, 16, 20, 24, 32, 40, 48, 64, 80, 100, 150, 200, 300, 500]
    coarse = coarse or CoarseCost()
    if coarse.structure != "hnsw":
        widths: tuple[float, ...] = (1.0,)
    elif coarse.candidate_read > RANDOM_READ_COST:
        widths = (1.0, 1.5, 2.0, 3.0, 4.0)
    else:
        widths = (1.0, 1.5, 2.0)
    plans = []
    for nprobe in coarse.breadths():
        for mult in multipliers:
            first = min(n, MAX_COUNT, int(round(k * mult)))
            for width in widths:
                ef = None if width == 1.0 else min(MAX_BREADTH, int(round(first * width)))
                for ratio in (0, 2, 4, 8):  # 0: skip middle levels, rescore at full dimension directly
                    counts = (first,) + _middle_counts(first, len(levels) - 2, k, ratio)
                    plans.append(FunnelPlan(counts, ef=ef, nprobe=nprobe))
    return list(dict.fromkeys(plans))


def _middle_counts(first: int, middle_levels: int, k: int, ratio: int) -> tuple[int, ...]:
    """What each middle level keeps: ``1/ratio`` of the level before (at least ``k``), or
    nothing (ratio 0: the middle levels are skipped)."""
    counts, c = [], first
    for _ in range(middle_levels):
        c = max(k, c // ratio) if ratio else 0
        counts.append(c)
    return tuple(counts)
