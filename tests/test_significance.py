"""Paired bootstrap intervals for the difference between two methods, and the per-query scores
they are computed from."""

import numpy as np
import pytest

from matry_index import MatryIndexError
from matry_index.evaluation import (evaluate_levels, evaluate_levels_per_query, mean_over_runs,
                                    paired_difference)
from matry_index.evaluation.report import difference_table


def _scores(values):
    return {f"q{i}": float(v) for i, v in enumerate(values)}


def test_interval_matches_the_normal_approximation_on_many_queries():
    rng = np.random.default_rng(1)
    diffs = rng.normal(0.02, 0.1, size=400)
    base = rng.uniform(0.2, 0.8, size=400)
    d = paired_difference(_scores(base + diffs), _scores(base))
    half_width = 1.96 * diffs.std(ddof=1) / np.sqrt(len(diffs))   # ≈ 0.0098
    assert d.mean == pytest.approx(diffs.mean())
    assert d.queries == 400 and d.confidence == 0.95
    assert d.low == pytest.approx(diffs.mean() - half_width, abs=0.15 * half_width)
    assert d.high == pytest.approx(diffs.mean() + half_width, abs=0.15 * half_width)


def test_interval_is_about_pairs_not_about_the_spread_of_each_method():
    """Scores that vary a lot between queries but move together: the paired interval is tight."""
    base = np.linspace(0.0, 1.0, 200)
    shift = np.where(np.arange(200) % 2 == 0, 0.011, 0.009)    # every query gains ~0.01
    d = paired_difference(_scores(base + shift), _scores(base))
    assert d.resolved and d.low > 0.009 and d.high < 0.011
    assert str(d) == f"+0.010 [{d.low:+.3f}, {d.high:+.3f}]"


def test_a_symmetric_difference_is_not_resolved():
    diffs = np.tile([0.2, -0.2, 0.05, -0.05], 50)
    d = paired_difference(_scores(0.5 + diffs), _scores(np.full(200, 0.5)))
    assert d.mean == pytest.approx(0.0, abs=1e-12)
    assert d.low < 0 < d.high and not d.resolved


def test_identical_shift_on_every_query_has_no_spread():
    d = paired_difference(_scores([0.3, 0.5, 0.7]), _scores([0.2, 0.4, 0.6]))
    assert d.low == d.mean == d.high == pytest.approx(0.1)


def test_mismatched_or_too_few_queries_are_refused():
    with pytest.raises(MatryIndexError, match="different queries"):
        paired_difference({"a": 1.0, "b": 0.0}, {"a": 1.0, "c": 0.0})
    with pytest.raises(MatryIndexError, match="at least two"):
        paired_difference({"a": 1.0}, {"a": 0.0})
    with pytest.raises(MatryIndexError, match="different queries"):
        mean_over_runs([{"a": 1.0}, {"b": 1.0}])


def test_mean_over_runs_averages_each_query():
    assert mean_over_runs([{"a": 1.0, "b": 0.0}, {"a": 0.5, "b": 0.5}]) == {"a": 0.75, "b": 0.25}


def test_difference_table_marks_resolved_cells():
    resolved = paired_difference(_scores([0.3, 0.5, 0.7]), _scores([0.2, 0.4, 0.6]))
    unresolved = paired_difference(_scores([0.6, 0.4, 0.5, 0.5]), _scores([0.5, 0.5, 0.5, 0.5]))
    table = difference_table({"x − PCA": {64: resolved, 128: unresolved}}, "t")
    assert "| x − PCA | **+0.100 [+0.100, +0.100]** | +0.000 [" in table


def test_per_query_scores_average_to_the_reported_means(scifact_experiment):
    task = scifact_experiment.task("test")
    per_query = evaluate_levels_per_query(task, [64, 384])
    means = evaluate_levels(task, [64, 384])
    for m in (64, 384):
        assert set(per_query[m]["ndcg@10"]) == set(task.query_ids)
        for metric, scores in per_query[m].items():
            assert np.mean(list(scores.values())) == pytest.approx(means[m][metric], abs=1e-12)


def test_markdown_table_shows_mean_and_sd_and_marks_missing_levels():
    from matry_index.evaluation.report import markdown_table
    table = markdown_table({"PCA": {64: {"ndcg@10": [0.5]}, 128: {"ndcg@10": [0.6]}},
                            "adaptor": {64: {"ndcg@10": [0.5, 0.7]}}}, "ndcg@10")
    assert table.splitlines() == ["| method | 64 | 128 |", "|---|---|---|",
                                  "| PCA | 0.500 | 0.600 |", "| adaptor | 0.600 ± 0.141 | – |"]
