"""The filter language: one semantics (docs/filters.md), the same answer on every backend.

Each case is a filter and the records it must match, written out by hand from the rules in
docs/filters.md; every backend must return exactly those records, through ``scan`` and
through ``search``.
"""
from __future__ import annotations

import numpy as np
import pytest

from matry_index import MatryIndexError
from matry_index.filters import matches, parse_filter

from .helpers import BACKENDS, EDGE_IN_RAM, FAISS_MMAP, make_index

RECORDS = {
    "int2003": {"year": 2003, "tags": ["a", "b"], "nested": {"k": 1}},
    "float2003": {"year": 2003.0, "tags": ["b"], "score": 0.25},
    "y2004": {"year": 2004, "tags": "a", "nested": {"k": 2}},
    "null": {"year": None, "tags": []},
    "missing": {"other": "x"},
    "text": {"year": "2003", "score": 1.5},
    "flags": {"flag": 1, "n": [1, 2.5, 7]},
}

CASES = [
    ({"year": 2003}, {"int2003", "float2003"}),                    # numbers by value
    ({"year": 2003.0}, {"int2003", "float2003"}),
    ({"year": "2003"}, {"text"}),                                    # strings only equal strings
    ({"year": {"$ne": 2003}}, {"y2004", "null", "missing", "text", "flags"}),
    ({"year": {"$in": [2003.0, 2004]}}, {"int2003", "float2003", "y2004"}),
    ({"year": {"$in": [2003.5, "2003"]}}, {"text"}),
    ({"year": {"$in": []}}, set()),
    ({"year": {"$nin": [2003]}}, {"y2004", "null", "missing", "text", "flags"}),
    ({"year": {"$gte": 2003.5}}, {"y2004"}),                         # ranges skip strings and nulls
    ({"year": {"$lt": 2004}}, {"int2003", "float2003"}),
    ({"tags": "a"}, {"int2003", "y2004"}),                           # a list matches if any element does
    ({"tags": {"$in": ["b", "zzz"]}}, {"int2003", "float2003"}),
    ({"tags": {"$ne": "a"}}, {"float2003", "null", "missing", "text", "flags"}),
    ({"n": {"$gt": 5}}, {"flags"}),
    ({"n": 2.5}, {"flags"}),
    ({"nested.k": 1}, {"int2003"}),                                  # dots walk nested objects
    ({"nested.k": {"$gte": 1}}, {"int2003", "y2004"}),
    ({"year": None}, {"null", "missing", "flags"}),                  # None: missing, null or empty
    ({"tags": None}, {"null", "missing", "text", "flags"}),
    ({"year": {"$ne": None}}, {"int2003", "float2003", "y2004", "text"}),
    ({"year": {"$in": [None, 2004]}}, {"null", "missing", "flags", "y2004"}),
    ({"flag": 1}, {"flags"}),
    ({"score": {"$gt": 0.2, "$lt": 1}}, {"float2003"}),
    ({"$or": [{"year": 2004}, {"other": "x"}]}, {"y2004", "missing"}),
    ({"$not": {"tags": "a"}}, {"float2003", "null", "missing", "text", "flags"}),
    ({"$and": [{"year": {"$gte": 2003}}, {"tags": "b"}]}, {"int2003", "float2003"}),
    ({"missing_field": {"$gte": 1}}, set()),
]


#: Qdrant with payload indexes on the filtered fields: the index decides which points a
#: condition reaches, and must not change what the condition means
INDEXED = {"year": "float", "tags": "keyword", "n": "float", "score": "float", "nested.k": "float", "other": "keyword"}
QDRANT_INDEXED = ["qdrant+payload-indexes", "qdrant-edge+payload-indexes"]


@pytest.fixture(scope="module", params=BACKENDS + [FAISS_MMAP, EDGE_IN_RAM] + QDRANT_INDEXED)
def index(request, tmp_path_factory):
    kind, _, indexed = request.param.partition("+")
    options = {"payload_indexes": INDEXED} if indexed else {}
    idx = make_index(kind, tmp_path_factory.mktemp(kind), dim=4, **options)
    vectors = np.random.default_rng(0).standard_normal((len(RECORDS), 4))
    idx.add(list(RECORDS), vectors, list(RECORDS.values()))
    yield idx
    idx.close()


@pytest.mark.parametrize("flt, expected", CASES, ids=[str(c[0]) for c in CASES])
def test_every_backend_matches_the_written_semantics(index, flt, expected):
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
