"""The funnel plan's arithmetic: stage clipping, the cost model, the tuning grid."""
from __future__ import annotations

import numpy as np
import pytest

from matry_index import MatryIndexError
from matry_index.funnel import CoarseCost, FunnelPlan, candidate_grid, plan_cost
from matry_index.tuning import recall_at_k, tune

LEVELS = (64, 128, 256, 384)


def test_stages_clip_to_k_and_n_and_never_grow():
    plan = FunnelPlan((400, 500, 0))
    assert plan.stages(LEVELS, k=10, n=1000) == [(64, 400), (128, 400), (384, 10)]
    assert plan.stages(LEVELS, k=10, n=300) == [(64, 300), (128, 300), (384, 10)]
    with pytest.raises(MatryIndexError, match="one per level"):
        FunnelPlan((10,)).stages(LEVELS, 10, 100)


def test_cost_grows_with_breadth_for_each_coarse_kind():
    n = 1_000_000
    hnsw = CoarseCost("hnsw", hnsw_m=32)
    assert plan_cost(FunnelPlan((100, 0, 0)), LEVELS, 10, n, hnsw) < plan_cost(FunnelPlan((400, 0, 0)), LEVELS, 10, n, hnsw)
    ivf = CoarseCost("ivf-int8", nlist=4096)
    few, many = FunnelPlan((100, 0, 0), nprobe=4), FunnelPlan((100, 0, 0), nprobe=64)
    assert plan_cost(few, LEVELS, 10, n, ivf) < plan_cost(many, LEVELS, 10, n, ivf)
    # an 8-bit scan reads a quarter of the bytes of a float one
    assert plan_cost(many, LEVELS, 10, n, ivf) < plan_cost(many, LEVELS, 10, n, CoarseCost("ivf", nlist=4096))
    # a flat coarse stage scores every vector
    assert plan_cost(few, LEVELS, 10, n, CoarseCost("flat")) > n * 64


def test_grid_sweeps_nprobe_only_for_ivf():
    assert {p.nprobe for p in candidate_grid(LEVELS, 10, 10_000, CoarseCost("hnsw"))} == {None}
    probes = {p.nprobe for p in candidate_grid(LEVELS, 10, 10_000, CoarseCost("ivf", nlist=16))}
    assert probes == {1, 2, 3, 4, 5, 6, 8, 10, 12, 14, 16}


def test_grid_widens_the_walk_where_candidates_are_dear_to_read():
    def widths(coarse):
        plans = candidate_grid(LEVELS, 10, 10_000, coarse)
        return {round(p.ef_for(p.candidates[0]) / p.candidates[0], 1) for p in plans if p.candidates[0] >= 100}
    assert widths(CoarseCost("hnsw")) == {1.0, 1.5, 2.0}
    dear = CoarseCost("hnsw", 32, candidate_read=32 * (128 + 200))  # a Qdrant stage fetching by id
    assert widths(dear) == {1.0, 1.5, 2.0, 3.0, 4.0}
    assert widths(CoarseCost("ivf", nlist=16)) == {1.0}
    # the dearer a candidate, the more a narrower hand-off with a wider walk is worth
    narrow, wide = FunnelPlan((400, 0, 0), ef=400), FunnelPlan((100, 0, 0), ef=400)
    assert plan_cost(wide, LEVELS, 10, 10**6, dear) < plan_cost(narrow, LEVELS, 10, 10**6, dear)


