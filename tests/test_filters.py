"""The filter language: one semantics (docs/filters.md), the same answer on every backend.

The cases — each a filter and the records it must match, written out by hand from the rules in
docs/filters.md — are the conformance suite's (:mod:`matry_index.testing.contract`), which holds
every backend kind to them; here they check the parser itself, and Qdrant with payload indexes
on the filtered fields (an index decides which points a condition reaches, and must not change
what the condition means).
"""
from __future__ import annotations

import numpy as np
import pytest

from matry_index import MatryIndexError
from matry_index.filters import matches, parse_filter

from matry_index.testing.contract import FILTER_CASES, FILTER_RECORDS

from .helpers import BACKENDS, make_index

RECORDS, CASES = FILTER_RECORDS, FILTER_CASES


#: Qdrant with payload indexes on the filtered fields: the index decides which points a
#: condition reaches, and must not change what the condition means
INDEXED = {"year": "float", "tags": "keyword", "n": "float", "score": "float", "nested.k": "float", "other": "keyword"}
QDRANT_INDEXED = ["qdrant+payload-indexes", "qdrant-edge+payload-indexes"]


@pytest.fixture(scope="module", params=QDRANT_INDEXED)  # the other kinds: the conformance suite
def index(request, tmp_path_factory):
    kind, _, indexed = request.param.partition("+")
    options = {"payload_indexes": INDEXED} if indexed else {}
    idx = make_index(kind, tmp_path_factory.mktemp(kind), dim=4, **options)
    vectors = np.random.default_rng(0).standard_normal((len(RECORDS), 4))
    idx.add(list(RECORDS), vectors, list(RECORDS.values()))
    yield idx
    idx.close()


@pytest.mark.parametrize("flt, expected", CASES, ids=[str(c[0]) for c in CASES])
def test_payload_indexes_do_not_change_what_a_filter_means(index, flt, expected):
    assert {i for i, _ in index.scan(flt)} == expected
    query = np.ones(4, np.float32)
    assert {h.id for h in index.search(query, k=len(RECORDS), filter=flt, exact=True)} == expected
    assert {h.id for h in index.search(query, k=len(RECORDS), filter=flt)} == expected


def test_payload_indexes_are_created_and_checked(tmp_path):
    idx = make_index("qdrant-edge", tmp_path, dim=4, payload_indexes={"year": "float", "tags": "keyword"})
    schema = idx.backend.shard.info().payload_schema
    assert {f: str(i.data_type) for f, i in schema.items()} == {"year": "PayloadSchemaType.Float",
                                                                 "tags": "PayloadSchemaType.Keyword"}
    idx.close()
    for bad in ({"year": "integer"}, {"": "keyword"}, ["year"], {"_matry_id": "keyword"}):
        with pytest.raises(MatryIndexError, match="payload"):
            make_index("qdrant-edge", tmp_path / str(len(str(bad))), dim=4, payload_indexes=bad)


@pytest.mark.parametrize("flt, expected", CASES, ids=[str(c[0]) for c in CASES])
def test_matches_is_the_written_semantics(flt, expected):
    assert {i for i, m in RECORDS.items() if matches(parse_filter(flt), m)} == expected


def test_boolean_values(tmp_path, rng):
    for kind in BACKENDS:
        idx = make_index(kind, tmp_path / kind, dim=8)
        vecs = rng.standard_normal((20, 8))
        idx.add([str(i) for i in range(20)], vecs, [{"flag": i < 3, "one": 1} for i in range(20)])
        if kind == "qdrant-edge":  # qdrant-edge-py 0.9 sends bools to the engine as integers
            for flt in ({"flag": True}, {"one": True}):
                with pytest.raises(MatryIndexError, match="boolean"):
                    idx.search(vecs[0], k=10, filter=flt)
        else:
            assert idx.scan({"one": True}) == []  # bools are not numbers
            assert sorted(h.id for h in idx.search(vecs[0], k=10, filter={"flag": True})) == ["0", "1", "2"]
        idx.close()


def test_parse_refuses_what_has_no_single_meaning():
    assert parse_filter({}) is None
    for bad in ({"x": {"$like": 1}}, {"$xor": []}, {"x": {"$gt": "a"}}, ["x"], {"x": [1, 2]},
                {"x": {"a": 1}}, {"x": float("nan")}, {"": 1}, {"a..b": 1}, {"a[].b": 1},
                {"x": {"$in": [[1]]}}, {"$or": [{}]}, {"x": {"$gt": True}}, {1: 2}):
        with pytest.raises(MatryIndexError):
            parse_filter(bad)
