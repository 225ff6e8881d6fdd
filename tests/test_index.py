"""MatryoshkaIndex on every backend (FAISS, Qdrant local mode, Qdrant Edge), on real SciFact vectors."""
import shutil

import numpy as np
import pytest

from matry_index import AdaptorMismatchError, FunnelPlan, MatryIndexError, MatryoshkaAdaptor, MatryoshkaIndex
from matry_index._validation import normalize_rows

from .helpers import BACKENDS, EDGE_IN_RAM, FAISS_MMAP, ids_of, make_index


@pytest.fixture(params=BACKENDS + [FAISS_MMAP, EDGE_IN_RAM])
def backend(request):
    return request.param


def test_tuned_plan_reaches_target_on_held_out_queries(scifact_vectors):
    ids, docs, queries = scifact_vectors
    idx = MatryoshkaIndex(docs.shape[1], coarse="hnsw")
    idx.add(ids, docs)
    # by the cost model alone (timed, a scan of 5,000 raw vectors can win: see the test below)
    plan = idx.tune(queries[:300], target_recall=0.95, k=10, timed=False)
    assert plan.tuned["reached"] and plan.tuned["bound"] >= 0.95 and not plan.exact
    held_out = queries[300:600]
    exact = idx.search(held_out, k=10, exact=True)
    funnel = idx.search(held_out, k=10)
    recall = np.mean([len(set(ids_of(a)) & set(ids_of(b))) / 10 for a, b in zip(funnel, exact)])
    assert recall >= 0.95  # the promise holds on queries the plan was not chosen on
    timed = idx.tune(queries[:300], target_recall=0.95, k=10)
    assert timed.tuned["reached"] and timed.tuned.get("contenders_timed", 1) >= 1


@pytest.mark.slow
def test_tuned_ivf_plan_picks_nprobe_and_holds_on_held_out_queries(scifact_vectors, tmp_path):
    ids, docs, queries = scifact_vectors
    idx = MatryoshkaIndex(docs.shape[1], levels=(128, 256), coarse="ivf", ivf_encoding="sq8", nlist=64,
                          deferred_build=True)
    idx.add(ids, docs)
    plan = idx.tune(queries[:300], target_recall=0.95, k=10)  # builds the lists, then sweeps nprobe
    assert plan.tuned["reached"] and plan.nprobe is not None and plan.nprobe < 64
    held_out = queries[300:600]
    exact = idx.search(held_out, k=10, exact=True)
    recall = np.mean([len(set(ids_of(a)) & set(ids_of(b))) / 10
                      for a, b in zip(idx.search(held_out, k=10), exact)])
    assert recall >= 0.93
    idx.save(tmp_path / "ix")
    assert MatryoshkaIndex.load(tmp_path / "ix").plan.nprobe == plan.nprobe


def test_save_with_adaptor_and_refuse_another(backend, small_corpus, tmp_path, rng):
    ids, docs, queries = small_corpus
    q, _ = np.linalg.qr(rng.standard_normal((docs.shape[1], docs.shape[1])))
    adaptor = MatryoshkaAdaptor(docs.shape[1], (64, 128, 256, 384), rotation=q)
    idx = make_index(backend, tmp_path, persistent=True, adaptor=adaptor)
    idx.add(ids[:500], docs[:500])
    expected = ids_of(idx.search(queries[0], 5))
    other = MatryoshkaAdaptor.identity(docs.shape[1], (64, 384))
    with pytest.raises(AdaptorMismatchError):
        idx.search(queries[0], 5, adaptor_hash=other.content_hash)
    idx.search(queries[0], 5, adaptor_hash=adaptor.content_hash)
    idx.save(tmp_path / "ix")
    idx.close()
    with pytest.raises(AdaptorMismatchError):
        MatryoshkaIndex.load(tmp_path / "ix", adaptor=other)
    loaded = MatryoshkaIndex.load(tmp_path / "ix", adaptor=adaptor)
    assert ids_of(loaded.search(queries[0], 5)) == expected
    loaded.close()
    if not backend.startswith("faiss"):  # the engine's own data refuses another adaptor too
        with pytest.raises(AdaptorMismatchError):
            make_index(backend, tmp_path, persistent=True,
                       adaptor=MatryoshkaAdaptor(384, (64, 128, 256, 384), rotation=q.T))
    with pytest.raises(AdaptorMismatchError):
        MatryoshkaIndex(128, adaptor=adaptor)


