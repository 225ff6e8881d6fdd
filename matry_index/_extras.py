"""Optional dependencies: import one, or say which extra of the package provides it.

``pip install matry_index`` is the query path (numpy, FAISS); training, evaluation reports
and encoders come with extras so a search service does not carry PyTorch or matplotlib.
"""
from __future__ import annotations

import importlib
from types import ModuleType

#: which extra provides each optional top-level module
EXTRA_OF = {"torch": "train", "scipy": "eval", "matplotlib": "eval", "sentence_transformers": "encoders",
            "qdrant_client": "qdrant", "qdrant_edge": "qdrant", "tenacity": "qdrant",
            "langchain_core": "langchain", "llama_index": "llamaindex"}


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the extra that provides it."""


def require(module: str, purpose: str) -> ModuleType:
    """``importlib.import_module(module)``, or a :class:`MissingExtraError` naming the extra."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        extra = EXTRA_OF.get(missing)
        if extra is None:
            raise
        raise MissingExtraError(f"{purpose} needs {missing}, which the base install leaves out: "
                                f"pip install 'matry_index[{extra}]'") from None
