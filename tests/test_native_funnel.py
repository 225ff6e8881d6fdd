"""The FAISS backend's native funnel (coarse search and rescoring as one ``IndexRefine`` call,
``backends/faiss/native.py``) returns what the stage-by-stage funnel returns — the same ids in
the same order, the same scores — on every coarse code, row code and vector storage, under
filters and tombstones, and through every write path (add, upsert, delete, compaction, save
and load), each of which moves or rewrites the rows the composite views.

The cross-backend suites (conformance, properties, faults) run with the native funnel on, as
every index does by default; these tests pin it against the reference path.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from matry_index import FunnelPlan, MatryoshkaIndex

DIM, LEVELS = 64, (16, 32, 64)


def two_stage(index: MatryoshkaIndex, count: int = 120, nprobe: int = 6) -> FunnelPlan:
    """The coarse level passes ``count`` candidates and the stored rows rank them (no middle level)."""
    return FunnelPlan((count,) + (0,) * (len(index.levels) - 2), nprobe=nprobe)


def _clustered(n: int, seed: int, dim: int = DIM) -> np.ndarray:
    """Vectors around 40 centres: neighbours exist, so the coarse stage has something to find."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((40, dim)).astype(np.float32)
    return (centres[rng.integers(0, 40, n)] + 0.6 * rng.standard_normal((n, dim))).astype(np.float32)


class Counted:
    """Counts the native searches of a backend, so a test knows the native path really ran."""

    def __init__(self, backend):
        self.calls, inner = 0, backend.native.search

        def search(*args, **kwargs):
            self.calls += 1
            return inner(*args, **kwargs)
        backend.native.search = search


def _both(index: MatryoshkaIndex, queries: np.ndarray, **kwargs) -> tuple[list, list]:
    backend = index.backend
    counted = Counted(backend)
    native = index.search(queries, **kwargs)
    assert counted.calls > 0, "the native funnel did not run"
    backend.native_funnel = False
    try:
        reference = index.search(queries, **kwargs)
    finally:
        backend.native_funnel = True
    return native, reference


def assert_same(index: MatryoshkaIndex, queries: np.ndarray, **kwargs) -> None:
    native, reference = _both(index, queries, k=10, plan=two_stage(index), **kwargs)
    if queries.ndim == 1:
        native, reference, queries = [native], [reference], queries[None, :]
    assert len(native) == len(reference) == len(queries)
    for got, want in zip(native, reference):
        assert [h.id for h in got] == [h.id for h in want]
        assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-5)
        assert [h.metadata for h in got] == [h.metadata for h in want]


def _index(tmp_path: Path, storage: str = "memory", **kwargs) -> MatryoshkaIndex:
    where = {"vector_storage": "mmap", "scratch_dir": str(tmp_path)} if storage == "mmap" else {}
    return MatryoshkaIndex(DIM, levels=kwargs.pop("levels", LEVELS), nlist=40, **where, **kwargs)


def _filled(index: MatryoshkaIndex, n: int = 3000, seed: int = 0) -> MatryoshkaIndex:
    index.add(list(range(n)), _clustered(n, seed), [{"group": i % 4} for i in range(n)])
    return index


QUERIES = _clustered(40, seed=99)


@pytest.mark.parametrize("coarse", ["flat", "hnsw", "ivf", "ivf-int8", "ivf-pq4"])
def test_every_coarse_code_gives_the_reference_results(tmp_path, coarse):
    index = _filled(_index(tmp_path, coarse=coarse))
    assert_same(index, QUERIES)
    assert_same(index, QUERIES[0])  # one query: the single-query path
    assert_same(index, QUERIES, filter={"group": 1})


@pytest.mark.parametrize("codes", ["float32", "float16", "int8"])
@pytest.mark.parametrize("storage", ["memory", "mmap"])
def test_every_row_code_and_storage_gives_the_reference_results(tmp_path, codes, storage):
    """A compact index scores its candidates on float16 or 8-bit rows: FAISS's scalar quantiser
    decodes them as the row codec does (the codec is that quantiser)."""
    index = _filled(_index(tmp_path, storage, levels=(16, 32), full=False, codes=codes, codes_from=500))
    assert index.backend.rows.vectors.dtype == {"float32": np.float32, "float16": np.float16, "int8": np.uint8}[codes]
    assert_same(index, QUERIES)
    assert_same(index, QUERIES, filter={"group": 3})


