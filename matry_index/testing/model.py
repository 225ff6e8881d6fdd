"""The contract as a property: random sequences of add / upsert / delete / search / scan / get /
save and load agree with a plain-Python model of an index (needs ``hypothesis``, from the
``test`` extra).

The model is a dict of id → (unit vector, metadata) and a filter evaluator written here from
docs/filters.md, independent of :mod:`matry_index.filters`. Hypothesis shrinks any
disagreement to the shortest sequence of calls that shows it.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from .. import FunnelPlan, MatryIndexError, MatryoshkaIndex
from .contract import exhaustive, score_tolerance

DIM, LEVELS = 8, (4, 8)
IDS = [f"id{i}" for i in range(12)] + list(range(100, 106))
TAGS = ["a", "b", "c"]

metadata_strategy = st.fixed_dictionaries(
    {"n": st.integers(0, 3)},
    optional={"tag": st.one_of(st.sampled_from(TAGS), st.lists(st.sampled_from(TAGS), max_size=2)),
              "x": st.floats(-2, 2, allow_nan=False, width=32)})

FILTERS = [
    {"n": 1}, {"n": 1.0}, {"n": {"$gte": 2}}, {"n": {"$in": [0, 3]}}, {"n": {"$nin": [0]}},
    {"tag": "a"}, {"tag": {"$in": ["b", "c"]}}, {"tag": {"$ne": "a"}}, {"tag": None},
    {"x": {"$lt": 0}}, {"$or": [{"n": 0}, {"tag": "c"}]}, {"$not": {"n": {"$lte": 1}}},
    {"n": {"$gte": 1}, "tag": "b"},
]
PROFILE = settings(max_examples=40, stateful_step_count=15, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow])


def reference_values(meta: dict, field: str) -> list:
    value = meta.get(field)
    if value is None:
        return []
    return [v for v in value if v is not None] if isinstance(value, list) else [value]


def _condition(values: list, op: str, want) -> bool:
    if op == "$eq":
        return (not values) if want is None else any(v == want for v in values)
    if op == "$ne":
        return bool(values) if want is None else not any(v == want for v in values)
    if op == "$in":
        return any(v in want for v in values)
    if op == "$nin":
        return not any(v in want for v in values)
    cmp = {"$gt": float.__gt__, "$gte": float.__ge__, "$lt": float.__lt__, "$lte": float.__le__}[op]
    return any(cmp(float(v), float(want)) for v in values if isinstance(v, (int, float)))


def reference_match(flt: dict, meta: dict) -> bool:
    """docs/filters.md, written out again for the fields these checks use."""
    for key, spec in flt.items():
        if key == "$or":
            ok = any(reference_match(f, meta) for f in spec)
        elif key == "$not":
            ok = not reference_match(spec, meta)
        else:
            ops = spec if isinstance(spec, dict) else {"$eq": spec}
            ok = all(_condition(reference_values(meta, key), op, want) for op, want in ops.items())
        if not ok:
            return False
    return True


def _expect_refused(call, match: str) -> None:
    try:
        call()
    except MatryIndexError as exc:
        assert match in str(exc), exc
        return
    raise AssertionError(f"expected a refusal ({match})")


class IndexMachine(RuleBasedStateMachine):
    """The state machine; a subclass sets ``make`` (an index factory, see :mod:`.contract`)."""

    make = None

    def __init__(self):
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="matry-prop-"))
        self.index = type(self).make(self.dir / "store", dim=DIM, persistent=True, levels=LEVELS)
        self.model: dict = {}

    def teardown(self):
        self.index.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @staticmethod
    def _vectors(seed: int, n: int) -> np.ndarray:
        return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)

    @rule(ids=st.lists(st.sampled_from(IDS), min_size=1, max_size=5, unique=True),
          seed=st.integers(0, 2**16), meta=st.lists(metadata_strategy, min_size=5, max_size=5))
    def add(self, ids, seed, meta):
        vectors = self._vectors(seed, len(ids))
        if any(i in self.model for i in ids):
            _expect_refused(lambda: self.index.add(ids, vectors, meta[:len(ids)]), "already")
            return
        self.index.add(ids, vectors, meta[:len(ids)])
        self._store(ids, vectors, meta)

    @rule(ids=st.lists(st.sampled_from(IDS), min_size=1, max_size=5, unique=True),
          seed=st.integers(0, 2**16), meta=st.lists(metadata_strategy, min_size=5, max_size=5))
    def upsert(self, ids, seed, meta):
        vectors = self._vectors(seed, len(ids))
        self.index.upsert(ids, vectors, meta[:len(ids)])
        self._store(ids, vectors, meta)

    def _store(self, ids, vectors, meta):
        # what the index stores of each vector: unit length, a compact index's prefix of it
        for i, v, m in zip(ids, self.index.adapt(vectors).astype(np.float64), meta):
            self.model[i] = (v / np.linalg.norm(v), m)

    @rule(ids=st.lists(st.sampled_from(IDS), min_size=1, max_size=4, unique=True), missing_ok=st.booleans())
    def delete(self, ids, missing_ok):
        if not missing_ok and any(i not in self.model for i in ids):
            _expect_refused(lambda: self.index.delete(ids), "unknown id")
            return
        self.index.delete(ids, missing_ok=missing_ok)
        for i in ids:
            self.model.pop(i, None)

    @rule()
    def save_and_load(self):
        self.index.save(self.dir / "ix")
        self.index.close()
        # a memory-mapped FAISS index writes its scratch file where the caller says
        where = {"scratch_dir": str(self.dir)} if self.index.backend.kind == "faiss" \
            and self.index.backend.options.get("vector_storage") == "mmap" else {}
        self.index = MatryoshkaIndex.load(self.dir / "ix", **where)

    @precondition(lambda self: self.model)
    @rule(seed=st.integers(0, 2**16), k=st.integers(1, 6), funnel=st.booleans(),
          flt=st.one_of(st.none(), st.sampled_from(FILTERS)))
    def search(self, seed, k, funnel, flt):
        q = self._vectors(seed, 1)[0]
        qn = self.index.adapt(q[None, :])[0].astype(np.float64)
        pool = {i: float(v @ qn) for i, (v, m) in self.model.items() if flt is None or reference_match(flt, m)}
        want = sorted(pool.values(), reverse=True)[:k]
        if funnel:
            plan = FunnelPlan((len(IDS),) * (len(self.index.levels) - 1))
            hits = self.index.search(q, k=k, filter=flt, plan=plan)
        else:
            hits = exhaustive(self.index, q, k, flt)
        tolerance = max(1e-5, score_tolerance(self.index))
        assert len(hits) == len(want)
        assert all(h.id in pool for h in hits)
        np.testing.assert_allclose([pool[h.id] for h in hits], want, atol=2 * tolerance)
        np.testing.assert_allclose([h.score for h in hits], want, atol=tolerance)
        for h in hits:
            assert h.metadata == self.model[h.id][1]

    @rule(flt=st.one_of(st.none(), st.sampled_from(FILTERS)))
    def scan(self, flt):
        got = sorted(map(str, (i for i, _ in self.index.scan(flt))))
        want = sorted(str(i) for i, (_, m) in self.model.items() if flt is None or reference_match(flt, m))
        assert got == want

    @rule(ids=st.lists(st.sampled_from(IDS), min_size=1, max_size=4, unique=True))
    def get(self, ids):
        for i, record in zip(ids, self.index.get(ids)):
            if i not in self.model:
                assert record is None
            else:
                assert record.id == i and record.metadata == self.model[i][1]

    @invariant()
    def count_matches(self):
        assert len(self.index) == len(self.model)


def check_against_the_model(make, profile: settings = PROFILE) -> None:
    """Run the state machine against ``make`` (raises what hypothesis finds, shrunk)."""
    machine = type("IndexMachineFor", (IndexMachine,), {"make": staticmethod(make)})
    machine.TestCase.settings = profile
    machine.TestCase().runTest()
