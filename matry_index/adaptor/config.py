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
from dataclasses import dataclass, field, fields, replace
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


#: the prefix sizes an adaptor is trained for by default
DEFAULT_LEVELS = (32, 64, 128, 192, 256)

POSITIVE_INT, NON_NEGATIVE = Interval(int, 1), Interval(float, 0)
POSITIVE = Interval(float, 0, closed="neither")
BOOL = Choice((True, False))


class _Group:
    """A frozen group of settings checked against its own ``constraints`` table when made."""

    constraints: dict[str, Any] = {}

    def __post_init__(self) -> None:
        for f in fields(self):
            value, rule = getattr(self, f.name), self.constraints[f.name]
            if not rule.check(value):
                raise InvalidInput(f"TrainConfig.{f.name} must be {rule}; got {value!r}")
            if isinstance(rule, Levels):
                object.__setattr__(self, f.name, tuple(int(m) for m in value))


@dataclass(frozen=True)
class Shape(_Group):
    """What is trained: the prefix levels, the MLP's width (0: rotation only) and the rotation
    ("pca-learned": orthogonal, fine-tuned; "pca": fixed; "none")."""

    levels: tuple[int, ...] = DEFAULT_LEVELS
    hidden: int = 256
    rotation: str = "pca-learned"
    constraints = {"levels": Levels(), "hidden": Interval(int, 0), "rotation": Choice(("pca-learned", "pca", "none"))}


@dataclass(frozen=True)
class Anchors(_Group):
    """What the fit learns from: each anchor's ``neighbours`` nearest documents, the share of
    each batch drawn from query anchors (None: in proportion to their number), and the share
    of anchors held out for early stopping."""

    neighbours: int = 32
    query_anchor_share: float | None = None
    val_fraction: float = 0.1
    constraints = {"neighbours": POSITIVE_INT, "query_anchor_share": OrNone(Interval(float, 0, 1)),
                   "val_fraction": Interval(float, 0, 1, closed="neither")}


@dataclass(frozen=True)
class Schedule(_Group):
    """How the optimiser runs and when it stops (``patience`` evaluations without improvement)."""

    batch_size: int = 256
    lr: float = 1e-3
    lr_schedule: str = "constant"  # or "cosine": decay to 0 over max_steps
    max_steps: int = 700
    eval_every: int = 100
    patience: int = 3
    constraints = {"batch_size": Interval(int, 2), "lr": POSITIVE, "lr_schedule": Choice(("constant", "cosine")),
                   "max_steps": POSITIVE_INT, "eval_every": POSITIVE_INT, "patience": POSITIVE_INT}


@dataclass(frozen=True)
class PrefixLosses(_Group):
    """The unsupervised terms: the paper's L1 terms (off by default, see docs/adaptor.md), the
    listwise KL of each prefix against the full ranking, reconstruction, and their weights."""

    w_topk: float = 0.0
    w_pair: float = 0.0
    w_listwise: float = 1.0
    w_rec: float = 1.0
    temperature: float = 0.05
    include_full: bool = True      # also preserve full-dimension similarities
    level_weight_power: float = 0.0  # weight of level m in the loss ∝ m**power (0 = equal)
    constraints = {"w_topk": NON_NEGATIVE, "w_pair": NON_NEGATIVE, "w_listwise": NON_NEGATIVE, "w_rec": NON_NEGATIVE,
                   "temperature": POSITIVE, "include_full": BOOL, "level_weight_power": Interval(float)}


@dataclass(frozen=True)
class FunnelTerm(_Group):
    """The funnel's coarse stage (docs/adaptor.md, "Trained for the funnel"): the smooth-rank
    term that keeps the full top-10 inside each coarse prefix's top, its hard negatives, and
    which held-out state is kept (lowest loss, or fewest candidates needed)."""

    w_recall: float = 0.0
    recall_levels: tuple[int, ...] = (32, 64, 128)
    recall_negatives: int = 32
    recall_temperature: float = 0.02
    recall_refresh: int = 100      # steps between re-mining the hard negatives
    select_by: str = "loss"
    select_recall: float = 0.99    # the recall those candidates must reach
    constraints = {"w_recall": NON_NEGATIVE, "recall_levels": Levels(), "recall_negatives": POSITIVE_INT,
                   "recall_temperature": POSITIVE, "recall_refresh": POSITIVE_INT,
                   "select_by": Choice(("loss", "candidates")), "select_recall": Interval(float, 0, 1, closed="right")}