def test_binary_codes_rank_coarsely_but_a_wider_funnel_recovers(tmp_path, small_corpus):
    """1-bit codes of the coarse prefix (``quantization="binary"``): a funnel of a fifth of the
    collection finds most of the exact top 10; the tuner pays for what the codes lose with more
    candidates."""
    ids, docs, queries = small_corpus
    index = make_index("qdrant-edge", tmp_path, quantization="binary", levels=None)
    assert index.levels == (128, 384)
    index.add(ids, docs)
    index.optimize()
    truth = [ids_of(h) for h in index.search(queries, k=10, exact=True)]

    def recall(candidates: int) -> float:
        plan = FunnelPlan((candidates,), ef=2 * candidates)
        found = [ids_of(h) for h in index.search(queries, k=10, plan=plan)]
        return float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)]))
    assert recall(400) >= 0.9 and recall(400) > recall(50)
    index.close()


def _snapshot(index, queries):
    return len(index), [ids_of(h) for h in index.search(queries, k=10, exact=True)]


def test_failed_backend_write_leaves_index_unchanged(small_corpus, monkeypatch):
    ids, docs, queries = small_corpus
    index = MatryoshkaIndex(docs.shape[1], coarse="hnsw")
    index.add(ids, docs)
    before = _snapshot(index, queries[:5])
    coarse = index.backend.coarse.index

    class Boom(RuntimeError):
        pass

    def fail(_x):
        raise Boom("disk full")
    monkeypatch.setattr(coarse, "add", fail)
    with pytest.raises(Boom):
        index.add(["n1", "n2"], queries[:2])
    monkeypatch.undo()
    assert _snapshot(index, queries[:5]) == before
    assert index.get(["n1"]) == [None]
    index.add(["n1"], queries[:1])  # and it still works afterwards
    assert index.search(queries[0], k=1, exact=True)[0].id == "n1"


def test_corrupt_or_half_written_index_is_refused(small_corpus, tmp_path):
    ids, docs, _ = small_corpus
    index = MatryoshkaIndex(docs.shape[1], coarse="hnsw")
    index.add(ids, docs)
    index.save(tmp_path / "ix")
    shutil.copytree(tmp_path / "ix", tmp_path / "half")
    (tmp_path / "half" / "index.json").unlink()
    with pytest.raises(MatryIndexError, match="half-written|not a saved"):
        MatryoshkaIndex.load(tmp_path / "half")
    shutil.copytree(tmp_path / "ix", tmp_path / "bad")
    vec = tmp_path / "bad" / "backend" / "vectors.npy"
    data = bytearray(vec.read_bytes())
    data[-5] ^= 0xFF
    vec.write_bytes(bytes(data))
    with pytest.raises(MatryIndexError, match="corrupt"):
        MatryoshkaIndex.load(tmp_path / "bad")
    (tmp_path / "ix" / "backend" / "coarse.faiss").unlink()
    with pytest.raises(MatryIndexError, match="corrupt or incomplete"):
        MatryoshkaIndex.load(tmp_path / "ix")
    with pytest.raises(MatryIndexError):
        MatryoshkaIndex.load(tmp_path / "nowhere")


@pytest.mark.parametrize("coarse, options", [
    ("flat", {}), ("ivf", {}), ("auto", {}), ("ivf", {"ivf_encoding": "sq8"}),
    ("ivf", {"ivf_encoding": "sq8", "nlist": 1024, "nprobe": 512})])  # graph-searched centroids
