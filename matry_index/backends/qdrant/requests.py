"""Searches as Qdrant query requests: the funnel as nested prefetches, or an exact scan."""
from __future__ import annotations

from typing import Any

import numpy as np

from ...kernels import unit_prefix
from ...funnel import FunnelPlan
from ..base import Hit
from .filters import Vocabulary
from .schema import split_payload, vector_names

UNBOUNDED = 1 << 62             # "collection size" for plans that Qdrant itself bounds


def compile_funnel(query: np.ndarray, levels: tuple[int, ...], plan: FunnelPlan, k: int, n: int,
                   v: Vocabulary) -> tuple[Any, dict[str, list[float]]]:
    """Nested prefetches for one query: (outermost prefetch or None, final query vectors).

    The innermost prefetch is the ANN stage on the coarsest level (``ef`` ≥ its limit); each
    enclosing one rescores its child's candidates on a longer prefix; the caller's final query
    runs on ``full`` with limit ``k``.
    """
    stages = plan.stages(levels, k, n)
    names = dict(zip(levels, vector_names(levels)))
    prefix = {m: unit_prefix(query[None, :], m)[0].tolist() for m, _ in stages}
    inner = None
    for level, limit in stages[:-1]:
        ef = plan.ef_for(limit) if inner is None else None
        inner = v.prefetch(prefix[level], names[level], limit, ef, inner)
    return inner, prefix[levels[-1]]


def funnel_requests(queries: np.ndarray, levels: tuple[int, ...], plan: FunnelPlan, k: int, n: int,
                    flt: Any, v: Vocabulary) -> list:
    """One query request per row of ``queries``: the funnel as nested prefetches."""
    requests = []
    for q in queries:
        inner, full = compile_funnel(q, levels, plan, k, n, v)
        requests.append(v.request(full, inner, k, flt, False))
    return requests


def exact_requests(queries: np.ndarray, levels: tuple[int, ...], k: int, flt: Any, v: Vocabulary) -> list:
    """Exact (brute-force) full-dimension requests, the reference for recall and tuning."""
    return [v.request(q.tolist(), None, k, flt, True) for q in queries]  # unit length already


def to_hits(points: list) -> list[Hit]:
    out = []
    for p in points:
        uid, meta = split_payload(p.payload)
        out.append(Hit(uid, float(p.score), meta))
    return out
