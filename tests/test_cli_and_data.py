"""BEIR loading, metrics, the CLI's build/search commands, and the train/test wall."""
import json

import numpy as np
import pytest

from matry_index import MatryIndexError
from matry_index.cli import main
from matry_index.data import load_beir, load_embeddings, save_embeddings
from matry_index.evaluation import ndcg_at_k, recall_at_k

from .conftest import SCIFACT
from .helpers import check_report


@pytest.mark.shared_data
def test_load_beir_scifact_counts():
    ds = load_beir(SCIFACT)
    assert len(ds.corpus) == 5183 and len(ds.queries) == 1109
    assert len(ds.split("train")) == 809 and len(ds.split("test")) == 300
    with pytest.raises(MatryIndexError, match="no qrels split"):
        ds.split("dev")


def test_load_beir_refuses_non_beir_folder(tmp_path):
    with pytest.raises(MatryIndexError, match="not a BEIR folder"):
        load_beir(tmp_path)


def test_embedding_cache_round_trip(tmp_path, rng):
    vecs = rng.standard_normal((3, 4)).astype(np.float32)
    save_embeddings(tmp_path, "corpus", ["a", "b", "c"], vecs)
    loaded = load_embeddings(tmp_path, "corpus")
    assert loaded.ids == ["a", "b", "c"] and np.array_equal(loaded.vectors, vecs)
    assert np.array_equal(loaded.take(["c", "a"]), vecs[[2, 0]])
    with pytest.raises(MatryIndexError, match="no embedding"):
        loaded.take(["zzz"])
    with pytest.raises(MatryIndexError, match="not unique"):
        save_embeddings(tmp_path, "dup", ["a", "a", "b"], vecs)


def test_failed_file_write_keeps_the_old_file(tmp_path):
    from matry_index._fs import atomic_write, atomic_write_text

    target = tmp_path / "kept.txt"
    atomic_write_text(target, "old")

    def fail_half_way(fh):
        fh.write(b"new, half written")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, fail_half_way)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["kept.txt"]  # no temporary file left behind
    atomic_write_text(target, "new")
    assert target.read_text() == "new"


def test_ndcg_and_recall_by_hand():
    qrels = {"q1": {"d1": 1, "d2": 2}, "q2": {"d9": 1}, "q3": {}}
    run = {"q1": ["d2", "d3", "d1"], "q2": ["d5"]}
    # q1: DCG = 2/log2(2) + 1/log2(4) = 2.5 ; IDCG = 2 + 1/log2(3) ; q2: 0 ; q3 skipped (no relevant)
    expected_q1 = 2.5 / (2 + 1 / np.log2(3))
    assert ndcg_at_k(run, qrels, 10) == pytest.approx(expected_q1 / 2)
    assert ndcg_at_k(run, qrels, 1, per_query=True)["q1"] == pytest.approx(2 / 2)
    assert recall_at_k(run, qrels, 2) == pytest.approx((0.5 + 0) / 2)


def test_agreement_with_full_by_hand():
    from matry_index.evaluation import RetrievalTask, agreement_with_full

    # 2-d docs: on the first coordinate alone doc 2 (x=1.0) outranks doc 0 for query q,
    # which on both coordinates prefers doc 0, then doc 1.
    docs = np.array([[0.6, 0.8], [0.0, 1.0], [1.0, 0.0]], np.float32)
    task = RetrievalTask(["a", "b", "c"], docs, ["q"], np.array([[0.1, 1.0]], np.float32), {"q": {"a": 1}})
    # full-dim top-2 = {1, 0}: cosines 0.995 (doc 1), 0.856 (doc 0), 0.0995 (doc 2)
    # 1-d prefix: every doc's prefix normalises to +1 except doc 1 (zero stays zero): top-2 = {0, 2}
    # top-1: doc 1 in full dimension and at 2-d, never at 1-d (doc 1's prefix is zero)
    res = agreement_with_full(task, [1, 2], ks=(1, 2))
    assert res == {1: {1: 0.0, 2: 0.5}, 2: {1: 1.0, 2: 1.0}}
    swap = agreement_with_full(task, [2], transform=lambda x: x[:, ::-1], ks=(2,))
    assert swap == {2: {2: 1.0}}  # a permutation of coordinates keeps full-dimension cosines


