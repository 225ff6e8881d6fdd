"""``matry-index bench`` on small real data: every method measured, outputs that parse, a plot."""
import json

import numpy as np
import pytest

from matry_index import MatryIndexError, MatryoshkaAdaptor
from matry_index.bench import bench
from matry_index.cli import main

from .helpers import check_report


@pytest.fixture(scope="module")
def report(scifact_vectors):
    _, docs, queries = scifact_vectors
    rotation = np.linalg.qr(np.random.default_rng(0).standard_normal((384, 384)))[0]
    return bench(docs[:3000], queries[:200], adaptor=MatryoshkaAdaptor(384, (128, 384), rotation=rotation),
                 targets=(0.95,), n_queries=100, latency_queries=10, repeats=1, threads=1, progress=False,
                 rivals=("faiss PCAR128,IVF,SQ8 + refine", "faiss HNSW", "flat"))


def test_every_method_is_measured_against_exact_search(report):
    names = [m.method for m in report.methods]
    assert names[:2] == ["funnel, adaptor", "funnel, PCA"] and names[-2:] == ["faiss HNSW", "flat"]
    assert names[2].startswith("faiss PCAR128,IVF") and names[2].endswith(",SQ8 + refine")
    flat = report.methods[-1].points[0]
    assert flat.recall == 1.0 and flat.tune_recall == 1.0
    for m in report.methods:
        assert m.points and m.bytes_per_vector > 0
        for p in m.points:
            assert 0 <= p.recall <= 1 and 0 < p.p50_ms <= p.p95_ms and p.batch_qps > 0
    hnsw = report.methods[-2].points
    assert hnsw[-1].recall >= hnsw[0].recall  # a wider search finds more
    # each row is the fastest setting that promises the target by the tuner's rule on the *tuning* queries
    for m, p in report.rows(0.95):
        assert p.tune_bound >= 0.95 and p.tune_recall >= p.tune_bound
        assert p.p50_ms == min(q.p50_ms for q in m.points if q.tune_bound >= 0.95)
    assert report.queries_source.startswith("100 + 100 given queries")
    assert set(report.stage_seconds) >= {"sample and ground truth", "flat"}


def test_the_report_serialises_and_plots(report, tmp_path):
    data = json.loads(json.dumps(report.to_dict()))
    assert data["sample"] == 3000 and len(data["methods"]) == 5
    png = report.plot(tmp_path / "b.png")
    assert png.stat().st_size > 10_000
    table = report.table()
    assert all(m.method in table for m in report.methods) and "| method | setting | test recall" in table


def test_bad_input_is_refused(scifact_vectors):
    _, docs, queries = scifact_vectors
    with pytest.raises(MatryIndexError, match="rotation-only"):
        bench(docs[:500], adaptor=MatryoshkaAdaptor(384, (64, 384), w1=np.zeros((384, 8), np.float32),
                                                    b1=np.zeros(8, np.float32), w2=np.zeros((8, 384), np.float32),
                                                    b2=np.zeros(384, np.float32)), progress=False)
    with pytest.raises(MatryIndexError, match="too few"):
        bench(docs[:500], queries[:5], progress=False)
    with pytest.raises(MatryIndexError, match="dimension"):
        bench(docs[:500], queries[:50, :100], progress=False)


def test_cli_bench_without_queries_uses_held_out_documents(tmp_path, scifact_vectors, capsys):
    _, docs, _ = scifact_vectors
    np.save(tmp_path / "docs.npy", docs[:1500].astype(np.float16))  # half precision, as users store them
    assert main(["bench", "--embeddings", str(tmp_path / "docs.npy"), "--query-sample", "40", "--repeats", "1",
                 "--threads", "1", "--targets", "0.9", "--rivals", "flat", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "held-out documents" in out and "stages:" in out
    data = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert data["sample"] == 1500 - 80 and (tmp_path / "out" / "bench.png").stat().st_size > 0
    check_report(tmp_path / "out", tables=3, images=1)
    assert main(["bench", "--embeddings", str(tmp_path / "docs.npy"), "--adaptor", "x", "--fit"]) == 2


@pytest.mark.slow
def test_bench_fits_its_own_adaptor(scifact_vectors):
    """``--fit``: a funnel-aware adaptor fitted on the sample (a real fit, a few minutes on 2 cores)
    becomes the first row, and its fit is a stage of its own."""
    _, docs, queries = scifact_vectors
    report = bench(docs[:1500], queries[:200], fit=True, fit_docs=800, targets=(0.9,), n_queries=60,
                   latency_queries=5, repeats=1, threads=1, progress=False)
    assert [m.method for m in report.methods][:2] == ["funnel, adaptor", "funnel, PCA"]
    assert report.stage_seconds["fit the funnel-aware adaptor"] > 0
    assert all(p.recall > 0 for p in report.methods[0].points)


@pytest.mark.parametrize("rival", ["faiss IVF,RaBitQfs + refine", "faiss IVF,RaBitQfs4 + refine", "scann", "svs vamana",
                                   "svs leanvec-style", "usearch", "hnswlib"])
def test_every_rival_builds_sweeps_and_finds_the_neighbours(rival, scifact_vectors):
    """Each rival library, on 2,000 real documents: its widest setting finds nearly all of the
    exact top 10, and a wider setting never finds fewer (the sweep is in order)."""
    from matry_index.bench import methods
    from matry_index.tuning import recall_at_k
    _, docs, queries = scifact_vectors
    data, _ = __import__("matry_index.bench", fromlist=["_data"])._data(docs[:2000], queries[:200], 2000, 100, 10,
                                                                        (0.9,), 1, 0)
    method = methods.RIVALS[rival](data, 1)
    recalls = [recall_at_k(fn(data.test), data.test_truth) for _, fn in method.settings]
    assert max(recalls) >= 0.97, (rival, recalls)
    one = method.settings[-1][1](data.test[:1])
    assert one.shape == (1, 10) and set(one[0]) <= set(range(2000))
