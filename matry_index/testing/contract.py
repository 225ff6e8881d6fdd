"""The backend contract, as checks any backend can be held to.

Each check is a function ``check(make, workdir)``: ``make(workdir, dim=..., persistent=False,
**options)`` returns a fresh, empty :class:`~matry_index.MatryoshkaIndex` on the backend under
test, keeping whatever files it needs under ``workdir`` (``persistent``: the index will be
saved, closed and loaded again, so its store must outlive the process's handle). A check
raises ``AssertionError`` (or the unexpected exception) on a breach and returns nothing.

The checks are what every engine must do alike: answers (exact search, funnels that cover the
collection, single and batch queries, async), writes (add, upsert, delete, all or nothing),
the filter semantics of ``docs/filters.md``, persistence (round trips, adaptors, failures at
any step of a save), refusals (bad input of every kind, a closed index) and thread safety.
"""
from __future__ import annotations

import asyncio
import errno
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .. import FunnelPlan, MatryIndexError, MatryoshkaAdaptor, MatryoshkaIndex
from .._fs import recover_directory
from ..errors import AdaptorMismatchError, InvalidInput, StorageError
from ..index import is_saved_index
from .data import DIM, LEVELS, Corpus, corpus

IndexFactory = Callable[..., MatryoshkaIndex]
CHECKS: dict[str, Callable[[IndexFactory, Path], None]] = {}


def check(fn: Callable[[IndexFactory, Path], None]) -> Callable[[IndexFactory, Path], None]:
    """Register ``fn`` as one check of the contract (its name without ``check_``)."""
    CHECKS[fn.__name__.removeprefix("check_")] = fn
    return fn


def ids_of(hits) -> list:
    return [h.id for h in hits]


def filled(make: IndexFactory, workdir: Path, data: Corpus, persistent: bool = False, **options) -> MatryoshkaIndex:
    index = make(workdir, dim=DIM, persistent=persistent, levels=options.pop("levels", LEVELS), **options)
    index.add(data.ids, data.vectors, data.metadata)
    index.optimize()
    return index


@contextmanager
def filled_index(make: IndexFactory, workdir: Path, data: Corpus, persistent: bool = False,
                 **options) -> Iterator[MatryoshkaIndex]:
    """:func:`filled`, closed when the block ends (whatever happened in it)."""
    index = filled(make, workdir, data, persistent, **options)
    try:
        yield index
    finally:
        index.close()


def exhaustive(index: MatryoshkaIndex, queries: np.ndarray, k: int, filter: dict | None = None):
    """Exact search: ``exact=True`` on a full index; on a compact one (which refuses it: it has
    no full vectors) the exhaustive plan, its own exact ranking of what it stores."""
    if index.full:
        return index.search(queries, k=k, filter=filter, exact=True)
    return index.search(queries, k=k, filter=filter, plan=FunnelPlan.exhaustive(index.levels, max(1, len(index))))


def truth(data: Corpus, index: MatryoshkaIndex, query: np.ndarray, k: int, keep=None) -> list[str]:
    """The reference answer for ``index``: :meth:`Corpus.exact_ids` on the original vectors for a
    full index; for a compact one, the same ranking of what it stores (its records' vectors as
    ``get`` returns them — decoded codes where it keeps codes — against the adapted query)."""
    if index.full:
        return data.exact_ids(query, k, keep)
    stored = np.stack([r.vector for r in index.get(data.ids)])
    return data.exact_ids(index.adapt(query[None, :])[0], k, keep, vectors=stored)


def score_tolerance(index: MatryoshkaIndex) -> float:
    """How far a record's score against its own vector may fall from 1: float32 rounding, or
    the codes a compact index ranks with (float16, 8-bit)."""
    codes = getattr(index.backend, "options", {}).get("codes", "float32")
    return {"float16": 2e-3, "int8": 3e-2}.get(codes, 1e-5) if not index.full else 1e-5


