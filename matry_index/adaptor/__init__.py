"""The Matryoshka-Adaptor: a residual MLP that makes embedding prefixes searchable.

``MatryoshkaAdaptor`` (numpy, no torch) is what indexes and queries use; ``fit_unsupervised``
and ``fit_supervised`` train one from embeddings alone (torch, from the ``train`` extra,
imported on the first fit), with settings in a :class:`TrainConfig`.
"""
from .config import TrainConfig, TrainResult
from .fit import fit_supervised, fit_unsupervised
from ..errors import AdaptorMismatchError
from .model import MatryoshkaAdaptor

__all__ = ["MatryoshkaAdaptor", "AdaptorMismatchError", "TrainConfig", "TrainResult",
           "fit_unsupervised", "fit_supervised"]
