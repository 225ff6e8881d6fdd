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
