"""What each install promises, checked in a virtualenv that has that install and nothing more.

    python .ci/smoke.py base        # pip install matry_index
    python .ci/smoke.py qdrant      # pip install 'matry_index[qdrant]'
    python .ci/smoke.py train | langchain | llamaindex | eval | minilm

Each check runs the real components on small random data and exits non-zero on any failure.
"""
from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path

import numpy as np

RNG = np.random.default_rng(0)
DIM = 32


def vectors(n: int) -> np.ndarray:
    return RNG.standard_normal((n, DIM)).astype(np.float32)


def base() -> None:
    """The query path: a FAISS index built, saved, loaded and searched; no torch imported; a
    call that needs a missing extra names it."""
    from matry_index import MatryoshkaIndex
    from matry_index._extras import MissingExtraError
    x = vectors(300)
    index = MatryoshkaIndex(DIM, levels=(8, 16))
    index.add([f"d{i}" for i in range(300)], x, [{"i": i} for i in range(300)])
    with tempfile.TemporaryDirectory() as tmp:
        index.save(Path(tmp) / "ix")
        loaded = MatryoshkaIndex.load(Path(tmp) / "ix")
        assert [h.id for h in loaded.search(x[5], k=3)][0] == "d5"
    assert "torch" not in sys.modules, "the query path imported torch"
    if importlib.util.find_spec("qdrant_client") is not None:
        return  # run beside more than the base install: the missing-extra message cannot be seen
    try:
        MatryoshkaIndex(DIM, backend="qdrant")
    except MissingExtraError as exc:
        assert "matry_index[qdrant]" in str(exc), exc
    else:
        raise AssertionError("a Qdrant index was made without the qdrant extra")


def qdrant() -> None:
    """An in-memory Qdrant index and an Edge shard: add, search, save, load."""
    from matry_index import MatryoshkaIndex
    x = vectors(200)
    ids = [f"d{i}" for i in range(200)]
    with tempfile.TemporaryDirectory() as tmp:
        for backend, where in (("qdrant", {}), ("qdrant-edge", {"path": str(Path(tmp) / "edge")})):
            index = MatryoshkaIndex(DIM, levels=(16,), backend=backend, **where)
            index.add(ids, x, [{"i": i} for i in range(200)])
            assert index.search(x[7], k=1, filter={"i": 7})[0].id == "d7"
            index.save(Path(tmp) / backend)
            index.close()
            loaded = MatryoshkaIndex.load(Path(tmp) / backend)
            assert len(loaded) == 200 and loaded.search(x[3], k=1)[0].id == "d3"
            loaded.close()


def train() -> None:
    """A fit on 200 vectors, both recipes, and the adaptor in an index."""
    from matry_index import MatryoshkaIndex, fit_unsupervised
    x = vectors(200)
    for objective in ("prefix", "funnel"):
        adaptor = fit_unsupervised(x, objective=objective, levels=(8, 16), max_steps=20, eval_every=10,
                                   threads=1).adaptor
        index = MatryoshkaIndex(DIM, adaptor=adaptor)
        index.add(list(range(200)), x)
        assert index.search(x[0], k=1)[0].id == 0


def langchain() -> None:
    """The LangChain store over a fake embedding model: add, search with a filter, delete."""
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from matry_index.integrations.langchain import MatryoshkaVectorStore
    store = MatryoshkaVectorStore(DeterministicFakeEmbedding(size=DIM))
    store.add_texts(["alpha", "beta", "gamma"], [{"n": 1}, {"n": 2}, {"n": 3}], ids=["a", "b", "c"])
    assert store.similarity_search("beta", k=1, filter={"n": 2})[0].page_content == "beta"
    store.delete(["a"])
    assert [d.id for d in store.get_by_ids(["a", "b"])] == ["b"]


def llamaindex() -> None:
    """The LlamaIndex store: add nodes with embeddings, query them back."""
    from llama_index.core.schema import TextNode
    from llama_index.core.vector_stores.types import VectorStoreQuery
    from matry_index.integrations.llamaindex import MatryoshkaLlamaStore
    x = vectors(3)
    store = MatryoshkaLlamaStore()
    store.add([TextNode(text=t, id_=t, embedding=v.tolist()) for t, v in zip(["a", "b", "c"], x)])
    result = store.query(VectorStoreQuery(query_embedding=x[1].tolist(), similarity_top_k=1))
    assert result.ids == ["b"], result.ids


def eval_() -> None:
    """Reports: a confidence interval and a plot."""
    from matry_index.evaluation.report import plot
    from matry_index.evaluation.significance import paired_difference
    scores = {f"q{i}": float(v) for i, v in enumerate(RNG.random(50))}
    diff = paired_difference(scores, {q: v - 0.1 - 0.05 * RNG.random() for q, v in scores.items()}, resamples=999)
    assert diff.low < diff.mean < diff.high
    with tempfile.TemporaryDirectory() as tmp:
        path = plot({"method": {8: {"ndcg@10": [0.5]}, 16: {"ndcg@10": [0.6]}}}, Path(tmp) / "p.png", title="t")
        assert Path(path).stat().st_size > 0


def minilm() -> None:
    """The packaged all-MiniLM-L6-v2 encodes text offline."""
    from matry_index.encoders import Encoder
    encoder = Encoder("sentence-transformers/all-MiniLM-L6-v2", package_fallback=True, show_progress=False)
    out = encoder.embed_documents(["a sentence", "another one"])
    assert out.shape == (2, 384) and np.isfinite(out).all()


CHECKS = {"base": base, "qdrant": qdrant, "train": train, "langchain": langchain, "llamaindex": llamaindex,
          "eval": eval_, "minilm": minilm}

if __name__ == "__main__":
    CHECKS[sys.argv[1]]()
    print(f"smoke {sys.argv[1]}: ok")
