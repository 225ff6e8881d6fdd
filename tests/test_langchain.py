"""LangChain's own conformance suite (langchain-tests), on every backend."""
import pytest
from langchain_tests.integration_tests import VectorStoreIntegrationTests

from matry_index.integrations.langchain import MatryoshkaVectorStore


class TestFaissStore(VectorStoreIntegrationTests):
    @pytest.fixture()
    def vectorstore(self):
        yield MatryoshkaVectorStore(self.get_embeddings(), backend="faiss")


class TestQdrantLocalStore(VectorStoreIntegrationTests):
    @pytest.fixture()
    def vectorstore(self):
        store = MatryoshkaVectorStore(self.get_embeddings(), backend="qdrant", location=":memory:")
        yield store
        if store.index is not None:
            store.index.close()


class TestQdrantEdgeStore(VectorStoreIntegrationTests):
    @pytest.fixture()
    def vectorstore(self, tmp_path):
        store = MatryoshkaVectorStore(self.get_embeddings(), backend="qdrant-edge", path=str(tmp_path / "edge"))
        yield store
        if store.index is not None:
            store.index.close()


class TestFaissCompactStore(VectorStoreIntegrationTests):
    """A compact index (only a prefix of each embedding is stored, as 8-bit codes once trained)."""

    @pytest.fixture()
    def vectorstore(self):
        yield MatryoshkaVectorStore(self.get_embeddings(), backend="faiss", full=False, levels=(2, 4),
                                    codes="int8", codes_from=2)


def test_filters_scores_and_mmr():
    from langchain_core.embeddings import DeterministicFakeEmbedding
    store = MatryoshkaVectorStore.from_texts(
        ["apples", "apple pie", "pears", "cars"], DeterministicFakeEmbedding(size=16),
        metadatas=[{"kind": "fruit"}, {"kind": "food"}, {"kind": "fruit"}, {"kind": "vehicle"}],
        ids=["a", "b", "c", "d"])
    hits = store.similarity_search("apples", k=4, filter={"kind": "fruit"})
    assert {d.id for d in hits} == {"a", "c"}
    top = store.similarity_search_with_relevance_scores("apples", k=1)[0]
    assert top[0].id == "a" and top[1] == pytest.approx(1.0, abs=1e-5)
    mmr = store.max_marginal_relevance_search("apples", k=2, fetch_k=4)
    assert mmr[0].id == "a" and len({d.id for d in mmr}) == 2
    retriever = store.as_retriever(search_kwargs={"k": 1, "filter": {"kind": "vehicle"}})
    assert [d.id for d in retriever.invoke("apples")] == ["d"]


class CountingEmbeddings:
    """Deterministic embeddings that count what they are asked to embed, and offer a batched
    query call (as EncoderEmbeddings does)."""

    def __init__(self):
        from langchain_core.embeddings import DeterministicFakeEmbedding
        self.inner, self.documents, self.query_calls, self.query_batches = DeterministicFakeEmbedding(size=16), [], 0, 0

    def embed_documents(self, texts):
        self.documents += list(texts)
        return self.inner.embed_documents(texts)

    def embed_query(self, text):
        self.query_calls += 1
        return self.inner.embed_query(text)

    def embed_queries(self, texts):
        self.query_batches += 1
        return [self.inner.embed_query(t) for t in texts]

    async def aembed_documents(self, texts):
        return self.embed_documents(texts)

    async def aembed_query(self, text):
        return self.embed_query(text)


def test_fit_then_add_embeds_each_text_once_and_queries_in_one_batch():
    texts = [f"document number {i} about topic {i % 7}" for i in range(60)]
    emb = CountingEmbeddings()
    store = MatryoshkaVectorStore(emb, levels=(8, 16))
    store.fit_adaptor(texts, queries=[f"topic {i}" for i in range(7)], max_steps=4, eval_every=2,
                      batch_size=16, neighbours=4)
    assert emb.query_batches == 1 and emb.query_calls == 0
    store.add_texts(texts + ["one more"])
    assert sorted(emb.documents) == sorted(texts + ["one more"])  # each embedded once, fit and add together
    assert store.similarity_search("topic 3", k=1)[0].page_content in texts


async def test_async_paths_use_the_models_async_calls(tmp_path):
    emb = CountingEmbeddings()
    store = MatryoshkaVectorStore(emb)
    ids = await store.aadd_texts(["apples", "pears", "cars"], [{"k": "f"}, {"k": "f"}, {"k": "v"}])
    hits = await store.asimilarity_search("apples", k=2, filter={"k": "f"})
    assert len(ids) == 3 and {d.page_content for d in hits} == {"apples", "pears"}


def test_save_local_and_load_local_round_trip(tmp_path):
    from langchain_core.embeddings import DeterministicFakeEmbedding
    emb = DeterministicFakeEmbedding(size=16)
    store = MatryoshkaVectorStore.from_texts(["apples", "pears", "cars"], emb, metadatas=[{"n": i} for i in range(3)],
                                             ids=["a", "b", "c"])
    with pytest.raises(ValueError, match="empty"):
        MatryoshkaVectorStore(emb).save_local(tmp_path / "none")
    store.save_local(tmp_path / "store")
    loaded = MatryoshkaVectorStore.load_local(tmp_path / "store", emb, allow_dangerous_deserialization=False)
    assert [(d.id, d.page_content, d.metadata) for d in loaded.similarity_search("pears", k=3)] == \
        [(d.id, d.page_content, d.metadata) for d in store.similarity_search("pears", k=3)]
