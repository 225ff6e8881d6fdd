"""The published conformance suite (:mod:`matry_index.testing`) on every backend kind we ship,
and on a toy engine that is one module plus one registry line."""
from __future__ import annotations

from functools import partial

import pytest

from matry_index import MatryoshkaIndex
from matry_index.backends import register_backend
from matry_index.testing import BackendConformance, check_backend

from .helpers import EDGE_COMPACT, EDGE_IN_RAM, FACTORIES, FAISS_COMPACT, FAISS_MMAP, QDRANT_COMPACT

register_backend("toy", "tests.toy_backend:ToyBackend")  # all a new engine needs, beside its module


def _factory(kind):
    def make(workdir, dim, persistent=False, **options):
        return FACTORIES[kind](workdir, dim, persistent, **options)
    return staticmethod(make)


class TestFaiss(BackendConformance):
    make = _factory("faiss")


class TestFaissMapped(BackendConformance):
    make = _factory(FAISS_MMAP)


class TestQdrantLocal(BackendConformance):
    make = _factory("qdrant")


class TestQdrantEdge(BackendConformance):
    make = _factory("qdrant-edge")


class TestQdrantEdgeInRam(BackendConformance):
    make = _factory(EDGE_IN_RAM)


class TestFaissCompact(BackendConformance):
    make = _factory(FAISS_COMPACT)


class TestQdrantLocalCompact(BackendConformance):
    make = _factory(QDRANT_COMPACT)


class TestQdrantEdgeCompact(BackendConformance):
    make = _factory(EDGE_COMPACT)


def _toy(workdir, dim, persistent=False, **options):
    return MatryoshkaIndex(dim, backend="toy", **options)


class TestToyBackend(BackendConformance):
    make = staticmethod(_toy)


def test_check_backend_runs_every_check_outside_pytest(tmp_path):
    ran = check_backend(_toy, tmp_path, properties=False)
    from matry_index.testing import CHECKS
    assert ran == list(CHECKS)


def test_a_backend_that_breaks_the_contract_is_named(tmp_path):
    from tests.toy_backend import ToyBackend

    class ForgetfulBackend(ToyBackend):  # drops metadata on writes: the suite must notice
        def add(self, ids, keys, vectors, metadata):
            super().add(ids, keys, vectors, [{} for _ in metadata])
    register_backend("forgetful", f"{__name__}:_Forgetful")
    globals()["_Forgetful"] = ForgetfulBackend
    with pytest.raises(AssertionError, match="upsert_replaces_the_vector_and_metadata|hits_carry|filters_follow"):
        check_backend(partial(lambda workdir, dim, persistent=False, **o: MatryoshkaIndex(dim, backend="forgetful", **o)),
                      tmp_path, properties=False)