def state(index: MatryoshkaIndex, queries: np.ndarray) -> tuple:
    """What a user can observe: the count, the ids and metadata, exact answers."""
    return (len(index), sorted((str(i), repr(m)) for i, m in index.scan()),
            [ids_of(h) for h in exhaustive(index, queries, 5)])


def refused(call: Callable[[], object], kind: type[Exception], breach: str) -> Exception:
    """The ``kind`` error ``call()`` raises; ``AssertionError(breach)`` if it raises none."""
    try:
        call()
    except kind as exc:
        return exc
    raise AssertionError(breach)


def covering(index: MatryoshkaIndex) -> FunnelPlan:
    """A plan whose every stage keeps the whole collection: a funnel that must be exact."""
    return FunnelPlan((len(index),) * (len(index.levels) - 1))


# --- answers ----------------------------------------------------------------------------------
@check
def check_exact_search_is_exact(make: IndexFactory, workdir: Path) -> None:
    data = corpus()
    with filled_index(make, workdir, data) as index:
        for q, hits in zip(data.queries, exhaustive(index, data.queries, 10)):
            assert ids_of(hits) == truth(data, index, q, 10)
            assert all(a.score >= b.score for a, b in zip(hits, hits[1:]))


@check
def check_a_funnel_covering_the_collection_is_exact(make: IndexFactory, workdir: Path) -> None:
    data = corpus()
    with filled_index(make, workdir, data) as index:
        funnel = index.search(data.queries, k=10, plan=covering(index))
        assert [ids_of(h) for h in funnel] == [truth(data, index, q, 10) for q in data.queries]


@check
def check_one_query_gives_one_list_and_a_batch_agrees(make: IndexFactory, workdir: Path) -> None:
    data = corpus()
    with filled_index(make, workdir, data) as index:
        batch = index.search(data.queries, k=5)
        for q, expected in zip(data.queries, batch):
            one = index.search(q, k=5)
            assert isinstance(one, list) and ids_of(one) == ids_of(expected)
        assert all(len(hits) == 5 and all(isinstance(h.id, str) for h in hits) for hits in batch)


@check
def check_async_search_gives_the_same_answers(make: IndexFactory, workdir: Path) -> None:
    data = corpus()
    index = filled(make, workdir, data)

    async def both():
        exact = ({"exact": True} if index.full else
                 {"plan": FunnelPlan.exhaustive(index.levels, len(index))})
        return await asyncio.gather(index.asearch(data.queries, k=5), index.asearch(data.queries, k=5, **exact),
                                    *(index.asearch(q, k=5, filter={"tag": "odd"}) for q in data.queries[:3]))
    try:
        batch, exact, *filtered = asyncio.run(both())
        assert [ids_of(h) for h in batch] == [ids_of(h) for h in index.search(data.queries, k=5)]
        assert [ids_of(h) for h in exact] == [ids_of(h) for h in exhaustive(index, data.queries, 5)]
        assert [ids_of(h) for h in filtered] == [ids_of(index.search(q, k=5, filter={"tag": "odd"}))
                                                 for q in data.queries[:3]]
    finally:
        asyncio.run(index.aclose())


@check
def check_a_rotation_adaptor_keeps_the_original_ranking(make: IndexFactory, workdir: Path) -> None:
    data = corpus()
    rotation = np.linalg.qr(np.random.default_rng(1).standard_normal((DIM, DIM)))[0]
    with filled_index(make, workdir, data, adaptor=MatryoshkaAdaptor(DIM, LEVELS + (DIM,), rotation=rotation)) as index:
        for q, hits in zip(data.queries, exhaustive(index, data.queries, 10)):
            assert ids_of(hits) == truth(data, index, q, 10)


@check
def check_tiny_dimension_and_int_ids(make: IndexFactory, workdir: Path) -> None:
    index = make(workdir, dim=6, persistent=False)
    try:
        assert index.levels == (6,) or not index.full
        vectors = np.random.default_rng(2).standard_normal((4, 6)) * 3
        index.add([10, 11, 12, 13], vectors)
        hit = index.search(vectors[2], k=1)[0]
        assert hit.id == 12 and abs(hit.score - 1.0) < score_tolerance(index)
    finally:
        index.close()


