"""A LangChain ``VectorStore`` over :class:`matry_index.MatryoshkaIndex` (any backend).

    from matry_index.integrations.langchain import MatryoshkaVectorStore
    store = MatryoshkaVectorStore(embeddings, adaptor=adaptor, backend="faiss")
    store.add_texts(texts, metadatas, ids=ids)
    store.similarity_search("question", k=4, filter={"source": "faq"})

Texts live in the index's metadata (under a reserved key), so any backend is enough on its
own. The index is created on the first write, when the embedding dimension is known; an
untrained or missing adaptor means plain cosine search. Scores are full-dimension cosines of
the adapted vectors; relevance scores map them to [0, 1] as ``(1 + cos) / 2``.

``save_local`` / ``load_local`` work as on LangChain's FAISS store, on the index's own plain-data
save format (no pickle: nothing to deserialise dangerously). The async methods await the
embedding model's own async calls; searches then await :meth:`MatryoshkaIndex.asearch` (Qdrant's
async client on a server, a worker thread for the in-process engines) and writes run in a
thread, so an event loop is never blocked.
"""
from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Sequence
from functools import partial
from pathlib import Path
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

    def embed_queries(self, texts: list[str]) -> list[list[float]]:
        """Many queries in one batch (with the model's query prompt), not one call each."""
        return self.encoder.embed_queries(texts).tolist()


def embed_queries(embedding: Embeddings, texts: Sequence[str]) -> np.ndarray:
    """Query embeddings of ``texts``: in one batch where the model offers one
    (``embed_queries``), else one ``embed_query`` call each (LangChain's interface has no
    batched query call, and a query may be embedded differently from a document)."""
    batched = getattr(embedding, "embed_queries", None)
    rows = batched(list(texts)) if callable(batched) else [embedding.embed_query(t) for t in texts]
    return np.asarray(rows, dtype=np.float32)


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
        self._fitted_on: dict[str, np.ndarray] = {}  # document embeddings fit_adaptor already made

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
        vectors = self._document_vectors(texts)
        return self._upsert(texts, vectors, metadatas, ids)

    def _upsert(self, texts: list[str], vectors: np.ndarray, metadatas: list[dict], ids: list) -> list:
        index = self._ensure_index(vectors.shape[1])
        index.upsert(ids, vectors, [{**(m or {}), TEXT_KEY: t} for m, t in zip(metadatas, texts)])
        return ids

    def _document_vectors(self, texts: list[str]) -> np.ndarray:
        """Embeddings of ``texts``, reusing those :meth:`fit_adaptor` made (each once), so that
        fitting and then adding the same corpus embeds it once."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._fitted_on]
        fresh = dict(zip(missing, np.asarray(self._embedding.embed_documents(missing), np.float32))) if missing else {}
        vectors = np.stack([fresh[t] if t in fresh else self._fitted_on[t] for t in texts]).astype(np.float32)
        for t in texts:
            self._fitted_on.pop(t, None)
        return vectors

    async def aadd_texts(self, texts: Iterable[str], metadatas: list[dict] | None = None, *,
                         ids: list[str] | None = None, **kwargs: Any) -> list[str]:
        """:meth:`add_texts` with the model's async embedding call and the write in a thread."""
        if isinstance(texts, (str, bytes)):
            raise ValueError("add_texts needs a list of texts, not a single string")
        texts = list(texts)
        if not texts or self._fitted_on:  # the sync path knows which texts are already embedded
            return await asyncio.get_running_loop().run_in_executor(
                None, partial(self.add_texts, texts, metadatas, ids=ids, **kwargs))
        if ids is not None:
            ids = id_list(ids)
        metadatas = list(metadatas) if metadatas is not None else [{} for _ in texts]
        ids = [i if i is not None else str(uuid.uuid4()) for i in (ids or [None] * len(texts))]
        if len(ids) != len(texts) or len(metadatas) != len(texts):
            raise ValueError(f"got {len(texts)} texts, {len(ids)} ids and {len(metadatas)} metadatas")
        vectors = np.asarray(await self._embedding.aembed_documents(texts), dtype=np.float32)
        return await asyncio.get_running_loop().run_in_executor(
            None, self._upsert, texts, vectors, metadatas, ids)

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
        return self._scored(hits)

    def _scored(self, hits: list) -> list[tuple[Document, float]]:
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

    async def asimilarity_search_with_score_by_vector(self, embedding: list[float], k: int = 4,
                                                      filter: dict | None = None,
                                                      **kwargs: Any) -> list[tuple[Document, float]]:
        """The search awaited through :meth:`MatryoshkaIndex.asearch`."""
        if self.index is None or len(self.index) == 0:
            return []
        hits = await self.index.asearch(np.asarray(embedding, dtype=np.float32), k=k, filter=filter)
        return self._scored(hits)

    async def asimilarity_search_by_vector(self, embedding: list[float], k: int = 4, filter: dict | None = None,
                                           **kwargs: Any) -> list[Document]:
        return [d for d, _ in await self.asimilarity_search_with_score_by_vector(embedding, k, filter)]

    async def asimilarity_search_with_score(self, query: str, k: int = 4, filter: dict | None = None,
                                            **kwargs: Any) -> list[tuple[Document, float]]:
        """The model's async query embedding, then the awaited search."""
        embedding = await self._embedding.aembed_query(query)
        return await self.asimilarity_search_with_score_by_vector(embedding, k, filter)

    async def asimilarity_search(self, query: str, k: int = 4, filter: dict | None = None,
                                 **kwargs: Any) -> list[Document]:
        return [d for d, _ in await self.asimilarity_search_with_score(query, k, filter)]

    # --- persistence -------------------------------------------------------------------
    def save_local(self, folder_path: str | Path, index_name: str = "index") -> None:
        """Save the index (vectors, texts, metadata, adaptor) under ``folder_path/index_name``:
        atomic and checksummed, plain arrays and JSON (:meth:`MatryoshkaIndex.save`)."""
        if self.index is None:
            raise ValueError("nothing to save: the store is empty (the index is created on the first write)")
        Path(folder_path).mkdir(parents=True, exist_ok=True)
        self.index.save(Path(folder_path) / index_name)

    @classmethod
    def load_local(cls, folder_path: str | Path, embeddings: Embeddings, index_name: str = "index",
                   *, allow_dangerous_deserialization: bool = False, **connection: Any) -> "MatryoshkaVectorStore":
        """A store over the index :meth:`save_local` wrote. Nothing is unpickled, so
        ``allow_dangerous_deserialization`` (accepted for LangChain's FAISS signature) changes
        nothing; ``connection`` goes to :meth:`MatryoshkaIndex.load` (e.g. ``url=`` for a server)."""
        return cls(embeddings, MatryoshkaIndex.load(Path(folder_path) / index_name, **connection))

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        # clipped: a float32 cosine of a vector with itself can come out a hair above 1
        return lambda cosine: min(1.0, max(0.0, (1.0 + cosine) / 2.0))

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
        texts = list(texts)
        docs = np.asarray(self._embedding.embed_documents(texts), dtype=np.float32)
        q = embed_queries(self._embedding, queries) if queries else None
        adaptor = fit_unsupervised(docs, queries=q, **{"objective": "funnel", **train_kwargs}).adaptor
        self._spec["adaptor"] = adaptor
        self.index = None
        self._fitted_on = dict(zip(texts, docs))  # add_texts of the same corpus reuses them
        return adaptor