@dataclass(frozen=True)
class SupervisedStage(_Group):
    """The supervised stage only (:func:`matry_index.adaptor.fit_supervised`): the ranking loss
    ("pairwise", Eq. 5 of Yoon et al. 2024, or "softmax-inbatch"), an optional in-batch term
    beside the pairwise one, its hard negatives and learning rate."""

    w_rank: float = 1.0
    rank_loss: str = "pairwise"
    rank_scale: float = 20.0
    w_inbatch: float = 0.0
    hard_negatives: int = 32
    supervised_lr: float = 3e-4
    constraints = {"w_rank": NON_NEGATIVE, "rank_loss": Choice(("pairwise", "softmax-inbatch")), "rank_scale": POSITIVE,
                   "w_inbatch": NON_NEGATIVE, "hard_negatives": POSITIVE_INT, "supervised_lr": POSITIVE}


@dataclass(frozen=True)
class Run(_Group):
    """The run itself: its seed, and torch threads for the fit (None: see :func:`default_threads`)."""

    seed: int = 0
    threads: int | None = None
    constraints = {"seed": Interval(int, 0), "threads": OrNone(POSITIVE_INT)}


#: the groups of :class:`TrainConfig`, by the attribute that holds each
GROUPS: dict[str, type[_Group]] = {"shape": Shape, "anchors": Anchors, "schedule": Schedule, "losses": PrefixLosses,
                                   "funnel": FunnelTerm, "supervised": SupervisedStage, "run": Run}
_GROUP_OF = {f.name: group for group, cls in GROUPS.items() for f in fields(cls)}
#: what every setting of :class:`TrainConfig` accepts, in one table (each group holds its part)
CONSTRAINTS: dict[str, Any] = {name: rule for cls in GROUPS.values() for name, rule in cls.constraints.items()}
#: settings that only the supervised stage (:func:`matry_index.adaptor.fit_supervised`) reads
SUPERVISED_ONLY = tuple(f.name for f in fields(SupervisedStage))


class TrainConfig:
    """Settings of one training run, in groups by concern (:data:`GROUPS`: ``shape``,
    ``anchors``, ``schedule``, ``losses``, ``funnel``, ``supervised``, ``run``). Defaults are
    the recipe chosen in ``docs/adaptor.md``; each group's table says what it accepts.

    Made from flat keywords (``TrainConfig(lr=3e-4, hidden=0)``) or whole groups
    (``TrainConfig(schedule=Schedule(lr=3e-4))``); read flat (``cfg.lr``) or by group
    (``cfg.schedule.lr``). Immutable: :meth:`with_overrides` makes a checked copy.
    """

    __slots__ = tuple(GROUPS)

    def __init__(self, **settings: Any):
        unknown = set(settings) - set(_GROUP_OF) - set(GROUPS)
        if unknown:
            raise InvalidInput(f"unknown training settings: {sorted(unknown)}")
        for group, cls in GROUPS.items():
            given = settings.get(group) or cls()
            if not isinstance(given, cls):
                raise InvalidInput(f"TrainConfig.{group} must be a {cls.__name__}; got {type(given).__name__}")
            flat = {k: v for k, v in settings.items() if _GROUP_OF.get(k) == group}
            object.__setattr__(self, group, replace(given, **flat) if flat else given)
        if self.w_inbatch and self.rank_loss != "pairwise":
            raise InvalidInput(f"w_inbatch adds an in-batch term to rank_loss='pairwise' only; got "
                               f"w_inbatch={self.w_inbatch} with rank_loss={self.rank_loss!r}")
        if self.hidden == 0 and self.rotation != "pca-learned":
            raise InvalidInput("nothing to train: set hidden > 0 or rotation='pca-learned'")

    def __getattr__(self, name: str) -> Any:
        group = _GROUP_OF.get(name)
        if group is None:
            raise AttributeError(f"TrainConfig has no setting {name!r}")
        return getattr(object.__getattribute__(self, group), name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("TrainConfig is immutable; use with_overrides")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TrainConfig) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        changed = {k: v for k, v in self.to_dict().items() if v != getattr(_DEFAULTS, k)}
        return f"TrainConfig({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    def to_dict(self) -> dict[str, Any]:
        """Every setting by its flat name (what a saved adaptor records)."""
        return {f.name: getattr(getattr(self, group), f.name) for group, cls in GROUPS.items() for f in fields(cls)}

    def with_overrides(self, **kw: Any) -> "TrainConfig":
        """A copy with some settings changed (validated like a new one)."""
        unknown = set(kw) - set(_GROUP_OF)
        if unknown:
            raise InvalidInput(f"unknown training settings: {sorted(unknown)}")
        return TrainConfig(**{**self.to_dict(), **kw})


_DEFAULTS = TrainConfig()


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
