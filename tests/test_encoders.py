"""Encoders: the real all-MiniLM-L6-v2 (offline package) reproduces the shipped embeddings."""
import numpy as np
import pytest

from matry_index import MatryIndexError
from matry_index.encoders import Encoder, load_sentence_transformer


@pytest.fixture(scope="module")
def minilm():
    return load_sentence_transformer("sentence-transformers/all-MiniLM-L6-v2", package_fallback=True)


def test_packaged_model_matches_precomputed_scifact_embeddings(minilm, scifact_experiment):
    exp = scifact_experiment
    doc_ids = exp.corpus.ids[:3]
    texts = [exp.dataset.corpus[d] for d in doc_ids]
    got = Encoder(minilm, show_progress=False).embed_documents(texts)
    np.testing.assert_allclose(got, exp.corpus.take(doc_ids), atol=2e-4)


def test_encoder_accepts_callables_and_langchain_embeddings():
    from langchain_core.embeddings import DeterministicFakeEmbedding
    fake = DeterministicFakeEmbedding(size=8)
    out = Encoder(fake).embed_queries(["a", "b"])
    assert out.shape == (2, 8) and np.allclose(np.linalg.norm(out, axis=1), 1)
    calls = []

    def fn(texts):
        calls.append(len(texts))
        return np.ones((len(texts), 4))
    assert Encoder(fn, batch_size=2, show_progress=False, query_prompt="q: ").embed_queries(["x"] * 5).shape == (5, 4)
    assert calls == [2, 2, 1]
    with pytest.raises(MatryIndexError):
        Encoder(fn).embed_documents([])
    with pytest.raises(MatryIndexError):
        Encoder(fn).embed_documents("not a list")


def test_unknown_model_without_hub_gives_clear_error(monkeypatch):
    import huggingface_hub.constants
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # no network wait
    with pytest.raises(MatryIndexError, match="could not load model"):
        load_sentence_transformer("no-such-org/no-such-model-xyz", package_fallback=False)


def test_a_model_hub_that_cannot_be_reached_is_an_outage_said_at_once(monkeypatch):
    """Not in the local cache and no hub to ask: a typed outage naming the hub and the way out,
    instead of the libraries' minute of retries."""
    import huggingface_hub.constants
    from matry_index import Unavailable
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(Unavailable, match=r"127\.0\.0\.1:9\) cannot be reached; .*MATRY_INDEX_PACKAGE_MODELS"):
        load_sentence_transformer("no-such-org/no-such-model-xyz", package_fallback=False)