def test_exact_search_reproduces_published_scifact_ndcg(scifact_experiment):
    from matry_index.evaluation import evaluate_levels
    res = evaluate_levels(scifact_experiment.task("test"), [64, 384])
    assert res[384]["ndcg@10"] == pytest.approx(0.6451, abs=5e-4)
    assert res[64]["ndcg@10"] == pytest.approx(0.484, abs=2e-3)


def test_fitting_never_reads_test_qrels(scifact_experiment, monkeypatch):
    """fit_adaptors may read the train split only; reading 'test' fails the test."""
    from matry_index.data.beir import BeirDataset
    from matry_index.experiment import fit_adaptors
    original = BeirDataset.split

    def guarded(self, name):
        assert name != "test", "training read the test qrels"
        return original(self, name)
    monkeypatch.setattr(BeirDataset, "split", guarded)
    fits = fit_adaptors(scifact_experiment, seed=0, max_steps=4, eval_every=2, batch_size=32, neighbours=4)
    assert set(fits) == {"unsupervised adaptor", "supervised adaptor"}


def test_cli_build_and_search(tmp_path, small_corpus, capsys):
    ids, docs, queries = small_corpus
    np.save(tmp_path / "docs.npy", docs[:300])
    (tmp_path / "docs.ids").write_text("\n".join(ids[:300]))
    (tmp_path / "payload.jsonl").write_text("\n".join(json.dumps({"i": i}) for i in range(300)))
    np.save(tmp_path / "q.npy", docs[:2])
    assert main(["build", "--embeddings", str(tmp_path / "docs.npy"), "--ids", str(tmp_path / "docs.ids"),
                 "--payload", str(tmp_path / "payload.jsonl"), "--out", str(tmp_path / "ix")]) == 0
    capsys.readouterr()
    assert main(["search", "--index", str(tmp_path / "ix"), "--queries", str(tmp_path / "q.npy"), "-k", "3",
                 "--filter", '{"i": {"$gte": 1}}']) == 0
    lines = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert lines[0]["hits"][0]["id"] != ids[0] and lines[1]["hits"][0]["id"] == ids[1]
    assert main(["search", "--index", str(tmp_path / "nope"), "--queries", str(tmp_path / "q.npy")]) == 2


def test_cli_build_a_compact_index(tmp_path, small_corpus, capsys):
    from matry_index import MatryoshkaIndex
    ids, docs, _ = small_corpus
    np.save(tmp_path / "docs.npy", docs)
    (tmp_path / "docs.ids").write_text("\n".join(ids))
    assert main(["build", "--embeddings", str(tmp_path / "docs.npy"), "--ids", str(tmp_path / "docs.ids"),
                 "--compact", "--levels", "64,128", "--codes", "int8", "--out", str(tmp_path / "ix")]) == 0
    out = capsys.readouterr().out
    assert "compact" in out and "B/vector in RAM" in out
    index = MatryoshkaIndex.load(tmp_path / "ix")
    assert not index.full and index.stored_dim == 128 and index.codes == "int8" and len(index) == len(ids)
    assert index.search(docs[0], k=1)[0].id == ids[0]
    assert main(["build", "--embeddings", str(tmp_path / "docs.npy"), "--ids", str(tmp_path / "docs.ids"),
                 "--compact", "--levels", "64,384", "--out", str(tmp_path / "bad")]) == 2


