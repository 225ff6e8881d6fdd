"""``MatryoshkaIndex.asearch`` on every backend: the same answers as ``search``, concurrently,
and through Qdrant's own async client where the index has one."""

import numpy as np
import pytest
from qdrant_client import AsyncQdrantClient, QdrantClient

from matry_index import MatryIndexError, MatryoshkaIndex

from .helpers import SUITE_LEVELS, ids_of

DIM, N = 384, 400


def corpus(seed=0):
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((N, DIM)).astype(np.float32)
    meta = [{"group": ["a", "b", "c"][i % 3], "n": i} for i in range(N)]
    return [f"doc-{i}" for i in range(N)], vectors, meta, rng.standard_normal((12, DIM)).astype(np.float32)


def async_view(client: QdrantClient) -> AsyncQdrantClient:
    """qdrant-client's async local mode over the same collections as ``client`` (local mode
    keeps them in one dict per client; on a server two clients share them by construction)."""
    view = AsyncQdrantClient(location=":memory:")
    view._client.collections = client._client.collections
    return view


def same(a, b):
    assert [ids_of(x) for x in a] == [ids_of(x) for x in b]
    assert np.allclose([[h.score for h in x] for x in a], [[h.score for h in x] for x in b], atol=1e-5)


async def test_qdrant_asearch_awaits_the_async_client_not_the_sync_one():
    ids, vectors, meta, queries = corpus(1)
    client = QdrantClient(location=":memory:")
    index = MatryoshkaIndex(DIM, backend="qdrant", levels=SUITE_LEVELS, client=client,
                            async_client=async_view(client))
    index.add(ids, vectors, meta)
    expected = index.search(queries, k=5, filter={"group": "a"})
    expected_exact = index.search(queries, k=5, exact=True)

    def blocked(*args, **kwargs):
        raise AssertionError("the sync client was called from asearch")
    client.query_batch_points = blocked
    same(await index.asearch(queries, k=5, filter={"group": "a"}), expected)
    same(await index.asearch(queries, k=5, exact=True), expected_exact)
    await index.aclose()


async def test_qdrant_asearch_names_an_unreachable_server():
    client = QdrantClient(location=":memory:")
    down = AsyncQdrantClient(url="http://127.0.0.1:9", timeout=1, check_compatibility=False)
    index = MatryoshkaIndex(DIM, backend="qdrant", levels=SUITE_LEVELS, client=client, async_client=down,
                            retries=2)
    ids, vectors, meta, queries = corpus(2)
    index.add(ids[:20], vectors[:20], meta[:20])
    with pytest.raises(MatryIndexError, match="unreachable after 2 attempt"):
        await index.asearch(queries, k=5)
    assert len(index) == 20 and len(index.search(queries[0], k=5)) == 5  # the sync side is untouched
    await down.close()
    await index.aclose()


async def test_rag_stores_await_the_index_natively():
    """LangChain's and LlamaIndex's async searches reach Qdrant's async client, not a thread."""
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from llama_index.core.vector_stores.types import VectorStoreQuery

    from matry_index.integrations.langchain import MatryoshkaVectorStore
    from matry_index.integrations.llamaindex import MatryoshkaLlamaStore

    client = QdrantClient(location=":memory:")
    emb = DeterministicFakeEmbedding(size=16)
    store = MatryoshkaVectorStore(emb, backend="qdrant", levels=(8, 16), client=client, async_client=async_view(client))
    await store.aadd_texts(["apples", "pears", "cars"], [{"k": "f"}, {"k": "f"}, {"k": "v"}], ids=["a", "b", "c"])
    expected = store.similarity_search_with_score("apples", k=2, filter={"k": "f"})
    client.query_batch_points = None  # any sync search would fail from here on
    got = await store.asimilarity_search_with_score("apples", k=2, filter={"k": "f"})
    assert [(d.id, round(s, 5)) for d, s in got] == [(d.id, round(s, 5)) for d, s in expected]
    assert [d.id for d in await store.asimilarity_search_by_vector(emb.embed_query("cars"), k=1)] == ["c"]

    from llama_index.core.schema import TextNode
    client = QdrantClient(location=":memory:")
    llama = MatryoshkaLlamaStore(backend="qdrant", levels=(8, 16), client=client, async_client=async_view(client))
    nodes = [TextNode(text=t, id_=t, embedding=emb.embed_query(t)) for t in ("apples", "pears", "cars")]
    assert await llama.async_add(nodes) == ["apples", "pears", "cars"]
    client.query_batch_points = None
    result = await llama.aquery(VectorStoreQuery(query_embedding=emb.embed_query("pears"), similarity_top_k=2))
    assert result.ids[0] == "pears" and len(result.nodes) == 2
    await llama.adelete_nodes(["cars"])
    assert {n.node_id for n in await llama.aget_nodes()} == {"apples", "pears"}
    await llama.aclear()
    assert await llama.aget_nodes() == []
