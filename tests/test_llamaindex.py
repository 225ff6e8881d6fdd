"""LlamaIndex round trip: VectorStoreIndex over the store, on every backend."""
import pytest
from llama_index.core import Document, Settings, StorageContext, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.vector_stores.types import FilterOperator, MetadataFilter, MetadataFilters

from matry_index.integrations.llamaindex import MatryoshkaLlamaStore


class HashEmbedding(MockEmbedding):
    """Deterministic 16-d embeddings from word hashes: similar texts share words."""

    def _vec(self, text: str):
        import hashlib
        import numpy as np
        v = np.zeros(16)
        for w in text.lower().split():
            v[int(hashlib.md5(w.encode()).hexdigest(), 16) % 16] += 1.0
        return (v + 1e-3).tolist()

    def _get_text_embedding(self, text):
        return self._vec(text)

    def _get_query_embedding(self, query):
        return self._vec(query)


@pytest.fixture(params=["faiss", "qdrant", "qdrant-edge", "faiss-compact"])
def store(request, tmp_path):
    opts = {"qdrant": {"location": ":memory:"}, "qdrant-edge": {"path": str(tmp_path / "edge")},
            # a compact index: the 15-d prefix of the 16-d embeddings, as 8-bit codes
            "faiss-compact": {"full": False, "levels": (4, 15), "codes": "int8", "codes_from": 2}}.get(request.param, {})
    s = MatryoshkaLlamaStore(backend=request.param.removesuffix("-compact"), **opts)
    yield s
    if s.client is not None:
        s.client.close()


def test_vector_store_index_round_trip(store):
    Settings.embed_model = HashEmbedding(embed_dim=16)
    docs = [Document(text="the cat sat on the mat", metadata={"topic": "pets", "year": 2020}, doc_id="d1"),
            Document(text="stock markets fell sharply today", metadata={"topic": "finance", "year": 2023}, doc_id="d2"),
            Document(text="a kitten and a cat play", metadata={"topic": "pets", "year": 2024}, doc_id="d3")]
    VectorStoreIndex.from_documents(docs, storage_context=StorageContext.from_defaults(vector_store=store))
    index = VectorStoreIndex.from_vector_store(store)
    nodes = index.as_retriever(similarity_top_k=1).retrieve("cat on the mat")
    assert nodes[0].node.ref_doc_id == "d1" and "cat sat" in nodes[0].node.get_content()
    filters = MetadataFilters(filters=[MetadataFilter(key="year", value=2021, operator=FilterOperator.GTE)])
    got = index.as_retriever(similarity_top_k=3, filters=filters).retrieve("cat")
    assert {n.node.ref_doc_id for n in got} == {"d2", "d3"}
    assert len(store.get_nodes()) == 3
    assert [n.ref_doc_id for n in store.get_nodes(filters=MetadataFilters(filters=[
        MetadataFilter(key="topic", value="finance")]))] == ["d2"]
    store.delete("d1")
    assert {n.ref_doc_id for n in store.get_nodes()} == {"d2", "d3"}
    one = store.get_nodes()[0]
    store.delete_nodes([one.node_id])
    assert len(store.get_nodes()) == 1
    store.clear()
    assert store.get_nodes() == []