def test_cli_build_ivf_and_tune(tmp_path, small_corpus, capsys):
    from matry_index import MatryoshkaIndex
    ids, docs, queries = small_corpus
    np.save(tmp_path / "docs.npy", docs)
    (tmp_path / "docs.ids").write_text("\n".join(ids))
    np.save(tmp_path / "tune.npy", queries[:50])
    assert main(["build", "--embeddings", str(tmp_path / "docs.npy"), "--ids", str(tmp_path / "docs.ids"),
                 "--levels", "128,256", "--coarse", "ivf", "--ivf-encoding", "sq8", "--nlist", "32",
                 "--tune-queries", str(tmp_path / "tune.npy"), "--target-recall", "0.95",
                 "--vector-storage", "mmap", "--scratch-dir", str(tmp_path),
                 "--out", str(tmp_path / "ix")]) == 0
    assert "tuned plan" in capsys.readouterr().out
    index = MatryoshkaIndex.load(tmp_path / "ix")
    assert index.backend.coarse.code.structure == "ivf" and index.plan.tuned["reached"] and index.plan.nprobe
    assert isinstance(index.backend.rows.vectors, np.memmap)  # the memory tier is remembered


def test_qdrant_setup_creates_ingests_and_refuses_mismatch(tmp_path, small_corpus, capsys, rng):
    from matry_index import MatryoshkaAdaptor
    ids, docs, _ = small_corpus
    q, _ = np.linalg.qr(rng.standard_normal((384, 384)))
    MatryoshkaAdaptor(384, (64, 128, 384), rotation=q).save(tmp_path / "a")
    MatryoshkaAdaptor(384, (64, 128, 384), rotation=q.T).save(tmp_path / "other")
    np.save(tmp_path / "x.npy", docs[:200])
    (tmp_path / "x.ids").write_text("\n".join(ids[:200]))
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps({"i": i}) for i in range(200)))
    common = ["qdrant-setup", "--path", str(tmp_path / "store"), "--collection", "docs"]
    assert main(common + ["--adaptor", str(tmp_path / "a"), "--embeddings", str(tmp_path / "x.npy"),
                          "--ids", str(tmp_path / "x.ids"), "--payload", str(tmp_path / "p.jsonl")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["count"] == 200 and report["ingested"] == 200 and report["levels"] == [128, 384]
    assert main(common + ["--adaptor", str(tmp_path / "a")]) == 0  # validates, changes nothing
    assert json.loads(capsys.readouterr().out)["count"] == 200
    assert main(common + ["--adaptor", str(tmp_path / "other")]) == 2
    assert "adaptor mismatch" in capsys.readouterr().err
    assert main(["qdrant-setup", "--edge-path", str(tmp_path / "edge"), "--adaptor", str(tmp_path / "a"),
                 "--embeddings", str(tmp_path / "x.npy"), "--ids", str(tmp_path / "x.ids")]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == 200


def test_qdrant_setup_creates_the_default_layout_and_its_options(tmp_path, rng):
    """The layout that won in benchmarks/qdrant_layouts.py: one prefix beside the full vector;
    the graph on the prefix only, over int8 codes in RAM; everything else memory-mapped."""
    from qdrant_client import QdrantClient
    from matry_index import MatryoshkaAdaptor
    q, _ = np.linalg.qr(rng.standard_normal((384, 384)))
    MatryoshkaAdaptor(384, (32, 64, 128, 256), rotation=q).save(tmp_path / "a")
    assert main(["qdrant-setup", "--path", str(tmp_path / "store"), "--adaptor", str(tmp_path / "a")]) == 0
    client = QdrantClient(path=str(tmp_path / "store"))
    vectors = client.get_collection("matry_index").config.params.vectors
    assert set(vectors) == {"d128", "full"}
    coarse, full = vectors["d128"], vectors["full"]
    assert coarse.size == 128 and coarse.hnsw_config is None  # the collection's graph
    assert coarse.quantization_config.scalar.type.value == "int8" and coarse.quantization_config.scalar.always_ram
    assert coarse.on_disk and full.on_disk and full.hnsw_config.m == 0 and full.quantization_config is None
    client.close()

    assert main(["qdrant-setup", "--edge-path", str(tmp_path / "edge"), "--adaptor", str(tmp_path / "a")]) == 0
    config = json.loads((tmp_path / "edge" / "shard" / "edge_config.json").read_text())
    assert set(config["vectors"]) == {"d128", "full"}
    coarse, full = config["vectors"]["d128"], config["vectors"]["full"]
    assert coarse["quantization_config"]["scalar"] == {"type": "int8", "quantile": 0.99, "memory": "pinned"}
    assert coarse["memory"] == full["memory"] == "cold" and "hnsw_config" not in coarse
    assert full["hnsw_config"]["m"] == 0 and config["hnsw_config"]["m"] == 32
    assert config["hnsw_config"]["ef_construct"] == 200

    assert main(["qdrant-setup", "--edge-path", str(tmp_path / "ram"), "--adaptor", str(tmp_path / "a"),
                 "--levels", "64,128,256", "--quantization", "none", "--in-ram"]) == 0
    config = json.loads((tmp_path / "ram" / "shard" / "edge_config.json").read_text())
    assert set(config["vectors"]) == {"d64", "d128", "d256", "full"}
    assert all(v["memory"] == "cached" and "quantization_config" not in v for v in config["vectors"].values())
    assert main(["qdrant-setup", "--edge-path", str(tmp_path / "bin"), "--adaptor", str(tmp_path / "a"),
                 "--quantization", "binary"]) == 0
    config = json.loads((tmp_path / "bin" / "shard" / "edge_config.json").read_text())
    assert "binary" in config["vectors"]["d128"]["quantization_config"]


@pytest.mark.shared_data
def test_cli_names_a_missing_extra_in_one_line(monkeypatch, capsys, tmp_path):
    from .conftest import _require
    from matry_index import cli
    from matry_index._extras import MissingExtraError, require
    with pytest.raises(ModuleNotFoundError):  # a module no extra provides is not disguised
        require("matry_index_no_such_module", "testing")

    def missing(*args, **kwargs):
        raise MissingExtraError("fitting an adaptor needs torch: pip install 'matry_index[train]'")
    monkeypatch.setattr("matry_index.adaptor.fit._training", missing)
    assert cli.main(["train", "--data", str(_require(SCIFACT)), "--out", str(tmp_path / "a")]) == 7
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "matry_index[train]" in err[0]


def test_cli_has_a_version_and_help_shows_defaults(capsys):
    from matry_index import __version__, cli
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"matry-index {__version__}"
    with pytest.raises(SystemExit):
        cli.main(["build", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 0.99)" in text and "(default: auto)" in text and "(default: None)" not in text


@pytest.mark.shared_data
@pytest.mark.slow
def test_quickstart_runs_end_to_end_and_explains_itself(tmp_path, monkeypatch, capsys):
    """The README's main job with short fits (the pipeline, not the training, is under test):
    every stage timed, the index's adaptor named, the plan in words, a compact index beside it,
    one report in Markdown and in an HTML page that shows every table and plot."""
    from matry_index import experiment

    real = experiment.fit_adaptors

    def short_fits(exp, **kwargs):
        return real(exp, **kwargs, max_steps=4, eval_every=2, batch_size=32, neighbours=4)
    monkeypatch.setattr(experiment, "fit_adaptors", short_fits)
    assert main(["quickstart", "--data", str(SCIFACT), "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "built with the funnel-aware adaptor" in out and "all 384 dimensions rank them" in out
    assert "time per stage: load" in out and "build, tune and search the index" in out
    assert "compact index (supervised adaptor" in out and "fresh test queries" in out
    summary = json.loads((tmp_path / "run" / "results.json").read_text())
    assert set(summary["stage_seconds"]) == {"load", "fit adaptors", "compare with truncation and PCA",
                                            "build, tune and search the index", "compact index"}
    assert summary["index_ndcg@10"]["exact"] == pytest.approx(0.6451, abs=5e-4)  # a rotation: the original ranking
    assert summary["compact"]["stats"]["stored_dim"] == 128 and summary["compact"]["ndcg@10"] > 0.3
    assert (tmp_path / "run" / "ndcg_vs_dim.png").stat().st_size > 0 and (tmp_path / "run" / "index").is_dir()
    check_report(tmp_path / "run", tables=5, images=1)