def test_other_coarse_indexes(small_corpus, coarse, options):
    ids, docs, queries = small_corpus
    idx = MatryoshkaIndex(docs.shape[1], coarse=coarse, **{"nprobe": 64, **options})
    idx.add(ids, docs)
    exact = idx.search(queries[:20], k=10, exact=True)
    funnel = idx.search(queries[:20], k=10, plan=FunnelPlan((1000, 200)))  # levels 128, 256, full
    recall = np.mean([len(set(ids_of(a)) & set(ids_of(b))) / 10 for a, b in zip(funnel, exact)])
    assert recall >= 0.95, recall


def test_deferred_bulk_load_builds_on_optimize_or_search(small_corpus):
    ids, docs, queries = small_corpus
    idx = MatryoshkaIndex(docs.shape[1], coarse="hnsw", deferred_build=True)
    idx.add(ids[:1000], docs[:1000])
    assert idx.backend.coarse.index is None or idx.backend.coarse.index.ntotal == 0
    idx.optimize()
    assert idx.backend.coarse.index.ntotal == 1000
    idx.add(ids[1000:], docs[1000:])
    assert idx.backend.coarse.index.ntotal == 1000
    everything = FunnelPlan((2000, 2000))
    assert [ids_of(h) for h in idx.search(queries[:5], k=10, plan=everything)] == \
        [ids_of(h) for h in idx.search(queries[:5], k=10, exact=True)]
    assert idx.backend.coarse.index.ntotal == 2000


def test_unreachable_qdrant_server_gives_clear_error():
    from matry_index.backends.qdrant.client import QdrantBackend
    with pytest.raises(MatryIndexError, match="unreachable"):
        QdrantBackend(384, (64, 384), url="http://127.0.0.1:9", timeout=1, retries=2)


def test_qdrant_failed_upload_is_rolled_back(small_corpus, tmp_path, monkeypatch):
    ids, docs, queries = small_corpus
    idx = make_index("qdrant", tmp_path)
    idx.add(ids[:300], docs[:300])
    idx.backend.batch_size = 200
    before = _snapshot(idx, queries[:3])
    client = idx.backend.client
    real_upsert, calls = client.upsert, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the second batch of this add fails
            raise RuntimeError("connection reset")
        return real_upsert(*args, **kwargs)
    monkeypatch.setattr(client, "upsert", flaky)
    with pytest.raises(RuntimeError):
        idx.add(ids[300:1000], docs[300:1000])
    monkeypatch.undo()
    assert _snapshot(idx, queries[:3]) == before
    idx.close()


def test_qdrant_collection_schema_is_checked_on_open(small_corpus, tmp_path):
    from matry_index.backends.qdrant.client import QdrantBackend
    ids, docs, _ = small_corpus
    idx = make_index("qdrant", tmp_path, persistent=True)
    idx.add(ids[:10], docs[:10])
    idx.close()
    with pytest.raises(MatryIndexError, match="stores levels"):
        QdrantBackend(384, (32, 384), path=str(tmp_path / "qdrant"))
    info = QdrantBackend(384, (64, 128, 256, 384), path=str(tmp_path / "qdrant"))
    cfg = info.client.get_collection("matry_index").config
    assert cfg.metadata["matry_index"]["vectors"] == ["d64", "d128", "d256", "full"]
    assert cfg.params.vectors["d128"].hnsw_config.m == 0 and cfg.params.vectors["d64"].hnsw_config is None
    info.close()


@pytest.mark.parametrize("coarse", ["hnsw", "ivf"])
def test_single_query_and_batch_paths_agree(small_corpus, coarse):
    """One query takes a leaner code path than a batch; both must return the same hits."""
    ids, docs, queries = small_corpus
    idx = MatryoshkaIndex(docs.shape[1], coarse=coarse, plan=FunnelPlan((200, 20), nprobe=8))
    idx.add(ids, docs)
    batch = idx.search(queries[:10], k=10)
    for q, hits in zip(queries[:10], batch):
        single = idx.search(q, k=10)
        assert ids_of(single) == ids_of(hits)
        assert [h.score for h in single] == pytest.approx([h.score for h in hits], abs=1e-5)


