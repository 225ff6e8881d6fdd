"""A LlamaIndex vector store over :class:`matry_index.MatryoshkaIndex` (any backend).

    from llama_index.core import VectorStoreIndex, StorageContext
    from matry_index.integrations.llamaindex import MatryoshkaLlamaStore
    store = MatryoshkaLlamaStore(adaptor=adaptor, backend="faiss")
    index = VectorStoreIndex(nodes, storage_context=StorageContext.from_defaults(vector_store=store))
    # or, later: VectorStoreIndex.from_vector_store(store, embed_model=...)

``stores_text=True``: each node is serialised into the record's metadata with LlamaIndex's
own ``node_to_metadata_dict``, so the store alone can rebuild nodes. LlamaIndex metadata
filters (==, !=, >, >=, <, <=, in, nin; and/or, nested) become matry_index filters.

``aquery`` awaits :meth:`MatryoshkaIndex.asearch` (Qdrant's async client on a server, a worker
thread for the in-process engines); the other async methods run their sync twin in a worker
thread (LlamaIndex's defaults would run it on the event loop itself).
"""
from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import numpy as np
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    FilterCondition,
    FilterOperator,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict

from ..errors import InvalidInput
from ..adaptor import MatryoshkaAdaptor
from ..ids import id_list
from ..index import MatryoshkaIndex

NODE_ID = "_node_id"
_OPS = {FilterOperator.EQ: "$eq", FilterOperator.NE: "$ne", FilterOperator.GT: "$gt",
        FilterOperator.GTE: "$gte", FilterOperator.LT: "$lt", FilterOperator.LTE: "$lte",
        FilterOperator.IN: "$in", FilterOperator.NIN: "$nin"}


def to_matry_filter(filters: MetadataFilters | None) -> dict | None:
    """LlamaIndex ``MetadataFilters`` → a matry_index filter dict."""
    if filters is None or not filters.filters:
        return None
    parts = []
    for f in filters.filters:
        if isinstance(f, MetadataFilters):
            parts.append(to_matry_filter(f))
            continue
        if f.operator not in _OPS:
            raise InvalidInput(f"filter operator {f.operator.value!r} is not supported; "
                                  f"use one of {[op.value for op in _OPS]}")
        parts.append({f.key: {_OPS[f.operator]: f.value}})
    parts = [p for p in parts if p]
    condition = filters.condition or FilterCondition.AND
    if condition == FilterCondition.NOT:
        return {"$not": {"$and": parts}}
    return {"$or" if condition == FilterCondition.OR else "$and": parts}


class MatryoshkaLlamaStore(BasePydanticVectorStore):
    """LlamaIndex store; builds its :class:`MatryoshkaIndex` on the first ``add``."""

    stores_text: bool = True
    is_embedding_query: bool = True
    _index: MatryoshkaIndex | None = PrivateAttr(default=None)
    _spec: dict = PrivateAttr(default_factory=dict)

    def __init__(self, index: MatryoshkaIndex | None = None, *, adaptor: MatryoshkaAdaptor | None = None,
                 levels: Sequence[int] | None = None, backend: str = "faiss", **backend_options: Any):
        super().__init__()
        self._index = index
        self._spec = {"adaptor": adaptor, "levels": levels, "backend": backend, **backend_options}

    @property
    def client(self) -> MatryoshkaIndex | None:
        """The underlying :class:`MatryoshkaIndex` (None until the first add)."""
        return self._index

    def add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        if not nodes:
            return []
        vectors = np.asarray([n.get_embedding() for n in nodes], dtype=np.float32)
        if self._index is None:
            self._index = MatryoshkaIndex(vectors.shape[1], **self._spec)
        metadata = [{**node_to_metadata_dict(n, remove_text=False, flat_metadata=False), NODE_ID: n.node_id}
                    for n in nodes]
        ids = [n.node_id for n in nodes]
        self._index.upsert(ids, vectors, metadata)
        return ids

    def _ids_where(self, flt: dict) -> list:
        return [] if self._index is None else [i for i, _ in self._index.scan(flt)]

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of one source document."""
        ids = self._ids_where({"ref_doc_id": ref_doc_id})
        if ids:
            self._index.delete(ids)

    def delete_nodes(self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None,
                     **delete_kwargs: Any) -> None:
        ids = [i for i, _ in self._scan(node_ids, filters)]
        if ids:
            self._index.delete(ids)

    def _scan(self, node_ids: list[str] | None, filters: MetadataFilters | None) -> list:
        if self._index is None:
            return []
        parts = [p for p in (to_matry_filter(filters), {NODE_ID: {"$in": id_list(node_ids, "node_ids")}} if node_ids else None) if p]
        return self._index.scan({"$and": parts} if parts else None)

    def get_nodes(self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None,
                  **kwargs: Any) -> list[BaseNode]:
        return [metadata_dict_to_node(meta) for _, meta in self._scan(node_ids, filters)]

    def clear(self) -> None:
        ids = self._ids_where(None) if self._index is not None else []
        if ids:
            self._index.delete(ids)

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        request = self._search_request(query)
        return self._result(self._index.search(**request) if request else [])

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        request = self._search_request(query)
        return self._result(await self._index.asearch(**request) if request else [])

    def _search_request(self, query: VectorStoreQuery) -> dict | None:
        """The index search a query asks for (None when the store is empty)."""
        if query.mode != VectorStoreQueryMode.DEFAULT:
            raise InvalidInput(f"query mode {query.mode.value!r} is not supported (only dense 'default')")
        if query.query_embedding is None:
            raise InvalidInput("MatryoshkaLlamaStore needs query.query_embedding")
        if self._index is None or len(self._index) == 0:
            return None
        parts = [p for p in (to_matry_filter(query.filters),
                             {NODE_ID: {"$in": id_list(query.node_ids, "node_ids")}} if query.node_ids else None) if p]
        return {"queries": np.asarray(query.query_embedding, np.float32), "k": query.similarity_top_k,
                "filter": {"$and": parts} if parts else None}

    @staticmethod
    def _result(hits: list) -> VectorStoreQueryResult:
        return VectorStoreQueryResult(nodes=[metadata_dict_to_node(h.metadata) for h in hits],
                                      similarities=[h.score for h in hits], ids=[str(h.id) for h in hits])

    # writes and listings compute in-process: off the event loop, in a worker thread
    async def async_add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        return await asyncio.to_thread(self.add, nodes, **kwargs)

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        await asyncio.to_thread(self.delete, ref_doc_id, **delete_kwargs)

    async def adelete_nodes(self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None,
                            **delete_kwargs: Any) -> None:
        await asyncio.to_thread(self.delete_nodes, node_ids, filters, **delete_kwargs)

    async def aget_nodes(self, node_ids: list[str] | None = None,
                         filters: MetadataFilters | None = None) -> list[BaseNode]:
        return await asyncio.to_thread(self.get_nodes, node_ids, filters)

    async def aclear(self) -> None:
        await asyncio.to_thread(self.clear)