@pytest.mark.parametrize("storage", ["memory", "mmap"])
def test_every_write_path_keeps_the_native_funnel_in_step(tmp_path, storage):
    """Each write moves or rewrites the rows the composite views (a grown array, tombstones,
    replaced rows, a compaction, a reload); after each the two paths still agree, and deleted
    or replaced records never come back."""
    index = _filled(_index(tmp_path, storage, coarse="ivf-int8"))
    assert_same(index, QUERIES)
    index.add(list(range(3000, 5000)), _clustered(2000, seed=1))  # the arrays grow: new addresses
    assert_same(index, QUERIES)
    index.delete(list(range(0, 600)))  # tombstones: an ID selector in the coarse search
    assert_same(index, QUERIES)
    moved = _clustered(300, seed=2)
    index.upsert(list(range(1000, 1300)), moved)  # replaced rows become tombstones, new rows appended
    assert_same(index, QUERIES)
    index.delete(list(range(1300, 3000)))  # past a quarter of the rows dead: compacted
    assert index.backend.rows.dead == 0
    assert_same(index, QUERIES)
    found = {h.id for hits in index.search(QUERIES, k=10, plan=two_stage(index)) for h in hits}
    assert not found & set(range(0, 600)) and not found & set(range(1300, 3000))
    index.save(tmp_path / "saved")
    loaded = MatryoshkaIndex.load(tmp_path / "saved", **({"vector_storage": "mmap", "scratch_dir": str(tmp_path)}
                                                          if storage == "mmap" else {}))
    assert_same(loaded, QUERIES)
    loaded.add(list(range(9000, 9100)), _clustered(100, seed=3))  # a loaded mapped file is copied before a write
    assert_same(loaded, QUERIES)


def test_a_plan_with_middle_levels_or_an_exact_scan_runs_stage_by_stage(tmp_path):
    """The native funnel is the two-stage plan only: middle levels are rescored by the Python
    kernels, and a selective filter or an exhaustive plan scans exactly."""
    index = _filled(_index(tmp_path))
    counted = Counted(index.backend)
    index.search(QUERIES, k=10, plan=FunnelPlan((120, 40), nprobe=6))
    index.search(QUERIES, k=10, plan=FunnelPlan.exhaustive(index.levels, len(index)))
    assert counted.calls == 0


def test_a_filter_with_fewer_matches_than_k_still_returns_every_match(tmp_path):
    """A narrow probe under a filter leaves -1 candidates; the native path pads its result
    with -1 as the reference does, and the backend falls back to an exact scan of the matches."""
    index = _index(tmp_path, coarse="ivf-int8")
    vectors = _clustered(3000, seed=4)
    index.add(list(range(3000)), vectors, [{"rare": i % 97 == 0} for i in range(3000)])
    hits = index.search(QUERIES[:5], k=40, filter={"rare": True}, plan=FunnelPlan((40, 0), nprobe=1))
    assert all(len(h) == 31 for h in hits)  # 3000 / 97 rounded up: every match, not the probed ones only


@pytest.mark.parametrize("codes", ["float16", "int8"])
def test_the_exhaustive_scan_of_coded_rows_ranks_as_the_decoded_rows_do(tmp_path, codes):
    """An exact scan of a compact index's coded rows runs in FAISS's scan of the codes: the
    same ranking as decoding them in numpy (up to the order of exact ties, which both put
    lower rows first), with and without a filter."""
    index = _filled(_index(tmp_path, levels=(16, 32), full=False, codes=codes, codes_from=500))
    exhaustive = FunnelPlan.exhaustive(index.levels, len(index))
    for flt in (None, {"group": 2}):
        native, reference = _both_exact(index, QUERIES, exhaustive, flt)
        for got, want in zip(native, reference):
            assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-5)
            assert [h.id for h in got] == [h.id for h in want]
            assert flt is None or all(h.metadata["group"] == 2 for h in got)


def _both_exact(index: MatryoshkaIndex, queries: np.ndarray, plan: FunnelPlan, flt: dict | None) -> tuple[list, list]:
    backend = index.backend
    calls, inner = [], backend.native.exhaustive
    backend.native.exhaustive = lambda *a, **kw: calls.append(1) or inner(*a, **kw)
    native = index.search(queries, k=10, plan=plan, filter=flt)
    assert calls, "the exhaustive scan did not run in FAISS"
    backend.native_funnel = False
    try:
        return native, index.search(queries, k=10, plan=plan, filter=flt)
    finally:
        backend.native_funnel = True
