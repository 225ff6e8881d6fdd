"""Candidates a coarse stage needs: ranks, ties, quantised codes, and the measure on real data."""
import numpy as np
import pytest

from matry_index import MatryIndexError
from matry_index.evaluation import PCARotation
from matry_index.evaluation.funnel_need import (FittedCode, candidates_needed, coarse_ranks, code_bytes,
                                                full_dimension_top_k, funnel_need, recall_at)


def test_candidates_needed_reads_the_recall_quantile_of_the_ranks():
    ranks = np.array([[0, 1, 2, 3], [0, 1, 2, 99]], float)
    assert candidates_needed(ranks, 7 / 8) == 4
    assert candidates_needed(ranks, 1.0) == 100
    assert recall_at(ranks, 4) == 7 / 8
    with pytest.raises(MatryIndexError):
        candidates_needed(ranks, 0)


def test_ranks_count_documents_above_and_half_the_ties():
    docs = np.array([[1.0, 0], [1.0, 0], [0, 1.0], [0.6, 0.8]], np.float32)
    query = np.array([[1.0, 0]], np.float32)
    ranks = coarse_ranks(query, docs, np.array([[0, 3]]), "float")
    assert ranks.tolist() == [[0.5, 2.0]]  # doc 0 ties with doc 1; doc 3 has two above it


def test_full_dimension_search_needs_exactly_k_candidates(small_corpus):
    _, docs, queries = small_corpus
    out = funnel_need(queries, docs, (docs.shape[1],), recalls=(1.0,), candidates=(10,))
    assert out[docs.shape[1]]["needed"][1.0] == 10 and out[docs.shape[1]]["recall_at"][10] == 1.0


def test_codes_cost_what_they_say_and_pca_needs_fewer_candidates_than_truncation(small_corpus):
    _, docs, queries = small_corpus
    assert [code_bytes(64, c) for c in ("float", "int8", "int4", "binary", "binary-asym")] == [256, 64, 32, 8, 8]
    binary = FittedCode.fit(docs, "binary").encode(queries)
    assert binary.dtype == np.uint8 and binary.shape == (len(queries), 48)
    int8 = FittedCode.fit(docs, "int8").encode(queries)
    assert int8.dtype == np.int8 and np.abs(int8).max() <= 127
    int4 = FittedCode.fit(docs, "int4")
    levels = np.unique(np.rint(int4.encode(docs)[:, :8] * int4.scale[:8] - 0.5), axis=0)
    assert levels.min() >= -8 and levels.max() <= 7  # 16 cells per coordinate
    targets = full_dimension_top_k(queries, docs)
    pca = PCARotation.fit(docs).transform
    for code in ("float", "int8", "int4", "binary", "binary-asym"):
        plain = funnel_need(queries, docs, (64,), None, code, recalls=(0.9,), targets=targets)[64]
        rotated = funnel_need(queries, docs, (64,), pca, code, recalls=(0.9,), targets=targets)[64]
        assert rotated["needed"][0.9] < plain["needed"][0.9], code
    with pytest.raises(MatryIndexError, match="code must be"):
        FittedCode.fit(docs, "int2")


def test_a_float_query_against_sign_bits_finds_more_than_its_own_sign_bits(small_corpus):
    """The same stored bits: the asymmetric scan loses only the documents' quantisation."""
    _, docs, queries = small_corpus
    targets = full_dimension_top_k(queries, docs)
    found = {code: funnel_need(queries, docs, (docs.shape[1],), None, code, recalls=(0.99,), candidates=(50,),
                               targets=targets)[docs.shape[1]] for code in ("binary", "binary-asym")}
    assert found["binary-asym"]["recall_at"][50] > found["binary"]["recall_at"][50]
    assert found["binary-asym"]["needed"][0.99] < found["binary"]["needed"][0.99]
