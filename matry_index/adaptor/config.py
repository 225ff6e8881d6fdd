"""Training settings and results (plain Python: importable without torch).

:class:`TrainConfig` is validated once, when it is made (and again by ``with_overrides``, which
makes a new one), from one table of constraints — :data:`CONSTRAINTS`, in the spirit of
scikit-learn's ``_parameter_constraints`` — so a bad setting fails at once with its name,
instead of being stored silently or surfacing as NaN losses inside torch.
"""
from __future__ import annotations

import math
import numbers
import os
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from ..errors import InvalidInput
from .model import MatryoshkaAdaptor


@dataclass(frozen=True)
class Choice:
    """One of a fixed set of values."""

    values: tuple

    def check(self, value: Any) -> bool:
        return value in self.values

    def __str__(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)


@dataclass(frozen=True)
class Interval:
    """A number of ``kind`` (int or float) in a range; ``closed`` says which ends belong to it."""

    kind: type
    low: float | None = None
    high: float | None = None
    closed: str = "both"  # "both", "left", "right" or "neither"

    def check(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        if self.kind is int and not isinstance(value, numbers.Integral):
            return False
        if not math.isfinite(value):
            return False
        left, right = self.closed in ("both", "left"), self.closed in ("both", "right")
        if self.low is not None and (value < self.low or (value == self.low and not left)):
            return False
        return not (self.high is not None and (value > self.high or (value == self.high and not right)))

    def __str__(self) -> str:
        lo = "-inf" if self.low is None else self.low
        hi = "inf" if self.high is None else self.high
        brackets = {"both": "[]", "left": "[)", "right": "(]", "neither": "()"}[self.closed]
        return f"{'an integer' if self.kind is int else 'a number'} in {brackets[0]}{lo}, {hi}{brackets[1]}"


@dataclass(frozen=True)
class OrNone:
    """None, or a value meeting ``inner``."""

    inner: Any

    def check(self, value: Any) -> bool:
        return value is None or self.inner.check(value)

    def __str__(self) -> str:
        return f"None or {self.inner}"


@dataclass(frozen=True)
class Levels:
    """A non-empty, strictly increasing sequence of positive integers."""

    def check(self, value: Any) -> bool:
        try:
            items = list(value)
        except TypeError:
            return False
        ok = items and all(Interval(int, 1).check(m) for m in items)
        return bool(ok) and all(a < b for a, b in zip(items, items[1:]))

    def __str__(self) -> str:
        return "a strictly increasing sequence of positive integers"


POSITIVE_INT, NON_NEGATIVE = Interval(int, 1), Interval(float, 0)
POSITIVE = Interval(float, 0, closed="neither")
BOOL = Choice((True, False))

#: what every setting of :class:`TrainConfig` accepts
CONSTRAINTS: dict[str, Any] = {
    "levels": Levels(), "hidden": Interval(int, 0), "rotation": Choice(("pca-learned", "pca", "none")),
    "neighbours": POSITIVE_INT, "batch_size": Interval(int, 2), "lr": POSITIVE,
    "lr_schedule": Choice(("constant", "cosine")), "max_steps": POSITIVE_INT, "eval_every": POSITIVE_INT,
    "patience": POSITIVE_INT, "val_fraction": Interval(float, 0, 1, closed="neither"),
    "w_topk": NON_NEGATIVE, "w_pair": NON_NEGATIVE, "w_listwise": NON_NEGATIVE, "w_rec": NON_NEGATIVE,
    "temperature": POSITIVE, "include_full": BOOL, "level_weight_power": Interval(float),
    "query_anchor_share": OrNone(Interval(float, 0, 1)),
    "w_rank": NON_NEGATIVE, "rank_loss": Choice(("pairwise", "softmax-inbatch")), "rank_scale": POSITIVE,
    "w_inbatch": NON_NEGATIVE, "hard_negatives": POSITIVE_INT, "supervised_lr": POSITIVE,
    "w_recall": NON_NEGATIVE, "recall_levels": Levels(), "recall_negatives": POSITIVE_INT,
    "recall_temperature": POSITIVE, "recall_refresh": POSITIVE_INT,
    "select_by": Choice(("loss", "candidates")), "select_recall": Interval(float, 0, 1, closed="right"),
    "seed": Interval(int, 0), "threads": OrNone(POSITIVE_INT),
}

#: settings that only the supervised stage (:func:`matry_index.adaptor.fit_supervised`) reads
SUPERVISED_ONLY = ("w_rank", "rank_loss", "rank_scale", "w_inbatch", "hard_negatives", "supervised_lr")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run. Defaults are the recipe chosen in ``docs/adaptor.md``;
    :data:`CONSTRAINTS` says what each accepts."""

    levels: tuple[int, ...] = (32, 64, 128, 192, 256)
    hidden: int = 256              # MLP width; 0 = rotation only
    rotation: str = "pca-learned"  # "pca-learned" (orthogonal, fine-tuned), "pca" (fixed) or "none"
    neighbours: int = 32           # mined nearest documents per anchor
    batch_size: int = 256
    lr: float = 1e-3
    lr_schedule: str = "constant"  # or "cosine": decay to 0 over max_steps
    max_steps: int = 700
    eval_every: int = 100
    patience: int = 3              # evaluations without improvement before stopping
    val_fraction: float = 0.1
    w_topk: float = 0.0            # the paper's L1 terms: off by default (see docs/adaptor.md)
    w_pair: float = 0.0
    w_listwise: float = 1.0
    w_rec: float = 1.0
    temperature: float = 0.05
    include_full: bool = True      # also preserve full-dimension similarities
    level_weight_power: float = 0.0  # weight of level m in the loss ∝ m**power (0 = equal)
    query_anchor_share: float | None = None  # share of each batch drawn from query anchors
    #                                          (None: in proportion to their number)
    # --- the funnel's coarse stage (docs/adaptor.md, "Trained for the funnel") ---
    w_recall: float = 0.0          # weight of the smooth-rank term: full top-10 inside each coarse prefix's top
    recall_levels: tuple[int, ...] = (32, 64, 128)  # the coarse prefixes that term and the selection look at
    recall_negatives: int = 32     # hard negatives per anchor and coarse level, mined in the current prefix
    recall_temperature: float = 0.02
    recall_refresh: int = 100      # steps between re-mining the hard negatives
    select_by: str = "loss"        # keep the state with the lowest held-out loss, or the fewest
    #                                held-out candidates needed at the coarse levels ("candidates")
    select_recall: float = 0.99    # the recall those candidates must reach
    # --- supervised stage only (SUPERVISED_ONLY) ---
    w_rank: float = 1.0
    rank_loss: str = "pairwise"    # "pairwise" (Eq. 5 of Yoon et al. 2024) or "softmax-inbatch"
    rank_scale: float = 20.0
    w_inbatch: float = 0.0         # with rank_loss="pairwise": weight of an added in-batch softmax term
    hard_negatives: int = 32
    supervised_lr: float = 3e-4
    # --- the run ---
    seed: int = 0
    threads: int | None = None     # torch threads for the fit; None: see default_threads()

    def __post_init__(self) -> None:
        for f in fields(self):
            value, rule = getattr(self, f.name), CONSTRAINTS[f.name]
            if not rule.check(value):
                raise InvalidInput(f"TrainConfig.{f.name} must be {rule}; got {value!r}")
        object.__setattr__(self, "levels", tuple(int(m) for m in self.levels))
        object.__setattr__(self, "recall_levels", tuple(int(m) for m in self.recall_levels))
        if self.w_inbatch and self.rank_loss != "pairwise":
            raise InvalidInput(f"w_inbatch adds an in-batch term to rank_loss='pairwise' only; got "
                                  f"w_inbatch={self.w_inbatch} with rank_loss={self.rank_loss!r}")
        if self.hidden == 0 and self.rotation != "pca-learned":
            raise InvalidInput("nothing to train: set hidden > 0 or rotation='pca-learned'")

    def with_overrides(self, **kw: Any) -> "TrainConfig":
        """A copy with some settings changed (validated like a new one)."""
        unknown = set(kw) - set(asdict(self))
        if unknown:
            raise InvalidInput(f"unknown training settings: {sorted(unknown)}")
        return replace(self, **kw)


#: settings that turn the default (nDCG-of-each-prefix) recipe into the funnel-aware one: a learned
#: rotation only, so the full-dimension cosine is the original model's exactly, trained with the
#: smooth-rank term that keeps each anchor's full-dimension top-10 near the top of every coarse
#: prefix, and kept at the state that needs the fewest held-out candidates (docs/adaptor.md)
FUNNEL_RECIPE: dict[str, Any] = {"hidden": 0, "w_recall": 1.0, "select_by": "candidates", "lr": 3e-4,
                                 "eval_every": 50, "patience": 4, "query_anchor_share": 0.5}

#: the recipes by the name the CLI and ``fit_unsupervised(objective=...)`` know them by
OBJECTIVES: dict[str, dict[str, Any]] = {"prefix": {}, "funnel": FUNNEL_RECIPE}


def default_threads() -> int:
    """Torch threads for a fit when ``TrainConfig.threads`` is None: the cores this process
    may use that are not already busy (by the 1-minute load average), at least 1 and at most 8.

    More threads than idle cores is the expensive mistake: OpenMP threads that wait on each
    other made a 2-minute fit take over 30 minutes on a 2-core machine running one other job;
    a service running one process per core should pass ``threads=1``.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        busy = int(round(os.getloadavg()[0]))
    except (AttributeError, OSError):
        busy = 0
    return max(1, min(8, cores - busy))


@dataclass
class TrainResult:
    """What a fit returns: the adaptor and its training history (for reports and tests)."""

    adaptor: MatryoshkaAdaptor
    history: list[dict] = field(default_factory=list)
    best_step: int = 0
    seconds: float = 0.0
