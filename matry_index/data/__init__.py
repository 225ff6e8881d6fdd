"""Loading retrieval data: BEIR folders and precomputed embedding caches."""
from .beir import BeirDataset, load_beir
from .embeddings import EmbeddingSet, load_embeddings, save_embeddings

__all__ = ["BeirDataset", "load_beir", "EmbeddingSet", "load_embeddings", "save_embeddings"]