def test_sparse_candidate_lists_keep_batch_and_single_paths_exact(small_corpus):
    """A narrow IVF probe under a filter returns candidate lists padded with -1 (fewer matches
    than asked for): the middle stages must move the padding behind the real candidates before
    the full-dimension stage, and a list that runs dry falls back to an exact scan."""
    ids, docs, queries = small_corpus
    idx = MatryoshkaIndex(docs.shape[1], coarse="ivf", nlist=100, plan=FunnelPlan((200, 80), nprobe=3))
    idx.add(ids, docs, [{"tag": "even" if i % 2 == 0 else "odd"} for i in range(len(ids))])
    flt = {"tag": "even"}
    batch = idx.search(queries[:10], k=10, filter=flt)
    for q, hits in zip(queries[:10], batch):
        assert len(hits) == 10 and all(h.metadata["tag"] == "even" for h in hits)
        assert ids_of(idx.search(q, k=10, filter=flt)) == ids_of(hits)
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("kind", ["faiss", FAISS_MMAP])
def test_int_ids_keep_their_records_through_a_compaction(kind, small_corpus, tmp_path):
    """With every id an int, ids are read from the key array: a compaction must read them
    before the rows move (replacing the one record of an index compacts it at once)."""
    _, docs, queries = small_corpus
    idx = make_index(kind, tmp_path)
    idx.add([100], docs[:1], [{"n": 0}])
    idx.upsert([100], docs[1:2], [{"n": 1}])   # one of two rows dead: compacts
    assert idx.backend.rows.n == 1 and idx.get([100])[0].metadata == {"n": 1}
    idx.add(list(range(40)), docs[2:42], [{"n": i} for i in range(40)])
    idx.delete(list(range(0, 40, 3)))          # 14 of 41 dead: compacts again
    idx.upsert([5, 100], docs[42:44])
    kept = sorted(set(range(40)) - set(range(0, 40, 3))) + [100]
    assert sorted(i for i, _ in idx.scan()) == kept
    assert idx.get([7])[0].metadata == {"n": 7} and idx.get([5])[0].metadata == {}
    np.testing.assert_allclose(idx.get([5])[0].vector, normalize_rows(docs[42:43])[0], atol=1e-6)
    hits = idx.search(docs[42], k=1, exact=True)
    assert hits[0].id == 5 and type(hits[0].id) is int
    idx.close()




@pytest.mark.shared_data
@pytest.mark.slow
def test_a_plan_tuned_to_099_holds_on_fresh_queries_in_19_of_20_draws():
    """The promise the tuner makes, checked as a user meets it: docstrings' 4,000 real queries,
    a default index (IVF with 8-bit codes) over its 12,887 real documents, 20 draws of 500
    tuning queries and 500 other fresh ones from the same pool."""
    from matry_index.experiment import load_experiment
    from matry_index.evaluation.baselines import PCARotation
    from matry_index.tuning import recall_at_k
    from .conftest import SHARED, _require
    folder = _require(SHARED / "data" / "docstrings")
    exp = load_experiment(folder, _require(folder / "embeddings" / "all-MiniLM-L6-v2"))
    docs, pool = exp.corpus.vectors, exp.queries.vectors
    adaptor = MatryoshkaAdaptor(docs.shape[1], (64, 128, 256, 384), rotation=PCARotation.fit(docs).components)
    index = MatryoshkaIndex(docs.shape[1], adaptor=adaptor)
    index.add(np.arange(len(docs)), docs)
    truth = np.array([ids_of(h) for h in index.search(pool, k=10, exact=True)])
    rng, held = np.random.default_rng(0), []
    for _ in range(20):
        order = rng.permutation(len(pool))
        plan = index.tune(pool[order[:500]], target_recall=0.99, k=10, apply=False)
        fresh = order[500:1000]
        found = np.array([ids_of(h) for h in index.search(pool[fresh], k=10, plan=plan)])
        held.append(recall_at_k(found, truth[fresh]))
    assert sum(r >= 0.99 for r in held) >= 19, sorted(held)
