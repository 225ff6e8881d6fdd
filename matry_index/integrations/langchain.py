"""A LangChain ``VectorStore`` over :class:`matry_index.MatryoshkaIndex` (any backend).

    from matry_index.integrations.langchain import MatryoshkaVectorStore
    store = MatryoshkaVectorStore(embeddings, adaptor=adaptor, backend="faiss")
    store.add_texts(texts, metadatas, ids=ids)
    store.similarity_search("question", k=4, filter={"source": "faq"})

Texts live in the index's metadata (under a reserved key), so any backend is enough on its
own. The index is created on the first write, when the embedding dimension is known; an
untrained or missing adaptor means plain cosine search. Scores are full-dimension cosines of
the adapted vectors; relevance scores map them to [0, 1] as ``(1 + cos) / 2``.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any, Callable

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from langchain_core.vectorstores.utils import maximal_marginal_relevance

from ..adaptor import MatryoshkaAdaptor
from ..ids import id_list
from ..index import MatryoshkaIndex

TEXT_KEY = "_lc_text"


class EncoderEmbeddings(Embeddings):
    """A matry_index :class:`~matry_index.encoders.Encoder` as LangChain ``Embeddings``
    (e.g. a sentence-transformers model with its query/document prompts)."""

    def __init__(self, encoder: Any):
        from ..encoders import Encoder
        self.encoder = encoder if isinstance(encoder, Encoder) else Encoder(encoder)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encoder.embed_documents(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.encoder.embed_queries([text])[0].tolist()


class MatryoshkaVectorStore(VectorStore):
    """LangChain vector store backed by a Matryoshka funnel index.

    Pass an existing ``index``, or let the store build one from ``adaptor``, ``levels``,
    ``backend`` ("faiss", "qdrant", "qdrant-edge") and ``backend_options`` on first write.
    """

    def __init__(self, embedding: Embeddings, index: MatryoshkaIndex | None = None, *,
                 adaptor: MatryoshkaAdaptor | None = None, levels: Sequence[int] | None = None,
                 backend: str = "faiss", **backend_options: Any):
        self._embedding = embedding
        self.index = index
        self._spec = {"adaptor": adaptor, "levels": levels, "backend": backend, **backend_options}

    @property
    def embeddings(self) -> Embeddings:
        return self._embedding

    def _ensure_index(self, dim: int) -> MatryoshkaIndex:
        if self.index is None:
            self.index = MatryoshkaIndex(dim, **self._spec)
        return self.index

    # --- writes ------------------------------------------------------------------------
    def add_texts(self, texts: Iterable[str], metadatas: list[dict] | None = None, *,
                  ids: list[str] | None = None, **kwargs: Any) -> list[str]:
        if isinstance(texts, (str, bytes)):
            raise ValueError("add_texts needs a list of texts, not a single string")
        texts = list(texts)
        if ids is not None:
            ids = id_list(ids)
        if not texts:
            return []
        metadatas = list(metadatas) if metadatas is not None else [{} for _ in texts]
        ids = [i if i is not None else str(uuid.uuid4()) for i in (ids or [None] * len(texts))]
        if len(ids) != len(texts) or len(metadatas) != len(texts):
            raise ValueError(f"got {len(texts)} texts, {len(ids)} ids and {len(metadatas)} metadatas")
        vectors = np.asarray(self._embedding.embed_documents(texts), dtype=np.float32)
        index = self._ensure_index(vectors.shape[1])
        index.upsert(ids, vectors, [{**(m or {}), TEXT_KEY: t} for m, t in zip(metadatas, texts)])
        return ids

    def add_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        ids = kwargs.pop("ids", None) or [d.id for d in documents]
        return self.add_texts([d.page_content for d in documents], [dict(d.metadata) for d in documents],
                              ids=list(ids), **kwargs)

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        if ids is None:
            raise ValueError("delete needs a list of ids")
        ids = id_list(ids)
        if self.index is not None and ids:
            self.index.delete(id_list(ids), missing_ok=True)
        return True

    # --- reads -------------------------------------------------------------------------
    @staticmethod
    def _document(doc_id: Any, metadata: dict) -> Document:
        meta = dict(metadata)
        text = meta.pop(TEXT_KEY, "")
        return Document(page_content=text, metadata=meta, id=doc_id)

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        if self.index is None or not ids:
            return []
        return [self._document(r.id, r.metadata) for r in self.index.get(id_list(ids)) if r is not None]

    def similarity_search_with_score_by_vector(self, embedding: list[float], k: int = 4,
                                               filter: dict | None = None, **kwargs: Any) -> list[tuple[Document, float]]:
        if self.index is None or len(self.index) == 0:
            return []
        hits = self.index.search(np.asarray(embedding, dtype=np.float32), k=k, filter=filter)
        return [(self._document(h.id, h.metadata), h.score) for h in hits]

    def similarity_search_with_score(self, query: str, k: int = 4, filter: dict | None = None,
                                     **kwargs: Any) -> list[tuple[Document, float]]:
        return self.similarity_search_with_score_by_vector(self._embedding.embed_query(query), k, filter)

    def similarity_search_by_vector(self, embedding: list[float], k: int = 4, filter: dict | None = None,
                                    **kwargs: Any) -> list[Document]:
        return [d for d, _ in self.similarity_search_with_score_by_vector(embedding, k, filter)]

    def similarity_search(self, query: str, k: int = 4, filter: dict | None = None,
                          **kwargs: Any) -> list[Document]:
        return [d for d, _ in self.similarity_search_with_score(query, k, filter)]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        return lambda cosine: (1.0 + cosine) / 2.0

    def max_marginal_relevance_search_by_vector(self, embedding: list[float], k: int = 4, fetch_k: int = 20,
                                                lambda_mult: float = 0.5, filter: dict | None = None,
                                                **kwargs: Any) -> list[Document]:
        if self.index is None or len(self.index) == 0:
            return []
        hits = self.index.search(np.asarray(embedding, dtype=np.float32), k=fetch_k, filter=filter)
        if not hits:
            return []
        records = self.index.get([h.id for h in hits])
        chosen = maximal_marginal_relevance(self.index.adapt(np.asarray(embedding, np.float32)[None, :])[0],
                                            [r.vector for r in records], lambda_mult=lambda_mult, k=k)
        return [self._document(hits[i].id, hits[i].metadata) for i in chosen]

    def max_marginal_relevance_search(self, query: str, k: int = 4, fetch_k: int = 20,
                                      lambda_mult: float = 0.5, filter: dict | None = None,
                                      **kwargs: Any) -> list[Document]:
        return self.max_marginal_relevance_search_by_vector(self._embedding.embed_query(query), k, fetch_k,
                                                            lambda_mult, filter)

    @classmethod
    def from_texts(cls, texts: list[str], embedding: Embeddings, metadatas: list[dict] | None = None, *,
                   ids: list[str] | None = None, **kwargs: Any) -> "MatryoshkaVectorStore":
        store = cls(embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    def fit_adaptor(self, texts: Sequence[str], queries: Sequence[str] | None = None, **train_kwargs: Any) -> MatryoshkaAdaptor:
        """Fit an unsupervised adaptor on these texts (and optional past queries) and use it
        for this store from now on: by default the funnel-aware one (``objective="funnel"``),
        whose final ranking is the embedding model's own. Call it before adding documents: vectors already stored
        were adapted with the previous adaptor."""
        from ..adaptor import fit_unsupervised
        if self.index is not None and len(self.index):
            raise ValueError("fit the adaptor before adding documents (stored vectors would not match)")
        docs = np.asarray(self._embedding.embed_documents(list(texts)), dtype=np.float32)
        q = np.asarray([self._embedding.embed_query(t) for t in queries], np.float32) if queries else None
        adaptor = fit_unsupervised(docs, queries=q, **{"objective": "funnel", **train_kwargs}).adaptor
        self._spec["adaptor"] = adaptor
        self.index = None
        return adaptor
