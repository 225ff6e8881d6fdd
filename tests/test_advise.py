"""The dimension advisor (``matry-index advise``) on real embeddings: advice that holds when the
index is built as advised, reproducible, and tolerant of the input users really have."""
import json

import numpy as np
import pytest

from matry_index import MatryIndexError, MatryoshkaAdaptor, MatryoshkaIndex
from matry_index.advise import advise
from matry_index.cli import main
from matry_index.tuning import recall_at_k

from .conftest import SHARED, _require
from .helpers import check_report


def _experiment(name):
    from matry_index.experiment import load_experiment
    folder = _require(SHARED / "data" / name)
    return load_experiment(folder, _require(folder / "embeddings" / "all-MiniLM-L6-v2"))


@pytest.mark.shared_data
@pytest.mark.slow
@pytest.mark.parametrize("name", ["scifact", "docstrings"])
def test_a_funnel_built_as_advised_meets_the_target_on_held_out_queries(name):
    exp = _experiment(name)
    train_q = exp.relevance("train")[0][:800]  # a query log of a few hundred is what the advice assumes
    test_q = exp.task("test").queries
    advice = advise(exp.corpus.vectors, train_q, target=0.99)
    rec = advice.recommended
    assert rec["method"] in ("pca", "truncation") and rec["coarse_level"] < advice.dim
    assert rec["cost_vs_exact_scan"] < 0.2
    adaptor = advice.pca_adaptor() if rec["method"] == "pca" else None
    for storage in ("memory", "mmap"):
        index = MatryoshkaIndex(advice.dim, adaptor=adaptor, levels=tuple(rec["levels"]), coarse=rec["coarse"],
                                nlist=rec["nlist"], vector_storage=storage)
        index.add(np.arange(advice.n), exp.corpus.vectors)
        index.tune(train_q, target_recall=rec["target_recall"], k=10)
        ids = lambda hits: np.array([[h.id for h in row] for row in hits])  # noqa: E731
        assert recall_at_k(ids(index.search(test_q, k=10)), ids(index.search(test_q, k=10, exact=True))) >= 0.99
        held = sum(index.backend.memory_bytes().values()) / advice.n
        predicted = rec["memory_per_vector"][storage]["anonymous"]
        assert abs(predicted - held) <= 0.1 * held, (storage, predicted, held)
        index.close()


def test_advice_is_reproducible_with_a_seed_and_measures_the_adaptor_too(scifact_vectors):
    _, docs, queries = scifact_vectors
    rotation = np.linalg.qr(np.random.default_rng(0).standard_normal((384, 384)))[0]
    adaptor = MatryoshkaAdaptor(384, (64, 128, 384), rotation=rotation)
    runs = [advise(docs, None, adaptor=adaptor, sample=3000, n_queries=200, seed=s).to_dict() for s in (1, 1, 2)]
    assert runs[0] == runs[1] and runs[0] != runs[2]
    assert "held-out documents" in runs[0]["queries_source"]
    assert {r["method"] for r in runs[0]["levels"]} == {"truncation", "pca", "adaptor"}
    # more candidates at a shorter prefix, less agreement: the measures move the way they must
    pca = {r["level"]: r for r in runs[0]["levels"] if r["method"] == "pca"}
    assert pca[32]["needed"] > pca[64]["needed"] > pca[128]["needed"] > pca[256]["needed"]
    assert pca[32]["agreement"] < pca[128]["agreement"]
    assert all(r["needed"] >= r["needed_in_sample"] for r in runs[0]["levels"])  # scaled up to the whole set