# --- writes -----------------------------------------------------------------------------------
@check
def check_delete_and_add_again(make: IndexFactory, workdir: Path) -> None:
    data = corpus()
    with filled_index(make, workdir, data) as index:
        top = ids_of(exhaustive(index, data.queries[0], 3))
        index.delete(top[:2])
        assert len(index) == len(data.ids) - 2 and index.get(top[:2]) == [None, None]
        assert not set(top[:2]) & set(ids_of(index.search(data.queries[0], k=3)))
        rows = [data.ids.index(t) for t in top[:2]]
        index.add(top[:2], data.vectors[rows])
        assert ids_of(exhaustive(index, data.queries[0], 3)) == top


@check
def check_a_mass_delete_keeps_results_exact(make: IndexFactory, workdir: Path) -> None:
    data = corpus()
    with filled_index(make, workdir, data) as index:
        index.delete(data.ids[:450])
        assert len(index) == 150
        exact = exhaustive(index, data.queries, 10)
        assert all(set(ids_of(h)) <= set(data.ids[450:]) for h in exact)
        assert [ids_of(h) for h in index.search(data.queries, k=10, plan=covering(index))] == \
            [ids_of(h) for h in exact]


@check
def check_upsert_replaces_the_vector_and_metadata(make: IndexFactory, workdir: Path) -> None:
    data = corpus()
    with filled_index(make, workdir, data) as index:
        index.upsert([data.ids[0]], data.queries[:1], [{"n": -1}])
        assert len(index) == len(data.ids)
        hit = exhaustive(index, data.queries[0], 1)[0]
        tolerance = score_tolerance(index)
        assert hit.id == data.ids[0] and hit.metadata == {"n": -1} and abs(hit.score - 1.0) < tolerance
        record = index.get([data.ids[0]])[0]
        assert record.metadata == {"n": -1} and abs(float(np.linalg.norm(record.vector)) - 1.0) < tolerance
        assert len(record.vector) == index.stored_dim


@check
def check_hits_carry_their_ids_and_metadata_through_mixed_writes(make: IndexFactory, workdir: Path) -> None:
    data = corpus()
    with filled_index(make, workdir, data) as index:
        index.delete(data.ids[:100:3])
        index.upsert(data.ids[1:100:3], data.vectors[1:100:3], [{"n": 1000 + i} for i in range(len(data.ids[1:100:3]))])
        index.add([7, 8], data.vectors[:2], [{"int": True}, {}])
        expected = {i: m for i, m in zip(data.ids, data.metadata)}
        expected.update({i: {"n": 1000 + j} for j, i in enumerate(data.ids[1:100:3])})
        for i in data.ids[:100:3]:
            expected.pop(i)
        expected.update({7: {"int": True}, 8: {}})
        assert dict(index.scan()) == expected
        for hits in index.search(data.queries, k=20, plan=covering(index)):
            assert all(h.metadata == expected[h.id] for h in hits)