def test_tune_returns_the_cheapest_plan_that_reaches_the_target():
    truth = np.arange(10)[None, :]

    def run(plan: FunnelPlan) -> np.ndarray:
        found = min(10, plan.candidates[0] // 10)  # recall grows with the coarse count
        return np.concatenate([np.arange(found), -np.ones(10 - found, int)])[None, :]
    plan = tune(run, truth, LEVELS, 10, 100_000, target_recall=0.8)
    assert plan.candidates[0] == 80 and plan.tuned["reached"]
    assert recall_at_k(run(plan), truth) == pytest.approx(0.8)
    missed = tune(lambda p: -np.ones((1, 10), int), truth, LEVELS, 10, 100_000, target_recall=0.5)
    assert missed.exact and missed.tuned["reached"] and missed.tuned["best_funnel"]["recall"] == 0
    assert "no funnel promised the target" in missed.explain(LEVELS)


def test_tune_falls_back_to_an_exact_scan_when_no_cheaper_plan_reaches_the_target():
    n = 2_000
    truth = np.arange(10)[None, :]

    def run(plan: FunnelPlan) -> np.ndarray:  # the target needs half the collection as candidates
        found = 10 if plan.candidates[0] >= n // 2 else 0
        return np.concatenate([np.arange(found), -np.ones(10 - found, int)])[None, :]
    plan = tune(run, truth, LEVELS, 10, n, target_recall=0.99)
    assert plan.exact and plan.tuned["reached"] and plan.tuned["cost"] == n * LEVELS[-1]
    assert FunnelPlan.from_dict(plan.to_dict()) == plan
    # when a cheap plan suffices the scan is not chosen
    assert not tune(lambda p: truth, truth, LEVELS, 10, n, target_recall=0.99).exact


def test_a_plan_explains_itself_stage_by_stage():
    from matry_index import FunnelPlan
    levels = (64, 128, 256, 384)
    assert FunnelPlan((100, 0, 0)).explain(levels) == (
        "the 64-d prefix's approximate search passes 100 candidates; "
        "all 384 dimensions rank them and return the top 10")
    text = FunnelPlan((400, 100, 0), nprobe=12).explain(levels, k=5)
    assert "(scanning 12 IVF lists)" in text and "the 128-d prefix keeps 100" in text and "256-d" not in text
    assert text.endswith("top 5")
    assert FunnelPlan.exhaustive(levels, 1000).explain(levels).startswith("an exact scan")


def test_the_tuned_plan_must_reach_the_target_on_each_half_of_the_sample():
    """A plan whose recall over the whole sample crosses the target only thanks to some of the
    queries is not taken: it must hold on both halves (alternate queries)."""
    truth = np.arange(40 * 10).reshape(40, 10)

    def run(plan):
        found = truth.copy()
        if plan.candidates[0] < 200:  # cheap plans: perfect on even queries, 9 of 10 on the odd ones
            found[1::2, -1] = -1
        return found
    # over all 40 queries the cheap plans reach 0.95 ((1 + 0.9) / 2), on the odd half only 0.9
    plan = tune(run, truth, (64, 384), 10, 100_000, target_recall=0.94)
    assert plan.candidates[0] >= 200 and plan.tuned["worst_half"] == 1.0 and plan.tuned["reached"]
    plan = tune(run, truth, (64, 384), 10, 100_000, target_recall=0.89)
    assert plan.candidates[0] < 200 and plan.tuned["worst_half"] == pytest.approx(0.9)


def test_the_margin_grows_with_the_spread_of_per_query_recall():
    """Two plans with the same mean recall@20 of 0.95 on each half: one finds 19 of 20 for every
    query, the other everything for most queries and 15 of 20 for one in five. Only the steady
    one promises 0.94 on new queries; the other's spread leaves room for a fresh sample to fall
    short."""
    from matry_index.tuning import Promise, per_query_recall
    queries = 400
    truth = np.arange(queries * 20).reshape(queries, 20)
    steady = truth.copy()
    steady[:, -1] = -1
    spread = truth.copy()
    spread[np.arange(queries) % 10 < 2, 15:] = -1  # rows 0 and 1 of every ten: one in each half
    promise = Promise(0.94, queries)
    for found in (steady, spread):
        assert per_query_recall(found, truth)[0::2].mean() == pytest.approx(0.95)
    assert promise.record(per_query_recall(steady, truth))["passes"]
    assert not promise.record(per_query_recall(spread, truth))["passes"]


def test_the_fastest_contender_is_kept_when_a_timer_is_given():
    truth = np.tile(np.arange(10), (300, 1))

    def run(plan, rows=slice(None)):  # every plan from 40 candidates up finds everything
        return truth[rows] if plan.candidates[0] >= 40 else -np.ones_like(truth[rows])
    cheap = tune(run, truth, (64, 384), 10, 1_000_000, target_recall=0.99)
    assert cheap.candidates[0] == 40 and "seconds_per_query" not in cheap.tuned
    # the machine says a wider hand-off with fewer probes runs fastest: that one is kept
    timed = tune(run, truth, (64, 384), 10, 1_000_000, target_recall=0.99,
                 timer=lambda p: 1.0 / p.candidates[0])
    assert timed.candidates[0] > 40 and timed.tuned["contenders_timed"] > 1
    assert timed.tuned["seconds_per_query"] == pytest.approx(1.0 / timed.candidates[0])


def test_too_few_tuning_queries_are_warned_about():
    truth = np.tile(np.arange(10), (50, 1))
    with pytest.warns(RuntimeWarning, match="too few to promise recall 0.99"):
        tune(lambda p, rows=slice(None): truth[rows], truth, LEVELS, 10, 10_000, target_recall=0.99)


def test_a_one_level_plan_explains_itself():
    """An index of one level has no rescoring stage: its plan says so instead of failing."""
    from matry_index import FunnelPlan
    assert FunnelPlan((), nprobe=8).explain((128,), k=5).startswith(
        "the 128-d approximate search returns the top 5 (scanning 8 IVF lists)")