def test_the_users_real_mess_is_handled(scifact_vectors):
    _, docs, queries = scifact_vectors
    messy = (docs[:, :100] * 7).astype(np.float16)  # half precision, unnormalised, 100-d
    advice = advise(messy, queries[0, :100].astype(np.float64), sample=2000)  # one 1-d float64 query
    assert advice.dim == 100 and advice.queries == 1
    assert [r.level for r in advice.reports if r.method == "pca"] == [32, 64]
    with pytest.raises(MatryIndexError, match="NaN"):
        bad = docs[:500].copy()
        bad[3, 3] = np.nan
        advise(bad)
    with pytest.raises(MatryIndexError, match="at least"):
        advise(docs[:5])
    with pytest.raises(MatryIndexError, match="adaptor is for 384-d"):
        advise(docs[:500, :100], adaptor=MatryoshkaAdaptor(384, (64, 384)))
    with pytest.raises(MatryIndexError, match="dimension"):
        advise(docs[:500], queries[:5, :100])


def test_cli_advise_writes_json_and_the_commands_to_build(tmp_path, scifact_vectors, capsys):
    _, docs, queries = scifact_vectors
    np.save(tmp_path / "docs.npy", docs[:3000])
    (tmp_path / "docs.ids").write_text("\n".join(f"d{i}" for i in range(3000)) + "\n")
    np.save(tmp_path / "q.npy", queries[:100])
    args = ["advise", "--embeddings", str(tmp_path / "docs.npy"), "--queries", str(tmp_path / "q.npy"),
            "--save-pca", str(tmp_path / "pca"), "--json", str(tmp_path / "advice.json"), "--out", str(tmp_path / "out")]
    assert main(args) == 0
    out = capsys.readouterr().out
    advice = json.loads((tmp_path / "advice.json").read_text())
    assert advice["n"] == 3000 and advice["queries"] == 100 and advice["recommended"]["levels"]
    assert f"--embeddings {tmp_path / 'docs.npy'}" in out and "recommended:" in out
    assert f"--ids {tmp_path / 'docs.ids'}" in out and "X.ids" not in out  # the ids file beside the embeddings
    assert "compact:" in out and "compact" in advice["recommended"]
    check_report(tmp_path / "out", tables=2, images=0)
    assert "Build it" in (tmp_path / "out" / "report.md").read_text()
    assert MatryoshkaAdaptor.load(tmp_path / "pca").dim == 384
    assert main(["advise", "--embeddings", str(tmp_path / "missing.npy"), "--out", str(tmp_path / "o2")]) == 2
    assert main(["advise"]) == 2


def test_advise_recommends_a_compact_index_where_a_prefix_keeps_the_quality(scifact_vectors):
    """With nDCG@10 per level (a BEIR folder's labels), the shortest adaptor prefix that keeps
    97 % of the full vectors' nDCG@10 is recommended as a compact index; where none does, it
    says so."""
    _, docs, queries = scifact_vectors
    rotation = np.linalg.qr(np.random.default_rng(0).standard_normal((384, 384)))[0]
    adaptor = MatryoshkaAdaptor(384, (64, 128, 384), rotation=rotation)
    ndcg = {"truncation": {384: 0.65}, "adaptor": {32: 0.50, 64: 0.60, 128: 0.64, 256: 0.65}}
    advice = advise(docs, queries, adaptor=adaptor, sample=3000, n_queries=100, ndcg=ndcg)
    compact = advice.recommended["compact"]
    assert compact["method"] == "adaptor" and compact["level"] == 128 and compact["basis"] == "nDCG@10"
    assert "--compact --levels 64,128 --codes int8" in compact["command"]
    built = MatryoshkaIndex(384, adaptor=adaptor, levels=tuple(compact["levels"]), full=False, codes="int8")
    built.add(np.arange(len(docs)), docs)
    held = built.stats().ram_per_vector
    assert held <= 192 and abs(compact["memory_per_vector"] - held) <= 0.05 * held, (compact, held)
    weak = advise(docs, queries, adaptor=adaptor, sample=3000, n_queries=100,
                  ndcg={"truncation": {384: 0.65}, "adaptor": {32: 0.3, 64: 0.4, 128: 0.5, 256: 0.55}})
    assert "level" not in weak.recommended["compact"] and "use the funnel" in weak.recommended["compact"]["note"]
