"""matry_index: Matryoshka-Adaptor training and coarse-to-fine vector search.

    from matry_index import MatryoshkaIndex, fit_unsupervised
    adaptor = fit_unsupervised(corpus_embeddings).adaptor
    index = MatryoshkaIndex(dim=384, adaptor=adaptor)
    index.add(ids, corpus_embeddings, metadata)
    hits = index.search(query_embedding, k=10, filter={"lang": "en"})
"""
from .adaptor import MatryoshkaAdaptor, fit_supervised, fit_unsupervised
from .backends.base import Hit, Record
from .funnel import FunnelPlan
from .errors import (AdaptorMismatchError, Conflict, Corrupt, InvalidInput, MatryIndexError, NoSpace,
                     StorageError, Unavailable)
from .index import MatryoshkaIndex

__version__ = "0.1.0"
__all__ = ["MatryoshkaIndex", "MatryoshkaAdaptor", "FunnelPlan", "Hit", "Record",
           "MatryIndexError", "InvalidInput", "AdaptorMismatchError", "Corrupt", "Unavailable", "StorageError",
           "NoSpace", "Conflict", "fit_unsupervised", "fit_supervised"]