# --- filters ----------------------------------------------------------------------------------
#: records and filters written out by hand from docs/filters.md: every backend must return
#: exactly these records, through ``scan`` and through ``search``
FILTER_RECORDS = {
    "int2003": {"year": 2003, "tags": ["a", "b"], "nested": {"k": 1}},
    "float2003": {"year": 2003.0, "tags": ["b"], "score": 0.25},
    "y2004": {"year": 2004, "tags": "a", "nested": {"k": 2}},
    "null": {"year": None, "tags": []},
    "missing": {"other": "x"},
    "text": {"year": "2003", "score": 1.5},
    "flags": {"flag": 1, "n": [1, 2.5, 7]},
}
FILTER_CASES = [
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


@check
def check_filters_follow_the_written_semantics(make: IndexFactory, workdir: Path) -> None:
    index = make(workdir, dim=4, persistent=False)
    try:
        index.add(list(FILTER_RECORDS), np.random.default_rng(0).standard_normal((len(FILTER_RECORDS), 4)),
                  list(FILTER_RECORDS.values()))
        query, everything = np.ones(4, np.float32), len(FILTER_RECORDS)
        for flt, expected in FILTER_CASES:
            assert {i for i, _ in index.scan(flt)} == expected, flt
            assert {h.id for h in exhaustive(index, query, everything, flt)} == expected, flt
            assert {h.id for h in index.search(query, k=everything, filter=flt)} == expected, flt
    finally:
        index.close()


@check
def check_filtered_searches_return_k_matching_records(make: IndexFactory, workdir: Path) -> None:
    data = corpus()
    cases = [({"n": 7}, lambda m: m["n"] == 7), ({"n": {"$lt": 10}}, lambda m: m["n"] < 10),
             ({"n": {"$in": [1, 2, 3]}, "tag": "odd"}, lambda m: m["n"] in (1, 2, 3) and m["tag"] == "odd"),
             ({"$or": [{"n": 0}, {"n": {"$gte": 49}}]}, lambda m: m["n"] in (0, 49)),
             ({"tag": {"$ne": "odd"}}, lambda m: m["tag"] == "even")]
    with filled_index(make, workdir, data) as index:
        for flt, keep in cases:
            for q, hits in zip(data.queries, index.search(data.queries, k=10, filter=flt, plan=covering(index))):
                assert ids_of(hits) == truth(data, index, q, 10, keep), flt
                assert all(keep(h.metadata) for h in hits)
            for hits in index.search(data.queries, k=10, filter=flt):  # the default plan: k of them
                assert len(hits) == min(10, sum(keep(m) for m in data.metadata)) and all(keep(h.metadata) for h in hits)
        index.upsert(data.ids[:3], data.vectors[:3], [{"special": "yes"}] * 3)
        assert sorted(ids_of(index.search(data.queries[0], k=10, filter={"special": "yes"}))) == sorted(data.ids[:3])
        assert index.search(data.queries[0], k=10, filter={"n": 12345}) == []


@check
def check_filtered_results_and_scans_follow_writes(make: IndexFactory, workdir: Path) -> None:
    """A backend that caches what a filter matches must forget it at the next write."""
    data = corpus()
    with filled_index(make, workdir, data) as index:
        flt = {"n": 7}
        first = index.search(data.queries[0], k=50, filter=flt)
        assert len(first) == 12 and len(index.scan(flt)) == 12
        index.upsert([data.ids[0]], data.vectors[:1], [{"n": 7}])
        assert len(index.search(data.queries[0], k=50, filter=flt)) == 13 and len(index.scan(flt)) == 13
        index.delete([first[0].id])
        after = index.search(data.queries[0], k=50, filter=flt)
        assert len(after) == 12 and first[0].id not in ids_of(after)
        assert first[0].id not in {i for i, _ in index.scan(flt)}


# --- persistence ------------------------------------------------------------------------------
@check
def check_a_save_loads_back_the_same_index(make: IndexFactory, workdir: Path) -> None:
    data = corpus()
    index = filled(make, workdir, data, persistent=True)
    index.plan = FunnelPlan.exhaustive(index.levels, len(index))
    before = [[(h.id, h.metadata) for h in hits] for hits in index.search(data.queries, k=10)]
    n, levels, plan = len(index), index.levels, index.plan
    index.save(workdir / "saved")
    index.close()  # engines that keep their own files are single-process
    loaded = MatryoshkaIndex.load(workdir / "saved")
    try:
        assert len(loaded) == n and loaded.levels == levels and loaded.plan == plan and loaded.plan.exact
        assert [[(h.id, h.metadata) for h in hits] for hits in loaded.search(data.queries, k=10)] == before
    finally:
        loaded.close()


@check
def check_a_save_keeps_its_adaptor_and_refuses_another(make: IndexFactory, workdir: Path) -> None:
    data = corpus()
    rng = np.random.default_rng(3)
    adaptor = MatryoshkaAdaptor(DIM, LEVELS + (DIM,), rotation=np.linalg.qr(rng.standard_normal((DIM, DIM)))[0])
    other = MatryoshkaAdaptor.identity(DIM, LEVELS + (DIM,))
    with filled_index(make, workdir, data, persistent=True, adaptor=adaptor) as index:
        expected = ids_of(index.search(data.queries[0], 5))
        refused(lambda: index.search(data.queries[0], 5, adaptor_hash=other.content_hash), AdaptorMismatchError,
                "a query meant for another adaptor was answered")
        index.save(workdir / "saved")
    refused(lambda: MatryoshkaIndex.load(workdir / "saved", adaptor=other), AdaptorMismatchError,
            "a save was opened with another adaptor")
    loaded = MatryoshkaIndex.load(workdir / "saved", adaptor=adaptor)
    try:
        assert ids_of(loaded.search(data.queries[0], 5)) == expected
    finally:
        loaded.close()


class _Injected(OSError):
    """The fault the save check injects (an ``OSError``, like a real full disk or I/O error)."""


@contextmanager
def _failing_call(n: int | None, counter: list[int]) -> Iterator[None]:
    """The n-th call (counted across them all) of the filesystem functions a save uses raises."""
    import faiss
    targets = [(os, "replace"), (os, "fsync"), (np, "save"), (np, "savez"), (faiss, "write_index"),
               (Path, "write_text"), (Path, "mkdir")]
    originals = [(owner, name, getattr(owner, name)) for owner, name in targets]

    def wrap(real):
        def call(*args, **kwargs):
            counter[0] += 1
            if counter[0] == n:
                raise _Injected(errno.EIO, f"injected failure at call {n}")
            return real(*args, **kwargs)
        return call
    for owner, name, real in originals:
        setattr(owner, name, wrap(real))
    try:
        yield
    finally:
        for owner, name, real in originals:
            setattr(owner, name, real)


@check
def check_a_save_failing_at_any_step_keeps_the_previous_save(make: IndexFactory, workdir: Path) -> None:
    data = corpus(n=60)
    with filled_index(make, workdir, data, persistent=True) as index:
        index.save(workdir / "saved")
        on_disk = len(index)
        index.add(["later"], data.queries[:1])
        counter = [0]
        with _failing_call(None, counter):
            index.save(workdir / "count")
        for n in range(1, counter[0] + 1):
            try:
                with _failing_call(n, [0]):
                    index.save(workdir / "saved")
                on_disk = len(index)  # a failure it could shrug off (an fsync of a directory)
            except (_Injected, StorageError):
                pass
            assert len(index) == len(data.ids) + 1, n
            leftovers = [p.name for p in workdir.iterdir() if p.name.startswith(".saved")]
            assert leftovers == [], (n, leftovers)
            if index.backend.keeps_own_data:  # its store is held open here; the save says how to reopen it
                recover_directory(workdir / "saved", is_saved_index)  # what a load does first
                assert MatryoshkaIndex._read_manifest(workdir / "saved")["count"] == on_disk, n
            else:
                loaded = MatryoshkaIndex.load(workdir / "saved")
                assert len(loaded) == on_disk, n
                loaded.close()


# --- refusals ---------------------------------------------------------------------------------
@check
def check_bad_input_changes_nothing(make: IndexFactory, workdir: Path) -> None:
    data = corpus(n=60)
    deep: dict = {}
    node = deep
    for _ in range(200):
        node["x"] = {}
        node = node["x"]
    v = data.vectors
    calls = [lambda: index.add(["new"], v[:1, :5]), lambda: index.add(["a", "b"], np.vstack([v[:1], np.full((1, DIM), np.nan)])),
             lambda: index.add([], np.zeros((0, DIM))), lambda: index.add(["x", "x"], v[:2]),
             lambda: index.add(["fresh", data.ids[0]], v[:2]), lambda: index.add(["a"], v[:2]),
             lambda: index.add(["a"], v[:1], [{"x": 1}, {"y": 2}]), lambda: index.add([1.5], v[:1]),
             lambda: index.add(["c"], v[:1] + 1j), lambda: index.add(["\udcff"], v[:1]),
             lambda: index.add(["d"], v[:1], [{"s": {1, 2}}]), lambda: index.add(["e"], v[:1], [deep]),
             lambda: index.add(["f"], np.zeros((1, DIM))), lambda: index.delete([data.ids[0], "unknown"]),
             lambda: index.delete("ab"), lambda: index.search(v[:1, :10], k=3), lambda: index.search(v[:1], k=0),
             lambda: index.search(v[:1], k=3, filter={"n": {"$between": 1}}), lambda: index.tune(v[:5], k=-5),
             lambda: index.search(v[:1], k=3, filter={"n": {"$in": 3}}), lambda: index.search(v[:1].astype(str), k=3)]
    with filled_index(make, workdir, data) as index:
        before = state(index, data.queries[:3])
        for number, call in enumerate(calls):
            refused(call, InvalidInput, f"bad input {number} was accepted")
        assert state(index, data.queries[:3]) == before


@check
def check_a_closed_index_refuses_every_call(make: IndexFactory, workdir: Path) -> None:
    data = corpus(n=60)
    index = filled(make, workdir, data)
    index.close()
    for call in (lambda: index.search(data.queries[0], k=3), lambda: index.add(["x"], data.vectors[:1]),
                 lambda: index.delete([data.ids[0]]), lambda: index.get([data.ids[0]]), lambda: len(index),
                 lambda: index.scan(), lambda: index.save(workdir / "saved")):
        assert "closed" in str(refused(call, InvalidInput, "a closed index answered"))
    index.close()  # closing twice is harmless


@check
def check_a_compact_index_refuses_what_needs_the_full_vectors(make: IndexFactory, workdir: Path) -> None:
    """A compact index keeps a prefix: a search that ranks by the full vectors is refused (and
    changes nothing); a full index answers it."""
    data = corpus(n=60)
    with filled_index(make, workdir, data) as index:
        if index.full:
            assert len(index.search(data.queries[0], k=3, exact=True)) == 3
            return
        before = state(index, data.queries[:3])
        message = str(refused(lambda: index.search(data.queries[0], k=3, exact=True), InvalidInput,
                              "a compact index answered a full-dimension exact search"))
        assert "compact" in message and "exhaustive" in message
        assert state(index, data.queries[:3]) == before


# --- threads ----------------------------------------------------------------------------------
@check
def check_searches_and_a_writer_in_threads(make: IndexFactory, workdir: Path) -> None:
    data = corpus(n=100)
    index = filled(make, workdir, data)
    extra = np.random.default_rng(4).standard_normal((100, DIM)).astype(np.float32)
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for _ in range(20):
                assert len(index.search(data.queries[:2], k=3)[0]) == 3
                index.scan({"n": 3})
        except BaseException as exc:  # reported below
            errors.append(exc)

    def writer() -> None:
        try:
            for s in range(0, 100, 10):
                index.add([f"w{j}" for j in range(s, s + 10)], extra[s:s + 10])
                index.delete([f"w{s}"])
        except BaseException as exc:
            errors.append(exc)
    threads = [threading.Thread(target=reader) for _ in range(3)] + [threading.Thread(target=writer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == [] and len(index) == 100 + 100 - 10, errors
    finally:
        index.close()


def run(make: IndexFactory, workdir: Path, names: list[str] | None = None) -> list[str]:
    """Run the checks named (all by default), each in a fresh subfolder of ``workdir``; the
    names of those that ran. The first breach raises, its check's name in the message."""
    ran = []
    for name in names or list(CHECKS):
        folder = workdir / name
        folder.mkdir(parents=True, exist_ok=False)
        try:
            CHECKS[name](make, folder)
        except MatryIndexError as exc:
            raise AssertionError(f"{name}: {type(exc).__name__}: {exc}") from exc
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from exc
        ran.append(name)
    return ran
