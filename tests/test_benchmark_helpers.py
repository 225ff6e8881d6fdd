"""The helpers the benchmark scripts share (benchmarks/common.py) and the few pieces of the
scripts themselves that can be checked without running a benchmark."""
import json
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def benchmarks(monkeypatch):
    """The benchmarks folder on sys.path, as the scripts see it when run."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return BENCHMARKS


def test_recall_counts_each_query_against_its_own_truth_and_ignores_padding(benchmarks):
    from common import recall
    truth = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    found = np.array([[4, 3, 9, -1], [5, 6, 7, 8]])
    assert recall(found, truth) == pytest.approx((2 / 4 + 1) / 2)


def test_single_query_timer_reports_percentiles_of_per_query_medians(benchmarks):
    from common import timed_single
    calls = []
    stats = timed_single(lambda q: calls.append(q.shape), np.zeros((7, 3), np.float32), repeats=3)
    assert calls[0] == (5, 3) and calls.count((1, 3)) == 21      # a warm-up batch, then 7 × 3 runs
    assert 0 <= stats["p50_ms"] <= stats["p95_ms"] and set(stats) == {"p50_ms", "p95_ms", "mean_ms"}


def test_ground_truth_is_the_exact_inner_product_top_k(benchmarks, rng):
    from common import K, ground_truth
    from matry_index.kernels import exact_top_k
    base, queries = rng.standard_normal((300, 16)).astype(np.float32), rng.standard_normal((5, 16)).astype(np.float32)
    truth, _ = ground_truth(base, queries, threads=1)
    np.testing.assert_array_equal(truth, exact_top_k(queries, base, K)[0])


def test_resumable_embedding_keeps_finished_chunks_and_input_order(benchmarks, tmp_path):
    """The mpnet benchmark embeds for hours: an interrupted run must resume, not restart."""
    from embed_mpnet import embed_resumably

    texts = [f"text {'x' * (i * 7 % 23)} {i}" for i in range(50)]

    def embed(batch):  # a deterministic stand-in for the model: one row per text
        return np.array([[len(t), int(t.split()[-1])] for t in batch], np.float32)

    calls = []

    def failing(batch):
        calls.append(len(batch))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return embed(batch)

    with pytest.raises(KeyboardInterrupt):
        embed_resumably(failing, texts, tmp_path / "chunks", chunk_size=8)
    assert len(list((tmp_path / "chunks").glob("*.npy"))) == 2   # two chunks were finished
    resumed = []
    out = embed_resumably(lambda b: resumed.append(len(b)) or embed(b), texts, tmp_path / "chunks", 8)
    assert len(resumed) == 5                                       # 7 chunks in all, 2 reused
    np.testing.assert_array_equal(out, embed(texts))               # rows back in input order


def test_quality_benchmark_compares_each_adaptor_with_pca_and_the_original(benchmarks):
    from quality import differences

    queries = [f"q{i}" for i in range(50)]
    score = lambda offset: {q: 0.5 + offset + 0.01 * (i % 5) for i, q in enumerate(queries)}  # noqa: E731
    per_query = {"truncation": {64: {"ndcg@10": [score(-0.2)]}, 384: {"ndcg@10": [score(0.0)]}},
                 "PCA": {64: {"ndcg@10": [score(-0.1)]}, 384: {"ndcg@10": [score(0.0)]}},
                 "unsupervised adaptor": {64: {"ndcg@10": [score(0.0), score(-0.02)]},
                                          384: {"ndcg@10": [score(0.0), score(0.0)]}}}
    rows = differences(per_query, 384)
    assert list(rows) == ["unsupervised adaptor − PCA", "unsupervised adaptor − original at 384-d"]
    assert list(rows["unsupervised adaptor − PCA"]) == [64]                 # no PCA row at full dimension
    assert rows["unsupervised adaptor − PCA"][64].mean == pytest.approx(0.09)  # seeds averaged: -0.01 vs -0.1
    assert rows["unsupervised adaptor − original at 384-d"][64].mean == pytest.approx(-0.01)
    assert rows["unsupervised adaptor − original at 384-d"][384].mean == pytest.approx(0.0)


def test_quality_benchmark_stacks_seeds_and_reuses_seeds_kept_before_a_setting_existed(benchmarks, tmp_path):
    from quality import kept_seed, stack_runs

    seeds = [json.loads(json.dumps({"all": {"PCA": {64: {"ndcg@10": v}}}})) for v in (0.5, 0.7)]  # keys now strings
    assert stack_runs(seeds, depth=4) == {"all": {"PCA": {64: {"ndcg@10": [0.5, 0.7]}}}}

    path = tmp_path / "seed0.json"
    path.write_text(json.dumps({"config": {"seed": 0, "lr": 0.001}, "scores": {}}))
    assert kept_seed(path, {"seed": 0, "lr": 0.001, "new_option": "default"}) is not None
    assert kept_seed(path, {"seed": 0, "lr": 0.002, "new_option": "default"}) is None   # a changed setting
    assert kept_seed(path, {"seed": 0}) is None                                        # a removed one
    assert kept_seed(tmp_path / "missing.json", {"seed": 0}) is None


def test_near_document_queries_make_prefix_search_as_hard_as_on_the_real_set(benchmarks, scifact_vectors):
    """The generator's default query model: a query is a base document plus an offset like a real
    query's from its nearest document. On SciFact, PCA's candidates needed at a 64-d prefix on a
    generated set of the same size come within a factor 1.6 of the real set's (the older
    centroid model needed a third of them: prefix search looked far easier than it is)."""
    from synthetic import EmbeddingGenerator
    from matry_index.evaluation.baselines import PCARotation
    from matry_index.evaluation.funnel_need import funnel_need
    _, docs, queries = scifact_vectors
    real_q = queries[:300]

    def pca_need(d, q):
        return funnel_need(q, d, (64,), PCARotation.fit(d).transform, recalls=(0.99,))[64]["needed"][0.99]
    gen = EmbeddingGenerator.fit(docs, queries, n_clusters=256)
    fake = gen.sample(len(docs), seed=11)
    with pytest.raises(ValueError, match="need the base"):
        gen.sample_queries(5, seed=1)
    fake_q = gen.sample_queries(300, seed=12, base=fake)
    top1 = lambda q, d: float((q @ d.T).max(1).mean())  # noqa: E731
    assert top1(fake_q, fake) == pytest.approx(top1(real_q, docs), abs=0.03)
    real, generated = pca_need(docs, real_q), pca_need(fake, fake_q)
    assert real / 1.6 <= generated <= real * 1.6, (real, generated)
    old = EmbeddingGenerator.fit(docs, queries, n_clusters=256, query_model="centroid")
    assert pca_need(old.sample(len(docs), seed=11), old.sample_queries(300, seed=12)) < real / 2
