"""The Matryoshka-Adaptor: a residual MLP that makes embedding prefixes searchable.

``MatryoshkaAdaptor`` (numpy, no torch) is what indexes and queries use; ``fit_unsupervised``
and ``fit_supervised`` (torch, imported lazily) train one from embeddings alone.
"""
from .model import MatryoshkaAdaptor, AdaptorMismatchError


def fit_unsupervised(*args, **kwargs):  # noqa: D401 - thin lazy import so query-time code needs no torch
    """See :func:`matry_index.adaptor.training.fit_unsupervised`."""
    from .training import fit_unsupervised as fit
    return fit(*args, **kwargs)


def fit_supervised(*args, **kwargs):
    """See :func:`matry_index.adaptor.training.fit_supervised`."""
    from .training import fit_supervised as fit
    return fit(*args, **kwargs)


__all__ = ["MatryoshkaAdaptor", "AdaptorMismatchError", "fit_unsupervised", "fit_supervised"]
